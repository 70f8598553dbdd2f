#include "sim/generation.h"

#include <simdjson.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <cmath>
#include <cstring>

#include "common/json_text.h"
#include "sim/sim_random.h"

namespace redline::sim {

namespace {

namespace od = simdjson::ondemand;

constexpr std::string_view kVocabulary[] = {
    "the",     "model",  "answer",  "simulated", "request", "token",    "stream", "gateway",
    "latency", "policy", "route",   "backend",   "quick",   "brown",    "fox",    "jumps",
    "over",    "lazy",   "dog",     "signal",    "river",   "mountain", "cloud",  "edge",
    "budget",  "audit",  "record",  "chain",     "secure",  "data",     "label",  "clear",
    "value",   "result", "careful", "bright",    "steady",  "simple",   "system", "network",
    "packet",  "window", "light",   "green",     "orange",  "silver",   "ocean",  "forest",
    "planet",  "quiet",  "rapid",   "gentle",    "robust",  "metric",   "sample", "vector",
    "memory",  "thread", "socket",  "buffer",    "cache",   "engine",   "harbor", "lantern"};
constexpr std::uint32_t kVocabularySize = sizeof kVocabulary / sizeof kVocabulary[0];

// Fragment size of tool arguments and structured output in a stream.
constexpr std::size_t kFragmentBytes = 8;
constexpr std::string_view kEchoPrefix = "echo: ";
constexpr std::string_view kReverseEchoPrefix = "echo-reverse: ";

// Characters in reverse order (UTF-8 sequences kept whole): lets a test make a model "say"
// something its prompt did not contain.
std::string reversed_characters(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  std::size_t end = text.size();
  while (end > 0) {
    std::size_t start = end - 1;
    while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
    out.append(text.substr(start, end - start));
    end = start;
  }
  return out;
}

// The thread's parser and a padded copy of the body: reused, so parsing allocates nothing once
// warm. Callers copy what they need out of the document before they suspend.
struct ThreadParser {
  od::parser parser;
  std::string buffer;
};

simdjson::error_code iterate(std::string_view body, od::document& doc) {
  thread_local ThreadParser state;
  state.buffer.reserve(body.size() + simdjson::SIMDJSON_PADDING);
  state.buffer.assign(body);
  return state.parser.iterate(state.buffer.data(), state.buffer.size(), state.buffer.capacity())
      .get(doc);
}

ApiError bad_request(std::string message, std::string param = {}) {
  return make_error(400, std::move(message), std::move(param));
}

ApiError invalid_json() {
  return bad_request(
      "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
      "using your HTTP library correctly. The OpenAI API expects a JSON payload.)");
}

int tokens_for_chars(std::size_t chars) { return std::max<int>(1, static_cast<int>(chars / 4)); }

// Reads an optional positive token limit; null means absent.
std::optional<ApiError> read_token_limit(od::value& value, std::string_view key,
                                         std::optional<int>& out) {
  if (value.is_null()) return std::nullopt;
  std::int64_t number = 0;
  if (value.get_int64().get(number) || number < 1 || number > INT32_MAX) {
    return bad_request(std::string(key) + " must be a positive integer", std::string(key));
  }
  out = static_cast<int>(number);
  return std::nullopt;
}

std::optional<ApiError> read_bool(od::value& value, std::string_view key, bool& out) {
  if (value.is_null()) return std::nullopt;
  if (value.get_bool().get(out)) {
    return bad_request(std::string(key) + " must be a boolean", std::string(key));
  }
  return std::nullopt;
}

std::optional<ApiError> read_stream_options(od::value& value, bool& include_usage) {
  if (value.is_null()) return std::nullopt;
  od::object options;
  if (value.get_object().get(options)) {
    return bad_request("stream_options must be an object", "stream_options");
  }
  for (auto field_result : options) {
    od::field field;
    std::string_view key;
    if (std::move(field_result).get(field) || field.unescaped_key().get(key)) return invalid_json();
    if (key == "include_usage") {
      if (auto error = read_bool(field.value(), "stream_options.include_usage", include_usage)) {
        return error;
      }
    }
  }
  return std::nullopt;
}

std::optional<ApiError> read_model(od::value& value, std::string& model) {
  std::string_view text;
  if (value.get_string().get(text)) return bad_request("model must be a string", "model");
  model.assign(text);
  return std::nullopt;
}

// Message content: a string, null, or an array of parts whose text parts count.
std::optional<ApiError> read_content(od::value& value, ChatRequest& request,
                                     std::uint64_t& content_hash, std::string& message_text) {
  od::json_type type;
  if (value.type().get(type)) return invalid_json();
  if (type == od::json_type::null) return std::nullopt;
  if (type == od::json_type::string) {
    std::string_view text;
    if (value.get_string().get(text)) return invalid_json();
    content_hash = hash_bytes(text, content_hash);
    request.prompt_chars += text.size();
    message_text.append(text);
    if (text.starts_with(kEchoPrefix)) request.echo = std::string(text.substr(kEchoPrefix.size()));
    if (text.starts_with(kReverseEchoPrefix)) {
      request.echo = reversed_characters(text.substr(kReverseEchoPrefix.size()));
    }
    return std::nullopt;
  }
  od::array parts;
  if (value.get_array().get(parts)) {
    return bad_request("message content must be a string or an array of parts", "messages");
  }
  for (auto part_result : parts) {
    od::object part;
    if (part_result.get_object().get(part)) {
      return bad_request("content parts must be objects", "messages");
    }
    for (auto field_result : part) {
      od::field field;
      std::string_view key;
      if (std::move(field_result).get(field) || field.unescaped_key().get(key))
        return invalid_json();
      if (key == "text") {
        std::string_view text;
        if (field.value().get_string().get(text)) {
          return bad_request("content part text must be a string", "messages");
        }
        content_hash = hash_bytes(text, content_hash);
        request.prompt_chars += text.size();
        message_text.append(text);
      }
    }
  }
  return std::nullopt;
}

std::optional<ApiError> read_messages(od::value& value, ChatRequest& request) {
  od::array messages;
  if (value.get_array().get(messages)) {
    return bad_request("messages must be an array", "messages");
  }
  std::size_t count = 0;
  for (auto message_result : messages) {
    od::object message;
    if (message_result.get_object().get(message)) {
      return bad_request("each message must be an object", "messages");
    }
    // Hashed per field, then combined in a fixed order: the order of a message's keys does
    // not change the answer.
    std::string_view role;
    std::uint64_t content_hash = kHashStart;
    std::uint64_t tool_call_id_hash = kHashStart;
    std::uint64_t other_hash = kHashStart;  // name and tool_calls: the prefix hash only
    std::string text;
    for (auto field_result : message) {
      od::field field;
      std::string_view key;
      if (std::move(field_result).get(field) || field.unescaped_key().get(key)) {
        return invalid_json();
      }
      if (key == "role") {
        if (field.value().get_string().get(role)) {
          return bad_request("message role must be a string", "messages");
        }
      } else if (key == "content") {
        if (auto error = read_content(field.value(), request, content_hash, text)) return error;
      } else if (key == "tool_call_id") {
        std::string_view id;
        if (field.value().get_string().get(id)) {
          return bad_request("tool_call_id must be a string", "messages");
        }
        tool_call_id_hash = hash_bytes(id);
      } else if (key == "tool_calls" || key == "name") {
        std::string_view raw;
        if (simdjson::to_json_string(field.value()).get(raw)) return invalid_json();
        other_hash = hash_bytes(raw, hash_bytes(key, other_hash));
      }
    }
    request.input_hash = mix64(request.input_hash ^ hash_bytes(role));
    request.input_hash = mix64(request.input_hash ^ content_hash);
    request.input_hash = mix64(request.input_hash ^ tool_call_id_hash);
    std::uint64_t prefix = request.prefixes.empty() ? kHashStart : request.prefixes.back().hash;
    prefix = mix64(prefix ^ hash_bytes(role));
    prefix = mix64(prefix ^ content_hash);
    prefix = mix64(prefix ^ tool_call_id_hash);
    prefix = mix64(prefix ^ other_hash);
    request.prefixes.push_back({prefix, request.prompt_chars});
    if (role.empty()) return bad_request("each message needs a role", "messages");
    request.last_message_is_tool = role == "tool" || role == "function";
    if (role == "user") request.tool_results = 0;
    if (request.last_message_is_tool) {
      ++request.tool_results;
      request.last_tool_result = text.substr(0, 200);
    }
    ++count;
  }
  if (count == 0) return bad_request("messages must not be empty", "messages");
  return std::nullopt;
}

std::optional<ApiError> read_response_format(od::value& value, ChatRequest& request) {
  if (value.is_null()) return std::nullopt;
  od::object format;
  if (value.get_object().get(format)) {
    return bad_request("response_format must be an object", "response_format");
  }
  std::string_view type;
  std::string_view json_schema;
  for (auto field_result : format) {
    od::field field;
    std::string_view key;
    if (std::move(field_result).get(field) || field.unescaped_key().get(key)) return invalid_json();
    if (key == "type") {
      if (field.value().get_string().get(type)) {
        return bad_request("response_format.type must be a string", "response_format.type");
      }
    } else if (key == "json_schema") {
      if (simdjson::to_json_string(field.value()).get(json_schema)) return invalid_json();
    }
  }
  if (type == "text") {
    request.format = OutputFormat::kText;
  } else if (type == "json_object") {
    request.format = OutputFormat::kJsonObject;
  } else if (type == "json_schema") {
    request.format = OutputFormat::kJsonSchema;
    boost::system::error_code ec;
    boost::json::value parsed = boost::json::parse(json_schema, ec);
    const boost::json::object* object = ec ? nullptr : parsed.if_object();
    if (object == nullptr) {
      return bad_request("response_format.json_schema must be an object",
                         "response_format.json_schema");
    }
    if (const boost::json::value* schema = object->if_contains("schema")) request.schema = *schema;
  } else {
    return bad_request("response_format.type must be text, json_object or json_schema",
                       "response_format.type");
  }
  return std::nullopt;
}

std::optional<ApiError> read_tools(od::value& value, ChatRequest& request) {
  if (value.is_null()) return std::nullopt;
  std::string_view raw;
  if (simdjson::to_json_string(value).get(raw)) return invalid_json();
  boost::system::error_code ec;
  boost::json::value parsed = boost::json::parse(raw, ec);
  if (ec || !parsed.is_array()) return bad_request("tools must be an array", "tools");
  request.tools = std::move(parsed.as_array());
  request.tools_hash = request.tools.empty() ? 0 : mix64(hash_bytes(raw));
  return std::nullopt;
}

std::optional<ApiError> read_tool_choice(od::value& value, ChatRequest& request) {
  if (value.is_null()) return std::nullopt;
  std::string_view raw;
  if (simdjson::to_json_string(value).get(raw)) return invalid_json();
  boost::system::error_code ec;
  boost::json::value parsed = boost::json::parse(raw, ec);
  if (ec) return invalid_json();
  if (const boost::json::string* mode = parsed.if_string()) {
    if (*mode == "none") {
      request.tool_choice_none = true;
    } else if (*mode != "auto" && *mode != "required") {
      return bad_request("tool_choice must be none, auto, required or a function", "tool_choice");
    }
    return std::nullopt;
  }
  // {"type":"function","function":{"name":...}}, or the flat {"type":"function","name":...}.
  const boost::json::object* choice = parsed.if_object();
  const boost::json::value* name = nullptr;
  if (choice != nullptr) {
    const boost::json::value* function = choice->if_contains("function");
    name = function != nullptr && function->is_object() ? function->as_object().if_contains("name")
                                                        : choice->if_contains("name");
  }
  if (name == nullptr || !name->is_string()) {
    return bad_request("tool_choice must name a function", "tool_choice");
  }
  request.tool_choice_name = name->as_string();
  return std::nullopt;
}

// A prompt or embedding input: a string, an array of strings, an array of tokens (one input)
// or an array of token arrays. Adds one hash per input and counts tokens (chars / 4 for text).
std::optional<ApiError> read_inputs(od::value& value, const std::string& param,
                                    std::vector<std::uint64_t>& hashes, int& tokens) {
  ApiError wrong_type = bad_request(
      param + " must be a string, an array of strings, of tokens or of token arrays", param);
  ApiError empty = bad_request(param + " must not be empty", param);
  std::string_view text;
  if (value.get_string().get(text) == simdjson::SUCCESS) {
    if (text.empty()) return empty;
    hashes.push_back(hash_bytes(text));
    tokens += tokens_for_chars(text.size());
    return std::nullopt;
  }
  od::array inputs;
  if (value.get_array().get(inputs)) return wrong_type;
  std::uint64_t token_hash = kHashStart;  // an input given as one array of tokens
  int token_count = 0;
  for (auto item_result : inputs) {
    od::value item;
    od::json_type type;
    if (std::move(item_result).get(item) || item.type().get(type)) return invalid_json();
    if (type == od::json_type::string) {
      if (item.get_string().get(text)) return invalid_json();
      hashes.push_back(hash_bytes(text));
      tokens += tokens_for_chars(text.size());
    } else if (type == od::json_type::number) {
      std::int64_t token = 0;
      if (item.get_int64().get(token)) return wrong_type;
      token_hash = mix64(token_hash ^ static_cast<std::uint64_t>(token));
      ++token_count;
    } else if (type == od::json_type::array) {
      od::array token_array;
      if (item.get_array().get(token_array)) return invalid_json();
      std::uint64_t hash = kHashStart;
      int count = 0;
      for (auto token_result : token_array) {
        std::int64_t token = 0;
        if (token_result.get_int64().get(token)) return wrong_type;
        hash = mix64(hash ^ static_cast<std::uint64_t>(token));
        ++count;
      }
      if (count == 0) return empty;
      hashes.push_back(hash);
      tokens += count;
    } else {
      return wrong_type;
    }
  }
  if (token_count > 0) {
    if (!hashes.empty()) return wrong_type;  // tokens mixed with strings
    hashes.push_back(token_hash);
    tokens += token_count;
  }
  if (hashes.empty()) return empty;
  return std::nullopt;
}

// Iterates the top-level object of `body`, calling on_field(key, value) for each member; the
// callback returns an error to stop.
template <typename OnField>
std::optional<ApiError> for_each_field(std::string_view body, OnField&& on_field) {
  od::document doc;
  if (iterate(body, doc)) return invalid_json();
  od::object root;
  if (doc.get_object().get(root)) {
    return body.find_first_not_of(" \t\r\n") == std::string_view::npos
               ? invalid_json()
               : bad_request("the request body must be a JSON object");
  }
  for (auto field_result : root) {
    od::field field;
    std::string_view key;
    if (std::move(field_result).get(field) || field.unescaped_key().get(key)) return invalid_json();
    od::value value = field.value();
    if (auto error = on_field(key, value)) return error;
  }
  return std::nullopt;
}

// ---- generation ------------------------------------------------------------------------

// Where a choice's pieces end; text accumulates in `choice.text`.
void end_piece(Choice& choice) {
  choice.piece_ends.push_back(static_cast<std::uint32_t>(choice.text.size()));
}

void append_words(std::string& out, Prng& prng, int count) {
  for (int i = 0; i < count; ++i) {
    if (i > 0) out += ' ';
    out += kVocabulary[prng.below(kVocabularySize)];
  }
}

// Echoed text goes out in pieces this small (never splitting a UTF-8 character), so anything
// longer than a few bytes arrives split across stream events.
void echo_pieces(Choice& choice) {
  constexpr std::size_t kEchoPieceBytes = 3;
  std::size_t end = 0;
  while (end < choice.text.size()) {
    end = std::min(end + kEchoPieceBytes, choice.text.size());
    while (end < choice.text.size() &&
           (static_cast<unsigned char>(choice.text[end]) & 0xC0) == 0x80) {
      ++end;
    }
    choice.piece_ends.push_back(static_cast<std::uint32_t>(end));
  }
}

// Splits the text from `from` on into fragments of kFragmentBytes.
void fragment_pieces(Choice& choice, std::size_t from) {
  for (std::size_t end = from; end < choice.text.size();) {
    end = std::min(end + kFragmentBytes, choice.text.size());
    choice.piece_ends.push_back(static_cast<std::uint32_t>(end));
  }
}

const boost::json::value* member(const boost::json::value& value, std::string_view key) {
  const boost::json::object* object = value.if_object();
  return object == nullptr ? nullptr : object->if_contains(key);
}

std::string_view schema_type(const boost::json::value& schema) {
  const boost::json::value* type = member(schema, "type");
  if (type != nullptr && type->is_string()) return type->as_string();
  if (type != nullptr && type->is_array()) {
    for (const auto& option : type->as_array()) {
      if (option.is_string() && option.as_string() != "null") return option.as_string();
    }
  }
  if (member(schema, "properties") != nullptr) return "object";
  if (member(schema, "items") != nullptr) return "array";
  return "string";
}

// Appends a JSON value that satisfies the common parts of `schema`: enum/const, type,
// required properties of objects, items of arrays, the first alternative of anyOf/oneOf.
void append_schema_value(std::string& out, const boost::json::value& schema, Prng& prng,
                         int word_budget, int depth) {
  if (const boost::json::value* values = member(schema, "enum");
      values != nullptr && values->is_array() && !values->as_array().empty()) {
    out += boost::json::serialize(values->as_array()[0]);
    return;
  }
  if (const boost::json::value* constant = member(schema, "const")) {
    out += boost::json::serialize(*constant);
    return;
  }
  for (std::string_view alternatives : {"anyOf", "oneOf", "allOf"}) {
    const boost::json::value* options = member(schema, alternatives);
    if (options != nullptr && options->is_array() && !options->as_array().empty()) {
      append_schema_value(out, options->as_array()[0], prng, word_budget, depth);
      return;
    }
  }
  std::string_view type = depth > 8 ? "string" : schema_type(schema);
  if (type == "integer") {
    out += std::to_string(prng.below(100));
  } else if (type == "number") {
    out += std::to_string(prng.below(1000));
    out += ".5";
  } else if (type == "boolean") {
    out += prng.below(2) != 0 ? "true" : "false";
  } else if (type == "null") {
    out += "null";
  } else if (type == "array") {
    out += '[';
    const boost::json::value* items = member(schema, "items");
    append_schema_value(out, items != nullptr ? *items : boost::json::value(), prng, word_budget,
                        depth + 1);
    out += ']';
  } else if (type == "object") {
    out += '{';
    const boost::json::value* properties = member(schema, "properties");
    const boost::json::value* required = member(schema, "required");
    bool first = true;
    auto append_property = [&](std::string_view name) {
      if (!first) out += ',';
      first = false;
      append_json_string(out, name);
      out += ':';
      const boost::json::value* property =
          properties != nullptr ? member(*properties, name) : nullptr;
      append_schema_value(out, property != nullptr ? *property : boost::json::value(), prng,
                          word_budget, depth + 1);
    };
    if (required != nullptr && required->is_array()) {
      for (const auto& name : required->as_array()) {
        if (name.is_string()) append_property(name.as_string());
      }
    } else if (properties != nullptr && properties->is_object()) {
      for (const auto& property : properties->as_object()) append_property(property.key());
    }
    out += '}';
  } else {
    std::string words;
    append_words(words, prng, std::max(1, std::min(word_budget, 3)));
    append_json_string(out, words);
  }
}

// The function tools in `tools`, as (name, parameters).
struct FunctionTool {
  std::string_view name;
  const boost::json::value* parameters = nullptr;
};

std::optional<FunctionTool> function_tool(const boost::json::value& tool) {
  const boost::json::value* type = member(tool, "type");
  if (type != nullptr && !(type->is_string() && type->as_string() == "function")) {
    return std::nullopt;
  }
  const boost::json::value* function = member(tool, "function");
  const boost::json::value& definition = function != nullptr ? *function : tool;
  const boost::json::value* name = member(definition, "name");
  if (name == nullptr || !name->is_string()) return std::nullopt;
  return FunctionTool{name->as_string(), member(definition, "parameters")};
}

std::string hex_id(std::string_view prefix, std::uint64_t value) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string id(prefix);
  for (int shift = 60; shift >= 0; shift -= 4) id += kDigits[(value >> shift) & 0xf];
  return id;
}

// Plain words: the first without, the others with their leading space.
void generate_text(Choice& choice, Prng& prng, int limit, int output_tokens) {
  int count = std::min(limit, output_tokens);
  for (int i = 0; i < count; ++i) {
    if (i > 0) choice.text += ' ';
    choice.text += kVocabulary[prng.below(kVocabularySize)];
    end_piece(choice);
  }
  choice.finish_reason = limit < output_tokens ? "length" : "stop";
}

void append_usage(std::string& out, const Generation& generation) {
  out += R"("usage":{"prompt_tokens":)";
  out += std::to_string(generation.prompt_tokens);
  out += R"(,"completion_tokens":)";
  out += std::to_string(generation.completion_tokens);
  out += R"(,"total_tokens":)";
  out += std::to_string(generation.prompt_tokens + generation.completion_tokens);
  if (generation.cached_tokens) {
    out += R"(,"prompt_tokens_details":{"cached_tokens":)";
    out += std::to_string(*generation.cached_tokens);
    out += '}';
  }
  out += '}';
}

// `{"id":...,"object":<object>,"created":...,"model":...,"choices":[`
void append_envelope(std::string& out, const ResponseMeta& meta, std::string_view object) {
  out += R"({"id":)";
  append_json_string(out, meta.id);
  out += R"(,"object":")";
  out += object;
  out += R"(","created":)";
  out += std::to_string(meta.created);
  out += R"(,"model":)";
  append_json_string(out, meta.model);
  out += R"(,"choices":[)";
}

