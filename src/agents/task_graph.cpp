#include "agents/task_graph.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <cassert>
#include <cmath>
#include <limits>
#include <unordered_map>
#include <utility>

#include "agents/json_input.h"

namespace redline::agents {

namespace json = boost::json;
using json_input::element_param;
using json_input::JsonRejection;
using json_input::Members;
using json_input::parse_json;
using json_input::reject;
using json_input::reject_missing;
using json_input::reject_type;
using json_input::utf8_length;

namespace {

constexpr std::size_t kMaxTaskIdLength = 64;
constexpr std::int64_t kMaxAttempts = 10;
// A day: the executor adds the backoff to a clock, so it must not be able to overflow one.
constexpr std::int64_t kMaxBackoffMs = std::int64_t{24} * 60 * 60 * 1000;
constexpr std::int64_t kMaxInt64 = std::numeric_limits<std::int64_t>::max();

bool is_task_id(std::string_view id) {
  if (id.empty() || id.size() > kMaxTaskIdLength) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  });
}

// An id as an error message quotes it: a client's arbitrary string, cut short.
std::string quoted_id(std::string_view id) {
  constexpr std::size_t kShown = 80;
  if (id.size() <= kShown) return std::string(id);
  std::size_t cut = kShown;
  while (cut > 0 && (static_cast<unsigned char>(id[cut]) & 0xC0) == 0x80) --cut;  // whole chars
  return fmt::format("{}...", id.substr(0, cut));
}

RunLimits read_limits(const Members& task) {
  RunLimits limits;
  const json::object* object = task.object("limits");
  if (object == nullptr) return limits;
  Members members(*object, task.param("limits"));
  limits.max_steps = members.integer("max_steps", 1);
  limits.max_tokens = members.integer("max_tokens", 1);
  limits.max_cost_usd = members.positive_number("max_cost_usd");
  limits.max_wall_ms = members.integer("max_wall_ms", 1);
  return limits;
}

RetryPolicy read_retry(const Members& task) {
  RetryPolicy retry;
  const json::object* object = task.object("retry");
  if (object == nullptr) return retry;
  Members members(*object, task.param("retry"));
  retry.max_attempts =
      members.integer("max_attempts", 1, kMaxAttempts).value_or(retry.max_attempts);
  retry.backoff_ms = members.integer("backoff_ms", 1, kMaxBackoffMs).value_or(retry.backoff_ms);
  return retry;
}

TaskSpec read_task(const json::value& value, const std::string& path, const GraphLimits& limits) {
  if (!value.is_object()) reject_type(path, "an object", value);
  Members task(value.get_object(), path);
  TaskSpec spec;
  const json::string* id = task.string("id");
  if (id == nullptr) reject_missing(task.param("id"));
  if (!is_task_id(*id)) {
    reject(fmt::format("Invalid '{}': '{}' is not a task id. Expected 1 to {} characters, each a "
                       "letter, a digit, '_', '.' or '-'.",
                       task.param("id"), quoted_id(*id), kMaxTaskIdLength),
           task.param("id"), "invalid_value");
  }
  spec.id = *id;
  spec.instructions = task.required_nonempty_string("instructions");
  if (std::size_t length = utf8_length(spec.instructions); length > limits.max_instructions_chars) {
    reject(fmt::format("Invalid '{}': string too long. Expected a string with maximum length {}, "
                       "but got a string with length {} instead.",
                       task.param("instructions"), limits.max_instructions_chars, length),
           task.param("instructions"), "string_above_max_length");
  }
  spec.model = task.required_nonempty_string("model");
  if (const json::array* tools = task.array("tools")) spec.tools = *tools;
  if (const json::array* depends_on = task.array("depends_on")) {
    std::string param = task.param("depends_on");
    for (std::size_t j = 0; j < depends_on->size(); ++j) {
      const json::value& dependency = (*depends_on)[j];
      if (!dependency.is_string()) reject_type(element_param(param, j), "a string", dependency);
      spec.depends_on.emplace_back(dependency.get_string());
    }
  }
  spec.limits = read_limits(task);
  spec.retry = read_retry(task);
  return spec;
}

// Every dependency names another task of the graph, once.
void check_dependencies(const std::vector<TaskSpec>& tasks,
                        const std::unordered_map<std::string_view, std::size_t>& index) {
  for (std::size_t i = 0; i < tasks.size(); ++i) {
    const TaskSpec& task = tasks[i];
    for (std::size_t j = 0; j < task.depends_on.size(); ++j) {
      const std::string& dependency = task.depends_on[j];
      std::string param = fmt::format("tasks[{}].depends_on[{}]", i, j);
      if (dependency == task.id) {
        reject(fmt::format("task '{}' depends on itself", task.id), param, "invalid_value");
      }
      if (index.find(dependency) == index.end()) {
        reject(
            fmt::format("task '{}' depends on unknown task '{}'", task.id, quoted_id(dependency)),
            param, "invalid_value");
      }
      if (std::find(task.depends_on.begin(), task.depends_on.begin() + j, dependency) !=
          task.depends_on.begin() + j) {
        reject(
            fmt::format("task '{}' lists '{}' in depends_on more than once", task.id, dependency),
            param, "invalid_value");
      }
    }
  }
}

