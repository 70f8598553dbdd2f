#include "gateway/request_parse.h"

#include <simdjson.h>

#include "common/json_text.h"
#include "routing/strategy.h"

namespace redline::gateway {

namespace od = simdjson::ondemand;

std::string_view to_string(ApiKind kind) {
  switch (kind) {
    case ApiKind::kChatCompletions:
      return "chat.completions";
    case ApiKind::kCompletions:
      return "completions";
    case ApiKind::kEmbeddings:
      return "embeddings";
  }
  return "unknown";
}

namespace {

std::string_view type_name(od::json_type type) {
  switch (type) {
    case od::json_type::array:
      return "an array";
    case od::json_type::object:
      return "an object";
    case od::json_type::number:
      return "a number";
    case od::json_type::string:
      return "a string";
    case od::json_type::boolean:
      return "a boolean";
    case od::json_type::null:
      return "null";
  }
  return "an unknown value";
}

ParseResult invalid_json() {
  return {std::nullopt,
          make_error(400,
                     "We could not parse the JSON body of your request. The body must be a JSON "
                     "object (Content-Type: application/json).",
                     "", "invalid_json")};
}

ParseResult wrong_type(std::string_view param, std::string_view expected, od::json_type got) {
  return {std::nullopt, make_error(400,
                                   "Invalid type for '" + std::string(param) + "': expected " +
                                       std::string(expected) + ", but got " +
                                       std::string(type_name(got)) + " instead.",
                                   std::string(param), "invalid_type")};
}

ParseResult missing(std::string_view param) {
  return {std::nullopt, make_error(400, "Missing required parameter: '" + std::string(param) + "'.",
                                   std::string(param), "missing_required_parameter")};
}

// The prompt field whose leading bytes identify a conversation for prefix affinity.
std::string_view prompt_field(ApiKind kind) {
  switch (kind) {
    case ApiKind::kChatCompletions:
      return "messages";
    case ApiKind::kCompletions:
      return "prompt";
    case ApiKind::kEmbeddings:
      return "input";
  }
  return "";
}

}  // namespace

ParseResult parse_request(ApiKind kind, std::string& body, std::size_t affinity_prefix_bytes) {
  if (body.capacity() < body.size() + simdjson::SIMDJSON_PADDING) {
    body.reserve(body.size() + simdjson::SIMDJSON_PADDING);
  }
  // On-demand parsing only validates what it visits; the upstream must never receive a body
  // that is not JSON, so the whole document is validated once first (SIMD, microseconds).
  thread_local simdjson::dom::parser validator;
  if (validator.parse(body.data(), body.size(), false).error()) return invalid_json();
  thread_local od::parser parser;
  od::document document;
  if (parser.iterate(body.data(), body.size(), body.capacity()).get(document)) {
    return invalid_json();
  }
  od::object object;
  if (document.get_object().get(object)) return invalid_json();

  ParsedRequest request;
  bool has_model = false;
  bool has_prompt = false;
  const std::string_view prompt_name = prompt_field(kind);
  for (auto field : object) {
    std::string_view key;
    if (field.unescaped_key().get(key)) return invalid_json();
    od::value value;
    if (field.value().get(value)) return invalid_json();
    od::json_type type;
    if (value.type().get(type)) return invalid_json();

    if (key == "model") {
      if (type != od::json_type::string) return wrong_type("model", "a string", type);
      std::string_view token = value.raw_json_token();
      std::string_view model;
      if (value.get_string().get(model)) return invalid_json();
      request.model.assign(model);
      request.model_offset = static_cast<std::size_t>(token.data() - body.data());
      // raw_json_token() may include whitespace after the closing quote.
      request.model_length = token.find_last_of('"') + 1;
      has_model = true;
    } else if (key == "stream") {
      if (type == od::json_type::null) continue;
      if (type != od::json_type::boolean) return wrong_type("stream", "a boolean", type);
      if (value.get_bool().get(request.stream)) return invalid_json();
    } else if (key == "stream_options") {
      if (type == od::json_type::null) continue;
      if (type != od::json_type::object) return wrong_type("stream_options", "an object", type);
      od::object options;
      if (value.get_object().get(options)) return invalid_json();
      for (auto option : options) {
        std::string_view option_key;
        if (option.unescaped_key().get(option_key)) return invalid_json();
        if (option_key != "include_usage") continue;
        bool include = false;
        if (option.value().get_bool().get(include)) {
          return {std::nullopt,
                  make_error(400,
                             "Invalid type for 'stream_options.include_usage': expected a boolean.",
                             "stream_options.include_usage", "invalid_type")};
        }
        request.include_usage = include;
      }
    } else if (key == "max_tokens" || key == "max_completion_tokens") {
      if (type == od::json_type::null) continue;
      std::int64_t tokens = 0;
      if (type != od::json_type::number || value.get_int64().get(tokens)) {
        return wrong_type(key, "an integer", type);
      }
      if (tokens < 1) {
        return {std::nullopt,
                make_error(400, "Invalid '" + std::string(key) + "': must be at least 1.",
                           std::string(key), "invalid_value")};
      }
      request.max_tokens = tokens;
    } else if (key == prompt_name) {
      has_prompt = true;
      if (kind == ApiKind::kChatCompletions && type != od::json_type::array) {
        return wrong_type("messages", "an array", type);
      }
      std::string_view raw;
      if (type == od::json_type::array) {
        od::array array;
        if (value.get_array().get(array) || array.raw_json().get(raw)) return invalid_json();
      } else if (type == od::json_type::string) {
        raw = value.raw_json_token();
      }
      if (!raw.empty() && affinity_prefix_bytes > 0) {
        const std::string_view stable =
            type == od::json_type::array ? routing::stable_conversation_prefix(raw) : raw;
        request.affinity_hash = routing::prefix_hash(stable, affinity_prefix_bytes);
      }
    }
  }
  // Anything after the top-level object (e.g. "{...} x") makes the body invalid JSON.
  if (!document.current_location().error()) return invalid_json();
  if (!has_model) return missing("model");
  if (!has_prompt) return missing(prompt_name);
  return {std::move(request), {}};
}

std::string with_model(std::string_view body, const ParsedRequest& request,
                       std::string_view upstream_model) {
  std::string out;
  out.reserve(body.size() + upstream_model.size());
  out.append(body.substr(0, request.model_offset));
  append_json_string(out, upstream_model);
  out.append(body.substr(request.model_offset + request.model_length));
  return out;
}

std::string with_usage_requested(std::string_view body) {
  constexpr std::string_view kMember = R"("stream_options":{"include_usage":true})";
  const std::size_t close = body.rfind('}');
  std::string out;
  out.reserve(body.size() + kMember.size() + 1);
  out.append(body.substr(0, close));
  // An empty object takes the member without a separating comma.
  const std::size_t last = body.find_last_not_of(" \t\r\n", close - 1);
  if (body[last] != '{') out.push_back(',');
  out.append(kMember);
  out.append(body.substr(close));
  return out;
}

}  // namespace redline::gateway
