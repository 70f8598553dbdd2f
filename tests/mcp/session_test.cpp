// The protocol engine against a scripted transport: negotiation in both revisions and the
// fallback between them, remembering the outcome across restarts, pagination, timeouts and
// their cancellation, error mapping, and expired sessions.
#include <gtest/gtest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>
#include <functional>
#include <string>
#include <vector>

#include "mcp/mcp_session.h"
#include "test_support.h"

namespace redline::mcp {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace std::chrono_literals;
using testing::run_task;

// What the scripted server does with one message.
struct Sent {
  std::string method;
  json::object params;
  net::Headers headers;
  bool is_request = false;
  RequestId id = 0;
  std::uint64_t epoch = 0;
  std::chrono::milliseconds budget{0};  // a request's time until its deadline

  std::string header(std::string_view name) const {
    return std::string(net::find_header(headers, name));
  }
};

// A reply: a result, a JSON-RPC error, a transport failure, or none (the request times out).
struct Reply {
  enum class Kind { kResult, kRpcError, kFailure, kSilence } kind = Kind::kSilence;
  json::value result;
  JsonRpcError rpc_error;
  McpError failure;
};
Reply result(const char* json_text) {
  return {Reply::Kind::kResult, json::parse(json_text), {}, {}};
}
Reply rpc_error(std::int64_t code, std::string message) {
  return {Reply::Kind::kRpcError, nullptr, {code, std::move(message), nullptr}, {}};
}
Reply failure(McpErrorKind kind, int http_status = 0) {
  return {Reply::Kind::kFailure, nullptr, {}, {kind, "scripted failure", 0, http_status}};
}
Reply silence() { return {}; }

class ScriptedTransport final : public Transport {
 public:
  using Script = std::function<Reply(const Sent&)>;

  ScriptedTransport(std::vector<Sent>& sent, Script script, bool per_request_stream)
      : sent_(sent), script_(std::move(script)), per_request_stream_(per_request_stream) {}

  // The server process dies (stdio) or forgets the session (HTTP): a new epoch on next open().
  void crash() { open_ = false; }
  void forget_session() { ++epoch_; }

  Result<void> open() override {
    if (!open_) {
      open_ = true;
      ++epoch_;
    }
    return {};
  }
  bool is_open() const override { return open_; }
  std::uint64_t epoch() const override { return epoch_; }
  bool per_request_stream() const override { return per_request_stream_; }

  asio::awaitable<Result<JsonRpcMessage>> request(RequestId id, OutgoingMessage message,
                                                  Deadline deadline) override {
    Sent sent = record(message, true, id);  // a copy: other callers may grow the log
    sent_.back().budget = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    // Answer asynchronously, as a real server does, so concurrent callers interleave.
    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
    Reply reply = script_(sent);
    switch (reply.kind) {
      case Reply::Kind::kResult: {
        JsonRpcMessage answer;
        answer.kind = JsonRpcMessage::Kind::kResult;
        answer.id = id;
        answer.result = std::move(reply.result);
        co_return answer;
      }
      case Reply::Kind::kRpcError: {
        JsonRpcMessage answer;
        answer.kind = JsonRpcMessage::Kind::kError;
        answer.id = id;
        answer.error = std::move(reply.rpc_error);
        co_return answer;
      }
      case Reply::Kind::kFailure:
        co_return reply.failure;
      case Reply::Kind::kSilence:
        break;
    }
    asio::steady_timer timer(co_await asio::this_coro::executor, deadline);
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    co_return McpError{McpErrorKind::kTimeout, "no answer in time"};
  }

  asio::awaitable<Result<void>> notify(OutgoingMessage message) override {
    record(message, false, 0);
    co_return Result<void>();
  }

  asio::awaitable<void> close() override {
    closed_ = true;
    co_return;
  }

