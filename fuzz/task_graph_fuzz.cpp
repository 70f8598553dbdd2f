// Fuzzes task graph specs: a body that parses must be acyclic (completing every ready task until
// none is left finishes the graph, "completed"), must read back from its JSON, stored or as text,
// to the same JSON, and must finish under any mix of failures, retries and cancellations, with
// every blocked task waiting on a dependency that did not complete. A body that does not parse
// is a 400 with a message.
#include <algorithm>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agents/task_graph.h"

namespace {

using redline::agents::GraphSchedule;
using redline::agents::GraphSpec;
using redline::agents::TaskEvent;
using redline::agents::TaskState;

void check(bool condition) {
  if (!condition) __builtin_trap();
}

void check_round_trip(const GraphSpec& graph) {
  boost::json::value stored = redline::agents::to_json(graph);
  std::optional<GraphSpec> read = redline::agents::graph_from_json(stored);
  check(read.has_value());
  check(boost::json::value(redline::agents::to_json(*read)) == stored);
  boost::system::error_code ec;
  boost::json::value text = boost::json::parse(boost::json::serialize(stored), ec);
  check(!ec);
  std::optional<GraphSpec> from_text = redline::agents::graph_from_json(text);
  check(from_text.has_value() && from_text->tasks.size() == graph.tasks.size());
  for (std::size_t i = 0; i < graph.tasks.size(); ++i) {
    check(from_text->tasks[i].id == graph.tasks[i].id);
    check(from_text->tasks[i].depends_on == graph.tasks[i].depends_on);
  }
}

// Completing every ready task, as many as the graph allows at once, finishes an acyclic graph.
void check_completes(const GraphSpec& graph) {
  GraphSchedule schedule(graph);
  constexpr std::size_t kAnySlots = std::numeric_limits<std::size_t>::max();
  for (std::size_t round = 0; !schedule.finished(); ++round) {
    check(round <= graph.tasks.size());
    std::vector<std::size_t> ready = schedule.ready(kAnySlots);
    check(!ready.empty());  // pending tasks none of which can start: a cycle got through
    check(ready.size() <= graph.max_concurrency);
    check(std::is_sorted(ready.begin(), ready.end()));
    for (std::size_t task : ready) schedule.apply(task, TaskEvent::kStarted);
    for (std::size_t task : ready) schedule.apply(task, TaskEvent::kCompleted);
  }
  check(schedule.outcome() == "completed");
}

// Each running task's fate comes from the input's bytes; the graph must still finish.
void check_finishes(const GraphSpec& graph, std::string_view input) {
  GraphSchedule schedule(graph);
  std::size_t next_byte = 0;
  auto choice = [&] {
    unsigned char byte = input.empty() ? 0 : static_cast<unsigned char>(input[next_byte]);
    next_byte = input.empty() ? 0 : (next_byte + 1) % input.size();
    return byte;
  };
  bool any_cancelled = false;
  // A task runs at most 10 times, and each round ends every running task.
  std::size_t max_rounds = graph.tasks.size() * 10 + 2;
  for (std::size_t round = 0; !schedule.finished(); ++round) {
    check(round <= max_rounds);
    std::size_t free_slots = 1 + choice() % 4;
    std::vector<std::size_t> ready = schedule.ready(free_slots);
    check(ready.size() <= free_slots);
    for (std::size_t task : ready) schedule.apply(task, TaskEvent::kStarted);
    check(schedule.running() <= graph.max_concurrency);
    if (choice() % 16 == 0) {
      for (std::size_t task : schedule.cancel_pending()) {
        check(schedule.state(task) == TaskState::kCancelled);
        any_cancelled = true;
      }
    }
    for (std::size_t task = 0; task < graph.tasks.size(); ++task) {
      if (schedule.state(task) != TaskState::kRunning) continue;
      unsigned char fate = choice() % 8;
      TaskEvent event = fate < 5   ? TaskEvent::kCompleted
                        : fate < 7 ? TaskEvent::kFailed
                                   : TaskEvent::kCancelled;
      any_cancelled = any_cancelled || event == TaskEvent::kCancelled;
      GraphSchedule::Outcome outcome = schedule.apply(task, event);
      check(std::is_sorted(outcome.blocked.begin(), outcome.blocked.end()));
      for (std::size_t blocked : outcome.blocked) {
        check(schedule.state(blocked) == TaskState::kBlocked);
      }
      if (outcome.retry) {
        check(schedule.state(task) == TaskState::kPending);
        check(schedule.attempts(task) < graph.tasks[task].retry.max_attempts);
        check(outcome.retry_after_ms == graph.tasks[task].retry.backoff_ms);
      }
    }
  }
  for (std::size_t task = 0; task < graph.tasks.size(); ++task) {
    if (schedule.state(task) != TaskState::kBlocked) continue;
    const std::vector<std::string>& depends_on = graph.tasks[task].depends_on;
    check(std::any_of(depends_on.begin(), depends_on.end(), [&](const std::string& id) {
      std::optional<std::size_t> dependency = schedule.index_of(id);
      return dependency && schedule.state(*dependency) != TaskState::kCompleted;
    }));
  }
  std::string_view outcome = schedule.outcome();
  check(outcome == "completed" || outcome == "failed" || outcome == "cancelled");
  if (any_cancelled) check(outcome == "cancelled");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  redline::agents::GraphParse parsed = redline::agents::parse_graph_spec(input, {});
  if (!parsed.graph) {
    check(parsed.error.status == 400 && !parsed.error.message.empty());
    return 0;
  }
  const GraphSpec& graph = *parsed.graph;
  check(!graph.tasks.empty());
  check(graph.max_concurrency >= 1);
  check_round_trip(graph);
  check_completes(graph);
  check_finishes(graph, input);
  return 0;
}