std::string sse(std::string_view json) {
  std::string event;
  event.reserve(json.size() + 8);
  event += "data: ";
  event += json;
  event += "\n\n";
  return event;
}

constexpr std::string_view kDone = "data: [DONE]\n\n";

std::string usage_event(const ResponseMeta& meta, const Generation& generation,
                        std::string_view object) {
  std::string chunk;
  append_envelope(chunk, meta, object);
  chunk += "],";
  append_usage(chunk, generation);
  chunk += '}';
  return sse(chunk);
}

}  // namespace

std::string_view Choice::piece(std::size_t i) const {
  std::size_t begin = i == 0 ? 0 : piece_ends[i - 1];
  return std::string_view(text).substr(begin, piece_ends[i] - begin);
}

Parsed<ChatRequest> parse_chat_request(std::string_view body) {
  Parsed<ChatRequest> parsed;
  ChatRequest& request = parsed.request;
  bool has_model = false;
  bool has_messages = false;
  std::optional<int> max_tokens;
  std::optional<int> max_completion_tokens;
  parsed.error =
      for_each_field(body, [&](std::string_view key, od::value& value) -> std::optional<ApiError> {
        if (key == "model") {
          has_model = true;
          return read_model(value, request.model);
        }
        if (key == "messages") {
          has_messages = true;
          return read_messages(value, request);
        }
        if (key == "stream") return read_bool(value, "stream", request.stream);
        if (key == "stream_options") return read_stream_options(value, request.include_usage);
        if (key == "max_tokens") return read_token_limit(value, "max_tokens", max_tokens);
        if (key == "max_completion_tokens") {
          return read_token_limit(value, "max_completion_tokens", max_completion_tokens);
        }
        if (key == "response_format") return read_response_format(value, request);
        if (key == "tools") return read_tools(value, request);
        if (key == "tool_choice") return read_tool_choice(value, request);
        return std::nullopt;
      });
  if (parsed.error) return parsed;
  if (!has_model) {
    parsed.error = bad_request("you must provide a model parameter", "model");
  } else if (!has_messages) {
    parsed.error = bad_request("messages is required", "messages");
  }
  request.max_tokens = max_completion_tokens ? max_completion_tokens : max_tokens;
  return parsed;
}

