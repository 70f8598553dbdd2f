// The Streamable HTTP transport against a scripted server (the gateway's own HTTP server).
#include "mcp/http_transport.h"

#include <gtest/gtest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <mutex>
#include <thread>

#include "net/http_server.h"
#include "net/io_pool.h"
#include "test_support.h"

namespace redline::mcp {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace std::chrono_literals;
using testing::run_task;

struct Seen {
  std::string method;
  std::string target;
  net::Headers headers;
  std::string body;
  std::string header(std::string_view name) const {
    return std::string(net::find_header(headers, name));
  }
};

// What a server may send before the answer: a comment, an event of another type, a
// notification and a ping.
constexpr std::string_view kNoise = ": keep-alive\n\nevent: endpoint\ndata: not json-rpc\n\n";
constexpr std::string_view kNotificationAndPing =
    "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n"
    "data: {\"jsonrpc\":\"2.0\",\"id\":\"srv-1\",\"method\":\"ping\"}\n\n";

using Script = std::function<asio::awaitable<void>(net::HttpRequest&, net::ResponseWriter&)>;

// An HTTP server on a free loopback port that records every request and answers by `script`.
class ScriptedServer {
 public:
  explicit ScriptedServer(Script script)
      : script_(std::move(script)),
        server_(pool_, {}, [this](net::HttpRequest& request, net::ResponseWriter& writer) {
          {
            std::lock_guard lock(mutex_);
            seen_.push_back({request.method, request.target, request.headers, request.body});
          }
          return script_(request, writer);
        }) {
    server_.listen("127.0.0.1", 0);
    thread_ = std::thread([this] { pool_.run(); });
  }
  ~ScriptedServer() {
    pool_.stop();
    thread_.join();
  }

  std::string url() const {
    return "http://127.0.0.1:" + std::to_string(server_.bound_port()) + "/mcp?x=1";
  }
  std::vector<Seen> seen() const {
    std::lock_guard lock(mutex_);
    return seen_;
  }

 private:
  Script script_;
  mutable std::mutex mutex_;
  std::vector<Seen> seen_;
  net::IoPool pool_{1};
  net::HttpServer server_;
  std::thread thread_;
};

std::string answer(const json::value& id, const char* result = R"({"ok":true})") {
  return R"({"jsonrpc":"2.0","id":)" + json::serialize(id) + R"(,"result":)" + result + "}";
}

asio::awaitable<void> send(net::ResponseWriter& writer, int status, std::string content_type,
                           std::string body, net::Headers extra = {}) {
  net::HttpResponse response;
  response.status = status;
  if (!content_type.empty()) response.headers.push_back({"Content-Type", content_type});
  response.headers.insert(response.headers.end(), extra.begin(), extra.end());
  response.body = std::move(body);
  co_await writer.send(std::move(response));
}

// Answers every request with JSON, and notifications with 202.
asio::awaitable<void> json_server(net::HttpRequest& request, net::ResponseWriter& writer) {
  json::object body = json::parse(request.body).as_object();
  if (!body.contains("id") || !body.contains("method")) {
    co_await send(writer, 202, "", "");
    co_return;
  }
  net::Headers extra;
  if (body.at("method") == "initialize") extra.push_back({"Mcp-Session-Id", "session-1"});
  co_await send(writer, 200, "application/json", answer(body.at("id")), extra);
}

class HttpTransportTest : public ::testing::Test {
 protected:
  std::unique_ptr<Transport> transport(const std::string& url,
                                       std::chrono::milliseconds timeout = 5s) {
    return make_http_transport(context_, {url, timeout, 1 << 20});
  }

  Result<JsonRpcMessage> call(Transport& transport, RequestId id, std::string_view method,
                              net::Headers headers = {}) {
    OutgoingMessage message{method, json_rpc_request(id, method, {}), std::move(headers)};
    return run_task(
        context_, transport.request(id, std::move(message), std::chrono::steady_clock::now() + 5s));
  }

  asio::io_context context_;
};

TEST_F(HttpTransportTest, PostsJsonAndReadsAJsonAnswer) {
  ScriptedServer server(json_server);
  auto t = transport(server.url());
  ASSERT_TRUE(t->open());
  EXPECT_TRUE(t->per_request_stream());
  auto answered = call(*t, 7, "tools/list", {{"MCP-Protocol-Version", "2026-07-28"}});
  ASSERT_TRUE(answered) << answered.error().message;
  EXPECT_EQ(answered->request_id(), 7);
  EXPECT_EQ(answered->result, json::parse(R"({"ok":true})"));

  auto seen = server.seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method, "POST");
  EXPECT_EQ(seen[0].target, "/mcp?x=1");
  EXPECT_EQ(seen[0].header("Content-Type"), "application/json");
  EXPECT_EQ(seen[0].header("Accept"), "application/json, text/event-stream");
  EXPECT_EQ(seen[0].header("MCP-Protocol-Version"), "2026-07-28");
}

