#include "policy/stream_restore.h"

#include <simdjson.h>

#include <algorithm>
#include <cstddef>

#include "common/json_text.h"

namespace redline::policy {

namespace {

namespace od = simdjson::ondemand;

// One output string of a response body or chunk.
struct OutputString {
  std::int64_t choice = 0;
  OutputChannel channel = OutputChannel::kContent;
  std::int64_t tool_index = 0;
  std::size_t offset = 0;  // of the string token (opening quote) in the JSON text
  std::size_t length = 0;  // of the token, quotes included
  std::string_view text;   // unescaped; valid until the next read
};

struct OutputDocument {
  std::vector<OutputString> strings;  // document order
  std::vector<std::int64_t> finished_choices;
  // Raw JSON tokens; empty when absent.
  std::string_view id;
  std::string_view object;
  std::string_view created;
  std::string_view model;
};

std::string_view trim_trailing_space(std::string_view token) {
  const std::size_t end = token.find_last_not_of(" \t\r\n");
  return end == std::string_view::npos ? std::string_view() : token.substr(0, end + 1);
}

bool is(od::value& value, od::json_type expected) {
  od::json_type type;
  return !value.type().get(type) && type == expected;
}

// Reads the output texts of a chat.completion(.chunk) or text_completion with the on-demand
// parser: no DOM, and the token offsets let a rewrite splice strings into the original bytes.
// Choice and tool-call indexes may follow the texts inside their object, so texts are recorded
// first and their indexes filled in when the object ends.
class OutputReader {
 public:
  // nullptr when `json` is not a JSON object.
  const OutputDocument* read(std::string_view json) {
    document_ = OutputDocument();
    padded_.reserve(json.size() + simdjson::SIMDJSON_PADDING);
    padded_.assign(json);
    od::document document;
    od::object root;
    if (parser_.iterate(padded_.data(), padded_.size(), padded_.capacity()).get(document) ||
        document.get_object().get(root)) {
      return nullptr;
    }
    for (auto field : root) {
      std::string_view key;
      od::value value;
      if (field.unescaped_key().get(key) || field.value().get(value)) return nullptr;
      if (key == "choices") {
        if (!choices(value)) return nullptr;
      } else if (key == "id" || key == "object" || key == "created" || key == "model") {
        // Copied into chunks Redline adds, so only scalars whose raw token is the whole value.
        if (!is(value, key == "created" ? od::json_type::number : od::json_type::string)) continue;
        const std::string_view token = trim_trailing_space(value.raw_json_token());
        if (key == "id") document_.id = token;
        if (key == "object") document_.object = token;
        if (key == "created") document_.created = token;
        if (key == "model") document_.model = token;
      }
    }
    return &document_;
  }

 private:
  bool choices(od::value& value) {
    if (!is(value, od::json_type::array)) return true;
    od::array array;
    if (value.get_array().get(array)) return false;
    std::int64_t position = 0;
    for (auto element : array) {
      od::value item;
      if (element.get(item)) return false;
      od::object choice;
      if (is(item, od::json_type::object) &&
          (item.get_object().get(choice) || !read_choice(choice, position))) {
        return false;
      }
      ++position;
    }
    return true;
  }

  bool read_choice(od::object choice, std::int64_t position) {
    const std::size_t first = document_.strings.size();
    std::int64_t index = position;
    bool finished = false;
    for (auto field : choice) {
      std::string_view key;
      od::value value;
      if (field.unescaped_key().get(key) || field.value().get(value)) return false;
      bool ok = true;
      if (key == "index") {
        index = integer_or(value, position);
      } else if (key == "finish_reason") {
        finished = !is(value, od::json_type::null);
      } else if (key == "text") {
        ok = string(value, OutputChannel::kText);
      } else if (key == "delta" || key == "message") {
        ok = message(value);
      }
      if (!ok) return false;
    }
    for (std::size_t i = first; i < document_.strings.size(); ++i) {
      document_.strings[i].choice = index;
    }
    if (finished) document_.finished_choices.push_back(index);
    return true;
  }

  bool message(od::value& value) {
    if (!is(value, od::json_type::object)) return true;
    od::object message;
    if (value.get_object().get(message)) return false;
    for (auto field : message) {
      std::string_view key;
      od::value member;
      if (field.unescaped_key().get(key) || field.value().get(member)) return false;
      bool ok = true;
      if (key == "content") {
        ok = string(member, OutputChannel::kContent);
      } else if (key == "function_call") {
        ok = arguments(member, OutputChannel::kFunctionArguments);
      } else if (key == "tool_calls") {
        ok = tool_calls(member);
      }
      if (!ok) return false;
    }
    return true;
  }