Parsed<CompletionRequest> parse_completion_request(std::string_view body) {
  Parsed<CompletionRequest> parsed;
  CompletionRequest& request = parsed.request;
  bool has_model = false;
  bool has_prompt = false;
  parsed.error =
      for_each_field(body, [&](std::string_view key, od::value& value) -> std::optional<ApiError> {
        if (key == "model") {
          has_model = true;
          return read_model(value, request.model);
        }
        if (key == "stream") return read_bool(value, "stream", request.stream);
        if (key == "stream_options") return read_stream_options(value, request.include_usage);
        if (key == "max_tokens") return read_token_limit(value, "max_tokens", request.max_tokens);
        if (key != "prompt") return std::nullopt;
        has_prompt = true;
        return read_inputs(value, "prompt", request.prompt_hashes, request.prompt_tokens);
      });
  if (parsed.error) return parsed;
  if (!has_model) {
    parsed.error = bad_request("you must provide a model parameter", "model");
  } else if (!has_prompt) {
    parsed.error = bad_request("prompt is required", "prompt");
  }
  return parsed;
}

Parsed<EmbeddingRequest> parse_embedding_request(std::string_view body) {
  Parsed<EmbeddingRequest> parsed;
  EmbeddingRequest& request = parsed.request;
  bool has_model = false;
  bool has_input = false;
  parsed.error =
      for_each_field(body, [&](std::string_view key, od::value& value) -> std::optional<ApiError> {
        if (key == "model") {
          has_model = true;
          return read_model(value, request.model);
        }
        if (key == "encoding_format") {
          std::string_view format;
          if (value.get_string().get(format) || (format != "float" && format != "base64")) {
            return bad_request("encoding_format must be float or base64", "encoding_format");
          }
          request.base64 = format == "base64";
          return std::nullopt;
        }
        if (key == "dimensions") {
          if (value.is_null()) return std::nullopt;
          std::int64_t dimensions = 0;
          if (value.get_int64().get(dimensions) || dimensions < 1 || dimensions > 65536) {
            return bad_request("dimensions must be an integer between 1 and 65536", "dimensions");
          }
          request.dimensions = static_cast<int>(dimensions);
          return std::nullopt;
        }
        if (key != "input") return std::nullopt;
        has_input = true;
        return read_inputs(value, "input", request.input_hashes, request.prompt_tokens);
      });
  if (parsed.error) return parsed;
  if (!has_model) {
    parsed.error = bad_request("you must provide a model parameter", "model");
  } else if (!has_input) {
    parsed.error = bad_request("input is required", "input");
  }
  return parsed;
}

