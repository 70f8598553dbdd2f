#include "mcp/mcp_types.h"

namespace redline::mcp {

std::string_view to_string(McpErrorKind kind) {
  switch (kind) {
    case McpErrorKind::kTransport:
      return "transport";
    case McpErrorKind::kCrashed:
      return "crashed";
    case McpErrorKind::kTimeout:
      return "timeout";
    case McpErrorKind::kProtocol:
      return "protocol";
    case McpErrorKind::kServer:
      return "server";
    case McpErrorKind::kInvalidArgument:
      return "invalid_argument";
  }
  return "unknown";
}

std::string McpError::to_string() const {
  return std::string(mcp::to_string(kind)) + ": " + message;
}

std::string_view to_string(McpRevision revision) {
  return revision == McpRevision::k20260728 ? "2026-07-28" : "2025-11-25";
}

boost::json::object McpToolResult::to_json() const {
  boost::json::object out{{"content", content}, {"isError", is_error}};
  if (structured_content) out["structuredContent"] = *structured_content;
  return out;
}

}  // namespace redline::mcp
