#pragma once
// How JSON-RPC messages reach an MCP server: a child process on stdio, or Streamable HTTP. The
// session above speaks the protocol; a transport only delivers messages and correlates answers.
// A transport is used from one executor (the client's strand) and never locks.
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "mcp/json_rpc.h"
#include "mcp/mcp_types.h"
#include "net/http_message.h"

namespace redline::mcp {

struct OutgoingMessage {
  std::string_view method;  // lets HTTP treat the handshake specially (no session id yet)
  std::string body;         // one serialized JSON-RPC message
  net::Headers headers;     // HTTP only: what the revision asks to go with it
};

class Transport {
 public:
  using Deadline = std::chrono::steady_clock::time_point;

  virtual ~Transport() = default;

  // Brings the connection up when it is down (stdio: spawns the server). Cheap when it is up.
  virtual Result<void> open() = 0;
  virtual bool is_open() const = 0;
  // Changes whenever the server may have forgotten the handshake (a new process, an expired
  // HTTP session): the session must negotiate again before its next request.
  virtual std::uint64_t epoch() const = 0;

  // Sends a request and waits for the response carrying `id` (a result or a JSON-RPC error),
  // until `deadline` (then kTimeout).
  virtual boost::asio::awaitable<Result<JsonRpcMessage>> request(RequestId id,
                                                                 OutgoingMessage message,
                                                                 Deadline deadline) = 0;
  virtual boost::asio::awaitable<Result<void>> notify(OutgoingMessage message) = 0;

  // True when each request has its own stream (Streamable HTTP): a timed-out request's stream
  // is closed, which a 2026-07-28 server takes as its cancellation.
  virtual bool per_request_stream() const = 0;

  // Ends the connection gracefully (stdio: closes stdin, then SIGTERM, then SIGKILL; HTTP: ends
  // the session). Pending requests fail.
  virtual boost::asio::awaitable<void> close() = 0;
};

}  // namespace redline::mcp
