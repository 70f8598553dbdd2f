#include "mcp/stdio_transport.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <deque>
#include <optional>
#include <unordered_map>
#include <utility>

namespace redline::mcp {

namespace asio = boost::asio;
using Socket = asio::local::stream_protocol::socket;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

namespace {

// A process that closed its stdout has usually exited, or is about to: wait this long for its
// exit status before reporting the crash.
constexpr std::chrono::milliseconds kExitStatusWait{200};
constexpr std::chrono::milliseconds kStderrEndWait{100};
// stderr lines are logged up to this length; the crash report quotes this much of the end.
constexpr std::size_t kMaxStderrLine = 1024;
constexpr std::size_t kStderrTailBytes = 1024;

// One run of the server process.
struct Process {
  Process(const asio::any_io_executor& executor, std::shared_ptr<ChildProcess> process,
          std::uint64_t epoch)
      : child(std::move(process)),
        in(executor),
        out(executor),
        err(executor),
        stderr_end(executor, std::chrono::steady_clock::time_point::max()),
        epoch(epoch) {}

  // Takes over our ends of the child's stdio.
  Result<void> adopt(const ChildProcess::Pipes& pipes) {
    boost::system::error_code ec;
    in.assign(asio::local::stream_protocol(), pipes.in, ec);
    if (!ec) out.assign(asio::local::stream_protocol(), pipes.out, ec);
    if (!ec) err.assign(asio::local::stream_protocol(), pipes.err, ec);
    if (!ec) return {};
    McpError error{McpErrorKind::kTransport, "cannot watch the server's pipes: " + ec.message()};
    for (Socket* socket : {&in, &out, &err}) {
      if (socket->is_open()) socket->release(ec);
    }
    for (int fd : {pipes.in, pipes.out, pipes.err}) ::close(fd);
    return error;
  }

  void close_sockets() {
    boost::system::error_code ignored;
    in.close(ignored);
    out.close(ignored);
    err.close(ignored);
  }

  std::shared_ptr<ChildProcess> child;
  Socket in;
  Socket out;
  Socket err;
  asio::steady_timer stderr_end;  // cancelled when stderr reaches its end
  bool stderr_done = false;
  std::uint64_t epoch;
  bool alive = true;
  std::deque<std::string> outbox;  // lines waiting to be written, in order
  bool writing = false;
  std::string stderr_tail;  // the last kStderrTailBytes of stderr
};

// A request waiting for its answer. Lives in the waiting coroutine's frame.
struct Pending {
  asio::steady_timer* wake;
  std::uint64_t epoch;
  std::optional<Result<JsonRpcMessage>> outcome;
};

// Shared with the background coroutines (reader, writer, stderr drain, reaper), so they may
// outlive the transport object.
struct State {
  State(asio::any_io_executor e, StdioOptions o) : executor(std::move(e)), options(std::move(o)) {}

  asio::any_io_executor executor;
  StdioOptions options;
  std::shared_ptr<Process> process;  // the current run; null before the first
  std::uint64_t epoch = 0;
  std::unordered_map<RequestId, Pending*> pending;
  bool closed = false;