 private:
  Sent& record(const OutgoingMessage& message, bool is_request, RequestId id) {
    json::object body = json::parse(message.body).as_object();
    Sent sent{
        std::string(body.at("method").as_string()), {}, message.headers, is_request, id, epoch_};
    if (const json::value* params = body.if_contains("params")) sent.params = params->as_object();
    sent_.push_back(std::move(sent));
    return sent_.back();
  }

  std::vector<Sent>& sent_;
  Script script_;
  bool per_request_stream_;
  bool open_ = false;
  bool closed_ = false;
  std::uint64_t epoch_ = 0;
};

constexpr const char* kModernDiscover = R"({"supportedVersions":["2026-07-28"],
  "capabilities":{"tools":{}},"resultType":"complete"})";
constexpr const char* kInitialized = R"({"protocolVersion":"2025-11-25",
  "capabilities":{"tools":{}},"serverInfo":{"name":"t","version":"1"}})";
constexpr const char* kOneTool = R"({"tools":[{"name":"search","inputSchema":{"type":"object"}}]})";
constexpr const char* kTextResult = R"({"content":[{"type":"text","text":"ok"}]})";

// A server that speaks 2026-07-28.
Reply modern_server(const Sent& sent) {
  if (sent.method == "server/discover") return result(kModernDiscover);
  if (sent.method == "tools/list") return result(kOneTool);
  if (sent.method == "tools/call") return result(kTextResult);
  return rpc_error(kMethodNotFound, "Method not found");
}

// A server that speaks only the 2025-11-25 handshake revision.
Reply legacy_server(const Sent& sent) {
  if (sent.method == "initialize") return result(kInitialized);
  if (sent.method == "tools/list") return result(kOneTool);
  if (sent.method == "tools/call") return result(kTextResult);
  return rpc_error(kMethodNotFound, "Method not found");
}

class SessionTest : public ::testing::Test {
 protected:
  McpSession& session(ScriptedTransport::Script script,
                      config::McpProtocol protocol = config::McpProtocol::kAuto,
                      bool per_request_stream = false) {
    auto transport =
        std::make_unique<ScriptedTransport>(sent_, std::move(script), per_request_stream);
    transport_ = transport.get();
    session_ = std::make_unique<McpSession>(
        context_.get_executor(), std::move(transport),
        SessionOptions{"MCP server \"test\"", protocol, timeout_, {"redline", "9.9"}});
    return *session_;
  }

  std::vector<std::string> methods() const {
    std::vector<std::string> out;
    for (const Sent& sent : sent_) out.push_back(sent.method);
    return out;
  }
  std::size_t count(std::string_view method) const {
    return std::count_if(sent_.begin(), sent_.end(),
                         [&](const Sent& sent) { return sent.method == method; });
  }
  const Sent& last(std::string_view method) const {
    for (auto it = sent_.rbegin(); it != sent_.rend(); ++it) {
      if (it->method == method) return *it;
    }
    throw std::runtime_error("not sent: " + std::string(method));
  }

  asio::io_context context_;
  std::vector<Sent> sent_;
  ScriptedTransport* transport_ = nullptr;
  std::unique_ptr<McpSession> session_;
  std::chrono::milliseconds timeout_{5000};
};

using Methods = std::vector<std::string>;

TEST_F(SessionTest, AutoSpeaksTheNewestRevisionWhenTheServerOffersIt) {
  McpSession& s = session(modern_server);
  auto tools = run_task(context_, s.list_tools());
  ASSERT_TRUE(tools) << tools.error().message;
  ASSERT_EQ(tools->size(), 1u);
  EXPECT_EQ(methods(), (Methods{"server/discover", "tools/list"}));
  EXPECT_EQ(s.revision(), McpRevision::k20260728);

  // Every request carries the envelope; no handshake happened.
  for (const Sent& sent : sent_) {
    const json::object& meta = sent.params.at("_meta").as_object();
    EXPECT_EQ(meta.at("io.modelcontextprotocol/protocolVersion"), json::value("2026-07-28"));
    EXPECT_EQ(meta.at("io.modelcontextprotocol/clientInfo"),
              json::parse(R"({"name":"redline","version":"9.9"})"));
    EXPECT_TRUE(meta.contains("io.modelcontextprotocol/clientCapabilities"));
    EXPECT_EQ(sent.header("MCP-Protocol-Version"), "2026-07-28");
    EXPECT_EQ(sent.header("Mcp-Method"), sent.method);
  }

  auto negotiated = run_task(context_, s.connect());
  ASSERT_TRUE(negotiated);
  EXPECT_EQ(negotiated->protocol_version, "2026-07-28");
  EXPECT_EQ(count("server/discover"), 1u);  // once per connection
}