int prefix_tokens(std::size_t chars) { return static_cast<int>(chars / 4); }

Parsed<Generation> generate_chat(const ChatRequest& request, const ModelProfile& profile,
                                 std::uint64_t seed) {
  Parsed<Generation> result;
  Generation& generation = result.request;
  generation.prompt_tokens = tokens_for_chars(request.prompt_chars);
  Prng prng(mix64(seed ^ mix64(request.input_hash)));
  int limit = request.max_tokens.value_or(profile.output_tokens);
  Choice& choice = generation.choices.emplace_back();

  std::optional<FunctionTool> tool;
  if (!request.tools.empty() && !request.tool_choice_none &&
      request.tool_results < profile.tool_rounds) {
    for (const auto& candidate : request.tools) {
      auto function = function_tool(candidate);
      if (!function) continue;
      if (request.tool_choice_name.empty() || function->name == request.tool_choice_name) {
        tool = function;
        break;
      }
    }
    if (!tool && !request.tool_choice_name.empty()) {
      result.error =
          bad_request("tool_choice names a function that is not in tools", "tool_choice");
      return result;
    }
  }

  if (request.echo) {
    if (tool) {
      choice.tool_name.assign(tool->name);
      choice.tool_call_id = hex_id("call_", prng.next());
      choice.text = boost::json::serialize(boost::json::object{{"text", *request.echo}});
      choice.finish_reason = "tool_calls";
    } else {
      choice.text = *request.echo;
      choice.finish_reason = "stop";
    }
    echo_pieces(choice);
  } else if (tool) {
    choice.tool_name.assign(tool->name);
    choice.tool_call_id = hex_id("call_", prng.next());
    boost::json::value object_schema = boost::json::object{{"type", "object"}};
    append_schema_value(choice.text, tool->parameters ? *tool->parameters : object_schema, prng,
                        limit, 0);
    fragment_pieces(choice, 0);
    choice.finish_reason = "tool_calls";
  } else if (request.format == OutputFormat::kJsonSchema && !request.schema.is_null()) {
    append_schema_value(choice.text, request.schema, prng, limit, 0);
    fragment_pieces(choice, 0);
    choice.finish_reason = "stop";
  } else if (request.format != OutputFormat::kText) {
    choice.text = R"({"answer":")";
    end_piece(choice);
    int words = std::max(1, std::min(limit, profile.output_tokens) - 2);
    for (int i = 0; i < words; ++i) {
      if (i > 0) choice.text += ' ';
      choice.text += kVocabulary[prng.below(kVocabularySize)];
      end_piece(choice);
    }
    choice.text += R"("})";
    end_piece(choice);
    choice.finish_reason = "stop";
  } else {
    if (profile.cite_tool_results && request.tool_results > 0) {
      // "Found: <first line>" as one piece, then the usual words.
      const std::string_view first =
          std::string_view(request.last_tool_result).substr(0, request.last_tool_result.find('\n'));
      choice.text = "Found: " + std::string(first) + ". ";
      end_piece(choice);
    }
    generate_text(choice, prng, limit, profile.output_tokens);
  }
  generation.completion_tokens = choice.tokens();
  return result;
}