  // Completes the pending requests of the runs up to `up_to_epoch` with `error`.
  void fail_pending(std::uint64_t up_to_epoch, const McpError& error) {
    for (auto it = pending.begin(); it != pending.end();) {
      if (it->second->epoch > up_to_epoch) {
        ++it;
        continue;
      }
      it->second->outcome = error;
      it->second->wake->cancel();
      it = pending.erase(it);
    }
  }
};

asio::awaitable<void> write_loop(std::shared_ptr<State> state, std::shared_ptr<Process> process) {
  while (!process->outbox.empty()) {
    auto [ec, written] =
        co_await asio::async_write(process->in, asio::buffer(process->outbox.front()), kNoThrow);
    if (ec) {
      // The child closed its stdin or exited; ending the read side reports it (end_process).
      process->outbox.clear();
      boost::system::error_code ignored;
      process->out.close(ignored);
      break;
    }
    process->outbox.pop_front();
  }
  process->writing = false;
}

void send_line(const std::shared_ptr<State>& state, const std::shared_ptr<Process>& process,
               std::string line) {
  line.push_back('\n');
  process->outbox.push_back(std::move(line));
  if (process->writing) return;
  process->writing = true;
  asio::co_spawn(state->executor, write_loop(state, process), asio::detached);
}

// The run is over: the process exited, a pipe broke or it broke the protocol (`cause`). Fails
// what was pending on it and makes sure the process is gone and reaped.
asio::awaitable<void> end_process(std::shared_ptr<State> state, std::shared_ptr<Process> process,
                                  std::optional<McpError> cause) {
  if (!process->alive) co_return;
  process->alive = false;
  boost::system::error_code ignored;
  process->in.close(ignored);  // lets it leave on its own
  process->out.close(ignored);
  if (cause) {
    state->fail_pending(process->epoch, *cause);
    co_await stop(process->child, kStopGrace);
    co_return;
  }
  bool exited = co_await wait_exit(*process->child, kExitStatusWait);
  // Its last words on stderr (a stack trace) were written before it exited: let them arrive.
  if (exited && !process->stderr_done) {
    process->stderr_end.expires_after(kStderrEndWait);
    co_await process->stderr_end.async_wait(kNoThrow);
  }
  std::string message = "the server process " +
                        (exited ? process->child->describe() : std::string("closed its stdout"));
  std::string_view tail = process->stderr_tail;
  while (tail.ends_with('\n')) tail.remove_suffix(1);
  if (!tail.empty()) message += " (stderr: " + std::string(tail) + ")";
  state->fail_pending(process->epoch, McpError{McpErrorKind::kCrashed, std::move(message)});
  if (!exited) co_await stop(process->child, kStopGrace);
}

void dispatch(const std::shared_ptr<State>& state, const std::shared_ptr<Process>& process,
              std::string_view line) {
  auto parsed = parse_json_rpc(line);
  if (!parsed) {
    spdlog::debug("{}: ignoring stdout line: {}", state->options.label, parsed.error().message);
    return;
  }
  JsonRpcMessage& message = parsed.value();
  switch (message.kind) {
    case JsonRpcMessage::Kind::kResult:
    case JsonRpcMessage::Kind::kError: {
      auto id = message.request_id();
      auto it = id ? state->pending.find(*id) : state->pending.end();
      // Otherwise the answer to a request that already timed out, or an id-less error.
      if (it == state->pending.end() || it->second->epoch != process->epoch) {
        spdlog::debug("{}: ignoring an answer no request waits for", state->options.label);
        return;
      }
      it->second->outcome = std::move(message);
      it->second->wake->cancel();
      state->pending.erase(it);
      return;
    }
    case JsonRpcMessage::Kind::kRequest:
      // The client offers no capabilities, so a ping is the one request a server may send.
      send_line(state, process,
                message.method == "ping"
                    ? json_rpc_result(message.id, {})
                    : json_rpc_error(message.id, kMethodNotFound,
                                     "this client does not offer " + message.method));
      return;
    case JsonRpcMessage::Kind::kNotification:
      return;  // progress, logging, list changes: nothing the client acts on
  }
}

asio::awaitable<void> read_loop(std::shared_ptr<State> state, std::shared_ptr<Process> process) {
  std::string buffer;
  const std::size_t limit = state->options.max_message_bytes + 1;  // + the newline
  for (;;) {
    auto [ec, length] = co_await asio::async_read_until(
        process->out, asio::dynamic_buffer(buffer, limit), '\n', kNoThrow);
    if (ec) {
      // (A named cause: g++ 12 destroys temporaries made in a co_await operand twice.)
      std::optional<McpError> cause;
      if (ec == asio::error::not_found) {
        cause = McpError{McpErrorKind::kProtocol,
                         "the server sent a message longer than " +
                             std::to_string(state->options.max_message_bytes) + " bytes"};
      }
      co_await end_process(state, process, std::move(cause));
      co_return;
    }
    std::string_view line(buffer.data(), length - 1);
    if (line.ends_with('\r')) line.remove_suffix(1);
    if (line.find_first_not_of(" \t") != std::string_view::npos) dispatch(state, process, line);
    buffer.erase(0, length);
  }
}

asio::awaitable<void> drain_stderr(std::shared_ptr<State> state, std::shared_ptr<Process> process) {
  std::string line;
  char chunk[4096];
  auto flush = [&] {
    if (line.empty()) return;
    spdlog::debug("{} stderr: {}", state->options.label, line);
    process->stderr_tail += line + "\n";
    if (process->stderr_tail.size() > kStderrTailBytes) {
      process->stderr_tail.erase(0, process->stderr_tail.size() - kStderrTailBytes);
    }
    line.clear();
  };
  for (;;) {
    auto [ec, n] = co_await process->err.async_read_some(asio::buffer(chunk), kNoThrow);
    if (ec) break;
    for (std::size_t i = 0; i < n; ++i) {
      if (chunk[i] == '\n') {
        flush();
      } else if (line.size() < kMaxStderrLine) {
        line.push_back(chunk[i]);
      }
    }
  }
  flush();
  process->stderr_done = true;
  process->stderr_end.cancel();
}

class StdioTransport final : public Transport {
 public:
  StdioTransport(asio::any_io_executor executor, StdioOptions options)
      : state_(std::make_shared<State>(std::move(executor), std::move(options))) {}

