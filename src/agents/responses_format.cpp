#include "agents/responses_format.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <initializer_list>
#include <utility>

#include "agents/json_input.h"

namespace redline::agents {

namespace json = boost::json;
using json_input::element_param;
using json_input::JsonRejection;
using json_input::Members;
using json_input::parse_json;
using json_input::reject;
using json_input::reject_missing;
using json_input::reject_type;
using json_input::reject_value;
using json_input::require_object;
using json_input::require_one_of;
using json_input::utf8_length;

namespace {

constexpr std::size_t kMaxMetadataEntries = 16;
constexpr std::size_t kMaxMetadataKeyLength = 64;
constexpr std::size_t kMaxMetadataValueLength = 512;
// Far above any real turn; bounds an upstream's token counts so that sums of them cannot overflow.
constexpr std::int64_t kMaxTokenCount = std::int64_t{1} << 40;

// ---- Reading JSON that came from an upstream or from storage: a wrong shape reads as absent.

std::string_view string_member(const json::object& object, std::string_view key) {
  const json::value* value = object.if_contains(key);
  const json::string* string = value != nullptr ? value->if_string() : nullptr;
  return string != nullptr ? std::string_view(*string) : std::string_view();
}

const json::object* object_member(const json::object& object, std::string_view key) {
  const json::value* value = object.if_contains(key);
  return value != nullptr ? value->if_object() : nullptr;
}

const json::array* array_member(const json::object& object, std::string_view key) {
  const json::value* value = object.if_contains(key);
  return value != nullptr ? value->if_array() : nullptr;
}

std::optional<std::int64_t> integer_member(const json::object& object, std::string_view key) {
  const json::value* value = object.if_contains(key);
  if (value == nullptr || !value->is_number()) return std::nullopt;
  boost::system::error_code ec;
  auto number = value->to_number<std::int64_t>(ec);
  return ec ? std::nullopt : std::optional<std::int64_t>(number);
}

// ---- Validating a client's request (json_input.h says how).

std::string id_or_new(const Members& item, std::string_view prefix, const IdSource& ids) {
  const json::string* id = item.string("id");
  return id != nullptr && !id->empty() ? std::string(*id) : ids(prefix);
}

json::object text_part(std::string_view type, std::string_view text) {
  json::object part{{"type", type}, {"text", text}};
  if (type == "output_text") part["annotations"] = json::array();
  return part;
}

// Parts are kept as given, plus the members the SDKs' types require (annotations, detail).
// Assistant messages hold what a model said, the others what it is shown, as in OpenAI's API.
json::object normalize_part(const json::value& value, const std::string& path, bool assistant) {
  Members part(require_object(value, path), path);
  std::string_view type = part.required_string("type");
  if (assistant) {
    require_one_of(part.param("type"), type, {"output_text", "refusal"});
  } else {
    require_one_of(part.param("type"), type, {"input_text", "input_image"});
  }
  json::object normalized = value.get_object();
  if (type == "refusal") {
    part.required_string("refusal");
  } else if (type == "input_image") {
    part.required_string("image_url");
    if (part.string("detail") == nullptr) normalized["detail"] = "auto";
  } else {
    part.required_string("text");
    if (type == "output_text" && part.array("annotations") == nullptr) {
      normalized["annotations"] = json::array();
    }
  }
  return normalized;
}

json::object normalize_message(const Members& item, const IdSource& ids) {
  std::string_view role = item.required_string("role");
  require_one_of(item.param("role"), role, {"user", "assistant", "system", "developer"});
  bool assistant = role == "assistant";
  const json::value& content = item.required("content");
  json::array parts;
  if (const json::string* text = content.if_string()) {
    parts.push_back(text_part(assistant ? "output_text" : "input_text", *text));
  } else if (const json::array* list = content.if_array()) {
    for (std::size_t j = 0; j < list->size(); ++j) {
      parts.push_back(
          normalize_part((*list)[j], element_param(item.param("content"), j), assistant));
    }
  } else {
    reject_type(item.param("content"), "a string or an array of content parts", content);
  }
  return {{"type", "message"},
          {"id", id_or_new(item, "msg", ids)},
          {"status", "completed"},
          {"role", role},
          {"content", std::move(parts)}};
}

json::object normalize_function_call(const Members& item, const IdSource& ids) {
  std::string_view call_id = item.required_nonempty_string("call_id");
  std::string_view name = item.required_nonempty_string("name");
  std::string_view arguments = item.required_string("arguments");
  return {{"type", "function_call"}, {"id", id_or_new(item, "fc", ids)},
          {"call_id", call_id},      {"name", name},
          {"arguments", arguments},  {"status", "completed"}};
}

void check_output_parts(const json::array& parts, const std::string& param) {
  for (std::size_t k = 0; k < parts.size(); ++k) {
    Members part(require_object(parts[k], element_param(param, k)), element_param(param, k));
    require_one_of(part.param("type"), part.required_string("type"), {"input_text"});
    part.required_string("text");
  }
}

json::object normalize_function_call_output(const Members& item, const IdSource& ids) {
  std::string_view call_id = item.required_nonempty_string("call_id");
  const json::value& output = item.required("output");
  if (const json::array* parts = output.if_array()) {
    check_output_parts(*parts, item.param("output"));
  } else if (!output.is_string()) {
    reject_type(item.param("output"), "a string or an array of input_text parts", output);
  }
  return {{"type", "function_call_output"},
          {"id", id_or_new(item, "fco", ids)},
          {"call_id", call_id},
          {"output", output},
          {"status", "completed"}};
}

// nullopt for the item types nothing upstream could use.
std::optional<json::object> normalize_item(const json::value& value, const std::string& path,
                                           const IdSource& ids) {
  Members item(require_object(value, path), path);
  const json::string* type = item.string("type");
  if (type == nullptr || *type == "message") return normalize_message(item, ids);
  if (*type == "function_call") return normalize_function_call(item, ids);
  if (*type == "function_call_output") return normalize_function_call_output(item, ids);
  if (*type == "reasoning" || *type == "item_reference") return std::nullopt;
  reject_value(item.param("type"), *type,
               {"message", "function_call", "function_call_output", "reasoning", "item_reference"});
}

json::array normalized_items(const json::value& items, const std::string& param,
                             const IdSource& ids) {
  if (const json::string* text = items.if_string()) {
    json::object message{{"role", "user"}, {"content", *text}};
    return {normalize_message(Members(message, param), ids)};
  }
  const json::array* list = items.if_array();
  if (list == nullptr) reject_type(param, "a string or an array of input items", items);
  json::array normalized;
  for (std::size_t i = 0; i < list->size(); ++i) {
    if (auto item = normalize_item((*list)[i], element_param(param, i), ids)) {
      normalized.push_back(std::move(*item));
    }
  }
  return normalized;
}

// Splits "tools" into function tools (returned) and MCP tools (`mcp`, checked by the agent
// runtime that calls them).
json::array read_tools(const Members& body, json::array& mcp) {
  const json::array* tools = body.array("tools");
  if (tools == nullptr) return {};
  json::array functions;
  for (std::size_t i = 0; i < tools->size(); ++i) {
    std::string path = element_param("tools", i);
    Members tool(require_object((*tools)[i], path), path);
    std::string_view type = tool.required_string("type");
    if (type == "mcp") {
      mcp.push_back((*tools)[i]);
      continue;
    }
    if (type != "function") {
      reject(fmt::format("Redline supports function and mcp tools; '{}' is not supported.", type),
             tool.param("type"), "invalid_value");
    }
    tool.required_nonempty_string("name");
    tool.string("description");
    tool.object("parameters");
    tool.boolean("strict");
    functions.push_back((*tools)[i]);
  }
  return functions;
}

bool declares_function(const json::array& tools, std::string_view name) {
  return std::any_of(tools.begin(), tools.end(), [&](const json::value& tool) {
    return tool.is_object() && string_member(tool.get_object(), "name") == name;
  });
}

json::value read_tool_choice(const Members& body, const json::array& tools) {
  const json::value* choice = body.given("tool_choice");
  if (choice == nullptr) return nullptr;
  if (const json::string* mode = choice->if_string()) {
    require_one_of("tool_choice", *mode, {"auto", "none", "required"});
    return *choice;
  }
  if (!choice->is_object()) reject_type("tool_choice", "a string or an object", *choice);
  Members named(choice->get_object(), "tool_choice");
  require_one_of(named.param("type"), named.required_string("type"), {"function"});
  std::string_view name = named.required_nonempty_string("name");
  if (!declares_function(tools, name)) {
    reject(fmt::format("Tool choice function '{}' not found in 'tools' parameter.", name),
           named.param("name"), "invalid_value");
  }
  return *choice;
}

std::string read_conversation(const Members& body) {
  const json::value* conversation = body.given("conversation");
  if (conversation == nullptr) return {};
  if (conversation->is_string()) return std::string(body.required_nonempty_string("conversation"));
  if (!conversation->is_object()) {
    reject_type("conversation", "a string or an object", *conversation);
  }
  return std::string(
      Members(conversation->get_object(), "conversation").required_nonempty_string("id"));
}

json::object read_metadata(const Members& body) {
  const json::object* metadata = body.object("metadata");
  if (metadata == nullptr) return {};
  if (metadata->size() > kMaxMetadataEntries) {
    reject(fmt::format("Invalid 'metadata': too many properties. Expected an object with at most "
                       "{} properties, but got an object with {} properties instead.",
                       kMaxMetadataEntries, metadata->size()),
           "metadata", "object_above_max_properties");
  }
  for (const auto& entry : *metadata) {
    std::string param = fmt::format("metadata.{}", std::string_view(entry.key()));
    if (utf8_length(entry.key()) > kMaxMetadataKeyLength) {
      reject(fmt::format("Invalid 'metadata': key too long. Expected keys with maximum length {}, "
                         "but got a key with length {} instead.",
                         kMaxMetadataKeyLength, utf8_length(entry.key())),
             "metadata", "string_above_max_length");
    }
    if (!entry.value().is_string()) reject_type(param, "a string", entry.value());
    std::size_t length = utf8_length(entry.value().get_string());
    if (length > kMaxMetadataValueLength) {
      reject(fmt::format("Invalid '{}': string too long. Expected a string with maximum length "
                         "{}, but got a string with length {} instead.",
                         param, kMaxMetadataValueLength, length),
             param, "string_above_max_length");
    }
  }
  return *metadata;
}

json::value read_text(const Members& body) {
  const json::object* text = body.object("text");
  if (text == nullptr) return nullptr;
  if (const json::object* format = Members(*text, "text").object("format")) {
    Members members(*format, "text.format");
    std::string_view type = members.required_string("type");
    require_one_of(members.param("type"), type, {"text", "json_object", "json_schema"});
    if (type == "json_schema") {
      members.required_nonempty_string("name");
      if (members.object("schema") == nullptr) reject_missing(members.param("schema"));
      members.string("description");
      members.boolean("strict");
    }
  }
  return *text;
}

void check_combinations(const ResponsesRequest& request) {
  if (!request.conversation_id.empty() && !request.previous_response_id.empty()) {
    reject(
        "Mutually exclusive parameters: Ensure you are only providing one of: "
        "'previous_response_id' or 'conversation'.",
        "conversation", "mutually_exclusive_parameters");
  }
  if (request.background && !request.store) {
    reject("Background responses must be stored: 'background': true requires 'store': true.",
           "background", "invalid_value");
  }
}

ResponsesRequest read_request(const Members& body, const IdSource& ids) {
  ResponsesRequest request;
  request.model = body.required_nonempty_string("model");
  request.instructions = body.optional_string("instructions");
  if (const json::value* input = body.given("input")) {
    request.input = normalized_items(*input, "input", ids);
  }
  request.tools = read_tools(body, request.mcp_tools);
  request.tool_choice = read_tool_choice(body, request.tools);
  request.previous_response_id = body.optional_string("previous_response_id").value_or("");
  request.conversation_id = read_conversation(body);
  request.store = body.boolean("store").value_or(true);
  request.stream = body.boolean("stream").value_or(false);
  request.background = body.boolean("background").value_or(false);
  request.max_output_tokens = body.integer("max_output_tokens", 1);
  request.temperature = body.number("temperature", 0, 2);
  request.top_p = body.number("top_p", 0, 1);
  request.parallel_tool_calls = body.boolean("parallel_tool_calls");
  request.metadata = read_metadata(body);
  request.text = read_text(body);
  // safety_identifier replaces the deprecated user; either identifies the end user upstream.
  std::optional<std::string> safety_identifier = body.optional_string("safety_identifier");
  request.user = body.optional_string("user").value_or(safety_identifier.value_or(""));
  if (const json::object* redline = body.object("redline")) request.redline = *redline;
  check_combinations(request);
  return request;
}

// ---- Building the upstream chat completions body.

json::object system_message(std::string_view text) {
  return {{"role", "system"}, {"content", text}};
}

bool has_image(const json::array& parts) {
  return std::any_of(parts.begin(), parts.end(), [](const json::value& part) {
    return part.is_object() && string_member(part.get_object(), "type") == "input_image";
  });
}

// A refusal is what the assistant said, so it goes upstream as text: chat completions have no
// portable way to replay one.
std::string_view part_text(const json::object& part) {
  return string_member(part, "type") == "refusal" ? string_member(part, "refusal")
                                                  : string_member(part, "text");
}

std::string joined_text(const json::array& parts) {
  std::string text;
  for (const json::value& part : parts) {
    if (part.is_object()) text += part_text(part.get_object());
  }
  return text;
}

json::array chat_parts(const json::array& parts) {
  json::array chat;
  for (const json::value& value : parts) {
    if (!value.is_object()) continue;
    const json::object& part = value.get_object();
    if (string_member(part, "type") == "input_image") {
      json::object image{{"url", string_member(part, "image_url")}};
      if (std::string_view detail = string_member(part, "detail"); !detail.empty()) {
        image["detail"] = detail;
      }
      chat.push_back(json::object{{"type", "image_url"}, {"image_url", std::move(image)}});
    } else {
      chat.push_back(json::object{{"type", "text"}, {"text", part_text(part)}});
    }
  }
  return chat;
}

json::object chat_message(const json::object& item) {
  std::string_view role = string_member(item, "role");
  const json::array* parts = array_member(item, "content");
  json::value content = parts == nullptr    ? json::value(json::string())
                        : has_image(*parts) ? json::value(chat_parts(*parts))
                                            : json::value(joined_text(*parts));
  return {{"role", role == "developer" ? "system" : role}, {"content", std::move(content)}};
}

json::object chat_tool_call(const json::object& item) {
  return {
      {"id", string_member(item, "call_id")},
      {"type", "function"},
      {"function",
       {{"name", string_member(item, "name")}, {"arguments", string_member(item, "arguments")}}}};
}

// Chat completions carry a turn's tool calls on one assistant message, after the text it said.
void append_tool_call(json::array& messages, const json::object& item) {
  json::object* last = messages.empty() ? nullptr : messages.back().if_object();
  if (last == nullptr || string_member(*last, "role") != "assistant") {
    messages.push_back(json::object{{"role", "assistant"}, {"content", nullptr}});
    last = &messages.back().get_object();
  }
  json::value& calls = (*last)["tool_calls"];
  if (!calls.is_array()) calls = json::array();
  calls.get_array().push_back(chat_tool_call(item));
}

json::object chat_tool_result(const json::object& item) {
  const json::value* output = item.if_contains("output");
  std::string content;
  if (output != nullptr && output->is_string()) content = output->get_string();
  if (output != nullptr && output->is_array()) content = joined_text(output->get_array());
  return {{"role", "tool"},
          {"tool_call_id", string_member(item, "call_id")},
          {"content", std::move(content)}};
}

void append_chat_message(json::array& messages, const json::object& item) {
  std::string_view type = string_member(item, "type");
  if (type == "message") {
    messages.push_back(chat_message(item));
  } else if (type == "function_call") {
    append_tool_call(messages, item);
  } else if (type == "function_call_output") {
    messages.push_back(chat_tool_result(item));
  }
}

json::object given_members(const json::object& from, std::initializer_list<std::string_view> keys) {
  json::object members;
  for (std::string_view key : keys) {
    const json::value* value = from.if_contains(key);
    if (value != nullptr && !value->is_null()) members[key] = *value;
  }
  return members;
}

json::array chat_tools(const json::array& tools) {
  json::array chat;
  for (const json::value& tool : tools) {
    if (!tool.is_object()) continue;
    chat.push_back(json::object{
        {"type", "function"},
        {"function",
         given_members(tool.get_object(), {"name", "description", "parameters", "strict"})}});
  }
  return chat;
}

json::value chat_tool_choice(const json::value& choice) {
  if (!choice.is_object()) return choice;
  return json::object{{"type", "function"},
                      {"function", {{"name", string_member(choice.get_object(), "name")}}}};
}

// Tools, and the options that only make sense with them (chat completions reject tool_choice and
// parallel_tool_calls without tools).
void add_tools(json::object& body, const ResponsesRequest& request) {
  if (request.tools.empty()) return;
  body["tools"] = chat_tools(request.tools);
  if (!request.tool_choice.is_null()) body["tool_choice"] = chat_tool_choice(request.tool_choice);
  if (request.parallel_tool_calls) body["parallel_tool_calls"] = *request.parallel_tool_calls;
}

// Plain text is every upstream's default, so only structured formats are sent.
json::value response_format(const json::value& text) {
  const json::object* config = text.if_object();
  const json::object* format = config != nullptr ? object_member(*config, "format") : nullptr;
  if (format == nullptr) return nullptr;
  std::string_view type = string_member(*format, "type");
  if (type == "json_object") return json::object{{"type", "json_object"}};
  if (type != "json_schema") return nullptr;
  return json::object{
      {"type", "json_schema"},
      {"json_schema", given_members(*format, {"name", "schema", "strict", "description"})}};
}

// ---- Model output in Responses terms, shared by whole completions and streams.

// "" when the finish reason completes the response.
std::string_view incomplete_reason_for(std::string_view finish_reason) {
  if (finish_reason == "length") return "max_output_tokens";
  if (finish_reason == "content_filter") return "content_filter";
  return {};
}

std::string_view item_status_for(std::string_view incomplete_reason) {
  return incomplete_reason.empty() ? "completed" : "incomplete";
}

json::object output_text_part(std::string_view text) { return text_part("output_text", text); }

json::object refusal_part(std::string_view refusal) {
  return {{"type", "refusal"}, {"refusal", refusal}};
}

json::object message_item(std::string_view id, std::string_view status, json::array content) {
  return {{"type", "message"},
          {"id", id},
          {"status", status},
          {"role", "assistant"},
          {"content", std::move(content)}};
}

json::object function_call_item(std::string_view id, std::string_view status,
                                std::string_view call_id, std::string_view name,
                                std::string_view arguments) {
  return {{"type", "function_call"}, {"id", id},     {"status", status},
          {"call_id", call_id},      {"name", name}, {"arguments", arguments}};
}

// Clients match tool results to calls by call_id and the SDKs reject a response that repeats one,
// but some upstreams send none, an empty one, or the same one twice.
template <typename IsTaken>
std::string unique_call_id(std::string_view upstream, IsTaken is_taken, const IdSource& ids) {
  if (upstream.empty() || is_taken(upstream)) return ids("call");
  return std::string(upstream);
}

std::int64_t token_count(const json::object& usage, std::string_view key) {
  return std::clamp<std::int64_t>(integer_member(usage, key).value_or(0), 0, kMaxTokenCount);
}

// Chat usage in Responses terms; false when `object` carries none.
bool read_usage(const json::object& object, TurnOutput& into) {
  const json::object* usage = object_member(object, "usage");
  if (usage == nullptr) return false;
  into.input_tokens = token_count(*usage, "prompt_tokens");
  into.output_tokens = token_count(*usage, "completion_tokens");
  return true;
}

// The choice a Responses turn follows: n > 1 has no Responses equivalent, so index 0.
const json::object* first_choice(const json::object& chunk_or_completion) {
  const json::array* choices = array_member(chunk_or_completion, "choices");
  if (choices == nullptr) return nullptr;
  for (const json::value& value : *choices) {
    const json::object* choice = value.if_object();
    if (choice != nullptr && integer_member(*choice, "index").value_or(0) == 0) return choice;
  }
  return nullptr;
}

json::array assistant_content(const json::object& message) {
  json::array content;
  if (std::string_view text = string_member(message, "content"); !text.empty()) {
    content.push_back(output_text_part(text));
  }
  if (std::string_view refusal = string_member(message, "refusal"); !refusal.empty()) {
    content.push_back(refusal_part(refusal));
  }
  return content;
}

void append_function_calls(const json::array& tool_calls, std::string_view status,
                           const IdSource& ids, json::array& output) {
  auto is_taken = [&](std::string_view call_id) {
    return std::any_of(output.begin(), output.end(), [&](const json::value& item) {
      return string_member(item.get_object(), "call_id") == call_id;
    });
  };
  for (const json::value& value : tool_calls) {
    const json::object* call = value.if_object();
    const json::object* function = call != nullptr ? object_member(*call, "function") : nullptr;
    if (function == nullptr || string_member(*function, "name").empty()) continue;
    std::string call_id = unique_call_id(string_member(*call, "id"), is_taken, ids);
    output.push_back(function_call_item(ids("fc"), status, call_id,
                                        string_member(*function, "name"),
                                        string_member(*function, "arguments")));
  }
}

json::object usage_object(const TurnOutput& usage) {
  return {{"input_tokens", usage.input_tokens},
          {"input_tokens_details", {{"cached_tokens", 0}}},
          {"output_tokens", usage.output_tokens},
          {"output_tokens_details", {{"reasoning_tokens", 0}}},
          {"total_tokens", usage.input_tokens + usage.output_tokens}};
}

template <typename T>
json::value or_null(const std::optional<T>& value) {
  return value ? json::value(*value) : json::value(nullptr);
}

json::value string_or_null(std::string_view value) {
  return value.empty() ? json::value(nullptr) : json::value(value);
}

json::value text_config(const json::value& text) {
  json::object config = text.is_object() ? text.get_object() : json::object();
  const json::value* format = config.if_contains("format");
  if (format == nullptr || format->is_null()) config["format"] = {{"type", "text"}};
  return config;
}

}  // namespace

ResponsesParse parse_responses_request(std::string_view body, const IdSource& ids) {
  json::value parsed = parse_json(body);
  if (!parsed.is_object()) {
    return {std::nullopt, make_error(400,
                                     "We could not parse the JSON body of your request. The body "
                                     "must be a JSON object (Content-Type: application/json).",
                                     "", "invalid_json")};
  }
  try {
    return {read_request(Members(parsed.get_object(), ""), ids), {}};
  } catch (const JsonRejection& invalid) {
    return {std::nullopt, invalid.error};
  }
}

std::optional<json::array> normalize_items(const json::value& items, std::string_view param_prefix,
                                           const IdSource& ids, ApiError& error) {
  try {
    return normalized_items(items, std::string(param_prefix), ids);
  } catch (const JsonRejection& invalid) {
    error = invalid.error;
    return std::nullopt;
  }
}

std::string build_chat_body(const ResponsesRequest& request, const json::array& context,
                            std::string_view memory_context, bool stream) {
  json::array messages;
  if (request.instructions && !request.instructions->empty()) {
    messages.push_back(system_message(*request.instructions));
  }
  if (!memory_context.empty()) messages.push_back(system_message(memory_context));
  for (const json::value& item : context) {
    if (item.is_object()) append_chat_message(messages, item.get_object());
  }
  json::object body{{"model", request.model}, {"messages", std::move(messages)}};
  add_tools(body, request);
  if (request.max_output_tokens) body["max_completion_tokens"] = *request.max_output_tokens;
  if (request.temperature) body["temperature"] = *request.temperature;
  if (request.top_p) body["top_p"] = *request.top_p;
  if (!request.user.empty()) body["user"] = request.user;
  if (json::value format = response_format(request.text); !format.is_null()) {
    body["response_format"] = std::move(format);
  }
  if (stream) {
    body["stream"] = true;
    body["stream_options"] = {{"include_usage", true}};
  }
  return json::serialize(body);
}

std::optional<TurnOutput> output_from_chat_completion(std::string_view chat_json,
                                                      const IdSource& ids) {
  json::value parsed = parse_json(chat_json);
  const json::object* completion = parsed.if_object();
  const json::object* choice = completion != nullptr ? first_choice(*completion) : nullptr;
  const json::object* message = choice != nullptr ? object_member(*choice, "message") : nullptr;
  if (message == nullptr) return std::nullopt;
  TurnOutput turn;
  read_usage(*completion, turn);
  turn.incomplete_reason = incomplete_reason_for(string_member(*choice, "finish_reason"));
  std::string_view status = item_status_for(turn.incomplete_reason);
  if (!turn.incomplete_reason.empty()) turn.status = "incomplete";
  if (json::array content = assistant_content(*message); !content.empty()) {
    turn.output.push_back(message_item(ids("msg"), status, std::move(content)));
  }
  if (const json::array* tool_calls = array_member(*message, "tool_calls")) {
    append_function_calls(*tool_calls, status, ids, turn.output);
  }
  return turn;
}

json::object assistant_text_item(std::string_view id, std::string_view text) {
  return message_item(id, "completed", json::array{output_text_part(text)});
}

namespace {
json::array all_tools(const ResponsesRequest& request) {
  json::array tools = request.tools;
  for (const json::value& tool : request.mcp_tools) tools.push_back(tool);
  return tools;
}
}  // namespace

json::object response_object(const ResponsesRequest& request, const ResponseState& state) {
  json::value incomplete_details = nullptr;
  if (!state.incomplete_reason.empty()) {
    incomplete_details = {{"reason", state.incomplete_reason}};
  }
  json::value conversation = nullptr;
  if (!state.conversation_id.empty()) conversation = {{"id", state.conversation_id}};
  return {
      {"id", state.id},
      {"object", "response"},
      {"created_at", state.created_at},
      {"status", state.status},
      {"background", request.background},
      {"error", state.error},
      {"incomplete_details", std::move(incomplete_details)},
      {"instructions", or_null(request.instructions)},
      {"max_output_tokens", or_null(request.max_output_tokens)},
      {"model", request.model},
      {"output", state.output},
      {"parallel_tool_calls", request.parallel_tool_calls.value_or(true)},
      {"previous_response_id", string_or_null(request.previous_response_id)},
      {"conversation", std::move(conversation)},
      {"reasoning", {{"effort", nullptr}, {"summary", nullptr}}},
      {"store", request.store},
      {"temperature", request.temperature.value_or(1.0)},
      {"text", text_config(request.text)},
      {"tool_choice", request.tool_choice.is_null() ? json::value("auto") : request.tool_choice},
      {"tools", all_tools(request)},
      {"top_p", request.top_p.value_or(1.0)},
      {"truncation", "disabled"},
      {"usage", state.usage_from ? json::value(usage_object(*state.usage_from)) : nullptr},
      {"user", string_or_null(request.user)},
      {"metadata", request.metadata},
  };
}

// ---- The stream translator.

// An item the client has been told about (output_item.added); position in items_ = output_index.
struct ResponsesStreamTranslator::OpenItem {
  struct Part {
    bool refusal = false;
    std::string text;
  };
  bool function_call = false;
  std::string id;
  std::string status = "in_progress";
  std::vector<Part> parts;  // a message's content, in the order it was opened
  std::string call_id;      // a function call's
  std::string name;
  std::string arguments;

