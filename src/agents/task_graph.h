#pragma once
// Task graphs as plain values: the validated spec of POST /v1/agent/graphs, and the scheduling
// rules that decide which tasks may start, what a failure does to the tasks that depend on it,
// and when a graph is done. No I/O and no clocks: the graph executor feeds events in and acts on
// what comes out, so these rules are tested on their own and survive restarts by construction
// (the state is rebuilt from the stored task states).
//
// Body of POST /v1/agent/graphs:
//   {"tasks": [{"id": "fetch", "instructions": "...", "model": "chat",
//               "tools": [...], "depends_on": ["plan"],
//               "limits": {"max_steps": 20, "max_tokens": 50000, "max_cost_usd": 0.5,
//                          "max_wall_ms": 600000},
//               "retry": {"max_attempts": 2, "backoff_ms": 1000}}, ...],
//    "max_concurrency": 4, "memory": {"user": "...", "agent": "..."}, "metadata": {...}}
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/openai_error.h"

namespace redline::agents {

// Limits of one run; nullopt = none (the engine's defaults apply).
struct RunLimits {
  std::optional<std::int64_t> max_steps;   // model calls + tool calls
  std::optional<std::int64_t> max_tokens;  // input + output tokens of every model call
  std::optional<double> max_cost_usd;
  std::optional<std::int64_t> max_wall_ms;  // from the run's start, restarts included
};

// Reads a "limits" object (a task's or a run's) found at `param` ("limits", "tasks[2].limits");
// null or absent = no limits. A value out of range sets `error` (a 400 naming the member).
RunLimits read_run_limits(const boost::json::value* limits, std::string_view param,
                          std::optional<ApiError>& error);
// The limits that are set, as JSON.
boost::json::object to_json(const RunLimits& limits);

struct RetryPolicy {
  std::int64_t max_attempts = 1;  // 1 = no retry
  std::int64_t backoff_ms = 1000;
};

struct TaskSpec {
  std::string id;  // [A-Za-z0-9_.-]{1,64}
  std::string instructions;
  std::string model;
  boost::json::array tools;  // as given; the run engine validates them
  std::vector<std::string> depends_on;
  RunLimits limits;
  RetryPolicy retry;
};

struct GraphSpec {
  std::vector<TaskSpec> tasks;  // in the order given
  std::size_t max_concurrency = 4;
  std::string memory_user;   // the shared memory namespace's user ("" = tenant-wide)
  std::string memory_agent;  // and agent ("" = the graph's id)
  boost::json::object metadata;
};

struct GraphLimits {
  std::size_t max_tasks = 200;
  std::size_t max_concurrency = 32;  // the most a graph may ask for
  std::size_t max_instructions_chars = 32000;
};

struct GraphParse {
  std::optional<GraphSpec> graph;
  ApiError error;  // a 400 when !graph
};

// Parses and validates a graph. 400s (param names the member): not a JSON object; "tasks" missing,
// empty or over max_tasks; a task without id, instructions or model, or with an id that is not
// [A-Za-z0-9_.-]{1,64}; two tasks with one id ("duplicate task id 'x'"); depends_on naming an
// unknown task ("task 'b' depends on unknown task 'x'") or itself; a dependency cycle, named in
// order ("tasks form a cycle: a -> b -> c -> a", param "tasks": each task followed by one it
// depends on, starting from the cycle's task first in spec order; the first cycle a depth-first
// walk in spec order meets, so the same body always names the same cycle); limits or retry values
// out of range (positive integers; max_cost_usd a positive number; max_attempts 1..10; backoff_ms
// at most a day, as the executor adds it to a clock); max_concurrency outside
// 1..limits.max_concurrency (absent: 4, or limits.max_concurrency when that is lower). A depends_on
// that lists one task twice is a 400 too. Unknown members are ignored; null ones count as absent.
GraphParse parse_graph_spec(std::string_view body, const GraphLimits& limits);

// The spec back as JSON (what GET returns under "spec", and what is stored).
boost::json::object to_json(const GraphSpec& graph);
// Reads a stored spec; nullopt when it is not one (it is validated as parse_graph_spec does, but
// with no GraphLimits: a spec stored under looser limits still reads back).
std::optional<GraphSpec> graph_from_json(const boost::json::value& json);

enum class TaskState { kPending, kRunning, kCompleted, kFailed, kBlocked, kCancelled };
std::string_view to_string(TaskState state);  // "pending", "running", ...
std::optional<TaskState> task_state_from(std::string_view text);

// What happened to a task, as the executor reports it.
enum class TaskEvent { kStarted, kCompleted, kFailed, kCancelled };

// The scheduling state of one graph: every task's state and attempts, and the rules.
class GraphSchedule {
 public:
  // Fresh: every task pending, no attempts.
  explicit GraphSchedule(const GraphSpec& graph);
  // Rebuilt from stored states (after a restart): `states` and `attempts` parallel graph.tasks
  // (missing rows read as pending with no attempts). Pending tasks that depend, directly or not, on
  // a failed, blocked or cancelled task become blocked, as apply() would have left them had the
  // restart not come between storing a task's end and storing what it blocked.
  // The schedule keeps what it needs of `graph`: it need not outlive the schedule.
  GraphSchedule(const GraphSpec& graph, std::vector<TaskState> states,
                std::vector<std::int64_t> attempts);

