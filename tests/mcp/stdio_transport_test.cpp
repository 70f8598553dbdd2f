// The stdio transport against real child processes: small shell scripts that play a server.
#include "mcp/stdio_transport.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <boost/json/parse.hpp>
#include <string>

#include "test_support.h"

namespace redline::mcp {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace std::chrono_literals;
using testing::run_task;
using testing::ShellScript;

// Answers each request by its method; see the cases.
const std::string kServer = std::string("while IFS= read -r line; do\n") + testing::kReadId + R"(
  case "$line" in
    *'"method":"crash"'*) echo "about to die" >&2; exit 3 ;;
    *'"method":"ignore"'*) ;;
    *'"method":"hello"'*)
      printf '{"jsonrpc":"2.0","id":"p1","method":"ping"}\n'
      IFS= read -r pong
      case "$pong" in *'"id":"p1"'*'"result":{}'*) ok=true ;; *) ok=false ;; esac
      printf '{"jsonrpc":"2.0","id":%s,"result":{"pong":%s}}\n' "$id" "$ok" ;;
    *'"method":"env"'*)
      printf '{"jsonrpc":"2.0","id":%s,"result":{"pass":"%s","keep":"%s"}}\n' "$id" "$MCP_TEST_PASS" "$MCP_TEST_KEEP" ;;
    *'"method":"noise"'*)
      echo "not json at all"
      printf '{"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}\n'
      printf '{"jsonrpc":"2.0","id":999,"result":{}}\n'
      printf '{"jsonrpc":"2.0","id":%s,"result":{"after":"noise"}}\r\n' "$id" ;;
    *'"method":"big"'*) head -c 300 /dev/zero | tr '\0' 'x'; echo ;;
    *'"method":"close_stdout"'*) exec 1>&-; trap '' TERM; sleep 30 ;;
    *'"method":"late"'*) sleep 0.3; printf '{"jsonrpc":"2.0","id":%s,"result":{"late":true}}\n' "$id" ;;
    *'"id":'*) printf '{"jsonrpc":"2.0","id":%s,"result":{"echo":true}}\n' "$id" ;;
  esac
done
)";

class StdioTransportTest : public ::testing::Test {
 protected:
  StdioTransportTest() : script_(kServer) {}

  std::unique_ptr<Transport> transport(std::size_t max_message_bytes = 1 << 20,
                                       std::vector<std::string> env = {}) {
    StdioOptions options;
    options.spec = {"/bin/sh", {script_.path()}, std::move(env)};
    options.label = "test server";
    options.max_message_bytes = max_message_bytes;
    return make_stdio_transport(context_.get_executor(), std::move(options));
  }

  Result<JsonRpcMessage> call(Transport& transport, RequestId id, std::string_view method,
                              std::chrono::milliseconds timeout = 5s) {
    OutgoingMessage message{method, json_rpc_request(id, method, {}), {}};
    return run_task(context_, transport.request(id, std::move(message),
                                                std::chrono::steady_clock::now() + timeout));
  }

  asio::io_context context_;
  ShellScript script_;
};

TEST_F(StdioTransportTest, MatchesAnswersToRequestsById) {
  auto t = transport();
  ASSERT_TRUE(t->open());
  EXPECT_TRUE(t->is_open());
  EXPECT_EQ(t->epoch(), 1u);
  EXPECT_FALSE(t->per_request_stream());
  for (RequestId id : {1, 2, 3}) {
    auto answer = call(*t, id, "echo");
    ASSERT_TRUE(answer) << answer.error().message;
    EXPECT_EQ(answer->request_id(), id);
    EXPECT_EQ(answer->result, json::parse(R"({"echo":true})"));
  }
  ASSERT_TRUE(t->open());  // already up: same process
  EXPECT_EQ(t->epoch(), 1u);
}

TEST_F(StdioTransportTest, AnswersTheServersPing) {
  auto t = transport();
  ASSERT_TRUE(t->open());
  auto answer = call(*t, 1, "hello");
  ASSERT_TRUE(answer) << answer.error().message;
  EXPECT_EQ(answer->result, json::parse(R"({"pong":true})"));
}

TEST_F(StdioTransportTest, SkipsWhatIsNotItsAnswer) {
  auto t = transport();
  ASSERT_TRUE(t->open());
  auto answer = call(*t, 5, "noise");  // junk, a notification, a stray answer, then CRLF
  ASSERT_TRUE(answer) << answer.error().message;
  EXPECT_EQ(answer->result, json::parse(R"({"after":"noise"})"));
}