  json::object to_json() const {
    if (function_call) return function_call_item(id, status, call_id, name, arguments);
    json::array content;
    for (const Part& part : parts) {
      content.push_back(part.refusal ? refusal_part(part.text) : output_text_part(part.text));
    }
    return message_item(id, status, std::move(content));
  }
};

// A tool call as the upstream streams it. Its item is announced once its name is known, since a
// function_call item must name its function; arguments that come earlier wait here.
struct ResponsesStreamTranslator::ToolCallDraft {
  std::optional<std::int64_t> chat_index;
  std::string upstream_id;
  std::string name;
  std::string early_arguments;
  std::optional<std::size_t> position;  // in items_, once announced
};

ResponsesStreamTranslator::ResponsesStreamTranslator(const ResponsesRequest& request,
                                                     ResponseState state, IdSource ids)
    : request_(request), state_(std::move(state)), ids_(std::move(ids)) {
  state_.status = "in_progress";
  state_.output.clear();
}

ResponsesStreamTranslator::~ResponsesStreamTranslator() = default;

void ResponsesStreamTranslator::begin(std::string& out) {
  if (begun_) return;
  begun_ = true;
  emit("response.created", {{"response", response()}}, out);
  emit("response.in_progress", {{"response", response()}}, out);
}

bool ResponsesStreamTranslator::on_chunk(std::string_view payload, std::string& out) {
  json::value parsed = parse_json(payload);
  const json::object* chunk = parsed.if_object();
  if (chunk == nullptr) return false;
  if (ended_) return true;
  begin(out);
  TurnOutput usage;
  if (read_usage(*chunk, usage)) state_.usage_from = std::move(usage);
  if (const json::object* choice = first_choice(*chunk)) on_choice(*choice, out);
  return true;
}

void ResponsesStreamTranslator::on_choice(const json::object& choice, std::string& out) {
  if (const json::object* delta = object_member(choice, "delta")) {
    if (std::string_view text = string_member(*delta, "content"); !text.empty()) {
      append_content_delta(false, text, out);
    }
    if (std::string_view refusal = string_member(*delta, "refusal"); !refusal.empty()) {
      append_content_delta(true, refusal, out);
    }
    if (const json::array* tool_calls = array_member(*delta, "tool_calls")) {
      for (const json::value& entry : *tool_calls) {
        if (entry.is_object()) on_tool_call_delta(entry.get_object(), out);
      }
    }
  }
  if (std::string_view reason = string_member(choice, "finish_reason"); !reason.empty()) {
    finish_reason_ = reason;
  }
}

void ResponsesStreamTranslator::append_content_delta(bool refusal, std::string_view delta,
                                                     std::string& out) {
  std::size_t position = open_message(out);
  std::vector<OpenItem::Part>& parts = items_[position].parts;
  auto part = std::find_if(parts.begin(), parts.end(),
                           [&](const OpenItem::Part& part) { return part.refusal == refusal; });
  std::size_t content_index = part - parts.begin();
  if (part == parts.end()) {
    parts.push_back({refusal, ""});
    emit("response.content_part.added",
         {{"item_id", items_[position].id},
          {"output_index", position},
          {"content_index", content_index},
          {"part", refusal ? refusal_part("") : output_text_part("")}},
         out);
  }
  parts[content_index].text += delta;
  json::object event{{"item_id", items_[position].id},
                     {"output_index", position},
                     {"content_index", content_index},
                     {"delta", delta}};
  if (!refusal) event["logprobs"] = json::array();
  emit(refusal ? "response.refusal.delta" : "response.output_text.delta", std::move(event), out);
}

void ResponsesStreamTranslator::on_tool_call_delta(const json::object& entry, std::string& out) {
  ToolCallDraft& draft = draft_for(entry);
  const json::object* function = object_member(entry, "function");
  std::string_view arguments = function != nullptr ? string_member(*function, "arguments") : "";
  if (draft.position) {
    if (!arguments.empty()) append_arguments(*draft.position, arguments, out);
    return;
  }
  if (draft.upstream_id.empty()) draft.upstream_id = string_member(entry, "id");
  if (draft.name.empty() && function != nullptr) draft.name = string_member(*function, "name");
  draft.early_arguments += arguments;
  if (!draft.name.empty()) announce_call(draft, out);
}

// The upstream's index tells calls apart; an unknown id also starts a call, for upstreams that
// reuse an index, and an entry with neither continues the latest call.
ResponsesStreamTranslator::ToolCallDraft& ResponsesStreamTranslator::draft_for(
    const json::object& entry) {
  std::optional<std::int64_t> index = integer_member(entry, "index");
  std::string_view id = string_member(entry, "id");
  auto same_call = [&](const ToolCallDraft& draft) {
    bool same_id = id.empty() || draft.upstream_id.empty() || draft.upstream_id == id;
    return same_id && (!index || draft.chat_index == index);
  };
  auto found = std::find_if(drafts_.rbegin(), drafts_.rend(), same_call);
  if (found != drafts_.rend()) return *found;
  drafts_.push_back({index, std::string(id), "", "", std::nullopt});
  return drafts_.back();
}

void ResponsesStreamTranslator::announce_call(ToolCallDraft& draft, std::string& out) {
  // A model says what it has to say before it calls tools; text after a call starts a new message.
  close_message(out);
  auto is_taken = [&](std::string_view call_id) {
    return std::any_of(items_.begin(), items_.end(),
                       [&](const OpenItem& item) { return item.call_id == call_id; });
  };
  OpenItem call;
  call.function_call = true;
  call.id = ids_("fc");
  call.call_id = unique_call_id(draft.upstream_id, is_taken, ids_);
  call.name = draft.name;
  draft.position = announce(std::move(call), out);
  if (!draft.early_arguments.empty()) {
    append_arguments(*draft.position, std::exchange(draft.early_arguments, {}), out);
  }
}

void ResponsesStreamTranslator::append_arguments(std::size_t position, std::string_view delta,
                                                 std::string& out) {
  items_[position].arguments += delta;
  emit("response.function_call_arguments.delta",
       {{"item_id", items_[position].id}, {"output_index", position}, {"delta", delta}}, out);
}

std::size_t ResponsesStreamTranslator::open_message(std::string& out) {
  if (!open_message_) {
    OpenItem message;
    message.id = ids_("msg");
    open_message_ = announce(std::move(message), out);
  }
  return *open_message_;
}

std::size_t ResponsesStreamTranslator::announce(OpenItem item, std::string& out) {
  std::size_t position = items_.size();
  items_.push_back(std::move(item));
  emit("response.output_item.added",
       {{"output_index", position}, {"item", items_[position].to_json()}}, out);
  return position;
}

void ResponsesStreamTranslator::close_message(std::string& out) {
  if (!open_message_) return;
  close_item(*std::exchange(open_message_, std::nullopt), "completed", out);
}

void ResponsesStreamTranslator::close_item(std::size_t position, std::string_view status,
                                           std::string& out) {
  OpenItem& item = items_[position];
  if (item.status != "in_progress") return;
  item.status = status;
  for (std::size_t content_index = 0; content_index < item.parts.size(); ++content_index) {
    const OpenItem::Part& part = item.parts[content_index];
    json::object done{
        {"item_id", item.id}, {"output_index", position}, {"content_index", content_index}};
    json::object part_done = done;
    if (part.refusal) {
      done["refusal"] = part.text;
    } else {
      done["text"] = part.text;
      done["logprobs"] = json::array();
    }
    emit(part.refusal ? "response.refusal.done" : "response.output_text.done", std::move(done),
         out);
    part_done["part"] = part.refusal ? refusal_part(part.text) : output_text_part(part.text);
    emit("response.content_part.done", std::move(part_done), out);
  }
  if (item.function_call) {
    emit("response.function_call_arguments.done",
         {{"item_id", item.id}, {"output_index", position}, {"arguments", item.arguments}}, out);
  }
  emit("response.output_item.done", {{"output_index", position}, {"item", item.to_json()}}, out);
}

void ResponsesStreamTranslator::finish(std::string& out) {
  if (ended_) return;
  begin(out);
  state_.incomplete_reason = incomplete_reason_for(finish_reason_);
  std::string_view status = item_status_for(state_.incomplete_reason);
  close_all(status, out);
  state_.status = status;
  end(state_.incomplete_reason.empty() ? "response.completed" : "response.incomplete", out);
}

void ResponsesStreamTranslator::fail(const ApiError& error, std::string& out) {
  if (ended_) return;
  begin(out);
  std::string code = !error.code.empty()   ? error.code
                     : !error.type.empty() ? error.type
                                           : std::string(error_type_for_status(error.status));
  // Items the failure cut short are closed as incomplete, so no client is left holding an item
  // that never ends.
  close_all("incomplete", out);
  state_.status = "failed";
  state_.error = {{"code", code}, {"message", error.message}};
  end("response.failed", out);
}

void ResponsesStreamTranslator::cancel(std::string& out) {
  if (ended_) return;
  begin(out);
  close_all("incomplete", out);
  // The Responses API has no event of its own for a cancelled stream; the terminal event's
  // response says "cancelled", as retrieving it later does.
  state_.status = "cancelled";
  end("response.failed", out);
}

void ResponsesStreamTranslator::close_all(std::string_view status, std::string& out) {
  open_message_.reset();
  for (std::size_t position = 0; position < items_.size(); ++position) {
    close_item(position, status, out);
  }
}

void ResponsesStreamTranslator::end(std::string_view type, std::string& out) {
  ended_ = true;
  state_.output = current_output();
  emit(type, {{"response", response_object(request_, state_)}}, out);
}

json::array ResponsesStreamTranslator::current_output() const {
  json::array output;
  for (const OpenItem& item : items_) output.push_back(item.to_json());
  return output;
}

json::object ResponsesStreamTranslator::response() const {
  ResponseState snapshot = state_;
  snapshot.output = current_output();
  return response_object(request_, snapshot);
}

void ResponsesStreamTranslator::emit(std::string_view type, json::object event, std::string& out) {
  json::object framed{{"type", type}, {"sequence_number", sequence_++}};
  for (auto& member : event) framed.emplace(member.key(), std::move(member.value()));
  out += "event: ";
  out += type;
  out += "\ndata: ";
  out += json::serialize(framed);
  out += "\n\n";
}

}  // namespace redline::agents