TEST_F(HttpTransportTest, ReadsTheAnswerFromAnEventStreamAndAnswersPings) {
  ScriptedServer server(
      [](net::HttpRequest& request, net::ResponseWriter& writer) -> asio::awaitable<void> {
        json::object body = json::parse(request.body).as_object();
        if (!body.contains("method")) {  // our answer to the ping
          co_await send(writer, 202, "", "");
          co_return;
        }
        std::string response = answer(body.at("id"), R"({"streamed":true})");
        // (A braced list inside co_await trips g++ 12: build the headers first.)
        net::Headers headers{{"Content-Type", "text/event-stream; charset=utf-8"}};
        co_await writer.begin_stream(200, std::move(headers));
        co_await writer.write_chunk(kNoise);
        co_await writer.write_chunk(kNotificationAndPing);
        co_await writer.write_chunk("event: message\ndata: " + response.substr(0, 10));
        co_await writer.write_chunk(response.substr(10) + "\n\n");
        co_await writer.end_stream();
      });
  auto t = transport(server.url());
  ASSERT_TRUE(t->open());
  auto answered = call(*t, 3, "tools/call", {{"MCP-Protocol-Version", "2025-11-25"}});
  ASSERT_TRUE(answered) << answered.error().message;
  EXPECT_EQ(answered->result, json::parse(R"({"streamed":true})"));

  auto seen = server.seen();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(json::parse(seen[1].body),
            json::parse(R"({"jsonrpc":"2.0","id":"srv-1","result":{}})"));
  EXPECT_EQ(seen[1].header("MCP-Protocol-Version"), "2025-11-25");
}

TEST_F(HttpTransportTest, KeepsTheSessionTheHandshakeGave) {
  ScriptedServer server(json_server);
  auto t = transport(server.url());
  ASSERT_TRUE(t->open());
  ASSERT_TRUE(call(*t, 1, "initialize"));
  ASSERT_TRUE(run_task(context_, t->notify({"notifications/initialized",
                                            json_rpc_notification("notifications/initialized", {}),
                                            {}})));
  ASSERT_TRUE(call(*t, 2, "tools/list"));
  ASSERT_TRUE(call(*t, 3, "initialize"));  // a new handshake starts without the old session

  auto seen = server.seen();
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(seen[0].header("Mcp-Session-Id"), "");
  EXPECT_EQ(seen[1].header("Mcp-Session-Id"), "session-1");
  EXPECT_EQ(seen[2].header("Mcp-Session-Id"), "session-1");
  EXPECT_EQ(seen[3].header("Mcp-Session-Id"), "");
}

TEST_F(HttpTransportTest, ANotFoundSessionStartsANewEpoch) {
  ScriptedServer server([](net::HttpRequest& request,
                           net::ResponseWriter& writer) -> asio::awaitable<void> {
    if (!request.header("Mcp-Session-Id").empty()) {
      co_await send(
          writer, 404, "application/json",
          R"({"jsonrpc":"2.0","error":{"code":-32000,"message":"Session not found"},"id":null})");
      co_return;
    }
    co_await json_server(request, writer);
  });
  auto t = transport(server.url());
  ASSERT_TRUE(t->open());
  ASSERT_TRUE(call(*t, 1, "initialize"));
  const std::uint64_t epoch = t->epoch();
  auto forgotten = call(*t, 2, "tools/list");
  ASSERT_FALSE(forgotten);
  EXPECT_EQ(forgotten.error().kind, McpErrorKind::kTransport);
  EXPECT_EQ(forgotten.error().http_status, 404);
  EXPECT_EQ(t->epoch(), epoch + 1);
  EXPECT_TRUE(call(*t, 3, "tools/list"));  // no session any more: sent without one
  EXPECT_EQ(t->epoch(), epoch + 1);
}

