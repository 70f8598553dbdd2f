#include "net/http_server.h"

#include <sys/socket.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <cerrno>

#include "common/openai_error.h"
#include "net/http_status.h"

namespace redline::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

struct HttpServer::State {
  IoPool& pool;
  ServerLimits limits;
  Handler handler;
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors;
  std::atomic<std::size_t> connections{0};
  std::atomic<std::size_t> in_flight{0};
  std::atomic<bool> draining{false};

  State(IoPool& p, ServerLimits l, Handler h) : pool(p), limits(l), handler(std::move(h)) {}
};

namespace {

// Serialises a response head by hand: a handful of appends is cheaper than Beast's serializer
// and keeps the write a single gathered send.
std::string response_head(int status, const Headers& headers, bool chunked,
                          std::size_t content_length, bool keep_alive) {
  std::string head;
  head.reserve(256);
  head += "HTTP/1.1 ";
  head += std::to_string(status);
  head += ' ';
  head += status_reason(status);
  head += "\r\n";
  for (const auto& h : headers) {
    head += h.name;
    head += ": ";
    head += h.value;
    head += "\r\n";
  }
  if (chunked) {
    head += "Transfer-Encoding: chunked\r\n";
  } else {
    head += "Content-Length: ";
    head += std::to_string(content_length);
    head += "\r\n";
  }
  if (!keep_alive) head += "Connection: close\r\n";
  head += "\r\n";
  return head;
}

// Watches an idle client socket while a handler works, to notice a client that hangs up.
// Shared with the pending wait so a late completion never touches a finished request.
struct DisconnectWatch {
  std::function<void()> on_disconnect;
  bool active = false;
  bool gone = false;
};

class ConnectionWriter final : public ResponseWriter {
 public:
  ConnectionWriter(beast::tcp_stream& stream, const ServerLimits& limits, bool keep_alive)
      : stream_(stream), limits_(limits), keep_alive_(keep_alive) {}

  ~ConnectionWriter() override { stop_watching(); }

  asio::awaitable<bool> send(HttpResponse response) override {
    if (started_ || watch_->gone) co_return false;
    started_ = finished_ = true;
    std::string head =
        response_head(response.status, response.headers, false, response.body.size(), keep_alive_);
    std::array<asio::const_buffer, 2> buffers{asio::buffer(head), asio::buffer(response.body)};
    co_return co_await write(buffers);
  }

  asio::awaitable<bool> begin_stream(int status, Headers headers) override {
    if (started_ || watch_->gone) co_return false;
    started_ = true;
    streaming_ = true;
    std::string head = response_head(status, headers, true, 0, keep_alive_);
    co_return co_await write(std::array<asio::const_buffer, 1>{asio::buffer(head)});
  }

  asio::awaitable<bool> write_chunk(std::string_view data) override {
    if (!streaming_ || finished_ || watch_->gone) co_return false;
    if (data.empty()) co_return true;  // an empty chunk would end the body
    char size_line[24];
    int n = std::snprintf(size_line, sizeof size_line, "%zx\r\n", data.size());
    std::array<asio::const_buffer, 3> buffers{asio::buffer(size_line, n), asio::buffer(data),
                                              asio::buffer("\r\n", 2)};
    co_return co_await write(buffers);
  }

  asio::awaitable<bool> end_stream() override {
    if (!streaming_ || finished_ || watch_->gone) co_return false;
    finished_ = true;
    co_return co_await write(std::array<asio::const_buffer, 1>{asio::buffer("0\r\n\r\n", 5)});
  }

  bool started() const override { return started_; }
  bool finished() const { return finished_; }
  bool client_gone() const override { return watch_->gone; }

  void watch_disconnect(std::function<void()> on_disconnect) override {
    watch_->on_disconnect = std::move(on_disconnect);
    if (!watch_->on_disconnect || watch_->active || watch_->gone) return;
    arm_watch(watch_, stream_.socket());
  }

  void stop_watching() {
    watch_->on_disconnect = nullptr;
    if (watch_->active) {
      watch_->active = false;
      boost::system::error_code ignored;
      stream_.socket().cancel(ignored);
    }
  }

