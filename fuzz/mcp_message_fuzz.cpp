// Fuzzes what an MCP server sends the client: JSON-RPC frames, and the MCP results inside them
// (initialize, server/discover, tools/list, tools/call). Nothing may crash, and what the readers
// accept must hold up: tools have names and schemas, a tool result survives a round trip,
// header values built from a server's strings are valid HTTP field values.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "mcp/json_rpc.h"
#include "mcp/protocol.h"

namespace {

using namespace redline::mcp;

void check(bool condition) {
  if (!condition) __builtin_trap();
}

bool field_value(std::string_view value) {
  if (value.empty()) return false;
  for (char c : value) {
    auto byte = static_cast<unsigned char>(c);
    if (byte != '\t' && (byte < 0x20 || byte > 0x7e)) return false;
  }
  return true;
}

void check_result(const boost::json::value& result) {
  classify_probe(result);
  (void)read_initialize_result(result);
  if (auto page = read_tools_page(result)) {
    for (const McpTool& tool : page->tools) {
      check(!tool.name.empty());
      check(!tool.input_schema.empty());
    }
  }
  if (auto tool_result = read_tool_result(result)) {
    auto again = read_tool_result(tool_result->to_json());
    check(again.ok());
    check(again->content == tool_result->content);
    check(again->is_error == tool_result->is_error);
    check(again->structured_content == tool_result->structured_content);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto message = parse_json_rpc(text);
  if (!message) {
    check(message.error().kind == McpErrorKind::kProtocol);
    return 0;
  }
  switch (message->kind) {
    case JsonRpcMessage::Kind::kResult:
      check(!message->id.is_null());
      check_result(message->result);
      break;
    case JsonRpcMessage::Kind::kError:
      check(classify_probe(Result<boost::json::value>(
                McpError{McpErrorKind::kServer, message->error.message, message->error.code})) ==
            ProbeVerdict::kLegacy);
      break;
    case JsonRpcMessage::Kind::kRequest: {
      // The client answers a server's request by echoing its id.
      auto answer = parse_json_rpc(json_rpc_result(message->id, {}));
      check(answer.ok() && answer->kind == JsonRpcMessage::Kind::kResult);
      check(answer->id == message->id);
      break;
    }
    case JsonRpcMessage::Kind::kNotification:
      check(message->id.is_null());
      break;
  }
  // A server's strings end up in Mcp-Name headers when the client calls back by them.
  if (const boost::json::object* params = message->params.if_object()) {
    Dialect dialect;
    dialect.revision = McpRevision::k20260728;
    for (const auto& header : dialect.http_headers(message->method, *params, true)) {
      check(field_value(header.value) || header.name == "Mcp-Method");
    }
  }
  return 0;
}
