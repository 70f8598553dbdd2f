#pragma once
// MCP over Streamable HTTP: each message is a POST to the server's URL, answered with JSON or
// with an SSE stream that carries the response (other events in it are skipped; the server's
// pings are answered). The Mcp-Session-Id a server gives on initialize is sent back; a 404 on a
// session means the server forgot it, which starts a new epoch (the session initializes again).
// Connections come from the gateway's upstream pool, with its TLS verification.
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "mcp/transport.h"

namespace redline::mcp {

struct HttpOptions {
  std::string url;                           // http:// or https://
  std::chrono::milliseconds timeout{30000};  // bounds connecting and each read
  std::size_t max_message_bytes = 16u << 20;
};

// Runs on `context`'s thread (its coroutines may be on a strand of it).
std::unique_ptr<Transport> make_http_transport(boost::asio::io_context& context,
                                               HttpOptions options);

}  // namespace redline::mcp
