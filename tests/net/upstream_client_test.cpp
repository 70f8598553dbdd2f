#include "net/upstream_client.h"

#include <gtest/gtest.h>
#include <poll.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "test_socket.h"

namespace redline::net {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

// A scripted upstream: each accepted connection runs `script(fd)` on its own thread. Counting
// accepts shows whether the client reused a connection.
class ScriptedUpstream {
 public:
  using Script = std::function<void(int fd)>;

  explicit ScriptedUpstream(Script script) : script_(std::move(script)) {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    EXPECT_EQ(::listen(listener_, 16), 0);
    socklen_t length = sizeof address;
    getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }

  ~ScriptedUpstream() {
    stopping_ = true;
    acceptor_.join();
    ::close(listener_);
    std::lock_guard lock(mutex_);
    for (auto& thread : connections_) thread.join();
  }

  std::uint16_t port() const { return port_; }
  int accepts() const { return accepts_.load(); }
  std::vector<std::string> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }

  // Reads one request (head and Content-Length body); nullopt when the client closed first.
  std::optional<std::string> read_request(int fd) {
    std::string data;
    char chunk[4096];
    for (;;) {
      auto head_end = data.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        auto length = testing::content_length_of(data.substr(0, head_end + 2)).value_or(0);
        if (data.size() >= head_end + 4 + length) break;
      }
      ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
      if (n <= 0) return std::nullopt;
      data.append(chunk, static_cast<std::size_t>(n));
    }
    std::lock_guard lock(mutex_);
    requests_.push_back(data);
    return data;
  }

  static void send_all(int fd, std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return;
      data.remove_prefix(static_cast<std::size_t>(n));
    }
  }

  // Blocks until the client closes its side (or the read timeout passes).
  static void wait_for_close(int fd) {
    char byte;
    while (::recv(fd, &byte, 1, 0) > 0) {
    }
  }

 private:
  void accept_loop() {
    while (!stopping_) {
      pollfd pfd{listener_, POLLIN, 0};
      if (::poll(&pfd, 1, 20) <= 0) continue;
      int fd = ::accept(listener_, nullptr, nullptr);
      if (fd < 0) continue;
      ++accepts_;
      testing::set_read_timeout(fd, 3s);
      std::lock_guard lock(mutex_);
      connections_.emplace_back([this, fd] {
        script_(fd);
        ::close(fd);
      });
    }
  }

  Script script_;
  int listener_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> accepts_{0};
  std::thread acceptor_;
  mutable std::mutex mutex_;
  std::vector<std::thread> connections_;
  std::vector<std::string> requests_;
};

UpstreamEndpoint endpoint_for(std::uint16_t port) {
  UpstreamEndpoint endpoint;
  endpoint.host = "127.0.0.1";
  endpoint.port = port;
  endpoint.connect_timeout = 500ms;
  endpoint.first_byte_timeout = 1s;
  endpoint.idle_timeout = 1s;
  return endpoint;
}

// Runs `body` as a coroutine on `context` until it finishes (or a 5 s guard expires).
void run(asio::io_context& context, std::function<asio::awaitable<void>()> body) {
  bool finished = false;
  asio::co_spawn(
      context,
      [&]() -> asio::awaitable<void> {
        co_await body();
        finished = true;
      },
      asio::detached);
  context.run_for(5s);
  context.restart();
  ASSERT_TRUE(finished) << "the exchange did not finish";
}

struct Outcome {
  UpstreamError start = UpstreamError::kNone;
  UpstreamError body_error = UpstreamError::kNone;
  int status = 0;
  std::string body;
};

asio::awaitable<Outcome> post(UpstreamPool& pool, std::string_view body) {
  Outcome outcome;
  Headers headers{{"Content-Type", "application/json"}};
  auto exchange = pool.exchange();
  outcome.start = co_await exchange->start({"POST", "/v1/chat/completions", &headers, body});
  if (outcome.start != UpstreamError::kNone) co_return outcome;
  outcome.status = exchange->status();
  outcome.body_error = co_await exchange->read_all(outcome.body, 1 << 20);
  co_return outcome;
}

void keep_alive_ok(ScriptedUpstream& upstream, int fd) {
  while (upstream.read_request(fd)) {
    ScriptedUpstream::send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  }
}