 private:
  static void arm_watch(std::shared_ptr<DisconnectWatch> watch, tcp::socket& socket) {
    watch->active = true;
    socket.async_wait(tcp::socket::wait_read, [watch, &socket](boost::system::error_code ec) {
      if (!watch->active) return;  // the request finished first
      watch->active = false;
      if (ec == asio::error::operation_aborted) return;
      if (!ec) {
        char byte;
        ssize_t n = ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n > 0) return;  // a pipelined request, not a hang-up
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
          arm_watch(watch, socket);
          return;
        }
      }
      watch->gone = true;
      if (watch->on_disconnect) {
        auto callback = std::move(watch->on_disconnect);
        watch->on_disconnect = nullptr;
        callback();
      }
    });
  }

  template <class Buffers>
  asio::awaitable<bool> write(const Buffers& buffers) {
    stream_.expires_after(limits_.write_timeout);
    auto [ec, n] = co_await asio::async_write(stream_, buffers, kNoThrow);
    if (ec) {
      watch_->gone = true;
      co_return false;
    }
    co_return true;
  }

  beast::tcp_stream& stream_;
  const ServerLimits& limits_;
  bool keep_alive_;
  bool started_ = false;
  bool streaming_ = false;
  bool finished_ = false;
  std::shared_ptr<DisconnectWatch> watch_ = std::make_shared<DisconnectWatch>();
};

// Answers a request the server itself refuses, then the connection is closed.
asio::awaitable<void> send_error_and_close(beast::tcp_stream& stream, const ServerLimits& limits,
                                           const ApiError& error) {
  std::string body = error_body(error);
  std::string head = response_head(error.status, {{"Content-Type", "application/json"}}, false,
                                   body.size(), false);
  stream.expires_after(limits.write_timeout);
  std::array<asio::const_buffer, 2> buffers{asio::buffer(head), asio::buffer(body)};
  co_await asio::async_write(stream, buffers, kNoThrow);
  boost::system::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  // A client still sending its (rejected) body would get a reset, and lose this answer, if the
  // socket closed with unread data. Read and discard for a bounded time and amount first.
  constexpr std::size_t kMaxDrainBytes = 64u << 20;
  std::array<char, 16 * 1024> scratch;
  std::size_t drained = 0;
  stream.expires_after(std::chrono::seconds(2));
  while (drained < kMaxDrainBytes) {
    auto [ec, n] = co_await stream.async_read_some(asio::buffer(scratch), kNoThrow);
    if (ec) break;
    drained += n;
  }
}

ApiError error_for_read_failure(const boost::system::error_code& ec) {
  if (ec == http::error::header_limit) {
    return make_error(431, "Request header fields are too large.");
  }
  if (ec == http::error::body_limit) {
    return make_error(413, "Request body is larger than this server accepts.");
  }
  if (ec == beast::error::timeout) {
    return make_error(408, "The request was not received in time.");
  }
  return make_error(400, "Malformed HTTP request: " + ec.message() + ".");
}

bool is_quiet_close(const boost::system::error_code& ec) {
  return ec == http::error::end_of_stream || ec == asio::error::eof ||
         ec == asio::error::connection_reset || ec == asio::error::operation_aborted ||
         ec == asio::error::broken_pipe;
}

HttpRequest to_request(http::request<http::string_body>&& message, const std::string& remote) {
  HttpRequest request;
  request.method = std::string(message.method_string());
  request.target = std::string(message.target());
  request.headers.reserve(12);
  for (const auto& field : message) {
    request.headers.push_back({std::string(field.name_string()), std::string(field.value())});
  }
  request.body = std::move(message.body());
  request.remote_address = remote;
  return request;
}

asio::awaitable<void> serve_connection(std::shared_ptr<HttpServer::State> state,
                                       tcp::socket socket) {
  const ServerLimits& limits = state->limits;
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  bool first_request = true;
  std::string remote;
  {
    boost::system::error_code ec;
    auto endpoint = stream.socket().remote_endpoint(ec);
    if (!ec) remote = endpoint.address().to_string();
  }

  for (;;) {
    if (!first_request && buffer.size() == 0) {
      // Keep-alive: wait for the next request's first bytes under the idle timeout; only then
      // does the (shorter) head timeout start, so slow heads cannot hide behind idleness.
      stream.expires_after(limits.idle_timeout);
      auto [ec, n] = co_await stream.async_read_some(buffer.prepare(1024), kNoThrow);
      if (ec) break;
      buffer.commit(n);
    }
    first_request = false;

    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(limits.max_header_bytes));
    parser.body_limit(limits.max_body_bytes);

    stream.expires_after(limits.header_timeout);
    auto [head_ec, head_n] = co_await http::async_read_header(stream, buffer, parser, kNoThrow);
    if (head_ec) {
      if (!is_quiet_close(head_ec) || head_ec == beast::error::timeout) {
        co_await send_error_and_close(stream, limits, error_for_read_failure(head_ec));
      }
      break;
    }
    if (parser.get()[http::field::expect] == "100-continue") {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      co_await asio::async_write(stream, asio::buffer(kContinue), kNoThrow);
    }
    if (!parser.is_done()) {
      stream.expires_after(limits.body_timeout);
      auto [body_ec, body_n] = co_await http::async_read(stream, buffer, parser, kNoThrow);
      if (body_ec) {
        if (!is_quiet_close(body_ec) || body_ec == beast::error::timeout) {
          co_await send_error_and_close(stream, limits, error_for_read_failure(body_ec));
        }
        break;
      }
    }
    stream.expires_never();

    bool keep_alive = parser.keep_alive() && !state->draining.load(std::memory_order_relaxed);
    HttpRequest request = to_request(parser.release(), remote);
    ConnectionWriter writer(stream, limits, keep_alive);
    state->in_flight.fetch_add(1, std::memory_order_relaxed);
    try {
      co_await state->handler(request, writer);
    } catch (const std::exception&) {
      // A handler that throws is a bug; the client still gets a well-formed answer below.
    }
    state->in_flight.fetch_sub(1, std::memory_order_relaxed);
    writer.stop_watching();

    if (!writer.started()) {
      // Built outside the co_await: g++ 12 cannot keep array temporaries in a coroutine frame.
      HttpResponse failure{500,
                           {{"Content-Type", "application/json"}},
                           error_body(make_error(500, "The server failed to answer."))};
      co_await writer.send(std::move(failure));
    }
    // An unfinished stream (upstream failure, abort) must not look like a complete body.
    if (!writer.finished() || writer.client_gone() || !keep_alive) break;
    if (buffer.capacity() > 64 * 1024) buffer.shrink_to_fit();
  }
  boost::system::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  stream.socket().close(ignored);
}