// Depth-first over depends_on, tasks and their dependencies in spec order, so the cycle named is
// the same for the same body. Iterative: a graph's depth is bounded only by its task count.
void check_acyclic(const std::vector<TaskSpec>& tasks,
                   const std::unordered_map<std::string_view, std::size_t>& index) {
  enum class Mark { kUnvisited, kOnPath, kDone };
  std::vector<Mark> marks(tasks.size(), Mark::kUnvisited);
  struct Frame {
    std::size_t task;
    std::size_t next_dependency;
  };
  std::vector<Frame> path;
  for (std::size_t root = 0; root < tasks.size(); ++root) {
    if (marks[root] != Mark::kUnvisited) continue;
    marks[root] = Mark::kOnPath;
    path.push_back({root, 0});
    while (!path.empty()) {
      Frame& frame = path.back();
      const std::vector<std::string>& depends_on = tasks[frame.task].depends_on;
      if (frame.next_dependency == depends_on.size()) {
        marks[frame.task] = Mark::kDone;
        path.pop_back();
        continue;
      }
      std::size_t next = index.at(depends_on[frame.next_dependency++]);
      if (marks[next] == Mark::kUnvisited) {
        marks[next] = Mark::kOnPath;
        path.push_back({next, 0});
      } else if (marks[next] == Mark::kOnPath) {
        // The cycle is the path from `next` to here; it is named from its task first in spec
        // order, each task followed by one it depends on.
        auto start = std::find_if(path.begin(), path.end(),
                                  [next](const Frame& f) { return f.task == next; });
        std::vector<std::size_t> cycle;
        for (auto it = start; it != path.end(); ++it) cycle.push_back(it->task);
        std::rotate(cycle.begin(), std::min_element(cycle.begin(), cycle.end()), cycle.end());
        std::string names;
        for (std::size_t task : cycle) names += fmt::format("{} -> ", tasks[task].id);
        names += tasks[cycle.front()].id;
        reject(fmt::format("tasks form a cycle: {}", names), "tasks", "invalid_value");
      }
    }
  }
}

GraphSpec read_graph(const json::object& body, const GraphLimits& limits) {
  Members members(body, "");
  GraphSpec graph;
  const json::array* tasks = members.array("tasks");
  if (tasks == nullptr) reject_missing("tasks");
  if (tasks->empty()) {
    reject(
        "Invalid 'tasks': empty array. Expected an array with minimum length 1, but got an "
        "empty array instead.",
        "tasks", "empty_array");
  }
  if (tasks->size() > limits.max_tasks) {
    reject(fmt::format("Invalid 'tasks': array too long. Expected an array with maximum length {}, "
                       "but got an array with length {} instead.",
                       limits.max_tasks, tasks->size()),
           "tasks", "array_above_max_length");
  }
  std::unordered_map<std::string_view, std::size_t> index;
  graph.tasks.reserve(tasks->size());
  for (std::size_t i = 0; i < tasks->size(); ++i) {
    std::string path = element_param("tasks", i);
    graph.tasks.push_back(read_task((*tasks)[i], path, limits));
    // Views into the graph's own strings: reserve() above keeps them where they are.
    if (!index.emplace(graph.tasks.back().id, i).second) {
      reject(fmt::format("duplicate task id '{}'", graph.tasks.back().id), path + ".id",
             "invalid_value");
    }
  }
  check_dependencies(graph.tasks, index);
  check_acyclic(graph.tasks, index);

  std::int64_t most = static_cast<std::int64_t>(
      std::min<std::size_t>(limits.max_concurrency, static_cast<std::size_t>(kMaxInt64)));
  std::int64_t fallback = std::min<std::int64_t>(static_cast<std::int64_t>(graph.max_concurrency),
                                                 std::max<std::int64_t>(most, 1));
  graph.max_concurrency =
      static_cast<std::size_t>(members.integer("max_concurrency", 1, most).value_or(fallback));

  if (const json::object* memory = members.object("memory")) {
    Members memory_members(*memory, "memory");
    if (const json::string* user = memory_members.string("user")) graph.memory_user = *user;
    if (const json::string* agent = memory_members.string("agent")) graph.memory_agent = *agent;
  }
  if (const json::object* metadata = members.object("metadata")) graph.metadata = *metadata;
  return graph;
}