TEST(UpstreamPool, ReusesAKeepAliveConnection) {
  ScriptedUpstream* self = nullptr;
  ScriptedUpstream upstream([&](int fd) { keep_alive_ok(*self, fd); });
  self = &upstream;
  asio::io_context context;
  UpstreamPool pool(context, endpoint_for(upstream.port()));
  std::vector<Outcome> outcomes;
  run(context, [&]() -> asio::awaitable<void> {
    outcomes.push_back(co_await post(pool, "{\"a\":1}"));
    EXPECT_EQ(pool.idle_connections(), 1u);
    outcomes.push_back(co_await post(pool, "{\"b\":2}"));
  });
  ASSERT_EQ(outcomes.size(), 2u);
  for (const auto& outcome : outcomes) {
    EXPECT_EQ(outcome.start, UpstreamError::kNone);
    EXPECT_EQ(outcome.body_error, UpstreamError::kNone);
    EXPECT_EQ(outcome.status, 200);
    EXPECT_EQ(outcome.body, "ok");
  }
  EXPECT_EQ(upstream.accepts(), 1);
  EXPECT_EQ(pool.idle_connections(), 1u);

  auto requests = upstream.requests();
  ASSERT_EQ(requests.size(), 2u);
  const std::string host = "Host: 127.0.0.1:" + std::to_string(upstream.port()) + "\r\n";
  EXPECT_EQ(requests[0].rfind("POST /v1/chat/completions HTTP/1.1\r\n", 0), 0u);
  EXPECT_NE(requests[0].find(host), std::string::npos);
  EXPECT_NE(requests[0].find("Content-Type: application/json\r\n"), std::string::npos);
  EXPECT_NE(requests[0].find("Content-Length: 7\r\n"), std::string::npos);
  EXPECT_EQ(requests[1].substr(requests[1].size() - 7), "{\"b\":2}");
}

TEST(UpstreamPool, UnreadBodyIsNotPooled) {
  ScriptedUpstream* self = nullptr;
  ScriptedUpstream upstream([&](int fd) { keep_alive_ok(*self, fd); });
  self = &upstream;
  asio::io_context context;
  UpstreamPool pool(context, endpoint_for(upstream.port()));
  run(context, [&]() -> asio::awaitable<void> {
    {
      auto exchange = pool.exchange();
      EXPECT_EQ(co_await exchange->start({"GET", "/v1/models", nullptr, {}}), UpstreamError::kNone);
    }  // dropped before the body was read: the connection's state is unknown
    EXPECT_EQ(pool.idle_connections(), 0u);
    Outcome next = co_await post(pool, "{}");
    EXPECT_EQ(next.body, "ok");
  });
  EXPECT_EQ(upstream.accepts(), 2);
}

TEST(UpstreamPool, DecodesAChunkedBodyPieceByPiece) {
  ScriptedUpstream* self = nullptr;
  ScriptedUpstream upstream([&](int fd) {
    if (!self->read_request(fd)) return;
    ScriptedUpstream::send_all(fd,
                               "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n");
    ScriptedUpstream::send_all(fd, "6\r\ndata: \r\n");
    std::this_thread::sleep_for(20ms);
    ScriptedUpstream::send_all(fd, "5\r\nhello\r\n");
    std::this_thread::sleep_for(20ms);
    ScriptedUpstream::send_all(fd, "2\r\n\n\n\r\n0\r\n\r\n");
    ScriptedUpstream::wait_for_close(fd);
  });
  self = &upstream;
  asio::io_context context;
  UpstreamPool pool(context, endpoint_for(upstream.port()));
  std::string body;
  int reads = 0;
  run(context, [&]() -> asio::awaitable<void> {
    auto exchange = pool.exchange();
    EXPECT_EQ(co_await exchange->start({"GET", "/stream", nullptr, {}}), UpstreamError::kNone);
    EXPECT_EQ(exchange->status(), 200);
    EXPECT_EQ(find_header(exchange->headers(), "content-type"), "text/event-stream");
    while (!exchange->done() && reads < 100) {
      ++reads;
      UpstreamError error = co_await exchange->read_some(body);
      if (error != UpstreamError::kNone) {
        ADD_FAILURE() << "read_some failed: " << to_string(error);
        break;
      }
    }
  });
  EXPECT_EQ(body, "data: hello\n\n");
  EXPECT_GE(reads, 2);
  EXPECT_EQ(pool.idle_connections(), 1u);  // a fully read chunked body leaves it reusable
}

TEST(UpstreamPool, RefusedConnectionIsAConnectError) {
  std::uint16_t closed_port = 0;
  {
    // Bind without listening: the port is ours and nobody accepts on it.
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    socklen_t length = sizeof address;
    getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
    closed_port = ntohs(address.sin_port);
    asio::io_context context;
    UpstreamPool pool(context, endpoint_for(closed_port));
    Outcome outcome;
    run(context, [&]() -> asio::awaitable<void> { outcome = co_await post(pool, "{}"); });
    EXPECT_EQ(outcome.start, UpstreamError::kConnect);
    ::close(fd);
  }
}