  // Nothing may run on the executor concurrently (see McpClient), so the run can be ended
  // here, blocking: no process outlives the transport.
  ~StdioTransport() override {
    state_->closed = true;
    if (auto process = state_->process; process && process->alive) {
      process->alive = false;
      process->close_sockets();
      stop_blocking(*process->child, kStopGrace);
    }
  }

  Result<void> open() override {
    if (state_->closed) return McpError{McpErrorKind::kTransport, "the client is shut down"};
    if (is_open()) return {};
    auto started = ChildProcess::spawn(state_->options.spec);
    if (!started) return std::move(started).error();
    auto process = std::make_shared<Process>(state_->executor, started->process, state_->epoch + 1);
    if (auto adopted = process->adopt(started->pipes); !adopted) return std::move(adopted).error();
    ++state_->epoch;
    state_->process = process;
    asio::co_spawn(state_->executor, read_loop(state_, process), asio::detached);
    asio::co_spawn(state_->executor, drain_stderr(state_, process), asio::detached);
    spdlog::debug("{}: started process {}", state_->options.label, process->child->pid());
    return {};
  }

  bool is_open() const override { return state_->process && state_->process->alive; }
  std::uint64_t epoch() const override { return state_->epoch; }
  bool per_request_stream() const override { return false; }

  asio::awaitable<Result<JsonRpcMessage>> request(RequestId id, OutgoingMessage message,
                                                  Deadline deadline) override {
    std::shared_ptr<State> state = state_;  // outlives the map entry the guard removes
    std::shared_ptr<Process> process = state->process;
    if (!process || !process->alive) {
      co_return McpError{McpErrorKind::kCrashed, "the server process is not running"};
    }
    asio::steady_timer wake(state->executor, deadline);
    Pending pending{&wake, process->epoch, std::nullopt};
    state->pending[id] = &pending;
    struct Unregister {
      State& state;
      RequestId id;
      Pending* pending;
      ~Unregister() {
        auto it = state.pending.find(id);
        if (it != state.pending.end() && it->second == pending) state.pending.erase(it);
      }
    } unregister{*state, id, &pending};
    send_line(state, process, std::move(message.body));
    co_await wake.async_wait(kNoThrow);
    if (pending.outcome) co_return std::move(*pending.outcome);
    co_return McpError{McpErrorKind::kTimeout, "no answer in time"};
  }

  asio::awaitable<Result<void>> notify(OutgoingMessage message) override {
    if (!is_open()) co_return McpError{McpErrorKind::kCrashed, "the server process is not running"};
    send_line(state_, state_->process, std::move(message.body));
    co_return Result<void>();
  }

  asio::awaitable<void> close() override {
    std::shared_ptr<State> state = state_;
    state->closed = true;
    state->fail_pending(state->epoch,
                        McpError{McpErrorKind::kTransport, "the client is shut down"});
    std::shared_ptr<Process> process = state->process;
    if (!process || !process->alive) co_return;
    process->alive = false;
    boost::system::error_code ignored;
    process->in.close(ignored);
    co_await stop(process->child, kStopGrace);
    process->close_sockets();
  }

 private:
  std::shared_ptr<State> state_;
};

}  // namespace

std::unique_ptr<Transport> make_stdio_transport(asio::any_io_executor executor,
                                                StdioOptions options) {
  return std::make_unique<StdioTransport>(std::move(executor), std::move(options));
}

}  // namespace redline::mcp
