#pragma once
// Helpers for the MCP client tests: run a coroutine to completion with a time limit, and write
// small /bin/sh programs that play an MCP server on stdio.
#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

namespace redline::mcp::testing {

// Runs the context until `task` finishes (background coroutines, such as a transport's reader,
// may keep running). Throws when it does not finish within `limit`, so a broken test fails
// instead of hanging.
template <typename T>
T run_task(boost::asio::io_context& context, boost::asio::awaitable<T> task,
           std::chrono::milliseconds limit = std::chrono::seconds(20)) {
  std::optional<T> out;
  boost::asio::co_spawn(
      context, [&]() -> boost::asio::awaitable<void> { out.emplace(co_await std::move(task)); },
      boost::asio::detached);
  auto deadline = std::chrono::steady_clock::now() + limit;
  context.restart();
  while (!out && std::chrono::steady_clock::now() < deadline) {
    context.run_one_for(std::chrono::milliseconds(50));
    if (context.stopped()) context.restart();
  }
  if (!out) throw std::runtime_error("the task did not finish in time");
  return std::move(*out);
}

// A shell script in a temporary file, removed with the object.
class ShellScript {
 public:
  explicit ShellScript(const std::string& body) {
    char name[] = "/tmp/redline-mcp-test-XXXXXX";
    int fd = ::mkstemp(name);
    if (fd < 0) throw std::runtime_error("mkstemp failed");
    ::close(fd);
    path_ = name;
    std::ofstream(path_) << "#!/bin/sh\n" << body;
  }
  ShellScript(const ShellScript&) = delete;
  ShellScript& operator=(const ShellScript&) = delete;
  ~ShellScript() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Shell lines that set $id to the numeric id of the JSON-RPC message in $line.
inline constexpr const char* kReadId =
    "  id=$(printf '%s' \"$line\" | sed -n 's/.*\"id\":\\([0-9]*\\).*/\\1/p')\n";

}  // namespace redline::mcp::testing
