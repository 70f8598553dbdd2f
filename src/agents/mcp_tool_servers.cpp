#include "agents/mcp_tool_servers.h"

#include <boost/json/serialize.hpp>

#include "mcp/mcp_client.h"

namespace redline::agents {

namespace asio = boost::asio;
namespace json = boost::json;

namespace {

// What the model reads of a tool's result: its text blocks, in order; other blocks and
// structured content as JSON.
std::string text_of(const mcp::McpToolResult& result) {
  std::string text;
  for (const json::value& block : result.content) {
    if (!text.empty()) text += "\n";
    const json::object* object = block.if_object();
    const json::value* type = object ? object->if_contains("type") : nullptr;
    const json::value* body = object ? object->if_contains("text") : nullptr;
    if (type && type->is_string() && type->as_string() == "text" && body && body->is_string()) {
      text += std::string(body->as_string());
    } else {
      text += json::serialize(block);
    }
  }
  if (text.empty() && result.structured_content) text = json::serialize(*result.structured_content);
  return text;
}

}  // namespace

asio::awaitable<std::optional<std::vector<ToolDescription>>> McpToolServers::list_tools(
    const std::string& server, std::string& error) {
  mcp::McpClient* client = clients_.find(server);
  if (client == nullptr) {
    error = "no MCP server '" + server + "' is configured";
    co_return std::nullopt;
  }
  auto listed = co_await client->list_tools();
  if (!listed) {
    error = listed.error().to_string();
    co_return std::nullopt;
  }
  std::vector<ToolDescription> tools;
  for (const mcp::McpTool& tool : *listed) {
    tools.push_back({tool.name, tool.description, tool.input_schema});
  }
  co_return tools;
}

asio::awaitable<ToolCallOutcome> McpToolServers::call_tool(const std::string& server,
                                                           const std::string& tool,
                                                           const json::value& arguments,
                                                           const std::string& idempotency_key) {
  ToolCallOutcome outcome;
  mcp::McpClient* client = clients_.find(server);
  if (client == nullptr) {
    outcome.answered = true;
    outcome.is_error = true;
    outcome.output = "No MCP server '" + server + "' is configured.";
    co_return outcome;
  }
  std::string arguments_json = arguments.is_object() ? json::serialize(arguments) : "{}";
  auto called = co_await client->call_tool(tool, std::move(arguments_json), idempotency_key);
  if (called) {
    outcome.answered = true;
    outcome.is_error = called->is_error;
    outcome.output = text_of(*called);
    co_return outcome;
  }
  const mcp::McpError& error = called.error();
  // Whether the call ran is only certain when the server said it did not.
  outcome.answered =
      error.kind == mcp::McpErrorKind::kServer || error.kind == mcp::McpErrorKind::kInvalidArgument;
  outcome.is_error = true;
  outcome.output = "The tool call failed: " + error.to_string();
  co_return outcome;
}

}  // namespace redline::agents
