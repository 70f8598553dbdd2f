#pragma once
// What differs between the MCP revisions the client speaks, as plain functions over JSON: how a
// message is dressed (the 2026-07-28 `_meta` envelope and HTTP headers), the handshake and
// discovery answers, and reading tools/list and tools/call results. No I/O, so the negotiation
// rules can be tested, and the readers fuzzed, on their own.
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "mcp/json_rpc.h"
#include "mcp/mcp_types.h"
#include "net/http_message.h"

namespace redline::mcp {

// The wire names of the revisions.
inline constexpr std::string_view kVersion20251125 = "2025-11-25";
inline constexpr std::string_view kVersion20260728 = "2026-07-28";
// Where a tool call carries the caller's idempotency key, in params._meta.
inline constexpr std::string_view kIdempotencyKeyMeta = "dev.redline/idempotency-key";

// Who the client says it is (clientInfo).
struct ClientIdentity {
  std::string name = "redline";
  std::string version;
};

// How one message is dressed for the revision in use.
struct Dialect {
  McpRevision revision = McpRevision::k20251125;
  // 2025-11-25: the version initialize agreed on ("" until then); sent as MCP-Protocol-Version.
  std::string protocol_version;
  ClientIdentity client;

  // Adds the 2026-07-28 envelope (protocol version, client info, capabilities) to
  // params._meta, keeping what _meta already holds. 2025-11-25 messages carry none.
  void dress(boost::json::object& params) const;
  // The Streamable HTTP headers of one message: MCP-Protocol-Version, and for 2026-07-28
  // requests Mcp-Method and Mcp-Name.
  net::Headers http_headers(std::string_view method, const boost::json::object& params,
                            bool is_request) const;
};

// An HTTP field value for a name taken from a message: plain when it is printable ASCII without
// surrounding spaces, else "=?base64?<base64 of the UTF-8>?=" (2026-07-28 value encoding).
std::string encode_header_value(std::string_view value);

// initialize (2025-11-25).
boost::json::object initialize_params(const ClientIdentity& client);
// tools/call, with the caller's idempotency key in _meta.
boost::json::object tool_call_params(std::string_view name, boost::json::object arguments,
                                     std::string_view idempotency_key);
// notifications/cancelled for a request that timed out.
boost::json::object cancelled_params(RequestId id);
// The protocol version the server agreed on, if it is one the client can speak.
Result<std::string> read_initialize_result(const boost::json::value& result);

// What the server/discover probe says about a server under protocol = "auto".
enum class ProbeVerdict {
  kModern,  // it speaks 2026-07-28
  kLegacy,  // it does not know the method or the revision: fall back to initialize
  kFailed,  // it could not be asked (unreachable, refused, 5xx): report the error
};
ProbeVerdict classify_probe(const Result<boost::json::value>& outcome);

// One page of tools/list.
struct ToolsPage {
  std::vector<McpTool> tools;
  std::string next_cursor;  // "" on the last page
};
Result<ToolsPage> read_tools_page(const boost::json::value& result);
Result<McpToolResult> read_tool_result(const boost::json::value& result);

}  // namespace redline::mcp