TEST_F(SessionTest, AutoFallsBackToTheHandshakeWhenDiscoverIsUnknown) {
  McpSession& s = session(legacy_server);
  auto tools = run_task(context_, s.list_tools());
  ASSERT_TRUE(tools) << tools.error().message;
  EXPECT_EQ(methods(),
            (Methods{"server/discover", "initialize", "notifications/initialized", "tools/list"}));
  EXPECT_EQ(s.revision(), McpRevision::k20251125);

  const Sent& initialize = last("initialize");
  EXPECT_EQ(initialize.params, json::parse(R"({"protocolVersion":"2025-11-25",
    "capabilities":{},"clientInfo":{"name":"redline","version":"9.9"}})"));
  EXPECT_EQ(initialize.header("MCP-Protocol-Version"), "");  // not yet agreed
  EXPECT_FALSE(last("notifications/initialized").is_request);
  const Sent& list = last("tools/list");
  EXPECT_FALSE(list.params.contains("_meta"));
  EXPECT_EQ(list.header("MCP-Protocol-Version"), "2025-11-25");
  EXPECT_EQ(list.header("Mcp-Method"), "");
}

TEST_F(SessionTest, AutoFallsBackWhenAnHttpServerRefusesTheProbe) {
  McpSession& s = session([](const Sent& sent) {
    if (sent.method == "server/discover") return failure(McpErrorKind::kTransport, 400);
    return legacy_server(sent);
  });
  auto negotiated = run_task(context_, s.connect());
  ASSERT_TRUE(negotiated) << negotiated.error().message;
  EXPECT_EQ(negotiated->revision, McpRevision::k20251125);
  EXPECT_EQ(negotiated->protocol_version, "2025-11-25");
}

TEST_F(SessionTest, AutoStartsAFreshProcessWhenTheProbeKilledTheServer) {
  McpSession& s = session([this](const Sent& sent) {
    if (sent.method == "server/discover") {
      transport_->crash();
      return failure(McpErrorKind::kCrashed);
    }
    return legacy_server(sent);
  });
  auto negotiated = run_task(context_, s.connect());
  ASSERT_TRUE(negotiated) << negotiated.error().message;
  EXPECT_EQ(last("server/discover").epoch, 1u);
  EXPECT_EQ(last("initialize").epoch, 2u);
}

TEST_F(SessionTest, AutoReportsAServerThatCannotBeReached) {
  McpSession& s = session([](const Sent&) { return failure(McpErrorKind::kTransport); });
  auto tools = run_task(context_, s.list_tools());
  ASSERT_FALSE(tools);
  EXPECT_EQ(tools.error().kind, McpErrorKind::kTransport);
  EXPECT_NE(tools.error().message.find("MCP server \"test\": server/discover"), std::string::npos)
      << tools.error().message;
  EXPECT_EQ(methods(), (Methods{"server/discover"}));
  EXPECT_FALSE(s.revision());
}

TEST_F(SessionTest, AConfiguredHandshakeRevisionSkipsTheProbe) {
  McpSession& s = session(legacy_server, config::McpProtocol::k20251125);
  ASSERT_TRUE(run_task(context_, s.list_tools()));
  EXPECT_EQ(methods(), (Methods{"initialize", "notifications/initialized", "tools/list"}));
}