GraphParse parse_graph_value(const json::value& body, const GraphLimits& limits) {
  if (!body.is_object()) {
    return {std::nullopt, make_error(400,
                                     "We could not parse the JSON body of your request. The body "
                                     "must be a JSON object (Content-Type: application/json).",
                                     "", "invalid_json")};
  }
  try {
    return {read_graph(body.get_object(), limits), {}};
  } catch (const JsonRejection& invalid) {
    return {std::nullopt, invalid.error};
  } catch (const std::exception&) {  // out of memory: nothing above throws anything else
    return {std::nullopt, make_error(500, "The graph could not be read.")};
  }
}

}  // namespace

json::object to_json(const RunLimits& limits) {
  json::object object;
  if (limits.max_steps) object["max_steps"] = *limits.max_steps;
  if (limits.max_tokens) object["max_tokens"] = *limits.max_tokens;
  if (limits.max_cost_usd) object["max_cost_usd"] = *limits.max_cost_usd;
  if (limits.max_wall_ms) object["max_wall_ms"] = *limits.max_wall_ms;
  return object;
}

RunLimits read_run_limits(const json::value* limits, std::string_view param,
                          std::optional<ApiError>& error) {
  if (limits == nullptr || limits->is_null()) return {};
  // The same reader as a task's limits: a holder object whose one member is "limits".
  const std::string path(
      param.substr(0, param.rfind('.') == std::string_view::npos ? 0 : param.rfind('.')));
  json::object holder{{"limits", *limits}};
  try {
    return read_limits(Members(holder, path));
  } catch (const JsonRejection& invalid) {
    error = invalid.error;
    return {};
  }
}

GraphParse parse_graph_spec(std::string_view body, const GraphLimits& limits) {
  return parse_graph_value(parse_json(body), limits);
}

json::object to_json(const GraphSpec& graph) {
  json::array tasks;
  tasks.reserve(graph.tasks.size());
  for (const TaskSpec& task : graph.tasks) {
    json::array depends_on;
    for (const std::string& dependency : task.depends_on) depends_on.emplace_back(dependency);
    tasks.emplace_back(json::object{
        {"id", task.id},
        {"instructions", task.instructions},
        {"model", task.model},
        {"tools", task.tools},
        {"depends_on", std::move(depends_on)},
        {"limits", to_json(task.limits)},
        {"retry", json::object{{"max_attempts", task.retry.max_attempts},
                               {"backoff_ms", task.retry.backoff_ms}}},
    });
  }
  return {{"tasks", std::move(tasks)},
          {"max_concurrency", graph.max_concurrency},
          {"memory", json::object{{"user", graph.memory_user}, {"agent", graph.memory_agent}}},
          {"metadata", graph.metadata}};
}

std::optional<GraphSpec> graph_from_json(const json::value& json) {
  // A stored spec passed the limits of its day; today's may be tighter, and must not lose it.
  constexpr std::size_t kNoLimit = std::numeric_limits<std::size_t>::max();
  GraphLimits unlimited{kNoLimit, kNoLimit, kNoLimit};
  return parse_graph_value(json, unlimited).graph;
}

std::string_view to_string(TaskState state) {
  switch (state) {
    case TaskState::kPending:
      return "pending";
    case TaskState::kRunning:
      return "running";
    case TaskState::kCompleted:
      return "completed";
    case TaskState::kFailed:
      return "failed";
    case TaskState::kBlocked:
      return "blocked";
    case TaskState::kCancelled:
      return "cancelled";
  }
  return "pending";
}

std::optional<TaskState> task_state_from(std::string_view text) {
  for (TaskState state : {TaskState::kPending, TaskState::kRunning, TaskState::kCompleted,
                          TaskState::kFailed, TaskState::kBlocked, TaskState::kCancelled}) {
    if (to_string(state) == text) return state;
  }
  return std::nullopt;
}

// ---- GraphSchedule

GraphSchedule::GraphSchedule(const GraphSpec& graph)
    : GraphSchedule(graph, std::vector<TaskState>(graph.tasks.size(), TaskState::kPending),
                    std::vector<std::int64_t>(graph.tasks.size(), 0)) {}