Generation generate_completion(const CompletionRequest& request, const ModelProfile& profile,
                               std::uint64_t seed) {
  Generation generation;
  generation.prompt_tokens = request.prompt_tokens;
  int limit = request.max_tokens.value_or(profile.output_tokens);
  for (std::uint64_t prompt_hash : request.prompt_hashes) {
    Prng prng(mix64(seed ^ mix64(prompt_hash)));
    Choice& choice = generation.choices.emplace_back();
    // Legacy completions continue the prompt, so every word carries its leading space.
    int count = std::min(limit, profile.output_tokens);
    for (int i = 0; i < count; ++i) {
      choice.text += ' ';
      choice.text += kVocabulary[prng.below(kVocabularySize)];
      end_piece(choice);
    }
    choice.finish_reason = limit < profile.output_tokens ? "length" : "stop";
    generation.completion_tokens += choice.tokens();
  }
  return generation;
}

std::string render_chat_response(const ResponseMeta& meta, const Generation& generation) {
  std::string out;
  out.reserve(256 + generation.choices[0].text.size());
  append_envelope(out, meta, "chat.completion");
  for (std::size_t i = 0; i < generation.choices.size(); ++i) {
    const Choice& choice = generation.choices[i];
    if (i > 0) out += ',';
    out += R"({"index":)";
    out += std::to_string(i);
    out += R"(,"message":{"role":"assistant","content":)";
    if (choice.tool_name.empty()) {
      append_json_string(out, choice.text);
    } else {
      out += R"(null,"tool_calls":[{"id":)";
      append_json_string(out, choice.tool_call_id);
      out += R"(,"type":"function","function":{"name":)";
      append_json_string(out, choice.tool_name);
      out += R"(,"arguments":)";
      append_json_string(out, choice.text);
      out += "}}]";
    }
    out += R"(,"refusal":null},"logprobs":null,"finish_reason":")";
    out += choice.finish_reason;
    out += "\"}";
  }
  out += "],";
  append_usage(out, generation);
  out += '}';
  return out;
}

