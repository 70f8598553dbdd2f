#pragma once
// A child process whose stdin, stdout and stderr are connected to us through Unix stream
// sockets, as Node's child_process does: writing to a child that went away is then an error,
// never a SIGPIPE. The child sees only the environment variables it is given by name (plus PATH
// and HOME), and runs in its own process group, so stopping it also stops what it started.
#include <sys/types.h>

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mcp/mcp_types.h"

namespace redline::mcp {

// How long a child gets to leave after its stdin closes, and again after SIGTERM.
inline constexpr std::chrono::milliseconds kStopGrace{500};

class ChildProcess {
 public:
  struct Spec {
    std::string command;  // looked up in PATH unless it contains a '/'
    std::vector<std::string> args;
    std::vector<std::string> env;  // names of variables passed through from our environment
  };
  // Our ends of the child's stdin, stdout and stderr; whoever spawns owns and closes them.
  struct Pipes {
    int in = -1;
    int out = -1;
    int err = -1;
  };
  struct Started;

  // kTransport when the program cannot be started (not found, not executable, ...).
  static Result<Started> spawn(const Spec& spec);

  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  // A child still running is stopped (stop_blocking with kStopGrace) and reaped: it never
  // outlives us as a zombie. Close its stdin first, so it can leave on its own.
  ~ChildProcess();

  pid_t pid() const { return pid_; }
  // Reaps the child if it has exited, without blocking; true once it has.
  bool reap();
  // "exited with status 3", "was killed by signal 9", or "is still running".
  std::string describe() const;
  // Sends `signal` to the child's process group; nothing once it has been reaped.
  void signal(int signal) const;

 private:
  explicit ChildProcess(pid_t pid) : pid_(pid) {}

  pid_t pid_;
  std::optional<int> status_;  // set once reaped (-1 when someone else reaped it)
};

struct ChildProcess::Started {
  std::shared_ptr<ChildProcess> process;
  Pipes pipes;
};

// Waits up to `limit` for the child to exit, reaping it; true when it has. Uses timers of the
// awaiting coroutine's executor.
boost::asio::awaitable<bool> wait_exit(ChildProcess& child, std::chrono::milliseconds limit);

// Stops a child whose stdin is closed: it gets `grace` to leave on its own, then SIGTERM and
// another `grace`, then SIGKILL; it is reaped in the end.
boost::asio::awaitable<void> stop(std::shared_ptr<ChildProcess> child,
                                  std::chrono::milliseconds grace);
// The same, blocking the calling thread: for destructors, which cannot wait asynchronously.
void stop_blocking(ChildProcess& child, std::chrono::milliseconds grace);

}  // namespace redline::mcp
