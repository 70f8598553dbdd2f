#pragma once
// HTTP/1.1 server: keep-alive, bounded heads, bodies, connections and time, and a handler
// coroutine per request. Malformed or oversized requests are answered here with OpenAI-style
// errors (400, 408, 413, 431) and never reach a handler.
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "net/http_message.h"
#include "net/io_pool.h"

namespace redline::net {

// How a handler answers. Either send() one whole response, or begin_stream() then
// write_chunk()* then end_stream(). Every call returns false once the client is gone; the
// handler should then stop its work.
class ResponseWriter {
 public:
  virtual ~ResponseWriter() = default;
  virtual boost::asio::awaitable<bool> send(HttpResponse response) = 0;
  virtual boost::asio::awaitable<bool> begin_stream(int status, Headers headers) = 0;
  virtual boost::asio::awaitable<bool> write_chunk(std::string_view data) = 0;
  virtual boost::asio::awaitable<bool> end_stream() = 0;
  // True once a status line has been sent: from then on an error can only be reported in-band.
  virtual bool started() const = 0;
  virtual bool client_gone() const = 0;
  // Calls `on_disconnect` (on the connection's thread) if the client closes its connection
  // while the handler still runs, e.g. to cancel upstream I/O. Pass {} to stop watching; the
  // callback must not outlive what it captures, so clear it before those objects die.
  virtual void watch_disconnect(std::function<void()> on_disconnect) = 0;
};

using Handler = std::function<boost::asio::awaitable<void>(HttpRequest&, ResponseWriter&)>;

struct ServerLimits {
  std::size_t max_body_bytes = 10u << 20;
  std::size_t max_header_bytes = 16u << 10;
  std::size_t max_connections = 10000;
  std::chrono::milliseconds header_timeout{10000};  // whole request head must arrive by then
  std::chrono::milliseconds body_timeout{30000};    // whole body must arrive by then
  std::chrono::milliseconds idle_timeout{60000};    // keep-alive connection with no request
  std::chrono::milliseconds write_timeout{30000};   // one write to a client that does not read
};

// Destroy it only after its IoPool has stopped running (and before the pool is destroyed).
class HttpServer {
 public:
  HttpServer(IoPool& pool, ServerLimits limits, Handler handler);
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;
  ~HttpServer();

  // Binds and starts accepting. Throws std::system_error when the address cannot be bound
  // (a startup error). Port 0 picks a free port; see bound_port().
  void listen(const std::string& host, std::uint16_t port);
  std::uint16_t bound_port(std::size_t listener_index = 0) const;

  // For draining: stop accepting, and close keep-alive connections as soon as they are idle.
  void stop_accepting();
  std::size_t open_connections() const;
  std::size_t requests_in_flight() const;

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace redline::net