TEST_F(SessionTest, AConfiguredNewRevisionRequiresAServerThatOffersIt) {
  McpSession& modern = session(modern_server, config::McpProtocol::k20260728);
  ASSERT_TRUE(run_task(context_, modern.connect()));

  sent_.clear();
  McpSession& old = session(legacy_server, config::McpProtocol::k20260728);
  auto refused = run_task(context_, old.connect());
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().kind, McpErrorKind::kServer);
  EXPECT_EQ(count("initialize"), 0u);  // no fallback

  sent_.clear();
  McpSession& other =
      session([](const Sent&) { return result(R"({"supportedVersions":["2027-01-01"]})"); },
              config::McpProtocol::k20260728);
  auto mismatch = run_task(context_, other.connect());
  ASSERT_FALSE(mismatch);
  EXPECT_EQ(mismatch.error().kind, McpErrorKind::kProtocol);
}

TEST_F(SessionTest, AHandshakeInAnUnknownRevisionFails) {
  McpSession& s = session([](const Sent& sent) {
    if (sent.method == "initialize") return result(R"({"protocolVersion":"2099-01-01"})");
    return legacy_server(sent);
  });
  auto negotiated = run_task(context_, s.connect());
  ASSERT_FALSE(negotiated);
  EXPECT_EQ(negotiated.error().kind, McpErrorKind::kProtocol);
  EXPECT_EQ(count("notifications/initialized"), 0u);
}

TEST_F(SessionTest, ARestartedServerIsSpokenToInTheRememberedRevision) {
  McpSession& s = session(legacy_server);
  ASSERT_TRUE(run_task(context_, s.list_tools()));
  transport_->crash();
  ASSERT_TRUE(run_task(context_, s.list_tools()));
  EXPECT_EQ(count("server/discover"), 1u);  // not probed again
  EXPECT_EQ(count("initialize"), 2u);       // but the new process needs its handshake
  EXPECT_EQ(last("initialize").epoch, 2u);
}

TEST_F(SessionTest, ARestartedModernServerIsProbedAgain) {
  McpSession& s = session(modern_server);
  ASSERT_TRUE(run_task(context_, s.list_tools()));
  transport_->crash();
  ASSERT_TRUE(run_task(context_, s.list_tools()));
  EXPECT_EQ(methods(), (Methods{"server/discover", "tools/list", "server/discover", "tools/list"}));
  EXPECT_EQ(last("tools/list").epoch, 2u);
}

TEST_F(SessionTest, TheHandshakeGetsTimeForAServerToStart) {
  timeout_ = 50ms;
  McpSession& s = session(legacy_server);
  ASSERT_TRUE(run_task(context_, s.list_tools()));
  EXPECT_GE(last("server/discover").budget, kMinHandshakeTimeout - 1s);
  EXPECT_GE(last("initialize").budget, kMinHandshakeTimeout - 1s);
  EXPECT_LE(last("tools/list").budget, 50ms);
}

TEST_F(SessionTest, ConcurrentCallersShareOneNegotiation) {
  McpSession& s = session(legacy_server);
  int done = 0;
  for (int i = 0; i < 3; ++i) {
    asio::co_spawn(
        context_,
        [&]() -> asio::awaitable<void> {
          auto tools = co_await s.list_tools();
          EXPECT_TRUE(tools);
          ++done;
        },
        asio::detached);
  }
  context_.run();
  EXPECT_EQ(done, 3);
  EXPECT_EQ(count("server/discover"), 1u);
  EXPECT_EQ(count("initialize"), 1u);
  EXPECT_EQ(count("tools/list"), 3u);
}

TEST_F(SessionTest, AFailedNegotiationIsSharedAndRetriedByTheNextCall) {
  bool reachable = false;
  McpSession& s = session([&](const Sent& sent) {
    return reachable ? legacy_server(sent) : failure(McpErrorKind::kTransport);
  });
  int failed = 0;
  for (int i = 0; i < 2; ++i) {
    asio::co_spawn(
        context_,
        [&]() -> asio::awaitable<void> {
          if (!co_await s.list_tools()) ++failed;
        },
        asio::detached);
  }
  context_.run();
  EXPECT_EQ(failed, 2);
  EXPECT_EQ(count("server/discover"), 1u);
  reachable = true;
  EXPECT_TRUE(run_task(context_, s.list_tools()));
}