TEST(UpstreamPool, SilentUpstreamIsAFirstByteTimeout) {
  ScriptedUpstream* self = nullptr;
  ScriptedUpstream upstream([&](int fd) {
    if (self->read_request(fd)) ScriptedUpstream::wait_for_close(fd);
  });
  self = &upstream;
  asio::io_context context;
  UpstreamEndpoint endpoint = endpoint_for(upstream.port());
  endpoint.first_byte_timeout = 100ms;
  UpstreamPool pool(context, endpoint);
  Outcome outcome;
  auto started = std::chrono::steady_clock::now();
  run(context, [&]() -> asio::awaitable<void> { outcome = co_await post(pool, "{}"); });
  auto waited = std::chrono::steady_clock::now() - started;
  EXPECT_EQ(outcome.start, UpstreamError::kTimeout);
  EXPECT_GE(waited, 90ms);
  EXPECT_LT(waited, 900ms);
  EXPECT_EQ(pool.idle_connections(), 0u);
}

TEST(UpstreamPool, StalledBodyIsAnIdleTimeout) {
  ScriptedUpstream* self = nullptr;
  ScriptedUpstream upstream([&](int fd) {
    if (!self->read_request(fd)) return;
    ScriptedUpstream::send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
    ScriptedUpstream::wait_for_close(fd);
  });
  self = &upstream;
  asio::io_context context;
  UpstreamEndpoint endpoint = endpoint_for(upstream.port());
  endpoint.idle_timeout = 100ms;
  UpstreamPool pool(context, endpoint);
  Outcome outcome;
  run(context, [&]() -> asio::awaitable<void> { outcome = co_await post(pool, "{}"); });
  EXPECT_EQ(outcome.start, UpstreamError::kNone);
  EXPECT_EQ(outcome.body_error, UpstreamError::kTimeout);
  EXPECT_EQ(outcome.body, "abc");
}

TEST(UpstreamPool, UpstreamClosingMidBodyIsClosed) {
  ScriptedUpstream* self = nullptr;
  ScriptedUpstream upstream([&](int fd) {
    if (!self->read_request(fd)) return;
    ScriptedUpstream::send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
  });  // the script returning closes the connection
  self = &upstream;
  asio::io_context context;
  UpstreamPool pool(context, endpoint_for(upstream.port()));
  Outcome outcome;
  run(context, [&]() -> asio::awaitable<void> { outcome = co_await post(pool, "{}"); });
  EXPECT_EQ(outcome.start, UpstreamError::kNone);
  EXPECT_EQ(outcome.body_error, UpstreamError::kClosed);
  EXPECT_EQ(outcome.body, "0123456789");
  EXPECT_EQ(pool.idle_connections(), 0u);
}

