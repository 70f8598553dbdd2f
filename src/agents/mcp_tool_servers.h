#pragma once
// The run engine's tool servers: the MCP clients of the gateway's configuration.
#include "agents/tool_servers.h"

namespace redline::mcp {
class McpClients;
}

namespace redline::agents {

class McpToolServers : public ToolServers {
 public:
  explicit McpToolServers(mcp::McpClients& clients) : clients_(clients) {}

  boost::asio::awaitable<std::optional<std::vector<ToolDescription>>> list_tools(
      const std::string& server, std::string& error) override;
  // A call whose outcome is unknown (a timeout, a crash, a broken connection) is not
  // `answered`; one the server refused or could not make is answered, as an error.
  boost::asio::awaitable<ToolCallOutcome> call_tool(const std::string& server,
                                                    const std::string& tool,
                                                    const boost::json::value& arguments,
                                                    const std::string& idempotency_key) override;

 private:
  mcp::McpClients& clients_;
};

}  // namespace redline::agents
