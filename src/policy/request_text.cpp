#include "policy/request_text.h"

#include <simdjson.h>

#include <algorithm>
#include <cstddef>
#include <vector>

#include "common/json_text.h"

namespace redline::policy {

namespace {

namespace od = simdjson::ondemand;

// Walks one request document with the on-demand parser (no DOM: the texts are read straight out
// of the parser's string buffer) and hands each content string to `on_string`, which gets the
// value positioned on it. The methods return false on malformed JSON.
template <typename OnString>
class RequestWalker {
 public:
  explicit RequestWalker(OnString& on_string) : on_string_(on_string) {}

  bool request(RequestKind kind, od::object root) {
    for (auto field : root) {
      std::string_view key;
      od::value value;
      if (field.unescaped_key().get(key) || field.value().get(value)) return false;
      if (!request_field(kind, key, value)) return false;
    }
    return true;
  }

 private:
  bool request_field(RequestKind kind, std::string_view key, od::value& value) {
    switch (kind) {
      case RequestKind::kChatCompletions:
        if (key == "messages") return each_object(value, &RequestWalker::chat_message);
        if (key == "tools" || key == "functions") return each_object(value, &RequestWalker::tool);
        return true;
      case RequestKind::kCompletions:
        if (key == "prompt" || key == "suffix") return strings(value);
        return true;
      case RequestKind::kEmbeddings:
        if (key == "input") return strings(value);
        return true;
      case RequestKind::kResponses:
        if (key == "instructions") return string(value);
        if (key == "input") return responses_input(value);
        if (key == "tools") return each_object(value, &RequestWalker::tool);
        return true;
    }
    return true;
  }

  bool chat_message(od::object message) {
    return each_field(message, [&](std::string_view key, od::value& value) {
      if (key == "content") return content(value);
      if (key == "refusal") return string(value);
      if (key == "tool_calls") return each_object(value, &RequestWalker::tool_call);
      if (key == "function_call") return arguments_of(value);
      return true;
    });
  }

  bool tool_call(od::object call) {
    return each_field(call, [&](std::string_view key, od::value& value) {
      return key == "function" ? arguments_of(value) : true;
    });
  }

  bool arguments_of(od::value& function) {
    return fields_of(function, [&](std::string_view key, od::value& value) {
      return key == "arguments" ? string(value) : true;
    });
  }

  // Chat tools nest the definition under "function"; Responses tools and legacy functions are
  // flat. Both shapes are read the same way.
  bool tool(od::object definition) {
    return each_field(definition, [&](std::string_view key, od::value& value) {
      if (key == "description") return string(value);
      if (key == "function") {
        od::object nested;
        if (is(value, od::json_type::object) && !value.get_object().get(nested)) {
          return tool(nested);
        }
      }
      return true;
    });
  }

  bool responses_input(od::value& input) {
    if (is(input, od::json_type::string)) return string(input);
    return each_object(input, &RequestWalker::responses_item);
  }

  bool responses_item(od::object item) {
    return each_field(item, [&](std::string_view key, od::value& value) {
      if (key == "content" || key == "output") return content(value);
      if (key == "arguments") return string(value);
      return true;
    });
  }

  // A string, or an array of parts whose text the model reads.
  bool content(od::value& value) {
    if (is(value, od::json_type::string)) return string(value);
    return each_object(value, &RequestWalker::content_part);
  }

  bool content_part(od::object part) {
    return each_field(part, [&](std::string_view key, od::value& value) {
      return key == "text" || key == "refusal" ? string(value) : true;
    });
  }

  // A string or an array of strings; other elements (token ids) are skipped.
  bool strings(od::value& value) {
    if (is(value, od::json_type::string)) return string(value);
    if (!is(value, od::json_type::array)) return true;
    od::array array;
    if (value.get_array().get(array)) return false;
    for (auto element : array) {
      od::value item;
      if (element.get(item) || !string(item)) return false;
    }
    return true;
  }