TEST(UpstreamPool, UpstreamClosingMidChunkedBodyIsClosed) {
  ScriptedUpstream* self = nullptr;
  ScriptedUpstream upstream([&](int fd) {
    if (!self->read_request(fd)) return;
    ScriptedUpstream::send_all(
        fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
  });
  self = &upstream;
  asio::io_context context;
  UpstreamPool pool(context, endpoint_for(upstream.port()));
  Outcome outcome;
  run(context, [&]() -> asio::awaitable<void> { outcome = co_await post(pool, "{}"); });
  EXPECT_EQ(outcome.body_error, UpstreamError::kClosed);
  EXPECT_EQ(outcome.body, "hello");
}

TEST(UpstreamPool, GarbageResponseIsAProtocolError) {
  ScriptedUpstream* self = nullptr;
  ScriptedUpstream upstream([&](int fd) {
    if (!self->read_request(fd)) return;
    ScriptedUpstream::send_all(fd, "SMTP ready\r\n\r\n");
    ScriptedUpstream::wait_for_close(fd);
  });
  self = &upstream;
  asio::io_context context;
  UpstreamPool pool(context, endpoint_for(upstream.port()));
  Outcome outcome;
  run(context, [&]() -> asio::awaitable<void> { outcome = co_await post(pool, "{}"); });
  EXPECT_EQ(outcome.start, UpstreamError::kProtocol);
}

TEST(UpstreamPool, BodyOverReadAllLimitIsAProtocolError) {
  ScriptedUpstream* self = nullptr;
  ScriptedUpstream upstream([&](int fd) {
    if (!self->read_request(fd)) return;
    ScriptedUpstream::send_all(
        fd, "HTTP/1.1 200 OK\r\nContent-Length: 64\r\n\r\n" + std::string(64, 'x'));
    ScriptedUpstream::wait_for_close(fd);
  });
  self = &upstream;
  asio::io_context context;
  UpstreamPool pool(context, endpoint_for(upstream.port()));
  UpstreamError error = UpstreamError::kNone;
  run(context, [&]() -> asio::awaitable<void> {
    auto exchange = pool.exchange();
    EXPECT_EQ(co_await exchange->start({"GET", "/", nullptr, {}}), UpstreamError::kNone);
    std::string body;
    error = co_await exchange->read_all(body, 16);
  });
  EXPECT_EQ(error, UpstreamError::kProtocol);
}

TEST(UpstreamPool, CancelDuringAPendingReadIsCancelled) {
  ScriptedUpstream* self = nullptr;
  ScriptedUpstream upstream([&](int fd) {
    if (!self->read_request(fd)) return;
    ScriptedUpstream::send_all(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    ScriptedUpstream::wait_for_close(fd);
  });
  self = &upstream;
  asio::io_context context;
  UpstreamPool pool(context, endpoint_for(upstream.port()));
  UpstreamError read_error = UpstreamError::kNone;
  UpstreamError after_cancel = UpstreamError::kNone;
  auto started = std::chrono::steady_clock::now();
  run(context, [&]() -> asio::awaitable<void> {
    auto exchange = pool.exchange();
    EXPECT_EQ(co_await exchange->start({"GET", "/", nullptr, {}}), UpstreamError::kNone);
    // Cancel from another coroutine on the same thread while read_some waits for bytes.
    asio::co_spawn(
        context,
        [&]() -> asio::awaitable<void> {
          asio::steady_timer timer(context, 50ms);
          co_await timer.async_wait(asio::use_awaitable);
          exchange->cancel();
        },
        asio::detached);
    std::string body;
    read_error = co_await exchange->read_some(body);
    after_cancel = co_await exchange->read_some(body);
  });
  EXPECT_EQ(read_error, UpstreamError::kCancelled);
  EXPECT_EQ(after_cancel, UpstreamError::kCancelled);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 900ms);  // not the idle timeout
  EXPECT_EQ(pool.idle_connections(), 0u);
}

TEST(UpstreamPool, StalePooledConnectionIsRetriedOnce) {
  ScriptedUpstream* self = nullptr;
  std::atomic<int> closed_after_answer{0};
  ScriptedUpstream upstream([&](int fd) {
    // Answer one request as keep-alive, then hang up while the client holds it idle.
    if (!self->read_request(fd)) return;
    ScriptedUpstream::send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    ++closed_after_answer;
  });
  self = &upstream;
  asio::io_context context;
  UpstreamPool pool(context, endpoint_for(upstream.port()));
  std::vector<Outcome> outcomes;
  run(context, [&]() -> asio::awaitable<void> {
    outcomes.push_back(co_await post(pool, "{\"n\":1}"));
    EXPECT_EQ(pool.idle_connections(), 1u);
    // Let the upstream's close reach the pooled socket.
    while (closed_after_answer.load() < 1) {
      asio::steady_timer timer(context, 5ms);
      co_await timer.async_wait(asio::use_awaitable);
    }
    asio::steady_timer settle(context, 20ms);
    co_await settle.async_wait(asio::use_awaitable);
    outcomes.push_back(co_await post(pool, "{\"n\":2}"));
  });
  ASSERT_EQ(outcomes.size(), 2u);
  EXPECT_EQ(outcomes[0].body, "ok");
  EXPECT_EQ(outcomes[1].start, UpstreamError::kNone);
  EXPECT_EQ(outcomes[1].body, "ok");
  EXPECT_EQ(upstream.accepts(), 2);
  auto requests = upstream.requests();
  ASSERT_EQ(requests.size(), 2u);  // the retried request reached the upstream exactly once
  EXPECT_NE(requests[1].find("{\"n\":2}"), std::string::npos);
}

TEST(UpstreamPool, ExpiredIdleConnectionIsNotReused) {
  ScriptedUpstream* self = nullptr;
  ScriptedUpstream upstream([&](int fd) { keep_alive_ok(*self, fd); });
  self = &upstream;
  asio::io_context context;
  UpstreamEndpoint endpoint = endpoint_for(upstream.port());
  endpoint.idle_timeout = 50ms;
  UpstreamPool pool(context, endpoint);
  std::vector<Outcome> outcomes;
  run(context, [&]() -> asio::awaitable<void> {
    outcomes.push_back(co_await post(pool, "{}"));
    asio::steady_timer timer(context, 80ms);
    co_await timer.async_wait(asio::use_awaitable);
    outcomes.push_back(co_await post(pool, "{}"));
  });
  ASSERT_EQ(outcomes.size(), 2u);
  EXPECT_EQ(outcomes[1].body, "ok");
  EXPECT_EQ(upstream.accepts(), 2);
}

TEST(UpstreamError, HasNames) {
  EXPECT_EQ(to_string(UpstreamError::kNone), "none");
  EXPECT_EQ(to_string(UpstreamError::kConnect), "connect");
  EXPECT_EQ(to_string(UpstreamError::kTimeout), "timeout");
  EXPECT_EQ(to_string(UpstreamError::kProtocol), "protocol");
  EXPECT_EQ(to_string(UpstreamError::kClosed), "closed");
  EXPECT_EQ(to_string(UpstreamError::kCancelled), "cancelled");
}

}  // namespace
}  // namespace redline::net