TEST_F(SessionTest, ListToolsFollowsCursorsToTheLastPage) {
  McpSession& s = session([](const Sent& sent) {
    if (sent.method != "tools/list") return legacy_server(sent);
    const json::value* cursor = sent.params.if_contains("cursor");
    if (cursor == nullptr) return result(R"({"tools":[{"name":"a"}],"nextCursor":"p2"})");
    if (*cursor == "p2")
      return result(R"({"tools":[{"name":"b"},{"name":"c"}],"nextCursor":"p3"})");
    return result(R"({"tools":[{"name":"d"}]})");
  });
  auto tools = run_task(context_, s.list_tools());
  ASSERT_TRUE(tools) << tools.error().message;
  std::vector<std::string> names;
  for (const McpTool& tool : *tools) names.push_back(tool.name);
  EXPECT_EQ(names, (std::vector<std::string>{"a", "b", "c", "d"}));
  EXPECT_EQ(count("tools/list"), 3u);
  EXPECT_EQ(last("tools/list").params.at("cursor"), json::value("p3"));
}

TEST_F(SessionTest, ListToolsStopsAtARepeatedCursor) {
  McpSession& s = session([](const Sent& sent) {
    if (sent.method != "tools/list") return legacy_server(sent);
    return result(R"({"tools":[{"name":"a"}],"nextCursor":"again"})");
  });
  auto tools = run_task(context_, s.list_tools());
  ASSERT_FALSE(tools);
  EXPECT_EQ(tools.error().kind, McpErrorKind::kProtocol);
  EXPECT_EQ(count("tools/list"), 2u);
}

TEST_F(SessionTest, CallToolSendsNameArgumentsAndIdempotencyKey) {
  McpSession& s = session(legacy_server);
  auto called = run_task(context_, s.call_tool("search", {{"query", "x"}}, "key-1"));
  ASSERT_TRUE(called) << called.error().message;
  EXPECT_EQ(called->content.size(), 1u);
  EXPECT_EQ(last("tools/call").params, json::parse(R"({"name":"search","arguments":{"query":"x"},
    "_meta":{"dev.redline/idempotency-key":"key-1"}})"));
}

TEST_F(SessionTest, CallToolInTheNewRevisionAddsTheEnvelopeAndNameHeader) {
  McpSession& s = session(modern_server, config::McpProtocol::kAuto, true);
  ASSERT_TRUE(run_task(context_, s.call_tool("search", {}, "key-2")));
  const Sent& call = last("tools/call");
  const json::object& meta = call.params.at("_meta").as_object();
  EXPECT_EQ(meta.at("dev.redline/idempotency-key"), json::value("key-2"));
  EXPECT_TRUE(meta.contains("io.modelcontextprotocol/protocolVersion"));
  EXPECT_EQ(call.header("Mcp-Name"), "search");
  EXPECT_EQ(call.header("Mcp-Method"), "tools/call");
}

TEST_F(SessionTest, AToolErrorIsAResultAServerErrorIsAnError) {
  McpSession& s = session([](const Sent& sent) {
    if (sent.method == "tools/call") {
      if (sent.params.at("name") == "fail") {
        return result(R"({"content":[{"type":"text","text":"no"}],"isError":true})");
      }
      return rpc_error(-32602, "Unknown tool");
    }
    return legacy_server(sent);
  });
  auto failed_tool = run_task(context_, s.call_tool("fail", {}, "k"));
  ASSERT_TRUE(failed_tool);
  EXPECT_TRUE(failed_tool->is_error);

  auto unknown = run_task(context_, s.call_tool("nope", {}, "k"));
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().kind, McpErrorKind::kServer);
  EXPECT_EQ(unknown.error().code, -32602);
  EXPECT_EQ(unknown.error().message, "MCP server \"test\": tools/call: Unknown tool");
}