std::string render_completion_response(const ResponseMeta& meta, const Generation& generation) {
  std::string out;
  append_envelope(out, meta, "text_completion");
  for (std::size_t i = 0; i < generation.choices.size(); ++i) {
    const Choice& choice = generation.choices[i];
    if (i > 0) out += ',';
    out += R"({"text":)";
    append_json_string(out, choice.text);
    out += R"(,"index":)";
    out += std::to_string(i);
    out += R"(,"logprobs":null,"finish_reason":")";
    out += choice.finish_reason;
    out += "\"}";
  }
  out += "],";
  append_usage(out, generation);
  out += '}';
  return out;
}

StreamEvents render_chat_stream(const ResponseMeta& meta, const Generation& generation,
                                bool include_usage) {
  StreamEvents events;
  const Choice& choice = generation.choices.at(0);
  auto chunk = [&](std::string_view delta, std::string_view finish_reason) {
    std::string json;
    append_envelope(json, meta, "chat.completion.chunk");
    json += R"({"index":0,"delta":)";
    json += delta;
    json += R"(,"logprobs":null,"finish_reason":)";
    json += finish_reason;
    json += "}]}";
    return sse(json);
  };
  if (choice.tool_name.empty()) {
    events.head.push_back(chunk(R"({"role":"assistant","content":""})", "null"));
    for (int i = 0; i < choice.tokens(); ++i) {
      std::string delta = R"({"content":)";
      append_json_string(delta, choice.piece(i));
      delta += '}';
      events.pieces.push_back(chunk(delta, "null"));
    }
  } else {
    std::string delta = R"({"role":"assistant","content":null,"tool_calls":[{"index":0,"id":)";
    append_json_string(delta, choice.tool_call_id);
    delta += R"(,"type":"function","function":{"name":)";
    append_json_string(delta, choice.tool_name);
    delta += R"(,"arguments":""}}]})";
    events.head.push_back(chunk(delta, "null"));
    for (int i = 0; i < choice.tokens(); ++i) {
      delta = R"({"tool_calls":[{"index":0,"function":{"arguments":)";
      append_json_string(delta, choice.piece(i));
      delta += "}}]}";
      events.pieces.push_back(chunk(delta, "null"));
    }
  }
  events.tail.push_back(chunk("{}", "\"" + std::string(choice.finish_reason) + "\""));
  if (include_usage) events.tail.push_back(usage_event(meta, generation, "chat.completion.chunk"));
  events.tail.emplace_back(kDone);
  return events;
}