TEST_F(StdioTransportTest, ACrashFailsThePendingRequestAndTheNextOpenRestarts) {
  auto t = transport();
  ASSERT_TRUE(t->open());
  auto crashed = call(*t, 1, "crash");
  ASSERT_FALSE(crashed);
  EXPECT_EQ(crashed.error().kind, McpErrorKind::kCrashed);
  EXPECT_NE(crashed.error().message.find("exited with status 3"), std::string::npos)
      << crashed.error().message;
  EXPECT_NE(crashed.error().message.find("about to die"), std::string::npos)
      << crashed.error().message;
  EXPECT_FALSE(t->is_open());

  auto not_running = call(*t, 2, "echo");
  ASSERT_FALSE(not_running);
  EXPECT_EQ(not_running.error().kind, McpErrorKind::kCrashed);

  ASSERT_TRUE(t->open());
  EXPECT_EQ(t->epoch(), 2u);
  EXPECT_TRUE(call(*t, 3, "echo"));
}

TEST_F(StdioTransportTest, AServerThatClosesItsStdoutIsStopped) {
  auto t = transport();
  ASSERT_TRUE(t->open());
  auto closed = call(*t, 1, "close_stdout");  // and ignores SIGTERM: SIGKILL ends it
  ASSERT_FALSE(closed);
  EXPECT_EQ(closed.error().kind, McpErrorKind::kCrashed);
  EXPECT_NE(closed.error().message.find("closed its stdout"), std::string::npos);
  ASSERT_TRUE(t->open());
  EXPECT_TRUE(call(*t, 2, "echo"));
}

TEST_F(StdioTransportTest, ARequestWithoutAnswerTimesOutAndALateAnswerIsIgnored) {
  auto t = transport();
  ASSERT_TRUE(t->open());
  auto silent = call(*t, 1, "ignore", 100ms);
  ASSERT_FALSE(silent);
  EXPECT_EQ(silent.error().kind, McpErrorKind::kTimeout);

  auto late = call(*t, 2, "late", 100ms);
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error().kind, McpErrorKind::kTimeout);
  auto next = call(*t, 3, "echo");  // the late answer to 2 arrives first and is dropped
  ASSERT_TRUE(next) << next.error().message;
  EXPECT_EQ(next->request_id(), 3);
}

TEST_F(StdioTransportTest, PassesOnlyTheNamedEnvironment) {
  ::setenv("MCP_TEST_PASS", "passed", 1);
  ::setenv("MCP_TEST_KEEP", "secret", 1);
  auto t = transport(1 << 20, {"MCP_TEST_PASS"});
  ASSERT_TRUE(t->open());
  auto answer = call(*t, 1, "env");
  ::unsetenv("MCP_TEST_PASS");
  ::unsetenv("MCP_TEST_KEEP");
  ASSERT_TRUE(answer) << answer.error().message;
  EXPECT_EQ(answer->result, json::parse(R"({"pass":"passed","keep":""})"));
}

TEST_F(StdioTransportTest, AnOversizedMessageIsAProtocolError) {
  auto t = transport(100);
  ASSERT_TRUE(t->open());
  auto big = call(*t, 1, "big");
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().kind, McpErrorKind::kProtocol);
  EXPECT_FALSE(t->is_open());
}

TEST_F(StdioTransportTest, NotificationsAreWritten) {
  auto t = transport();
  ASSERT_TRUE(t->open());
  auto sent = run_task(context_, t->notify({"notifications/initialized",
                                            json_rpc_notification("notifications/initialized", {}),
                                            {}}));
  EXPECT_TRUE(sent);
  EXPECT_TRUE(call(*t, 1, "echo"));  // the script read past it
}

TEST_F(StdioTransportTest, CloseStopsTheServerAndRefusesToRestart) {
  auto t = transport();
  ASSERT_TRUE(t->open());
  ASSERT_TRUE(call(*t, 1, "echo"));
  run_task(context_, [&]() -> asio::awaitable<bool> {
    co_await t->close();
    co_return true;
  }());
  EXPECT_FALSE(t->is_open());
  auto reopened = t->open();
  ASSERT_FALSE(reopened);
  EXPECT_EQ(reopened.error().kind, McpErrorKind::kTransport);
}

TEST_F(StdioTransportTest, AMissingCommandCannotBeOpened) {
  StdioOptions options;
  options.spec = {"redline-no-such-mcp-server", {}, {}};
  auto t = make_stdio_transport(context_.get_executor(), std::move(options));
  auto opened = t->open();
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().kind, McpErrorKind::kTransport);
  EXPECT_NE(opened.error().message.find("redline-no-such-mcp-server"), std::string::npos);
}

}  // namespace
}  // namespace redline::mcp
