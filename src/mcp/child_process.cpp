#include "mcp/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <thread>

namespace redline::mcp {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::chrono::milliseconds kPollInterval{10};
// After SIGKILL only a process stuck in the kernel is still there; do not wait for it forever.
constexpr std::chrono::milliseconds kKillWait{5000};
// What stop() sends before each wait: nothing (stdin is closed), then SIGTERM, then SIGKILL.
constexpr std::array<int, 3> kStopSignals = {0, SIGTERM, SIGKILL};

std::chrono::milliseconds wait_after(int signal, std::chrono::milliseconds grace) {
  return signal == SIGKILL ? kKillWait : grace;
}

// "NAME=value" for PATH, HOME and each passed-through name that is set, each name once.
std::vector<std::string> child_environment(const std::vector<std::string>& names) {
  std::vector<std::string> seen;
  std::vector<std::string> entries;
  auto pass = [&](const std::string& name) {
    if (std::find(seen.begin(), seen.end(), name) != seen.end()) return;
    seen.push_back(name);
    if (const char* value = std::getenv(name.c_str())) entries.push_back(name + "=" + value);
  };
  pass("PATH");
  pass("HOME");
  for (const std::string& name : names) pass(name);
  return entries;
}

std::vector<char*> null_terminated(std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  for (std::string& s : strings) pointers.push_back(s.data());
  pointers.push_back(nullptr);
  return pointers;
}

void close_all(std::initializer_list<int> fds) {
  for (int fd : fds) {
    if (fd >= 0) ::close(fd);
  }
}

}  // namespace

Result<ChildProcess::Started> ChildProcess::spawn(const Spec& spec) {
  // [0] is ours, [1] becomes the child's stdin / stdout / stderr.
  int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
  for (int* pair : {in, out, err}) {
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
      int error = errno;
      close_all({in[0], in[1], out[0], out[1], err[0], err[1]});
      return McpError{McpErrorKind::kTransport,
                      std::string("cannot create pipes: ") + std::strerror(error)};
    }
  }

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[1], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err[1], STDERR_FILENO);
  // Only these three reach the child. Sockets are not opened close-on-exec: an inherited
  // listening socket would outlive a killed gateway in its tool servers and keep the restarted
  // one from binding its port.
  posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1);

  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  // The gateway ignores SIGPIPE, and ignored signals survive exec: give the child the defaults.
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigdefault(&attributes, &defaults);
  sigset_t no_mask;
  sigemptyset(&no_mask);
  posix_spawnattr_setsigmask(&attributes, &no_mask);
  posix_spawnattr_setpgroup(&attributes, 0);
  posix_spawnattr_setflags(&attributes,
                           POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP);

  std::vector<std::string> argv_strings{spec.command};
  argv_strings.insert(argv_strings.end(), spec.args.begin(), spec.args.end());
  std::vector<std::string> env_strings = child_environment(spec.env);
  std::vector<char*> argv = null_terminated(argv_strings);
  std::vector<char*> envp = null_terminated(env_strings);

  pid_t pid = -1;
  int error =
      ::posix_spawnp(&pid, spec.command.c_str(), &actions, &attributes, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  close_all({in[1], out[1], err[1]});
  if (error != 0) {
    close_all({in[0], out[0], err[0]});
    return McpError{McpErrorKind::kTransport,
                    "cannot start \"" + spec.command + "\": " + std::strerror(error)};
  }
  return Started{std::shared_ptr<ChildProcess>(new ChildProcess(pid)), {in[0], out[0], err[0]}};
}

ChildProcess::~ChildProcess() {
  if (!reap()) stop_blocking(*this, kStopGrace);
}

bool ChildProcess::reap() {
  if (status_) return true;
  int status = 0;
  pid_t result = ::waitpid(pid_, &status, WNOHANG);
  if (result == 0) return false;
  if (result == -1 && errno == EINTR) return false;
  status_ = result == pid_ ? status : -1;
  return true;
}

std::string ChildProcess::describe() const {
  if (!status_) return "is still running";
  if (*status_ == -1) return "has exited";
  if (WIFEXITED(*status_)) return "exited with status " + std::to_string(WEXITSTATUS(*status_));
  if (WIFSIGNALED(*status_)) return "was killed by signal " + std::to_string(WTERMSIG(*status_));
  return "has exited";
}

void ChildProcess::signal(int signal) const {
  if (status_) return;  // reaped: the pid may belong to someone else by now
  if (::kill(-pid_, signal) != 0) ::kill(pid_, signal);
}

asio::awaitable<bool> wait_exit(ChildProcess& child, std::chrono::milliseconds limit) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  const auto until = Clock::now() + limit;
  while (!child.reap()) {
    if (Clock::now() >= until) co_return false;
    timer.expires_after(kPollInterval);
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  co_return true;
}

asio::awaitable<void> stop(std::shared_ptr<ChildProcess> child, std::chrono::milliseconds grace) {
  for (int signal : kStopSignals) {
    if (signal != 0) child->signal(signal);
    if (co_await wait_exit(*child, wait_after(signal, grace))) co_return;
  }
}

void stop_blocking(ChildProcess& child, std::chrono::milliseconds grace) {
  for (int signal : kStopSignals) {
    if (signal != 0) child.signal(signal);
    const auto until = Clock::now() + wait_after(signal, grace);
    while (!child.reap()) {
      if (Clock::now() >= until) break;
      std::this_thread::sleep_for(kPollInterval);
    }
    if (child.reap()) return;
  }
}

}  // namespace redline::mcp