  bool tool_calls(od::value& value) {
    if (!is(value, od::json_type::array)) return true;
    od::array array;
    if (value.get_array().get(array)) return false;
    std::int64_t position = 0;
    for (auto element : array) {
      od::value item;
      if (element.get(item)) return false;
      if (is(item, od::json_type::object)) {
        od::object call;
        if (item.get_object().get(call)) return false;
        const std::size_t first = document_.strings.size();
        std::int64_t index = position;
        for (auto field : call) {
          std::string_view key;
          od::value member;
          if (field.unescaped_key().get(key) || field.value().get(member)) return false;
          if (key == "index") index = integer_or(member, position);
          if (key == "function" && !arguments(member, OutputChannel::kToolArguments)) return false;
        }
        for (std::size_t i = first; i < document_.strings.size(); ++i) {
          document_.strings[i].tool_index = index;
        }
      }
      ++position;
    }
    return true;
  }

  bool arguments(od::value& value, OutputChannel channel) {
    if (!is(value, od::json_type::object)) return true;
    od::object function;
    if (value.get_object().get(function)) return false;
    for (auto field : function) {
      std::string_view key;
      od::value member;
      if (field.unescaped_key().get(key) || field.value().get(member)) return false;
      if (key == "arguments" && !string(member, channel)) return false;
    }
    return true;
  }

  bool string(od::value& value, OutputChannel channel) {
    if (!is(value, od::json_type::string)) return true;
    const std::string_view token = value.raw_json_token();
    std::string_view text;
    if (value.get_string().get(text)) return false;
    OutputString string;
    string.channel = channel;
    string.offset = static_cast<std::size_t>(token.data() - padded_.data());
    // The raw token may run on over whitespace after the closing quote.
    string.length = token.find_last_of('"') + 1;
    string.text = text;
    document_.strings.push_back(string);
    return true;
  }

  static std::int64_t integer_or(od::value& value, std::int64_t fallback) {
    std::int64_t integer;
    return value.get_int64().get(integer) ? fallback : integer;
  }