GraphSchedule::GraphSchedule(const GraphSpec& graph, std::vector<TaskState> states,
                             std::vector<std::int64_t> attempts)
    : max_concurrency_(std::max<std::size_t>(graph.max_concurrency, 1)),
      states_(std::move(states)),
      attempts_(std::move(attempts)),
      dependents_(graph.tasks.size()),
      dependencies_(graph.tasks.size()) {
  std::size_t count = graph.tasks.size();
  // Stored rows that do not cover the graph read as never started.
  states_.resize(count, TaskState::kPending);
  attempts_.resize(count, 0);
  retry_.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    retry_.push_back(graph.tasks[i].retry);
    attempts_[i] = std::max<std::int64_t>(attempts_[i], 0);
    index_.emplace(graph.tasks[i].id, i);
  }
  for (std::size_t i = 0; i < count; ++i) {
    for (const std::string& dependency : graph.tasks[i].depends_on) {
      auto found = index_.find(dependency);
      if (found == index_.end() || found->second == i) continue;  // not from a validated spec
      std::vector<std::size_t>& of = dependencies_[i];
      if (std::find(of.begin(), of.end(), found->second) != of.end()) continue;
      of.push_back(found->second);
      dependents_[found->second].push_back(i);
    }
  }
  // A restart between storing a task's end and storing what it blocked leaves pending tasks that
  // could never start; finish the job so the graph can still finish.
  for (std::size_t i = 0; i < count; ++i) {
    if (states_[i] == TaskState::kFailed || states_[i] == TaskState::kBlocked ||
        states_[i] == TaskState::kCancelled) {
      block_dependents(i);
    }
  }
}

std::vector<std::size_t> GraphSchedule::block_dependents(std::size_t index) {
  std::vector<std::size_t> blocked;
  std::vector<bool> seen(states_.size(), false);
  std::vector<std::size_t> stack = dependents_[index];
  while (!stack.empty()) {
    std::size_t task = stack.back();
    stack.pop_back();
    if (seen[task]) continue;
    seen[task] = true;
    if (states_[task] == TaskState::kPending) {
      states_[task] = TaskState::kBlocked;
      blocked.push_back(task);
    }
    stack.insert(stack.end(), dependents_[task].begin(), dependents_[task].end());
  }
  std::sort(blocked.begin(), blocked.end());
  return blocked;
}

std::vector<std::size_t> GraphSchedule::ready(std::size_t free_slots) const {
  std::size_t busy = running();
  std::size_t room = busy < max_concurrency_ ? max_concurrency_ - busy : 0;
  room = std::min(room, free_slots);
  std::vector<std::size_t> tasks;
  for (std::size_t i = 0; i < states_.size() && tasks.size() < room; ++i) {
    if (states_[i] != TaskState::kPending) continue;
    bool unblocked = std::all_of(dependencies_[i].begin(), dependencies_[i].end(),
                                 [&](auto d) { return states_[d] == TaskState::kCompleted; });
    if (unblocked) tasks.push_back(i);
  }
  return tasks;
}

GraphSchedule::Outcome GraphSchedule::apply(std::size_t index, TaskEvent event) {
  Outcome outcome;
  if (index >= states_.size()) return outcome;
  TaskState& state = states_[index];
  switch (event) {
    case TaskEvent::kStarted:
      if (state != TaskState::kPending) break;
      state = TaskState::kRunning;
      ++attempts_[index];
      break;
    case TaskEvent::kCompleted:
      if (state == TaskState::kRunning) state = TaskState::kCompleted;
      break;
    case TaskEvent::kFailed:
      if (state != TaskState::kRunning) break;
      if (attempts_[index] < retry_[index].max_attempts) {
        state = TaskState::kPending;
        outcome.retry = true;
        outcome.retry_after_ms = retry_[index].backoff_ms;
      } else {
        state = TaskState::kFailed;
        outcome.blocked = block_dependents(index);
      }
      break;
    case TaskEvent::kCancelled:
      if (state != TaskState::kPending && state != TaskState::kRunning) break;
      state = TaskState::kCancelled;
      outcome.blocked = block_dependents(index);
      break;
  }
  return outcome;
}

std::vector<std::size_t> GraphSchedule::cancel_pending() {
  std::vector<std::size_t> cancelled;
  for (std::size_t i = 0; i < states_.size(); ++i) {
    if (states_[i] != TaskState::kPending) continue;
    states_[i] = TaskState::kCancelled;
    cancelled.push_back(i);
  }
  return cancelled;
}

bool GraphSchedule::finished() const {
  return std::none_of(states_.begin(), states_.end(), [](TaskState state) {
    return state == TaskState::kPending || state == TaskState::kRunning;
  });
}

std::string_view GraphSchedule::outcome() const {
  if (!finished()) return "";
  if (std::all_of(states_.begin(), states_.end(),
                  [](TaskState state) { return state == TaskState::kCompleted; })) {
    return "completed";
  }
  if (std::any_of(states_.begin(), states_.end(),
                  [](TaskState state) { return state == TaskState::kCancelled; })) {
    return "cancelled";
  }
  return "failed";
}

std::size_t GraphSchedule::running() const {
  return static_cast<std::size_t>(std::count(states_.begin(), states_.end(), TaskState::kRunning));
}

std::optional<std::size_t> GraphSchedule::index_of(std::string_view task_id) const {
  auto found = index_.find(task_id);
  if (found == index_.end()) return std::nullopt;
  return found->second;
}

}  // namespace redline::agents