TEST_F(SessionTest, AMalformedResultIsAProtocolError) {
  McpSession& s = session([](const Sent& sent) {
    if (sent.method == "tools/call") return result(R"({"content":"text"})");
    return legacy_server(sent);
  });
  auto called = run_task(context_, s.call_tool("search", {}, "k"));
  ASSERT_FALSE(called);
  EXPECT_EQ(called.error().kind, McpErrorKind::kProtocol);
}

TEST_F(SessionTest, ATimedOutRequestIsCancelled) {
  timeout_ = 50ms;
  McpSession& s = session([](const Sent& sent) {
    return sent.method == "tools/call" ? silence() : legacy_server(sent);
  });
  auto called = run_task(context_, s.call_tool("slow", {}, "k"));
  ASSERT_FALSE(called);
  EXPECT_EQ(called.error().kind, McpErrorKind::kTimeout);
  EXPECT_EQ(called.error().message, "MCP server \"test\": tools/call: no answer within 50 ms");
  const Sent& cancelled = last("notifications/cancelled");
  EXPECT_FALSE(cancelled.is_request);
  EXPECT_EQ(cancelled.params.at("requestId"), json::value(last("tools/call").id));
  EXPECT_FALSE(cancelled.params.contains("_meta"));
}

TEST_F(SessionTest, ATimedOutModernRequestOnStdioIsCancelledWithTheEnvelope) {
  timeout_ = 50ms;
  McpSession& s = session([](const Sent& sent) {
    return sent.method == "tools/call" ? silence() : modern_server(sent);
  });
  ASSERT_FALSE(run_task(context_, s.call_tool("slow", {}, "k")));
  const Sent& cancelled = last("notifications/cancelled");
  EXPECT_TRUE(
      cancelled.params.at("_meta").as_object().contains("io.modelcontextprotocol/protocolVersion"));
}

TEST_F(SessionTest, ATimedOutModernRequestOverHttpIsCancelledByItsClosedStream) {
  timeout_ = 50ms;
  McpSession& s = session(
      [](const Sent& sent) {
        return sent.method == "tools/call" ? silence() : modern_server(sent);
      },
      config::McpProtocol::kAuto, true);
  auto called = run_task(context_, s.call_tool("slow", {}, "k"));
  ASSERT_FALSE(called);
  EXPECT_EQ(called.error().kind, McpErrorKind::kTimeout);
  EXPECT_EQ(count("notifications/cancelled"), 0u);
}

TEST_F(SessionTest, AForgottenSessionIsInitializedAgainOnce) {
  int forgets = 1;
  McpSession& s = session(
      [&](const Sent& sent) {
        if (sent.method == "tools/call" && forgets > 0) {
          --forgets;
          transport_->forget_session();
          return failure(McpErrorKind::kTransport, 404);
        }
        return legacy_server(sent);
      },
      config::McpProtocol::kAuto, true);
  auto called = run_task(context_, s.call_tool("search", {}, "k"));
  ASSERT_TRUE(called) << called.error().message;
  EXPECT_EQ(count("initialize"), 2u);
  EXPECT_EQ(count("tools/call"), 2u);

  forgets = 2;  // forgotten again right after the new handshake: report it
  auto failed = run_task(context_, s.call_tool("search", {}, "k"));
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().http_status, 404);
  EXPECT_EQ(count("tools/call"), 4u);
}

TEST_F(SessionTest, ACrashDuringACallIsReportedNotRetried) {
  McpSession& s = session([this](const Sent& sent) {
    if (sent.method == "tools/call") {
      transport_->crash();
      return failure(McpErrorKind::kCrashed);
    }
    return legacy_server(sent);
  });
  auto called = run_task(context_, s.call_tool("crash", {}, "k"));
  ASSERT_FALSE(called);
  EXPECT_EQ(called.error().kind, McpErrorKind::kCrashed);
  EXPECT_EQ(count("tools/call"), 1u);
}

}  // namespace
}  // namespace redline::mcp
