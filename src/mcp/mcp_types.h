#pragma once
// The MCP client's vocabulary: errors as values, the protocol revisions it speaks, tools and tool
// results. Plain types with no I/O, shared by the client, its transports and its callers.
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <cassert>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace redline::mcp {

enum class McpErrorKind {
  kTransport,        // the server could not be reached: spawn or connect failed, an HTTP error
                     // status, a stream that ended before the answer
  kCrashed,          // the server process exited, or its pipe broke, while the request was pending
  kTimeout,          // no answer within the server's timeout_ms; the request was cancelled
  kProtocol,         // the server's answer is not valid JSON-RPC or MCP, or no revision fits
  kServer,           // the server answered with a JSON-RPC error (code, message)
  kInvalidArgument,  // the caller's input was unusable (tool arguments not a JSON object)
};
std::string_view to_string(McpErrorKind kind);

struct McpError {
  McpErrorKind kind = McpErrorKind::kProtocol;
  std::string message;
  std::int64_t code = 0;  // kServer: the JSON-RPC error code
  int http_status = 0;    // the HTTP status, when the server answered with an error status

  // "timeout: MCP server \"files\": tools/call: no answer within 30000 ms"
  std::string to_string() const;
};

// A value or an McpError.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::in_place_index<0>, std::move(value)) {}         // NOLINT: implicit
  Result(McpError error) : state_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & {
    assert(ok());
    return std::get<0>(state_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<0>(state_);
  }
  T&& value() && {
    assert(ok());
    return std::get<0>(std::move(state_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const McpError& error() const& {
    assert(!ok());
    return std::get<1>(state_);
  }
  McpError&& error() && {
    assert(!ok());
    return std::get<1>(std::move(state_));
  }

 private:
  std::variant<T, McpError> state_;
};

// Success or an McpError.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(McpError error) : error_(std::move(error)) {}  // NOLINT: implicit

  bool ok() const { return !error_.has_value(); }
  explicit operator bool() const { return ok(); }
  const McpError& error() const& {
    assert(!ok());
    return *error_;
  }
  McpError&& error() && {
    assert(!ok());
    return std::move(*error_);
  }

 private:
  std::optional<McpError> error_;
};

// The MCP protocol revisions the client speaks.
enum class McpRevision {
  // initialize handshake, sessions over HTTP. Servers that answer initialize with an earlier
  // handshake revision (2025-06-18, 2025-03-26, 2024-11-05) are spoken to the same way.
  k20251125,
  // no handshake and no sessions: server/discover, and a _meta envelope on every request.
  k20260728,
};
std::string_view to_string(McpRevision revision);

// What connecting to a server agreed on.
struct McpNegotiated {
  McpRevision revision = McpRevision::k20251125;
  std::string protocol_version;  // exactly as on the wire, e.g. "2025-06-18"
};

// One tool as tools/list describes it.
struct McpTool {
  std::string name;
  std::string title;                  // "" when none
  std::string description;            // "" when none
  boost::json::object input_schema;   // JSON Schema of the arguments; {"type":"object"} if none
  boost::json::object output_schema;  // of structuredContent; empty when none
  boost::json::object annotations;    // readOnlyHint, destructiveHint, ...; empty when none
};

// What tools/call answered. A tool that failed is a result with is_error set, not an McpError:
// the model is meant to see it.
struct McpToolResult {
  boost::json::array content;  // the content blocks as sent ({"type":"text","text":...}, ...)
  bool is_error = false;
  std::optional<boost::json::value> structured_content;

  // {"content":[...],"isError":false[,"structuredContent":...]}
  boost::json::object to_json() const;
};

}  // namespace redline::mcp
