#pragma once
// JSON-RPC 2.0 framing for MCP: writing the messages the client sends, and reading — strictly,
// never throwing — the frames a server sends, which are untrusted input.
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "mcp/mcp_types.h"

namespace redline::mcp {

// The ids the client gives its requests; a server may use strings for its own.
using RequestId = std::int64_t;

// JSON-RPC error codes the client reads or writes.
inline constexpr std::int64_t kMethodNotFound = -32601;

struct JsonRpcError {
  std::int64_t code = 0;
  std::string message;
  boost::json::value data;  // null when absent
};

struct JsonRpcMessage {
  enum class Kind { kRequest, kNotification, kResult, kError };
  Kind kind = Kind::kNotification;
  boost::json::value id;      // string or integer; null for a notification or an id-less error
  std::string method;         // kRequest, kNotification
  boost::json::value params;  // kRequest, kNotification: object, array or null when absent
  boost::json::value result;  // kResult
  JsonRpcError error;         // kError

  bool is_response() const { return kind == Kind::kResult || kind == Kind::kError; }
  // The id as one of ours: set for an integer id.
  std::optional<RequestId> request_id() const;
};

// Parses one message. Anything that is not a single well-formed JSON-RPC 2.0 request,
// notification or response is a kProtocol error saying what is wrong.
Result<JsonRpcMessage> parse_json_rpc(std::string_view text);

// Serialized messages. `params` is left out when empty.
std::string json_rpc_request(RequestId id, std::string_view method,
                             const boost::json::object& params);
std::string json_rpc_notification(std::string_view method, const boost::json::object& params);
// Answers to a server's own requests (its id echoed as sent).
std::string json_rpc_result(const boost::json::value& id, const boost::json::object& result);
std::string json_rpc_error(const boost::json::value& id, std::int64_t code,
                           std::string_view message);

}  // namespace redline::mcp