StreamEvents render_completion_stream(const ResponseMeta& meta, const Generation& generation,
                                      bool include_usage) {
  StreamEvents events;
  auto chunk = [&](std::size_t index, std::string_view text, std::string_view finish_reason) {
    std::string json;
    append_envelope(json, meta, "text_completion");
    json += R"({"text":)";
    append_json_string(json, text);
    json += R"(,"index":)";
    json += std::to_string(index);
    json += R"(,"logprobs":null,"finish_reason":)";
    json += finish_reason;
    json += "}]}";
    return sse(json);
  };
  // Choices one after the other; each event says which choice it extends.
  for (std::size_t c = 0; c < generation.choices.size(); ++c) {
    const Choice& choice = generation.choices[c];
    for (int i = 0; i < choice.tokens(); ++i)
      events.pieces.push_back(chunk(c, choice.piece(i), "null"));
  }
  for (std::size_t c = 0; c < generation.choices.size(); ++c) {
    events.tail.push_back(
        chunk(c, "", "\"" + std::string(generation.choices[c].finish_reason) + "\""));
  }
  if (include_usage) events.tail.push_back(usage_event(meta, generation, "text_completion"));
  events.tail.emplace_back(kDone);
  return events;
}

std::vector<float> embedding_vector(std::uint64_t input_hash, int dimensions, std::uint64_t seed) {
  Prng prng(mix64(seed ^ mix64(input_hash ^ 0x656d626564ull)));
  std::vector<float> vector(static_cast<std::size_t>(dimensions));
  double norm = 0;
  for (float& x : vector) {
    double value = prng.normal();
    x = static_cast<float>(value);
    norm += value * value;
  }
  norm = std::sqrt(norm);
  if (norm == 0) {
    vector[0] = 1;
    return vector;
  }
  for (float& x : vector) x = static_cast<float>(x / norm);
  return vector;
}

