#pragma once
// The MCP client the agent runtime calls tools through: one McpClient per configured
// [[mcp_servers]] entry, and the McpClients registry built from a Config.
//
// Threads: a client lives on a home io_context, whose thread serves its process, pipes and
// connections; its state sits on a strand there. Its coroutines may be awaited from any thread
// (any of the gateway's I/O threads): they hop onto the strand and resume the caller on the
// caller's own executor. Errors are values (McpError); nothing throws across this interface.
//
// Revisions: protocol = "auto" tries 2026-07-28 (server/discover) first and falls back to the
// 2025-11-25 handshake, remembering the outcome for the server: restarted after a crash, a
// server that needed the handshake gets it again without a new probe. A configured revision is
// used as is.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "mcp/mcp_types.h"

namespace redline::mcp {

struct McpClientOptions {
  std::string client_version = "0.1.0";       // clientInfo.version
  std::size_t max_message_bytes = 16u << 20;  // a larger message from a server is an error
};

class McpClient {
 public:
  McpClient(boost::asio::io_context& home, config::McpServerSettings settings,
            McpClientOptions options = {});
  McpClient(const McpClient&) = delete;
  McpClient& operator=(const McpClient&) = delete;
  // Stops a stdio server still running (stdin closed, then SIGTERM, then SIGKILL after a short
  // grace) and reaps it, blocking. Destroy the client when nothing runs on `home` concurrently:
  // from its thread, or after it stopped; prefer awaiting shutdown() first.
  ~McpClient();

  const config::McpServerSettings& settings() const;
  const std::string& name() const;
  // Whether `tenant` may use this server ([[mcp_servers]] tenants; empty = everyone).
  bool allows_tenant(std::string_view tenant) const;

  // Connects and negotiates now (otherwise the first call does).
  boost::asio::awaitable<Result<McpNegotiated>> connect();
  // Every tool the server offers (tools/list, all pages).
  boost::asio::awaitable<Result<std::vector<McpTool>>> list_tools();
  // Calls a tool. `arguments_json` must be a JSON object ("" = {}). `idempotency_key` goes to
  // the server in params._meta["dev.redline/idempotency-key"], so one that deduplicates can
  // recognise a retried call; "" = a fresh key for this call. A tool that failed is a result
  // with is_error set; an McpError means the call itself failed (it may or may not have run
  // when the error is kTimeout, kCrashed or kTransport).
  boost::asio::awaitable<Result<McpToolResult>> call_tool(std::string name,
                                                          std::string arguments_json,
                                                          std::string idempotency_key);
  // Ends the connection gracefully (stdio: stdin closed, SIGTERM, SIGKILL; HTTP: the session
  // ended). Later calls fail with kTransport.
  boost::asio::awaitable<void> shutdown();

  // The revision agreed on, once one was; callable from any thread.
  std::optional<McpRevision> revision() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

// Whether `tenant` may use `server`.
bool tenant_allowed(const config::McpServerSettings& server, std::string_view tenant);

// One client per [[mcp_servers]] entry, all on `home`.
class McpClients {
 public:
  McpClients(boost::asio::io_context& home, const config::Config& config,
             McpClientOptions options = {});

  // nullptr when no server has that name.
  McpClient* find(std::string_view name) const;
  // nullptr when no server has that name or `tenant` may not use it: the two look the same to a
  // tenant, so it learns nothing about servers that are not its own.
  McpClient* find_for_tenant(std::string_view name, std::string_view tenant) const;
  const std::vector<std::unique_ptr<McpClient>>& all() const { return clients_; }

  boost::asio::awaitable<void> shutdown();

 private:
  std::vector<std::unique_ptr<McpClient>> clients_;
};

}  // namespace redline::mcp