asio::awaitable<void> accept_loop(std::shared_ptr<HttpServer::State> state,
                                  tcp::acceptor& acceptor) {
  for (;;) {
    auto& context = state->pool.next();
    auto [ec, socket] = co_await acceptor.async_accept(context, kNoThrow);
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
    if (ec) {
      // Out of descriptors (EMFILE/ENFILE) or memory: pause briefly instead of spinning on a
      // backlog the process cannot take from until some connection closes.
      asio::steady_timer pause(acceptor.get_executor(), std::chrono::milliseconds(10));
      co_await pause.async_wait(kNoThrow);
      continue;
    }
    if (state->connections.load(std::memory_order_relaxed) >= state->limits.max_connections) {
      static const std::string kBusy = [] {
        std::string body = error_body(make_error(503, "Too many open connections."));
        return response_head(503, {{"Content-Type", "application/json"}}, false, body.size(),
                             false) +
               body;
      }();
      boost::system::error_code ignored;
      socket.non_blocking(true, ignored);
      socket.send(asio::buffer(kBusy), 0, ignored);
      socket.close(ignored);
      continue;
    }
    socket.set_option(tcp::no_delay(true), ec);
    state->connections.fetch_add(1, std::memory_order_relaxed);
    auto executor = socket.get_executor();
    asio::co_spawn(executor, serve_connection(state, std::move(socket)),
                   [state](std::exception_ptr) {
                     state->connections.fetch_sub(1, std::memory_order_relaxed);
                   });
  }
}

}  // namespace

HttpServer::HttpServer(IoPool& pool, ServerLimits limits, Handler handler)
    : state_(std::make_shared<State>(pool, limits, std::move(handler))) {}

HttpServer::~HttpServer() {
  // The acceptors belong to the first context, but connection coroutines on other contexts keep
  // the state alive until their own context is destroyed, possibly after the first context's
  // socket services are gone. So the acceptors die here, while every context still exists.
  boost::system::error_code ignored;
  for (auto& acceptor : state_->acceptors) acceptor->close(ignored);
  state_->acceptors.clear();
}

void HttpServer::listen(const std::string& host, std::uint16_t port) {
  auto& context = state_->pool.at(0);
  tcp::resolver resolver(context);
  auto results = resolver.resolve(host, std::to_string(port),
                                  tcp::resolver::numeric_service | tcp::resolver::passive);
  tcp::endpoint endpoint = results.begin()->endpoint();
  auto acceptor = std::make_unique<tcp::acceptor>(context);
  acceptor->open(endpoint.protocol());
  acceptor->set_option(asio::socket_base::reuse_address(true));
  acceptor->bind(endpoint);
  acceptor->listen(asio::socket_base::max_listen_connections);
  auto& ref = *acceptor;
  state_->acceptors.push_back(std::move(acceptor));
  asio::co_spawn(context, accept_loop(state_, ref), asio::detached);
}

std::uint16_t HttpServer::bound_port(std::size_t listener_index) const {
  return state_->acceptors.at(listener_index)->local_endpoint().port();
}

void HttpServer::stop_accepting() {
  state_->draining = true;
  for (auto& acceptor : state_->acceptors) {
    asio::post(acceptor->get_executor(), [&acceptor = *acceptor] {
      boost::system::error_code ignored;
      acceptor.close(ignored);
    });
  }
}

std::size_t HttpServer::open_connections() const { return state_->connections.load(); }
std::size_t HttpServer::requests_in_flight() const { return state_->in_flight.load(); }

}  // namespace redline::net
