#pragma once
// The MCP protocol engine over one transport: agrees on a revision with the server (or uses the
// configured one), keeps that agreement across restarts of the server, and runs requests with a
// timeout, cancelling the ones that time out. Transport-independent, so it is tested against
// scripted transports. Single-threaded: every call must come from the same executor (strand).
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "mcp/mcp_types.h"
#include "mcp/protocol.h"
#include "mcp/transport.h"

namespace redline::mcp {

// The handshake with a server that just started includes its start-up (npx may download it
// first), so it gets at least this long, however short the request timeout is.
inline constexpr std::chrono::milliseconds kMinHandshakeTimeout{10000};

struct SessionOptions {
  std::string label;  // prefixes error messages, e.g. "MCP server \"files\""
  config::McpProtocol protocol = config::McpProtocol::kAuto;
  std::chrono::milliseconds timeout{30000};  // each request (the handshake: see above)
  ClientIdentity client;
};

class McpSession {
 public:
  McpSession(boost::asio::any_io_executor executor, std::unique_ptr<Transport> transport,
             SessionOptions options);
  McpSession(const McpSession&) = delete;
  McpSession& operator=(const McpSession&) = delete;
  ~McpSession();

  // Negotiates now, unless that has happened on the current connection. Every request does
  // this first; callers arriving during a negotiation wait for it and share its outcome.
  boost::asio::awaitable<Result<McpNegotiated>> connect();
  // tools/list, following nextCursor to the last page.
  boost::asio::awaitable<Result<std::vector<McpTool>>> list_tools();
  // tools/call with the idempotency key in params._meta.
  boost::asio::awaitable<Result<McpToolResult>> call_tool(std::string name,
                                                          boost::json::object arguments,
                                                          std::string idempotency_key);
  // Ends the connection; later calls fail.
  boost::asio::awaitable<void> close();

  // The revision agreed on last (kept across reconnects); nullopt before the first agreement.
  std::optional<McpRevision> revision() const;

 private:
  struct Flight;

  boost::asio::awaitable<Result<void>> ensure_ready();
  boost::asio::awaitable<Result<void>> negotiate();
  boost::asio::awaitable<Result<McpRevision>> choose_revision();
  boost::asio::awaitable<Result<void>> initialize();
  // A request after negotiation; retried once when the server forgot the session.
  boost::asio::awaitable<Result<boost::json::value>> request(std::string_view method,
                                                             boost::json::object params);
  enum class Phase { kHandshake, kRequest };
  // One request in `dialect`, without negotiating. A timed-out request is cancelled.
  boost::asio::awaitable<Result<boost::json::value>> exchange(Dialect dialect,
                                                              std::string_view method,
                                                              boost::json::object params,
                                                              Phase phase);
  boost::asio::awaitable<void> cancel(const Dialect& dialect, RequestId id);
  // `error` with the server and method in front of its message.
  McpError in_context(std::string_view method, McpError error) const;

  boost::asio::any_io_executor executor_;
  std::unique_ptr<Transport> transport_;
  SessionOptions options_;
  Dialect dialect_;                           // valid once agreed_ is set
  std::optional<McpRevision> agreed_;         // remembered across reconnects
  std::optional<std::uint64_t> ready_epoch_;  // the transport epoch negotiated on
  std::shared_ptr<Flight> negotiation_;       // the negotiation in progress, if any
  RequestId next_id_ = 1;
  bool closed_ = false;
};

}  // namespace redline::mcp
