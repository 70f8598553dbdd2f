#include "mcp/json_rpc.h"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <limits>

namespace redline::mcp {

namespace json = boost::json;

namespace {

// Tool schemas nest deeper than Boost.JSON's default of 32.
constexpr std::size_t kMaxJsonDepth = 64;

McpError invalid(std::string what) {
  return {McpErrorKind::kProtocol, "invalid JSON-RPC message: " + std::move(what)};
}

bool valid_id(const json::value& id) {
  return id.is_string() || id.is_int64() ||
         (id.is_uint64() && id.get_uint64() <= std::numeric_limits<std::int64_t>::max());
}

Result<JsonRpcError> read_error(const json::value& value) {
  const json::object* error = value.if_object();
  if (error == nullptr) return invalid("\"error\" is not an object");
  const json::value* code = error->if_contains("code");
  if (code == nullptr || !(code->is_int64() || code->is_uint64())) {
    return invalid("\"error.code\" is not an integer");
  }
  const json::value* message = error->if_contains("message");
  if (message == nullptr || !message->is_string()) {
    return invalid("\"error.message\" is not a string");
  }
  JsonRpcError out;
  out.code = code->is_int64() ? code->get_int64() : std::numeric_limits<std::int64_t>::max();
  out.message = std::string(message->get_string());
  if (const json::value* data = error->if_contains("data")) out.data = *data;
  return out;
}

}  // namespace

std::optional<RequestId> JsonRpcMessage::request_id() const {
  if (id.is_int64()) return id.get_int64();
  if (id.is_uint64()) return static_cast<RequestId>(id.get_uint64());  // valid_id bounded it
  return std::nullopt;
}

Result<JsonRpcMessage> parse_json_rpc(std::string_view text) {
  json::parse_options options;
  options.max_depth = kMaxJsonDepth;
  boost::system::error_code ec;
  json::value parsed = json::parse(text, ec, {}, options);
  if (ec) return invalid("not JSON (" + ec.message() + ")");
  json::object* object = parsed.if_object();
  if (object == nullptr) return invalid("not a JSON object");
  const json::value* version = object->if_contains("jsonrpc");
  if (version == nullptr || !version->is_string() || version->get_string() != "2.0") {
    return invalid("\"jsonrpc\" is not \"2.0\"");
  }

  JsonRpcMessage message;
  const json::value* id = object->if_contains("id");
  if (id != nullptr && !id->is_null() && !valid_id(*id)) {
    return invalid("\"id\" is neither a string nor an integer");
  }
  if (id != nullptr) message.id = *id;

  if (const json::value* method = object->if_contains("method")) {
    if (!method->is_string()) return invalid("\"method\" is not a string");
    message.method = std::string(method->get_string());
    if (const json::value* params = object->if_contains("params")) {
      if (!params->is_object() && !params->is_array()) {
        return invalid("\"params\" is neither an object nor an array");
      }
      message.params = *params;
    }
    if (id == nullptr) {
      message.kind = JsonRpcMessage::Kind::kNotification;
    } else if (id->is_null()) {
      return invalid("a request's \"id\" is null");
    } else {
      message.kind = JsonRpcMessage::Kind::kRequest;
    }
    return message;
  }

  const json::value* result = object->if_contains("result");
  const json::value* error = object->if_contains("error");
  if ((result == nullptr) == (error == nullptr)) {
    return invalid("neither a request nor a response (needs exactly one of method, result, error)");
  }
  if (result != nullptr) {
    if (id == nullptr || id->is_null()) return invalid("a result has no \"id\"");
    message.kind = JsonRpcMessage::Kind::kResult;
    message.result = *result;
    return message;
  }
  auto read = read_error(*error);
  if (!read) return std::move(read).error();
  message.kind = JsonRpcMessage::Kind::kError;
  message.error = std::move(read).value();
  return message;
}

std::string json_rpc_request(RequestId id, std::string_view method, const json::object& params) {
  json::object message{{"jsonrpc", "2.0"}, {"id", id}, {"method", method}};
  if (!params.empty()) message["params"] = params;
  return json::serialize(message);
}

std::string json_rpc_notification(std::string_view method, const json::object& params) {
  json::object message{{"jsonrpc", "2.0"}, {"method", method}};
  if (!params.empty()) message["params"] = params;
  return json::serialize(message);
}

std::string json_rpc_result(const json::value& id, const json::object& result) {
  return json::serialize(json::object{{"jsonrpc", "2.0"}, {"id", id}, {"result", result}});
}

std::string json_rpc_error(const json::value& id, std::int64_t code, std::string_view message) {
  return json::serialize(json::object{
      {"jsonrpc", "2.0"}, {"id", id}, {"error", {{"code", code}, {"message", message}}}});
}

}  // namespace redline::mcp