TEST_F(HttpTransportTest, AnErrorStatusCarryingAJsonRpcErrorIsAServerError) {
  ScriptedServer server([](net::HttpRequest& request,
                           net::ResponseWriter& writer) -> asio::awaitable<void> {
    if (request.body.find("server/discover") != std::string::npos) {
      co_await send(
          writer, 400, "application/json",
          R"({"jsonrpc":"2.0","error":{"code":-32022,"message":"Unsupported protocol version"},"id":1})");
    } else {
      co_await send(writer, 503, "text/plain", "overloaded");
    }
  });
  auto t = transport(server.url());
  auto refused = call(*t, 1, "server/discover");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().kind, McpErrorKind::kServer);
  EXPECT_EQ(refused.error().code, -32022);
  EXPECT_EQ(refused.error().http_status, 400);

  auto overloaded = call(*t, 2, "tools/list");
  ASSERT_FALSE(overloaded);
  EXPECT_EQ(overloaded.error().kind, McpErrorKind::kTransport);
  EXPECT_EQ(overloaded.error().http_status, 503);
  EXPECT_NE(overloaded.error().message.find("overloaded"), std::string::npos);
}

TEST_F(HttpTransportTest, AnswersThatAreNotTheResponseAreProtocolErrors) {
  ScriptedServer server(
      [](net::HttpRequest& request, net::ResponseWriter& writer) -> asio::awaitable<void> {
        if (request.body.find("accepted") != std::string::npos) {
          co_await send(writer, 202, "", "");
        } else if (request.body.find("other") != std::string::npos) {
          co_await send(writer, 200, "application/json", answer(12345));
        } else {
          co_await send(writer, 200, "text/html", "<html>");
        }
      });
  auto t = transport(server.url());
  for (const char* method : {"accepted", "other", "html"}) {
    auto answered = call(*t, 1, method);
    ASSERT_FALSE(answered) << method;
    EXPECT_EQ(answered.error().kind, McpErrorKind::kProtocol) << method;
  }
}

TEST_F(HttpTransportTest, AStreamThatEndsWithoutTheAnswerIsATransportError) {
  ScriptedServer server([](net::HttpRequest&,
                           net::ResponseWriter& writer) -> asio::awaitable<void> {
    net::Headers headers{{"Content-Type", "text/event-stream"}};
    co_await writer.begin_stream(200, std::move(headers));
    co_await writer.write_chunk("data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/x\"}\n\n");
    co_await writer.end_stream();
  });
  auto t = transport(server.url());
  auto answered = call(*t, 1, "tools/call");
  ASSERT_FALSE(answered);
  EXPECT_EQ(answered.error().kind, McpErrorKind::kTransport);
}

TEST_F(HttpTransportTest, ASlowServerTimesOut) {
  ScriptedServer server(
      [](net::HttpRequest& request, net::ResponseWriter& writer) -> asio::awaitable<void> {
        asio::steady_timer timer(co_await asio::this_coro::executor, 2s);
        co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
        co_await json_server(request, writer);
      });
  auto t = transport(server.url());
  OutgoingMessage message{"tools/call", json_rpc_request(1, "tools/call", {}), {}};
  auto begin = std::chrono::steady_clock::now();
  auto answered = run_task(
      context_, t->request(1, std::move(message), std::chrono::steady_clock::now() + 200ms));
  ASSERT_FALSE(answered);
  EXPECT_EQ(answered.error().kind, McpErrorKind::kTimeout);
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 1500ms);
}

TEST_F(HttpTransportTest, AnUnreachableServerIsATransportError) {
  std::string url;
  {
    ScriptedServer gone(json_server);
    url = gone.url();
  }
  auto t = transport(url);
  auto answered = call(*t, 1, "server/discover");
  ASSERT_FALSE(answered);
  EXPECT_EQ(answered.error().kind, McpErrorKind::kTransport);
  EXPECT_EQ(answered.error().http_status, 0);
}

TEST_F(HttpTransportTest, CloseEndsTheSession) {
  ScriptedServer server(
      [](net::HttpRequest& request, net::ResponseWriter& writer) -> asio::awaitable<void> {
        if (request.method == "DELETE") {
          co_await send(writer, 200, "", "");
        } else {
          co_await json_server(request, writer);
        }
      });
  auto t = transport(server.url());
  ASSERT_TRUE(call(*t, 1, "initialize"));
  run_task(context_, [&]() -> asio::awaitable<bool> {
    co_await t->close();
    co_return true;
  }());
  auto seen = server.seen();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[1].method, "DELETE");
  EXPECT_EQ(seen[1].header("Mcp-Session-Id"), "session-1");
}

TEST_F(HttpTransportTest, AnInvalidUrlCannotBeOpened) {
  auto t = transport("ftp://example.test/mcp");
  auto opened = t->open();
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().kind, McpErrorKind::kTransport);
  EXPECT_FALSE(t->is_open());
}

}  // namespace
}  // namespace redline::mcp
