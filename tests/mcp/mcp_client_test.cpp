// The public client: calls from other threads hop onto the client's home context and back,
// arguments and idempotency keys reach the server, and the registry answers by name and tenant.
#include "mcp/mcp_client.h"

#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/json/serialize.hpp>
#include <thread>

#include "test_support.h"

namespace redline::mcp {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using testing::run_task;
using testing::ShellScript;

// A 2025-era server: no server/discover; answers with the idempotency key it was sent.
const std::string kServer = std::string("while IFS= read -r line; do\n") + testing::kReadId + R"sh(
  case "$line" in
    *'"method":"server/discover"'*)
      printf '{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"Method not found"}}\n' "$id" ;;
    *'"method":"initialize"'*)
      printf '{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2025-06-18","capabilities":{"tools":{}},"serverInfo":{"name":"sh","version":"1"}}}\n' "$id" ;;
    *'"method":"tools/list"'*)
      printf '{"jsonrpc":"2.0","id":%s,"result":{"tools":[{"name":"echo","description":"Echoes"}]}}\n' "$id" ;;
    *'"method":"tools/call"'*)
      key=$(printf '%s' "$line" | sed -n 's/.*"dev.redline\/idempotency-key":"\([^"]*\)".*/\1/p')
      printf '{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"key=%s"}]}}\n' "$id" "$key" ;;
  esac
done
)sh";

config::McpServerSettings stdio_server(const std::string& script, std::string name = "shell") {
  config::McpServerSettings settings;
  settings.name = std::move(name);
  settings.command = "/bin/sh";
  settings.args = {script};
  return settings;
}

std::string text_of(const McpToolResult& result) {
  return std::string(result.content.at(0).as_object().at("text").as_string());
}

// The client's home context runs on a thread of its own, as an I/O thread of the gateway does.
class McpClientTest : public ::testing::Test {
 protected:
  McpClientTest()
      : script_(kServer),
        guard_(home_.get_executor()),
        client_(std::make_unique<McpClient>(home_, stdio_server(script_.path()))),
        home_thread_([this] { home_.run(); }) {}

  ~McpClientTest() override {
    run_task(caller_, [&]() -> asio::awaitable<bool> {
      co_await client_->shutdown();
      co_return true;
    }());
    guard_.reset();
    home_thread_.join();
    client_.reset();  // after its home stopped, as the header asks
  }

  ShellScript script_;
  asio::io_context home_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_;
  std::unique_ptr<McpClient> client_;
  std::thread home_thread_;
  asio::io_context caller_;
};

TEST_F(McpClientTest, CallsHopToTheHomeThreadAndResumeOnTheCallers) {
  const auto caller_thread = std::this_thread::get_id();
  EXPECT_FALSE(client_->revision());
  auto tools = run_task(caller_, [&]() -> asio::awaitable<Result<std::vector<McpTool>>> {
    auto negotiated = co_await client_->connect();
    EXPECT_TRUE(negotiated);
    if (negotiated) {
      EXPECT_EQ(negotiated->protocol_version, "2025-06-18");
    }
    EXPECT_EQ(std::this_thread::get_id(), caller_thread);
    auto listed = co_await client_->list_tools();
    EXPECT_EQ(std::this_thread::get_id(), caller_thread);
    co_return listed;
  }());
  ASSERT_TRUE(tools) << tools.error().message;
  ASSERT_EQ(tools->size(), 1u);
  EXPECT_EQ((*tools)[0].name, "echo");
  EXPECT_EQ(client_->revision(), McpRevision::k20251125);
}

TEST_F(McpClientTest, TheIdempotencyKeyReachesTheServer) {
  auto given = run_task(caller_, client_->call_tool("echo", R"({"x":1})", "step-7"));
  ASSERT_TRUE(given) << given.error().message;
  EXPECT_EQ(text_of(*given), "key=step-7");

  auto fresh = run_task(caller_, client_->call_tool("echo", "", ""));
  ASSERT_TRUE(fresh);
  EXPECT_EQ(text_of(*fresh).rfind("key=call_", 0), 0u) << text_of(*fresh);
}

TEST_F(McpClientTest, ArgumentsMustBeAJsonObject) {
  for (const char* arguments : {"[1]", "7", "{", "\"x\""}) {
    auto called = run_task(caller_, client_->call_tool("echo", arguments, ""));
    ASSERT_FALSE(called) << arguments;
    EXPECT_EQ(called.error().kind, McpErrorKind::kInvalidArgument);
  }
}

TEST_F(McpClientTest, ConcurrentCallersFromSeveralThreads) {
  constexpr int kThreads = 3;
  constexpr int kCalls = 10;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      asio::io_context context;
      for (int i = 0; i < kCalls; ++i) {
        asio::co_spawn(
            context,
            [&, key = std::to_string(t) + "-" + std::to_string(i)]() -> asio::awaitable<void> {
              auto called = co_await client_->call_tool("echo", "{}", key);
              if (called && text_of(*called) == "key=" + key) ++ok;
            },
            asio::detached);
      }
      context.run();
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(ok.load(), kThreads * kCalls);
}

TEST_F(McpClientTest, AShutDownClientRefusesCalls) {
  run_task(caller_, [&]() -> asio::awaitable<bool> {
    co_await client_->shutdown();
    co_return true;
  }());
  auto called = run_task(caller_, client_->call_tool("echo", "{}", "k"));
  ASSERT_FALSE(called);
  EXPECT_EQ(called.error().kind, McpErrorKind::kTransport);
}

TEST(McpClientsTest, FindsServersByNameAndTenant) {
  config::Config config;
  config.mcp_servers.push_back(stdio_server("/unused", "shared"));
  config.mcp_servers.push_back(stdio_server("/unused", "private"));
  config.mcp_servers.back().tenants = {"acme"};
  asio::io_context home;
  McpClients clients(home, config);

  ASSERT_EQ(clients.all().size(), 2u);
  ASSERT_NE(clients.find("shared"), nullptr);
  EXPECT_EQ(clients.find("shared")->name(), "shared");
  EXPECT_EQ(clients.find("missing"), nullptr);
  EXPECT_NE(clients.find_for_tenant("shared", "anyone"), nullptr);
  EXPECT_NE(clients.find_for_tenant("private", "acme"), nullptr);
  EXPECT_EQ(clients.find_for_tenant("private", "globex"), nullptr);
  EXPECT_TRUE(tenant_allowed(config.mcp_servers[1], "acme"));
  EXPECT_FALSE(tenant_allowed(config.mcp_servers[1], ""));
  EXPECT_TRUE(clients.find("private")->allows_tenant("acme"));
}

}  // namespace
}  // namespace redline::mcp