  bool string(od::value& value) {
    if (!is(value, od::json_type::string)) return true;
    return on_string_(value);
  }

  template <typename Visit>
  bool each_field(od::object object, Visit&& visit) {
    for (auto field : object) {
      std::string_view key;
      od::value value;
      if (field.unescaped_key().get(key) || field.value().get(value)) return false;
      if (!visit(key, value)) return false;
    }
    return true;
  }

  template <typename Visit>
  bool fields_of(od::value& value, Visit&& visit) {
    if (!is(value, od::json_type::object)) return true;
    od::object object;
    if (value.get_object().get(object)) return false;
    return each_field(object, visit);
  }

  bool each_object(od::value& value, bool (RequestWalker::*visit)(od::object)) {
    if (!is(value, od::json_type::array)) return true;
    od::array array;
    if (value.get_array().get(array)) return false;
    for (auto element : array) {
      od::value item;
      if (element.get(item)) return false;
      if (!is(item, od::json_type::object)) continue;
      od::object object;
      if (item.get_object().get(object) || !(this->*visit)(object)) return false;
    }
    return true;
  }

  // A type error here means malformed JSON; the caller's next read reports it.
  static bool is(od::value& value, od::json_type expected) {
    od::json_type type;
    return !value.type().get(type) && type == expected;
  }

  OnString& on_string_;
};

// The parser and a padded copy of the body (on-demand parsing reads past the end).
struct ParseBuffers {
  od::parser parser;
  std::string padded;
};

template <typename OnString>
bool walk_request(RequestKind kind, std::string_view body, OnString& on_string,
                  const char** buffer_start) {
  thread_local ParseBuffers buffers;
  buffers.padded.reserve(body.size() + simdjson::SIMDJSON_PADDING);
  buffers.padded.assign(body);
  *buffer_start = buffers.padded.data();
  od::document document;
  if (buffers.parser
          .iterate(buffers.padded.data(), buffers.padded.size(), buffers.padded.capacity())
          .get(document)) {
    return false;
  }
  od::object root;
  if (document.get_object().get(root)) return false;
  RequestWalker<OnString> walker(on_string);
  return walker.request(kind, root);
}

struct StringEdit {
  std::size_t offset;  // of the opening quote in the body
  std::size_t length;  // through the closing quote
  std::string json;    // the replacement string literal
};

}  // namespace

bool visit_request_texts(RequestKind kind, std::string_view body, const TextVisitor& visit,
                         std::string* rewritten) {
  rewritten->clear();
  std::vector<StringEdit> edits;
  const char* buffer_start = nullptr;
  std::string text;
  auto on_string = [&](od::value& value) {
    const std::string_view token = value.raw_json_token();
    std::string_view unescaped;
    if (value.get_string().get(unescaped)) return false;
    text.assign(unescaped);
    if (visit(text)) {
      // The raw token may run on over whitespace after the closing quote.
      edits.push_back({static_cast<std::size_t>(token.data() - buffer_start),
                       token.find_last_of('"') + 1, json_string(text)});
    }
    return true;
  };
  if (!walk_request(kind, body, on_string, &buffer_start)) return false;
  if (edits.empty()) return true;
  // Document order already; splice the replacements into the original bytes.
  std::size_t copied = 0;
  for (const StringEdit& edit : edits) {
    rewritten->append(body.substr(copied, edit.offset - copied));
    rewritten->append(edit.json);
    copied = edit.offset + edit.length;
  }
  rewritten->append(body.substr(copied));
  return true;
}

bool for_each_request_text(RequestKind kind, std::string_view body,
                           const std::function<void(std::string_view text)>& on_text) {
  const char* buffer_start = nullptr;
  auto on_string = [&](od::value& value) {
    std::string_view unescaped;
    if (value.get_string().get(unescaped)) return false;
    on_text(unescaped);
    return true;
  };
  return walk_request(kind, body, on_string, &buffer_start);
}

}  // namespace redline::policy
