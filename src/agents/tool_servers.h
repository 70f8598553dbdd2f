#pragma once
// What the run engine needs of tool servers: list a server's tools and call one. The MCP clients
// of the gateway's configuration implement it (McpToolServers); tests drive the engine with
// real MCP servers through that same implementation.
#include <boost/asio/awaitable.hpp>
#include <boost/json/value.hpp>
#include <optional>
#include <string>
#include <vector>

namespace redline::agents {

struct ToolDescription {
  std::string name;
  std::string description;
  boost::json::value input_schema;  // a JSON Schema object
};

struct ToolCallOutcome {
  // The call reached the server and it answered (possibly with a tool error). False when the
  // outcome is unknown or the call never happened: transport failure, crash, timeout.
  bool answered = false;
  bool is_error = false;  // the tool reported an error (answered) or the call failed
  std::string output;     // the text the model reads: the tool's content, or what went wrong
};

class ToolServers {
 public:
  virtual ~ToolServers() = default;
  // The tools `server` offers; nullopt with `error` set when it cannot be reached.
  virtual boost::asio::awaitable<std::optional<std::vector<ToolDescription>>> list_tools(
      const std::string& server, std::string& error) = 0;
  // Calls `tool` with `arguments` (a JSON object); `idempotency_key` lets a deduplicating server
  // recognise a retry of the same call.
  virtual boost::asio::awaitable<ToolCallOutcome> call_tool(const std::string& server,
                                                            const std::string& tool,
                                                            const boost::json::value& arguments,
                                                            const std::string& idempotency_key) = 0;
};

}  // namespace redline::agents
