#pragma once
// HTTP/1.1 client for upstream model servers: pooled keep-alive connections, optional TLS with
// certificate verification, and connect / first-byte / idle timeouts. A pool belongs to one
// io_context (one thread), so taking and returning connections needs no lock.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "net/http_message.h"

namespace redline::net {

struct UpstreamEndpoint {
  std::string host;
  std::uint16_t port = 80;
  bool tls = false;
  std::string ca_file;  // PEM bundle; empty = the system's default trust store
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds first_byte_timeout{60000};  // request sent → response head
  std::chrono::milliseconds idle_timeout{30000};        // between two reads of the body
  std::size_t max_idle_connections = 256;
};

enum class UpstreamError {
  kNone,
  kConnect,    // could not connect (refused, unreachable, TLS handshake failed)
  kTimeout,    // a timeout above expired
  kProtocol,   // the upstream sent something that is not valid HTTP/1.1
  kClosed,     // the upstream closed the connection before the response was complete
  kCancelled,  // cancel() was called, e.g. because the client went away
};
std::string_view to_string(UpstreamError error);

struct UpstreamRequest {
  std::string_view method;
  std::string_view target;           // origin-form path, e.g. "/v1/chat/completions"
  const Headers* headers = nullptr;  // Host, Content-Length and Connection are added
  std::string_view body;
  // The whole exchange (connect, head, body) must end by then; time_point::max() = no bound.
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
};

// One request/response on a pooled connection. start() sends the request and reads the head;
// then read_some() streams the decoded body. The connection goes back to the pool when the
// exchange is destroyed after its body was read to the end; otherwise it is closed.
class UpstreamExchange {
 public:
  virtual ~UpstreamExchange() = default;
  virtual boost::asio::awaitable<UpstreamError> start(const UpstreamRequest& request) = 0;
  virtual int status() const = 0;
  virtual const Headers& headers() const = 0;
  // Appends the next piece of the body (at most about 16 KiB) to `out`.
  virtual boost::asio::awaitable<UpstreamError> read_some(std::string& out) = 0;
  // Reads the rest of the body into `out`; kProtocol if it exceeds `limit` bytes.
  virtual boost::asio::awaitable<UpstreamError> read_all(std::string& out, std::size_t limit) = 0;
  virtual bool done() const = 0;  // the whole body has been read
  // Aborts whatever is in progress; pending and later operations end with kCancelled. Must be
  // called on the pool's thread.
  virtual void cancel() = 0;
};

class UpstreamPool {
 public:
  UpstreamPool(boost::asio::io_context& context, UpstreamEndpoint endpoint);
  ~UpstreamPool();
  UpstreamPool(const UpstreamPool&) = delete;
  UpstreamPool& operator=(const UpstreamPool&) = delete;

  std::unique_ptr<UpstreamExchange> exchange();
  const UpstreamEndpoint& endpoint() const;
  std::size_t idle_connections() const;

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace redline::net