  od::parser parser_;
  std::string padded_;  // on-demand parsing reads past the end of the text
  OutputDocument document_;
};

// Not reentrant: the texts it hands out live in its parser.
OutputReader& thread_reader() {
  thread_local OutputReader reader;
  return reader;
}

// False only when no output text of `json` can contain a placeholder or the start of one, judged
// from the raw bytes: a placeholder starts with '[' and 'R', and a held-back start ends the
// string, right before its closing quote. Any escaped ASCII character ("\u00..") might be one of
// the placeholder's characters, so it counts too.
bool may_hold_placeholder(std::string_view json) {
  for (std::size_t open = json.find('['); open != std::string_view::npos;
       open = json.find('[', open + 1)) {
    if (open + 1 == json.size()) return true;
    const char next = json[open + 1];
    if (next == 'R' || next == '"' || next == '\\') return true;
  }
  return json.find("\\u00") != std::string_view::npos;
}

bool carries_json(OutputChannel channel) {
  return channel == OutputChannel::kToolArguments || channel == OutputChannel::kFunctionArguments;
}

struct StringEdit {
  std::size_t offset;
  std::size_t length;
  std::string text;  // unescaped
};

std::string spliced(std::string_view json, const std::vector<StringEdit>& edits) {
  std::string out;
  out.reserve(json.size() + 64);
  std::size_t copied = 0;
  for (const StringEdit& edit : edits) {
    out.append(json.substr(copied, edit.offset - copied));
    append_json_string(out, edit.text);
    copied = edit.offset + edit.length;
  }
  out.append(json.substr(copied));
  return out;
}

}  // namespace

std::string restore_response_body(std::string_view body, const RedactionVault& vault) {
  if (vault.empty() || !may_hold_placeholder(body)) return std::string(body);
  const OutputDocument* document = thread_reader().read(body);
  if (document == nullptr) return std::string(body);
  std::vector<StringEdit> edits;
  for (const OutputString& string : document->strings) {
    std::string restored = restore_text(string.text, vault, carries_json(string.channel));
    if (restored != string.text)
      edits.push_back({string.offset, string.length, std::move(restored)});
  }
  return edits.empty() ? std::string(body) : spliced(body, edits);
}

void StreamRestorer::on_event(std::string_view payload, std::vector<std::string>& out) {
  if (trim_trailing_space(payload.substr(
          std::min(payload.find_first_not_of(" \t\r\n"), payload.size()))) == "[DONE]") {
    flush_held([](const ChannelKey&) { return true; }, out);
    out.emplace_back(payload);
    return;
  }
  if (held_.empty() && (vault_.empty() || !may_hold_placeholder(payload))) {
    out.emplace_back(payload);
    return;
  }
  const OutputDocument* document = thread_reader().read(payload);
  if (document == nullptr) {
    out.emplace_back(payload);
    return;
  }
  if (!document->id.empty()) id_.assign(document->id);
  if (!document->object.empty()) object_.assign(document->object);
  if (!document->created.empty()) created_.assign(document->created);
  if (!document->model.empty()) model_.assign(document->model);

  auto finishing = [&](std::int64_t choice) {
    return std::find(document->finished_choices.begin(), document->finished_choices.end(),
                     choice) != document->finished_choices.end();
  };
  std::vector<StringEdit> edits;
  for (const OutputString& string : document->strings) {
    const ChannelKey key{string.choice, string.channel, string.tool_index};
    std::string text;
    if (auto held = held_.find(key); held != held_.end()) {
      text = std::move(held->second);
      held_.erase(held);
    }
    text.append(string.text);
    // Only the part after the last '[' can be the start of a placeholder: a placeholder holds no
    // '[' after its first byte. A finishing choice gets no more output, so nothing is held.
    std::size_t emit = text.size();
    const std::size_t open = text.rfind('[');
    if (!finishing(string.choice) && open != std::string::npos &&
        text.size() - open < vault_.longest_placeholder() &&
        vault_.could_begin_placeholder(std::string_view(text).substr(open))) {
      emit = open;
      held_.emplace(key, text.substr(open));
    }
    std::string restored =
        restore_text(std::string_view(text).substr(0, emit), vault_, carries_json(string.channel));
    if (restored != string.text)
      edits.push_back({string.offset, string.length, std::move(restored)});
  }
  // Held output of a finishing choice whose channels this chunk does not carry goes out first.
  flush_held([&](const ChannelKey& key) { return finishing(key.choice); }, out);
  out.push_back(edits.empty() ? std::string(payload) : spliced(payload, edits));
}

void StreamRestorer::finish(std::vector<std::string>& out) {
  flush_held([](const ChannelKey&) { return true; }, out);
}

void StreamRestorer::flush_held(const std::function<bool(const ChannelKey&)>& flush,
                                std::vector<std::string>& out) {
  std::vector<std::pair<ChannelKey, std::string>> flushed;
  for (auto entry = held_.begin(); entry != held_.end();) {
    if (flush(entry->first)) {
      flushed.emplace_back(entry->first, std::move(entry->second));
      entry = held_.erase(entry);
    } else {
      ++entry;
    }
  }
  if (flushed.empty()) return;

  // A held fragment is an unfinished placeholder, so it goes out as the model wrote it.
  std::string chunk = "{";
  auto member = [&](std::string_view name, std::string_view token) {
    if (token.empty()) return;
    chunk.append("\"").append(name).append("\":").append(token).append(",");
  };
  const bool text_completion = flushed.front().first.channel == OutputChannel::kText;
  member("id", id_);
  member("object", !object_.empty()  ? std::string_view(object_)
                   : text_completion ? std::string_view("\"text_completion\"")
                                     : std::string_view("\"chat.completion.chunk\""));
  member("created", created_);
  member("model", model_);
  chunk.append("\"choices\":[");
  // `flushed` is ordered by choice, then channel (content, tool calls, function call, text).
  for (std::size_t i = 0; i < flushed.size();) {
    const std::int64_t choice = flushed[i].first.choice;
    std::size_t end = i;
    while (end < flushed.size() && flushed[end].first.choice == choice) ++end;
    if (i > 0) chunk.push_back(',');
    chunk.append("{\"index\":").append(std::to_string(choice));
    std::string delta;
    std::string tool_calls;
    for (std::size_t j = i; j < end; ++j) {
      const auto& [key, text] = flushed[j];
      switch (key.channel) {
        case OutputChannel::kContent:
          delta.append(delta.empty() ? "" : ",").append("\"content\":");
          append_json_string(delta, text);
          break;
        case OutputChannel::kToolArguments:
          tool_calls.append(tool_calls.empty() ? "" : ",")
              .append("{\"index\":")
              .append(std::to_string(key.tool_index))
              .append(",\"function\":{\"arguments\":");
          append_json_string(tool_calls, text);
          tool_calls.append("}}");
          break;
        case OutputChannel::kFunctionArguments:
          delta.append(delta.empty() ? "" : ",").append("\"function_call\":{\"arguments\":");
          append_json_string(delta, text);
          delta.append("}");
          break;
        case OutputChannel::kText:
          chunk.append(",\"text\":");
          append_json_string(chunk, text);
          break;
      }
    }
    if (!tool_calls.empty()) {
      delta.append(delta.empty() ? "" : ",").append("\"tool_calls\":[").append(tool_calls);
      delta.append("]");
    }
    if (!delta.empty()) chunk.append(",\"delta\":{").append(delta).append("}");
    chunk.append(",\"finish_reason\":null}");
    i = end;
  }
  chunk.append("]}");
  out.push_back(std::move(chunk));
}

void for_each_output_text(std::string_view json,
                          const std::function<void(std::string_view text)>& on_text) {
  const OutputDocument* document = thread_reader().read(json);
  if (document == nullptr) return;
  for (const OutputString& string : document->strings) on_text(string.text);
}

}  // namespace redline::policy