  // Tasks that may start now, in spec order: pending, every dependency completed, at most
  // max_concurrency running in all (counting those running already), and at most `free_slots`
  // (a tenant-wide limit the executor tracks).
  std::vector<std::size_t> ready(std::size_t free_slots) const;

  // Applies an event to task `index` and returns what the executor must do about it:
  //  - kStarted: the task is running (attempts + 1).
  //  - kCompleted: completed.
  //  - kFailed: pending again when attempts < max_attempts (retry = true, after backoff_ms;
  //    there is no clock here, so ready() lists it at once and holding it back until then is the
  //    executor's job), else failed, and every task that depends on it, directly or not, becomes
  //    blocked.
  //  - kCancelled: cancelled, and every pending task that depends on it, directly or not, becomes
  //    blocked (it can never start, and the graph must still finish).
  // An event that does not fit the task's state changes nothing and returns an empty Outcome:
  // kStarted applies to pending tasks, kCompleted and kFailed to running ones, kCancelled to
  // pending or running ones (a duplicate report, a completion after a cancellation). So does an
  // index out of range.
  struct Outcome {
    bool retry = false;
    std::int64_t retry_after_ms = 0;
    std::vector<std::size_t> blocked;  // tasks this event blocked, in spec order
  };
  Outcome apply(std::size_t index, TaskEvent event);

  // Cancels the graph: every pending task becomes cancelled (running ones are the executor's to
  // stop; it reports kCancelled for each). Returns the tasks it cancelled.
  std::vector<std::size_t> cancel_pending();

  // Done when no task is pending or running.
  bool finished() const;
  // Once finished: "completed" when every task completed, "cancelled" when any was cancelled,
  // else "failed". "" while not finished.
  std::string_view outcome() const;

  TaskState state(std::size_t index) const { return states_[index]; }
  std::int64_t attempts(std::size_t index) const { return attempts_[index]; }
  std::size_t running() const;
  // Index of a task id; nullopt when unknown.
  std::optional<std::size_t> index_of(std::string_view task_id) const;

 private:
  // Blocks the pending tasks that depend on `index`, directly or not; returns them in spec order.
  std::vector<std::size_t> block_dependents(std::size_t index);

  std::size_t max_concurrency_;
  std::vector<RetryPolicy> retry_;                         // per task
  std::map<std::string, std::size_t, std::less<>> index_;  // task id -> index
  std::vector<TaskState> states_;
  std::vector<std::int64_t> attempts_;
  std::vector<std::vector<std::size_t>> dependents_;    // index -> tasks that depend on it
  std::vector<std::vector<std::size_t>> dependencies_;  // index -> tasks it depends on
};

}  // namespace redline::agents