namespace {

void append_base64(std::string& out, const unsigned char* data, std::size_t size) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (std::size_t i = 0; i < size; i += 3) {
    std::uint32_t chunk = static_cast<std::uint32_t>(data[i]) << 16;
    if (i + 1 < size) chunk |= static_cast<std::uint32_t>(data[i + 1]) << 8;
    if (i + 2 < size) chunk |= data[i + 2];
    out += kAlphabet[(chunk >> 18) & 63];
    out += kAlphabet[(chunk >> 12) & 63];
    out += i + 1 < size ? kAlphabet[(chunk >> 6) & 63] : '=';
    out += i + 2 < size ? kAlphabet[chunk & 63] : '=';
  }
}

}  // namespace

std::string render_embeddings(const EmbeddingRequest& request, const ModelProfile& profile,
                              std::uint64_t seed) {
  int dimensions = request.dimensions.value_or(profile.embedding_dimensions);
  std::string out = R"({"object":"list","data":[)";
  char number[32];
  for (std::size_t i = 0; i < request.input_hashes.size(); ++i) {
    std::vector<float> vector = embedding_vector(request.input_hashes[i], dimensions, seed);
    if (i > 0) out += ',';
    out += R"({"object":"embedding","index":)";
    out += std::to_string(i);
    out += R"(,"embedding":)";
    if (request.base64) {
      // Little-endian float32, as OpenAI encodes them.
      std::vector<unsigned char> bytes(vector.size() * 4);
      for (std::size_t d = 0; d < vector.size(); ++d) {
        std::uint32_t bits;
        std::memcpy(&bits, &vector[d], 4);
        for (int b = 0; b < 4; ++b) bytes[d * 4 + b] = static_cast<unsigned char>(bits >> (8 * b));
      }
      out += '"';
      append_base64(out, bytes.data(), bytes.size());
      out += '"';
    } else {
      out += '[';
      for (std::size_t d = 0; d < vector.size(); ++d) {
        if (d > 0) out += ',';
        int length = std::snprintf(number, sizeof number, "%.9g", static_cast<double>(vector[d]));
        out.append(number, static_cast<std::size_t>(length));
      }
      out += ']';
    }
    out += '}';
  }
  out += R"(],"model":)";
  append_json_string(out, request.model);
  out += R"(,"usage":{"prompt_tokens":)";
  out += std::to_string(request.prompt_tokens);
  out += R"(,"total_tokens":)";
  out += std::to_string(request.prompt_tokens);
  out += "}}";
  return out;
}

std::string render_models(const SimConfig& config) {
  std::string out = R"({"object":"list","data":[)";
  bool first = true;
  for (const ModelProfile& model : config.models) {
    if (model.name == "*") continue;
    if (!first) out += ',';
    first = false;
    out += R"({"id":)";
    append_json_string(out, model.name);
    out += R"(,"object":"model","created":0,"owned_by":"redline-sim"})";
  }
  out += "]}";
  return out;
}

}  // namespace redline::sim
