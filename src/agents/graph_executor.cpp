#include "agents/graph_executor.h"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <map>

#include "agents/blocking_pool.h"
#include "agents/json_answer.h"
#include "agents/memory_service.h"
#include "agents/run_engine.h"
#include "agents/run_spec.h"
#include "common/ids.h"
#include "gateway/caller.h"
#include "gateway/gateway.h"
#include "net/io_pool.h"
#include "policy/red_line_policy.h"

namespace redline::agents {

namespace asio = boost::asio;
namespace json = boost::json;

namespace {

// A dependency's result longer than this is cut in the middle before a dependent reads it.
constexpr std::size_t kMaxDependencyChars = 4000;

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string output_text_of(const store::GraphTask& task) {
  const json::value output = parse_or_null(task.output_json);
  if (!output.is_object()) return "";
  const json::value* text = output.as_object().if_contains("output_text");
  return text && text->is_string() ? std::string(text->as_string()) : std::string();
}

// When a task waiting to be retried may start (unix ms); 0 = now.
std::int64_t retry_at(const store::GraphTask& task) {
  const json::value output = parse_or_null(task.output_json);
  const json::value* at = output.is_object() ? output.as_object().if_contains("retry_at") : nullptr;
  return at != nullptr && at->is_int64() ? at->as_int64() : 0;
}

// Keeps the start and the end of a long result, which is where results state what they found.
std::string shortened(std::string text) {
  if (text.size() <= kMaxDependencyChars) return text;
  const std::size_t keep = kMaxDependencyChars / 2;
  const std::size_t omitted = text.size() - 2 * keep;
  return text.substr(0, keep) + "\n[... " + std::to_string(omitted) + " characters omitted ...]\n" +
         text.substr(text.size() - keep);
}

// What a task is given: its instructions, then what the tasks it depends on produced.
std::string task_input(const TaskSpec& task, const std::vector<store::GraphTask>& stored) {
  std::string input = task.instructions;
  if (task.depends_on.empty()) return input;
  input += "\n\nResults of the tasks this one depends on:";
  for (const std::string& dependency : task.depends_on) {
    for (const store::GraphTask& done : stored) {
      if (done.task_id != dependency) continue;
      input += "\n\n### " + dependency + "\n" + shortened(output_text_of(done));
    }
  }
  return input;
}

// The schedule as the stored task states leave it.
GraphSchedule schedule_from(const GraphSpec& spec, const std::vector<store::GraphTask>& tasks) {
  std::vector<TaskState> states;
  std::vector<std::int64_t> attempts;
  for (const store::GraphTask& task : tasks) {
    states.push_back(task_state_from(task.status).value_or(TaskState::kPending));
    attempts.push_back(task.attempts);
  }
  return GraphSchedule(spec, states, attempts);
}

}  // namespace

GraphExecutor::GraphExecutor(gateway::Gateway& gateway, RunEngine& runs,
                             std::shared_ptr<store::RunStore> store, MemoryService& memory,
                             BlockingPool& blocking)
    : gateway_(gateway),
      runs_(runs),
      store_(std::move(store)),
      memory_(memory),
      blocking_(blocking) {
  runs_.on_finished([this](const store::RunRecord& run) {
    if (run.graph_id.empty()) return;
    asio::co_spawn(gateway_.io().next(), on_run_finished(run), asio::detached);
  });
}

void GraphExecutor::publish(const std::string& graph_id, json::object event) {
  event["graph_id"] = graph_id;
  runs_.events().publish(graph_id, std::move(event));
}

asio::awaitable<store::Result<store::GraphRecord>> GraphExecutor::start(
    const gateway::Caller& caller, GraphSpec graph) {
  store::GraphRecord record;
  record.id = new_object_id("graph");
  record.tenant = caller.tenant;
  record.key_id = caller.key_id;
  record.status = "running";
  if (graph.memory_agent.empty()) graph.memory_agent = record.id;
  record.spec_json = json::serialize(to_json(graph));
  record.created_at = record.updated_at = now_ms();
  std::vector<store::GraphTask> tasks;
  for (const TaskSpec& task : graph.tasks) {
    store::GraphTask stored;
    stored.graph_id = record.id;
    stored.task_id = task.id;
    stored.status = "pending";
    stored.updated_at = record.created_at;
    tasks.push_back(std::move(stored));
  }
  auto inserted = co_await blocking_.run([&] { return store_->insert_graph(record, tasks); });
  if (!inserted) co_return store::Status::error(inserted.message);
  asio::co_spawn(gateway_.io().next(), schedule(record.tenant, record.id), asio::detached);
  co_return record;
}

void GraphExecutor::resume_all() {
  auto graphs = store_->running_graphs();
  if (!graphs) {
    spdlog::error("agents: cannot list graphs to resume: {}", graphs.error());
    return;
  }
  for (const store::GraphRecord& graph : *graphs) {
    asio::co_spawn(gateway_.io().next(), schedule(graph.tenant, graph.id), asio::detached);
  }
}

asio::awaitable<void> GraphExecutor::schedule_after(std::string tenant, std::string id,
                                                    std::int64_t delay_ms) {
  asio::steady_timer timer(co_await asio::this_coro::executor, std::chrono::milliseconds(delay_ms));
  co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
  co_await schedule(std::move(tenant), std::move(id));
}

asio::awaitable<void> GraphExecutor::on_run_finished(store::RunRecord run) {
  TurnLease lease = co_await graph_turns_.acquire(run.graph_id);
  struct Loaded {
    std::optional<store::GraphRecord> graph;
    std::vector<store::GraphTask> tasks;
  };
  Loaded loaded = co_await blocking_.run([&] {
    Loaded out;
    auto graph = store_->find_graph(run.tenant, run.graph_id);
    if (graph && *graph) out.graph = std::move(**graph);
    auto tasks = store_->graph_tasks(run.tenant, run.graph_id);
    if (tasks) out.tasks = std::move(*tasks);
    return out;
  });
  if (!loaded.graph || loaded.graph->status != "running") co_return;
  auto spec = graph_from_json(parse_or_null(loaded.graph->spec_json));
  if (!spec) co_return;
  GraphSchedule schedule_state = schedule_from(*spec, loaded.tasks);
  auto index = schedule_state.index_of(run.task_id);
  if (!index || loaded.tasks[*index].run_id != run.id ||
      schedule_state.state(*index) != TaskState::kRunning) {
    co_return;  // an earlier attempt's run, or handled already
  }
  store::GraphTask& task = loaded.tasks[*index];
  const json::value state = parse_or_null(run.state_json);
  const json::object empty;
  const json::object& run_state = state.is_object() ? state.as_object() : empty;
  std::string output_text;
  if (const auto* text = run_state.if_contains("output_text"); text && text->is_string()) {
    output_text = std::string(text->as_string());
  }
  std::vector<store::GraphTask> changed;
  std::int64_t retry_after = -1;
  if (run.status == "completed") {
    schedule_state.apply(*index, TaskEvent::kCompleted);
    task.status = "completed";
    task.output_json = json::serialize(json::object{{"output_text", output_text}});
    changed.push_back(task);
    // What the task learned goes to the graph's shared memory.
    std::string label;
    if (const auto* text = run_state.if_contains("label"); text && text->is_string()) {
      label = std::string(text->as_string());
    }
    const std::string subject = "task:" + task.task_id;
    const std::string source = "graph:" + run.graph_id;
    const store::MemoryNamespace scope{spec->memory_user, spec->memory_agent};
    co_await memory_.remember(run.tenant, scope, output_text, subject, source, label);
  } else {
    const TaskEvent event = run.status == "cancelled" ? TaskEvent::kCancelled : TaskEvent::kFailed;
    const GraphSchedule::Outcome outcome = schedule_state.apply(*index, event);
    task.status = std::string(to_string(schedule_state.state(*index)));
    if (outcome.retry) {
      // Held back until its backoff has passed, whatever else schedules the graph meanwhile.
      retry_after = outcome.retry_after_ms;
      task.output_json =
          json::serialize(json::object{{"retry_at", now_ms() + outcome.retry_after_ms}});
    }
    changed.push_back(task);
    for (std::size_t blocked : outcome.blocked) {
      loaded.tasks[blocked].status = "blocked";
      changed.push_back(loaded.tasks[blocked]);
    }
  }
  const std::int64_t at = now_ms();
  co_await blocking_.run([&] {
    for (store::GraphTask& update : changed) {
      update.updated_at = at;
      if (auto status = store_->update_graph_task(run.tenant, update); !status) {
        spdlog::error("agents: cannot update graph {}: {}", run.graph_id, status.message);
      }
    }
    return 0;
  });
  for (const store::GraphTask& update : changed) {
    publish(run.graph_id, json::object{{"type", "graph.task"},
                                       {"task_id", update.task_id},
                                       {"status", update.status},
                                       {"run_id", update.run_id}});
  }
  lease.release();
  if (retry_after > 0) {
    asio::co_spawn(co_await asio::this_coro::executor,
                   schedule_after(run.tenant, run.graph_id, retry_after), asio::detached);
  } else {
    co_await schedule(run.tenant, run.graph_id);
  }
}

asio::awaitable<void> GraphExecutor::schedule(std::string tenant, std::string id) {
  TurnLease lease = co_await graph_turns_.acquire(id);
  struct Loaded {
    std::optional<store::GraphRecord> graph;
    std::vector<store::GraphTask> tasks;
    std::map<std::string, std::string> run_status;  // run id → status, of running tasks
  };
  Loaded loaded = co_await blocking_.run([&] {
    Loaded out;
    auto graph = store_->find_graph(tenant, id);
    if (graph && *graph) out.graph = std::move(**graph);
    auto tasks = store_->graph_tasks(tenant, id);
    if (tasks) out.tasks = std::move(*tasks);
    for (const store::GraphTask& task : out.tasks) {
      if (task.status != "running" || task.run_id.empty()) continue;
      auto run = store_->find_run(tenant, task.run_id);
      if (run && *run) out.run_status[task.run_id] = (*run)->status;
    }
    return out;
  });
  if (!loaded.graph || loaded.graph->status != "running") co_return;
  auto spec = graph_from_json(parse_or_null(loaded.graph->spec_json));
  if (!spec) co_return;
  GraphSchedule schedule_state = schedule_from(*spec, loaded.tasks);
  // Rebuilding can block tasks whose blocking was never stored (a stop in between): store it.
  std::vector<store::GraphTask> rebuilt;
  for (std::size_t i = 0; i < loaded.tasks.size(); ++i) {
    const std::string state(to_string(schedule_state.state(i)));
    if (loaded.tasks[i].status == state) continue;
    loaded.tasks[i].status = state;
    loaded.tasks[i].updated_at = now_ms();
    rebuilt.push_back(loaded.tasks[i]);
  }
  if (!rebuilt.empty()) {
    co_await blocking_.run([&] {
      for (const store::GraphTask& task : rebuilt) store_->update_graph_task(tenant, task);
      return 0;
    });
  }

  // A run that ended while its end was not applied (the gateway stopped in between) is applied
  // now, the same way.
  for (const store::GraphTask& task : loaded.tasks) {
    auto status = loaded.run_status.find(task.run_id);
    if (task.status == "running" && status != loaded.run_status.end() &&
        !run_is_active(status->second)) {
      auto run = co_await blocking_.run([&] { return store_->find_run(tenant, task.run_id); });
      if (run && *run) {
        lease.release();
        co_await on_run_finished(**run);
        co_return;
      }
    }
  }

  if (schedule_state.finished()) {
    const std::string outcome(schedule_state.outcome());
    const std::int64_t at = now_ms();
    co_await blocking_.run([&] { return store_->update_graph_status(tenant, id, outcome, at); });
    publish(id, json::object{{"type", "graph.status"}, {"status", outcome}});
    co_return;
  }
  // The graph runs under its creator's key, checked again now: a revoked key stops it.
  const auto table = gateway_.table();
  gateway::CallerResult identified =
      gateway::resume_caller(loaded.graph->key_id, gateway_.keys(), table->policy().lattice());
  if (!identified.caller) {
    const std::int64_t at = now_ms();
    co_await blocking_.run([&] { return store_->update_graph_status(tenant, id, "failed", at); });
    publish(id, json::object{{"type", "graph.status"}, {"status", "failed"}});
    co_return;
  }
  std::int64_t next_retry_in = -1;
  for (std::size_t index : schedule_state.ready(SIZE_MAX)) {
    const TaskSpec& task = spec->tasks[index];
    if (const std::int64_t wait = retry_at(loaded.tasks[index]) - now_ms(); wait > 0) {
      // Its backoff has not passed: look again when it has.
      next_retry_in = next_retry_in < 0 ? wait : std::min(next_retry_in, wait);
      continue;
    }
    RunSpec run_spec;
    run_spec.model = task.model;
    run_spec.input = json::array{json::object{
        {"type", "message"},
        {"id", new_object_id("msg")},
        {"status", "completed"},
        {"role", "user"},
        {"content", json::array{json::object{{"type", "input_text"},
                                             {"text", task_input(task, loaded.tasks)}}}}}};
    std::optional<ApiError> error;
    run_spec.tools = read_mcp_grants(task.tools, "tools", error);
    run_spec.limits = task.limits;
    run_spec.memory_user = spec->memory_user;
    run_spec.memory_agent = spec->memory_agent;
    run_spec.metadata = json::object{{"graph_id", id}, {"task_id", task.id}};
    schedule_state.apply(index, TaskEvent::kStarted);
    auto started = co_await runs_.start(*identified.caller, std::move(run_spec), id, task.id);
    store::GraphTask& stored = loaded.tasks[index];
    if (!started) {
      spdlog::error("agents: cannot start task {} of graph {}: {}", task.id, id, started.error());
      continue;
    }
    stored.status = "running";
    stored.run_id = started->id;
    stored.attempts = schedule_state.attempts(index);
    stored.updated_at = now_ms();
    co_await blocking_.run([&] { return store_->update_graph_task(tenant, stored); });
    publish(id, json::object{{"type", "graph.task"},
                             {"task_id", task.id},
                             {"status", "running"},
                             {"run_id", started->id}});
  }
  if (next_retry_in > 0) {
    asio::co_spawn(co_await asio::this_coro::executor, schedule_after(tenant, id, next_retry_in),
                   asio::detached);
  }
}

asio::awaitable<store::Result<bool>> GraphExecutor::cancel(std::string_view tenant,
                                                           std::string_view id) {
  const std::string graph_id(id);
  TurnLease lease = co_await graph_turns_.acquire(graph_id);
  auto graph = co_await blocking_.run([&] { return store_->find_graph(tenant, id); });
  if (!graph) co_return store::Status::error(graph.error());
  if (!*graph || (*graph)->status != "running") co_return false;
  auto tasks = co_await blocking_.run([&] { return store_->graph_tasks(tenant, id); });
  if (!tasks) co_return store::Status::error(tasks.error());
  const std::int64_t at = now_ms();
  co_await blocking_.run([&] {
    for (store::GraphTask task : *tasks) {
      if (task.status != "pending" && task.status != "running") continue;
      task.status = "cancelled";
      task.updated_at = at;
      store_->update_graph_task(tenant, task);
    }
    return store_->update_graph_status(tenant, id, "cancelled", at);
  });
  for (const store::GraphTask& task : *tasks) {
    if (task.status == "running" && !task.run_id.empty()) {
      co_await runs_.cancel(tenant, task.run_id);
    }
  }
  publish(graph_id, json::object{{"type", "graph.status"}, {"status", "cancelled"}});
  co_return true;
}

asio::awaitable<store::Result<std::optional<json::object>>> GraphExecutor::describe(
    std::string_view tenant, std::string_view id) {
  struct Loaded {
    std::optional<store::GraphRecord> graph;
    std::vector<store::GraphTask> tasks;
    std::vector<store::RunRecord> runs;
    std::string error;
  };
  Loaded loaded = co_await blocking_.run([&] {
    Loaded out;
    auto graph = store_->find_graph(tenant, id);
    if (!graph) {
      out.error = graph.error();
      return out;
    }
    if (!*graph) return out;
    out.graph = std::move(**graph);
    auto tasks = store_->graph_tasks(tenant, id);
    if (tasks) out.tasks = std::move(*tasks);
    auto runs = store_->list_runs(tenant, id, 10000);
    if (runs) out.runs = std::move(*runs);
    return out;
  });
  if (!loaded.error.empty()) co_return store::Status::error(loaded.error);
  if (!loaded.graph) co_return std::optional<json::object>();
  auto spec = graph_from_json(parse_or_null(loaded.graph->spec_json));
  std::map<std::string, const store::RunRecord*> runs;
  for (const store::RunRecord& run : loaded.runs) runs[run.id] = &run;
  json::array tasks;
  json::object totals{{"input_tokens", 0}, {"output_tokens", 0}, {"cost_usd", 0.0}};
  std::int64_t input_tokens = 0;
  std::int64_t output_tokens = 0;
  double cost = 0;
  for (std::size_t i = 0; i < loaded.tasks.size(); ++i) {
    const store::GraphTask& task = loaded.tasks[i];
    json::object entry{
        {"id", task.task_id},
        {"status", task.status},
        {"run_id", task.run_id.empty() ? json::value(nullptr) : json::value(task.run_id)},
        {"attempts", task.attempts},
        {"output_text", output_text_of(task)}};
    if (spec && i < spec->tasks.size()) {
      json::array depends;
      for (const std::string& dependency : spec->tasks[i].depends_on)
        depends.emplace_back(dependency);
      entry["depends_on"] = std::move(depends);
    }
    // Usage over every attempt of the task.
    json::object usage{{"input_tokens", 0}, {"output_tokens", 0}, {"cost_usd", 0.0}};
    std::int64_t task_in = 0;
    std::int64_t task_out = 0;
    double task_cost = 0;
    for (const store::RunRecord& run : loaded.runs) {
      if (run.task_id != task.task_id) continue;
      const json::value state = parse_or_null(run.state_json);
      if (!state.is_object()) continue;
      const json::value* run_usage = state.as_object().if_contains("usage");
      if (run_usage == nullptr || !run_usage->is_object()) continue;
      const json::object& numbers = run_usage->as_object();
      auto read = [&](std::string_view key) -> double {
        const json::value* value = numbers.if_contains(key);
        return value && value->is_number() ? value->to_number<double>() : 0;
      };
      task_in += static_cast<std::int64_t>(read("input_tokens"));
      task_out += static_cast<std::int64_t>(read("output_tokens"));
      task_cost += read("cost_usd");
    }
    usage["input_tokens"] = task_in;
    usage["output_tokens"] = task_out;
    usage["cost_usd"] = task_cost;
    entry["usage"] = std::move(usage);
    input_tokens += task_in;
    output_tokens += task_out;
    cost += task_cost;
    tasks.push_back(std::move(entry));
  }
  totals["input_tokens"] = input_tokens;
  totals["output_tokens"] = output_tokens;
  totals["cost_usd"] = cost;
  json::object out{{"id", loaded.graph->id},
                   {"object", "agent.graph"},
                   {"status", loaded.graph->status},
                   {"created_at", loaded.graph->created_at / 1000},
                   {"updated_at", loaded.graph->updated_at / 1000},
                   {"tasks", std::move(tasks)},
                   {"usage", std::move(totals)}};
  if (spec) {
    out["max_concurrency"] = spec->max_concurrency;
    out["metadata"] = spec->metadata;
    out["memory"] = json::object{{"user", spec->memory_user}, {"agent", spec->memory_agent}};
  }
  co_return std::optional<json::object>(std::move(out));
}

}  // namespace redline::agents
