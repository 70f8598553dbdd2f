#include "mcp/child_process.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "test_support.h"

namespace redline::mcp {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using testing::run_task;

void close_pipes(const ChildProcess::Pipes& pipes) {
  for (int fd : {pipes.in, pipes.out, pipes.err}) ::close(fd);
}

bool gone(pid_t pid) { return ::kill(pid, 0) == -1 && errno == ESRCH; }

TEST(ChildProcessTest, AChildThatLeavesWhenItsStdinClosesNeedsNoSignal) {
  auto started = ChildProcess::spawn({"cat", {}, {}});
  ASSERT_TRUE(started) << started.error().message;
  close_pipes(started->pipes);
  asio::io_context context;
  auto begin = std::chrono::steady_clock::now();
  run_task(context, [&]() -> asio::awaitable<bool> {
    co_await stop(started->process, 2s);
    co_return true;
  }());
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 1s);
  EXPECT_EQ(started->process->describe(), "exited with status 0");
}

TEST(ChildProcessTest, StopEscalatesToSigkillAndReaps) {
  auto started = ChildProcess::spawn({"/bin/sh", {"-c", "trap '' TERM; sleep 30"}, {}});
  ASSERT_TRUE(started);
  const pid_t pid = started->process->pid();
  close_pipes(started->pipes);
  asio::io_context context;
  run_task(context, [&]() -> asio::awaitable<bool> {
    co_await stop(started->process, 100ms);
    co_return true;
  }());
  EXPECT_EQ(started->process->describe(), "was killed by signal 9");
  EXPECT_EQ(::waitpid(pid, nullptr, WNOHANG), -1);  // already reaped: no zombie left
  EXPECT_EQ(errno, ECHILD);
  EXPECT_TRUE(gone(pid));
}

TEST(ChildProcessTest, SigtermEndsAChildThatIgnoresItsStdin) {
  auto started = ChildProcess::spawn({"sleep", {"30"}, {}});
  ASSERT_TRUE(started);
  close_pipes(started->pipes);
  stop_blocking(*started->process, 100ms);
  EXPECT_EQ(started->process->describe(), "was killed by signal 15");
}

TEST(ChildProcessTest, DestroyingAChildStopsAndReapsIt) {
  pid_t pid = -1;
  {
    auto started = ChildProcess::spawn({"sleep", {"30"}, {}});
    ASSERT_TRUE(started);
    pid = started->process->pid();
    close_pipes(started->pipes);
    EXPECT_FALSE(started->process->reap());
    EXPECT_EQ(started->process->describe(), "is still running");
  }
  EXPECT_TRUE(gone(pid));
}

TEST(ChildProcessTest, TheChildInheritsNoDescriptorButItsPipes) {
  // A descriptor opened without close-on-exec, like the gateway's sockets.
  const int inheritable = ::dup(STDERR_FILENO);
  ASSERT_GE(inheritable, 3);
  const std::string path = "/proc/self/fd/" + std::to_string(inheritable);
  auto started = ChildProcess::spawn(
      {"/bin/sh", {"-c", "test -e " + path + " && echo open || echo closed"}, {}});
  ::close(inheritable);
  ASSERT_TRUE(started);
  std::string output(64, '\0');
  const ssize_t got = ::read(started->pipes.out, output.data(), output.size());
  ASSERT_GT(got, 0);
  output.resize(static_cast<std::size_t>(got));
  EXPECT_EQ(output, "closed\n");
  close_pipes(started->pipes);
  stop_blocking(*started->process, 1s);
}

TEST(ChildProcessTest, AProgramThatDoesNotExistIsAnError) {
  auto started = ChildProcess::spawn({"/nonexistent/mcp-server", {}, {}});
  ASSERT_FALSE(started);
  EXPECT_EQ(started.error().kind, McpErrorKind::kTransport);
  EXPECT_NE(started.error().message.find("No such file"), std::string::npos)
      << started.error().message;
}

}  // namespace
}  // namespace redline::mcp
