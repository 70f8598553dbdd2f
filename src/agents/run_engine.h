#pragma once
// Durable agent runs: a server-side tool loop (model call → tool calls → results → model call
// ...) that survives the gateway being killed at any point.
//
// Every step is journaled in the run store before it is acted on, and again when it ends. A run
// is driven by replaying its journal into the conversation so far and doing the one next thing
// it calls for, so resuming after a restart is the same code as taking the next step:
//  - a model call or tool call journaled as completed is never made again;
//  - a tool call journaled as started but never completed has an unknown outcome: it is made
//    again (with the same idempotency key) only when its server declares the tool idempotent;
//    otherwise the run waits, status "requires_action", until someone decides (retry it, take it
//    as done, or fail the run).
// Model calls go through the gateway under the run's API key (resolved by id, without its secret)
// with the run's label as a floor, so red lines, budgets, routing and audit apply to them as to
// any request. Tool calls are classified and checked against the red-line rules (deny,
// require_approval) before they are made, their results are scanned and raise the run's label,
// and each is recorded in the audit chain. Limits (steps, tokens, cost, wall time) stop a run with
// status "stopped". When the prompt nears the model's window, older observations are masked and
// older turns summarised (a "compaction" step).
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "agents/run_spec.h"
#include "store/run_store.h"

namespace redline::gateway {
class Gateway;
struct Caller;
class CallCancellation;
}  // namespace redline::gateway
namespace redline::quota {
class Clock;
}

namespace redline::agents {

class BlockingPool;
class MemoryService;
class RunEvents;
class ToolServers;

// Statuses a run can still change from.
bool run_is_active(std::string_view status);

// The refusal, if any, of running `model` with `grants` for `caller`: what a run would only
// discover later (an unknown model, a model the key may not use, a tool server not configured
// for the tenant) is refused when the run is asked for, naming the member under `param_prefix`.
std::optional<ApiError> check_run_request(gateway::Gateway& gateway, const gateway::Caller& caller,
                                          std::string_view model,
                                          const std::vector<McpToolGrant>& grants,
                                          std::string_view param_prefix);

class RunEngine {
 public:
  RunEngine(gateway::Gateway& gateway, std::shared_ptr<store::RunStore> store, ToolServers& tools,
            MemoryService& memory, BlockingPool& blocking,
            std::shared_ptr<const quota::Clock> clock);
  ~RunEngine();
  RunEngine(const RunEngine&) = delete;
  RunEngine& operator=(const RunEngine&) = delete;

  // Called (on some I/O thread) each time a run ends: completed, failed, cancelled or stopped.
  void on_finished(std::function<void(const store::RunRecord& run)> callback);

  // Journals a new run for `caller` and starts it (it waits, queued, while the tenant has its
  // maximum of runs going). `run_id` may be given (a response's run), else one is made.
  // String arguments are views: g++ 12 destroys a temporary passed by value to a coroutine
  // twice, so callers pass named objects or literals.
  boost::asio::awaitable<store::Result<store::RunRecord>> start(const gateway::Caller& caller,
                                                                RunSpec spec,
                                                                std::string_view graph_id = {},
                                                                std::string_view task_id = {},
                                                                std::string_view run_id = {});

  // Resumes every run the last stop left unfinished. Called once, when the gateway starts.
  void resume_all();

  // Cancels a run and whatever call it is making. False when it had already ended.
  boost::asio::awaitable<store::Result<bool>> cancel(std::string_view tenant, std::string_view id);

  // Decides the run's pending approval (step `seq`); `by` is "admin" or "key:<id>".
  boost::asio::awaitable<store::Status> decide_approval(std::string_view tenant,
                                                        std::string_view id, std::int64_t seq,
                                                        bool approve, std::string_view by,
                                                        std::string_view reason);

  // Resolves a tool call whose outcome is unknown (step `seq`): "retry" makes it again,
  // "assume_done" takes `output` as its result, "fail" ends the run.
  boost::asio::awaitable<store::Status> resolve(std::string_view tenant, std::string_view id,
                                                std::int64_t seq, std::string_view action,
                                                std::string_view output);

  // The run as the API shows it.
  boost::json::object run_json(const store::RunRecord& run) const;
  // A journaled step as the API shows it.
  static boost::json::object step_json(const store::RunStep& step);

  RunEvents& events() { return *events_; }
  store::RunStore& store() { return *store_; }

 private:
  struct Active;
  enum class Advance { kContinue, kPark, kDone };
  struct Replay;

  void kick(const std::string& tenant, const std::string& id);
  boost::asio::awaitable<void> drive(std::string tenant, std::string id);
  boost::asio::awaitable<Advance> advance(const std::string& tenant, const std::string& id);
  boost::asio::awaitable<Advance> setup(const store::RunRecord& run, const RunSpec& spec,
                                        const gateway::Caller& caller);
  boost::asio::awaitable<Advance> call_model(const store::RunRecord& run, const RunSpec& spec,
                                             const Replay& replay, const gateway::Caller& caller);
  boost::asio::awaitable<Advance> call_tool(const store::RunRecord& run, const RunSpec& spec,
                                            Replay& replay, const gateway::Caller& caller);
  boost::asio::awaitable<Advance> compact(const store::RunRecord& run, const RunSpec& spec,
                                          const Replay& replay, const gateway::Caller& caller);
  // Ends the run (completed | failed | stopped | cancelled) unless something ended it first.
  boost::asio::awaitable<Advance> finish(const store::RunRecord& run, Replay& replay,
                                         std::string_view status, std::string_view error_code,
                                         std::string_view error_message);
  boost::asio::awaitable<void> set_status(const store::RunRecord& run, const Replay& replay,
                                          std::string_view status);
  boost::asio::awaitable<store::Result<std::int64_t>> begin_step(const store::RunRecord& run,
                                                                 const store::RunStep& step);
  boost::asio::awaitable<store::Status> end_step(const store::RunRecord& run, std::int64_t seq,
                                                 std::string_view status,
                                                 std::string_view result_json);
  std::int64_t now_ms() const;

  gateway::Gateway& gateway_;
  std::shared_ptr<store::RunStore> store_;
  ToolServers& tools_;
  MemoryService& memory_;
  BlockingPool& blocking_;
  std::shared_ptr<const quota::Clock> clock_;
  std::unique_ptr<RunEvents> events_;
  std::mutex mutex_;
  std::unordered_map<std::string, std::shared_ptr<Active>> active_;  // by run id
  std::unordered_map<std::string, std::size_t> running_by_tenant_;
  std::vector<std::function<void(const store::RunRecord&)>> finished_callbacks_;
};

// Live events of runs, for their SSE streams: each event is a JSON object with "type"
// (run.step.started, run.step.completed, run.status) and "run_id". Subscribers get the events
// published after they subscribed.
class RunEvents {
 public:
  class Subscription;
  // Events of run `id` from now on, delivered to a waiter on `executor` (the subscriber's).
  std::shared_ptr<Subscription> subscribe(const std::string& id,
                                          boost::asio::any_io_executor executor);
  void publish(const std::string& id, boost::json::object event);

 private:
  std::mutex mutex_;
  std::unordered_map<std::string, std::vector<std::weak_ptr<Subscription>>> subscribers_;
};

class RunEvents::Subscription {
 public:
  explicit Subscription(boost::asio::any_io_executor executor);
  ~Subscription();
  // The next event; nullopt when `wait` passes first.
  boost::asio::awaitable<std::optional<boost::json::object>> next(std::chrono::milliseconds wait);
  void push(boost::json::object event);

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace redline::agents
