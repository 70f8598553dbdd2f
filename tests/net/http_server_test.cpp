#include "net/http_server.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "net/io_pool.h"
#include "test_socket.h"

namespace redline::net {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using testing::ClientSocket;
using testing::read_response;

// An HttpServer on 127.0.0.1 with a free port, run by a one-thread IoPool.
class TestServer {
 public:
  TestServer(Handler handler, ServerLimits limits = {})
      : server_(pool_, limits, std::move(handler)) {
    server_.listen("127.0.0.1", 0);
    thread_ = std::thread([this] { pool_.run(); });
  }
  ~TestServer() {
    pool_.stop();
    thread_.join();
  }
  std::uint16_t port() const { return server_.bound_port(); }
  HttpServer& server() { return server_; }

 private:
  IoPool pool_{1};
  HttpServer server_;
  std::thread thread_;
};

// Answers 200 with "<method> <target> <body>" so tests can see what the handler got.
asio::awaitable<void> echo(HttpRequest& request, ResponseWriter& writer) {
  HttpResponse response;
  response.headers.push_back({"Content-Type", "text/plain"});
  response.body = request.method + " " + request.target + " " + request.body;
  co_await writer.send(std::move(response));
}

ServerLimits fast_limits() {
  ServerLimits limits;
  limits.header_timeout = 200ms;
  limits.body_timeout = 200ms;
  limits.idle_timeout = 500ms;
  limits.write_timeout = 500ms;
  return limits;
}

template <class Predicate>
bool eventually(Predicate predicate, std::chrono::milliseconds within = 1000ms) {
  auto deadline = std::chrono::steady_clock::now() + within;
  while (std::chrono::steady_clock::now() < deadline) {
    if (predicate()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return predicate();
}

TEST(HttpServer, KeepAliveServesTwoRequestsOnOneConnection) {
  TestServer server(echo, fast_limits());
  ClientSocket client(server.port());
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.send("GET /first HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto first = read_response(client);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->status, 200);
  EXPECT_EQ(first->body, "GET /first ");
  EXPECT_EQ(first->head.find("Connection: close"), std::string::npos);

  ASSERT_TRUE(client.send("POST /second HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"));
  auto second = read_response(client);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->status, 200);
  EXPECT_EQ(second->body, "POST /second abc");
  EXPECT_EQ(server.server().open_connections(), 1u);
}

TEST(HttpServer, PipelinedRequestsAreAnsweredInOrder) {
  TestServer server(echo, fast_limits());
  ClientSocket client(server.port());
  ASSERT_TRUE(client.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto a = read_response(client);
  auto b = read_response(client);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->body, "GET /a ");
  EXPECT_EQ(b->body, "GET /b ");
}

TEST(HttpServer, ContentLengthResponseAndConnectionClose) {
  TestServer server(echo, fast_limits());
  ClientSocket client(server.port());
  ASSERT_TRUE(client.send(
      "POST /v1/x?q=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello"));
  auto response = read_response(client);
  ASSERT_TRUE(response);
  EXPECT_FALSE(response->chunked);
  EXPECT_TRUE(response->has_header_line("Content-Length: 20"));
  EXPECT_TRUE(response->has_header_line("Content-Type: text/plain"));
  EXPECT_TRUE(response->has_header_line("Connection: close"));
  EXPECT_EQ(response->body, "POST /v1/x?q=1 hello");
  EXPECT_EQ(client.read_to_end(), "");
  EXPECT_TRUE(client.saw_eof());
}

TEST(HttpServer, ChunkedRequestBodyIsDecoded) {
  TestServer server(echo, fast_limits());
  ClientSocket client(server.port());
  ASSERT_TRUE(
      client.send("POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"));
  auto response = read_response(client);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, "POST /c abcde");
}

TEST(HttpServer, StreamedResponseIsChunkedAndConnectionStaysUsable) {
  TestServer server(
      [](HttpRequest& request, ResponseWriter& writer) -> asio::awaitable<void> {
        if (request.target == "/plain") {
          HttpResponse plain{200, {}, "plain"};
          co_await writer.send(std::move(plain));
          co_return;
        }
        // Built outside co_await: g++ 12 cannot keep initializer-list arrays in a coroutine frame.
        Headers headers{{"Content-Type", "text/event-stream"}};
        EXPECT_TRUE(co_await writer.begin_stream(200, std::move(headers)));
        EXPECT_TRUE(writer.started());
        EXPECT_TRUE(co_await writer.write_chunk("data: one\n\n"));
        EXPECT_TRUE(co_await writer.write_chunk(""));  // must not end the body
        EXPECT_TRUE(co_await writer.write_chunk(std::string(5000, 'z')));
        EXPECT_TRUE(co_await writer.end_stream());
        EXPECT_FALSE(co_await writer.write_chunk("late"));
      },
      fast_limits());
  ClientSocket client(server.port());
  ASSERT_TRUE(client.send("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto response = read_response(client);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_TRUE(response->chunked);
  EXPECT_TRUE(response->complete);
  EXPECT_TRUE(response->has_header_line("Content-Type: text/event-stream"));
  EXPECT_EQ(response->head.find("Content-Length"), std::string::npos);
  EXPECT_EQ(response->body, "data: one\n\n" + std::string(5000, 'z'));

  ASSERT_TRUE(client.send("GET /plain HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto next = read_response(client);
  ASSERT_TRUE(next);
  EXPECT_EQ(next->body, "plain");
}

TEST(HttpServer, UnfinishedStreamClosesTheConnection) {
  TestServer server(
      [](HttpRequest&, ResponseWriter& writer) -> asio::awaitable<void> {
        co_await writer.begin_stream(200, Headers());
        co_await writer.write_chunk("partial");
      },
      fast_limits());
  ClientSocket client(server.port());
  ASSERT_TRUE(client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto response = read_response(client);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, "partial");
  EXPECT_FALSE(response->complete);  // EOF came before the terminating 0-chunk
  EXPECT_TRUE(client.saw_eof());
}

TEST(HttpServer, HandlerThatDoesNotAnswerGets500) {
  TestServer server([](HttpRequest&, ResponseWriter&) -> asio::awaitable<void> { co_return; },
                    fast_limits());
  ClientSocket client(server.port());
  ASSERT_TRUE(client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto response = read_response(client);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 500);
  EXPECT_NE(response->body.find("\"error\""), std::string::npos);
}

TEST(HttpServer, HandlerThatThrowsGets500) {
  TestServer server(
      [](HttpRequest&, ResponseWriter&) -> asio::awaitable<void> {
        throw std::runtime_error("handler bug");
        co_return;
      },
      fast_limits());
  ClientSocket client(server.port());
  ASSERT_TRUE(client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto response = read_response(client);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 500);
}

TEST(HttpServer, BodyOverLimitIs413AndNeverReachesTheHandler) {
  std::atomic<int> calls{0};
  ServerLimits limits = fast_limits();
  limits.max_body_bytes = 16;
  TestServer server(
      [&](HttpRequest& request, ResponseWriter& writer) -> asio::awaitable<void> {
        ++calls;
        co_await echo(request, writer);
      },
      limits);
  ClientSocket client(server.port());
  ASSERT_TRUE(client.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 17\r\n\r\n" +
                          std::string(17, 'b')));
  auto response = read_response(client);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 413);
  EXPECT_TRUE(response->has_header_line("Connection: close"));
  EXPECT_NE(response->body.find("\"invalid_request_error\""), std::string::npos);
  EXPECT_EQ(calls.load(), 0);

  ClientSocket exact(server.port());
  ASSERT_TRUE(exact.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 16\r\n\r\n" +
                         std::string(16, 'b')));
  auto accepted = read_response(exact);
  ASSERT_TRUE(accepted);
  EXPECT_EQ(accepted->status, 200);
  EXPECT_EQ(calls.load(), 1);
}

TEST(HttpServer, ChunkedBodyOverLimitIs413) {
  ServerLimits limits = fast_limits();
  limits.max_body_bytes = 16;
  TestServer server(echo, limits);
  ClientSocket client(server.port());
  ASSERT_TRUE(
      client.send("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "10\r\n0123456789abcdef\r\n1\r\nX\r\n0\r\n\r\n"));
  auto response = read_response(client);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 413);
}

TEST(HttpServer, HeadOverLimitIs431) {
  ServerLimits limits = fast_limits();
  limits.max_header_bytes = 1024;
  TestServer server(echo, limits);
  ClientSocket client(server.port());
  ASSERT_TRUE(
      client.send("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(2000, 'h') + "\r\n\r\n"));
  auto response = read_response(client);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 431);
}

TEST(HttpServer, GarbageIs400) {
  TestServer server(echo, fast_limits());
  ClientSocket client(server.port());
  ASSERT_TRUE(client.send("THIS IS NOT HTTP\r\n\r\n"));
  auto response = read_response(client);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 400);
  EXPECT_TRUE(response->has_header_line("Content-Type: application/json"));
  EXPECT_EQ(client.read_to_end(), "");
  EXPECT_TRUE(client.saw_eof());
}

TEST(HttpServer, BadContentLengthIs400) {
  TestServer server(echo, fast_limits());
  ClientSocket client(server.port());
  ASSERT_TRUE(client.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"));
  auto response = read_response(client);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 400);
}

TEST(HttpServer, StalledHeadTimesOut) {
  TestServer server(echo, fast_limits());  // header_timeout 200 ms
  ClientSocket client(server.port());
  ASSERT_TRUE(client.send("GET / HTTP/1.1\r\nHost: x\r\n"));
  auto started = std::chrono::steady_clock::now();
  std::string rest = client.read_to_end();
  auto waited = std::chrono::steady_clock::now() - started;
  EXPECT_TRUE(client.saw_eof());
  EXPECT_GE(waited, 150ms);
  EXPECT_LT(waited, 1500ms);
  if (!rest.empty()) {
    EXPECT_EQ(rest.rfind("HTTP/1.1 408 ", 0), 0u) << rest;
  }
}

TEST(HttpServer, StalledBodyTimesOut) {
  TestServer server(echo, fast_limits());  // body_timeout 200 ms
  ClientSocket client(server.port());
  ASSERT_TRUE(client.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"));
  std::string rest = client.read_to_end();
  EXPECT_TRUE(client.saw_eof());
  if (!rest.empty()) {
    EXPECT_EQ(rest.rfind("HTTP/1.1 408 ", 0), 0u) << rest;
  }
}

TEST(HttpServer, IdleKeepAliveConnectionIsClosed) {
  TestServer server(echo, fast_limits());  // idle_timeout 500 ms
  ClientSocket client(server.port());
  ASSERT_TRUE(client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(read_response(client));
  EXPECT_EQ(client.read_to_end(), "");
  EXPECT_TRUE(client.saw_eof());
  EXPECT_TRUE(eventually([&] { return server.server().open_connections() == 0; }));
}

TEST(HttpServer, ExpectContinueGets100BeforeTheBody) {
  TestServer server(echo, fast_limits());
  ClientSocket client(server.port());
  ASSERT_TRUE(client.send(
      "POST /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"));
  auto interim = client.read_until("\r\n\r\n");
  ASSERT_TRUE(interim);
  EXPECT_EQ(*interim, "HTTP/1.1 100 Continue\r\n\r\n");
  ASSERT_TRUE(client.send("data"));
  auto response = read_response(client);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "POST /up data");
}

TEST(HttpServer, WatchDisconnectFiresWhenTheClientCloses) {
  std::atomic<bool> disconnected{false};
  std::atomic<bool> handler_done{false};
  std::atomic<bool> handler_waiting{false};
  std::atomic<bool> client_gone_seen{false};
  TestServer server(
      [&](HttpRequest&, ResponseWriter& writer) -> asio::awaitable<void> {
        asio::steady_timer timer(co_await asio::this_coro::executor, std::chrono::seconds(5));
        writer.watch_disconnect([&] {
          disconnected = true;
          timer.cancel();
        });
        handler_waiting = true;
        boost::system::error_code ec;
        co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        writer.watch_disconnect({});
        client_gone_seen = writer.client_gone();
        HttpResponse late{200, {}, "too late"};
        EXPECT_FALSE(co_await writer.send(std::move(late)));
        handler_done = true;
      },
      fast_limits());
  {
    ClientSocket client(server.port());
    ASSERT_TRUE(client.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"));
    ASSERT_TRUE(eventually([&] { return handler_waiting.load(); }));
  }
  EXPECT_TRUE(eventually([&] { return handler_done.load(); }));
  EXPECT_TRUE(disconnected.load());
  EXPECT_TRUE(client_gone_seen.load());
  EXPECT_TRUE(eventually([&] { return server.server().requests_in_flight() == 0; }));
}

TEST(HttpServer, WatchDisconnectDoesNotFireForAClientThatStays) {
  std::atomic<bool> disconnected{false};
  TestServer server(
      [&](HttpRequest&, ResponseWriter& writer) -> asio::awaitable<void> {
        writer.watch_disconnect([&] { disconnected = true; });
        asio::steady_timer timer(co_await asio::this_coro::executor, 100ms);
        co_await timer.async_wait(asio::use_awaitable);
        writer.watch_disconnect({});
        HttpResponse done{200, {}, "done"};
        co_await writer.send(std::move(done));
      },
      fast_limits());
  ClientSocket client(server.port());
  ASSERT_TRUE(client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto response = read_response(client);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, "done");
  EXPECT_FALSE(disconnected.load());
}

TEST(HttpServer, MaxConnectionsIsEnforced) {
  ServerLimits limits = fast_limits();
  limits.max_connections = 1;
  limits.idle_timeout = 5s;
  TestServer server(echo, limits);
  auto first = std::make_unique<ClientSocket>(server.port());
  ASSERT_TRUE(first->send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(read_response(*first));  // accepted and counted

  ClientSocket second(server.port());
  auto refused = read_response(second);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 503);
  EXPECT_EQ(second.read_to_end(), "");
  EXPECT_TRUE(second.saw_eof());

  first.reset();
  ASSERT_TRUE(eventually([&] { return server.server().open_connections() == 0; }));
  ClientSocket third(server.port());
  ASSERT_TRUE(third.send("GET /again HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto accepted = read_response(third);
  ASSERT_TRUE(accepted);
  EXPECT_EQ(accepted->status, 200);
}

TEST(HttpServer, StopAcceptingRefusesNewConnections) {
  TestServer server(echo, fast_limits());
  std::uint16_t port = server.port();
  server.server().stop_accepting();
  std::this_thread::sleep_for(50ms);
  ClientSocket client(port, 300ms);
  if (client.connected()) {
    client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_FALSE(read_response(client));
  }
}

}  // namespace
}  // namespace redline::net
