#include "agents/run_engine.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <deque>
#include <map>

#include "agents/blocking_pool.h"
#include "agents/json_answer.h"
#include "agents/memory_service.h"
#include "agents/responses_format.h"
#include "agents/tool_servers.h"
#include "audit/audit_record.h"
#include "common/ids.h"
#include "gateway/caller.h"
#include "gateway/gateway.h"
#include "gateway/model_call.h"
#include "net/io_pool.h"
#include "policy/red_line_policy.h"
#include "quota/clock.h"
#include "quota/token_estimate.h"

namespace redline::agents {

namespace asio = boost::asio;
namespace json = boost::json;
using store::RunRecord;
using store::RunStep;

bool run_is_active(std::string_view status) {
  return status == "queued" || status == "running" || status == "waiting_approval" ||
         status == "requires_action";
}

std::optional<ApiError> check_run_request(gateway::Gateway& gateway, const gateway::Caller& caller,
                                          std::string_view model,
                                          const std::vector<McpToolGrant>& grants,
                                          std::string_view param_prefix) {
  const auto table = gateway.table();
  if (table->find_alias(model) == nullptr) {
    return make_error(
        404,
        "The model `" + std::string(model) + "` does not exist or you do not have access to it.",
        std::string(param_prefix) + "model", "model_not_found");
  }
  if (!caller.may_use(model)) {
    return make_error(
        403, "API key " + caller.key_id + " may not use model `" + std::string(model) + "`.",
        std::string(param_prefix) + "model", "model_not_allowed");
  }
  for (const McpToolGrant& grant : grants) {
    const config::McpServerSettings* server = table->config().find_mcp_server(grant.server);
    const bool allowed =
        server != nullptr &&
        (server->tenants.empty() || std::find(server->tenants.begin(), server->tenants.end(),
                                              caller.tenant) != server->tenants.end());
    if (!allowed) {
      return make_error(400, "No MCP server '" + grant.server + "' is configured for you.",
                        std::string(param_prefix) + "tools", "unknown_tool_server");
    }
  }
  return std::nullopt;
}

namespace {

// Tool servers and tools become one function name for the model: "<server>__<tool>".
constexpr std::string_view kToolSeparator = "__";
// How a compaction's summary message starts.
constexpr std::string_view kSummaryPrefix = "Summary of earlier steps: ";
// How much of one tool result a compaction summary reads.
constexpr std::size_t kMaxSummarisedObservationChars = 4000;

// The tokens a prompt will likely count upstream: about four characters a token, as tokenizers
// average on English and JSON. (The budget's estimate, a token a byte, is a worst case: compacting
// on it would compact four times too early.)
std::int64_t likely_prompt_tokens(std::string_view text) {
  return static_cast<std::int64_t>(text.size() / 4);
}

const std::vector<std::string> kActiveStatuses = {"queued", "running", "waiting_approval",
                                                  "requires_action"};

std::string string_of(const json::object& object, std::string_view key) {
  const json::value* value = object.if_contains(key);
  return value && value->is_string() ? std::string(value->as_string()) : std::string();
}

std::int64_t integer_of(const json::object& object, std::string_view key) {
  const json::value* value = object.if_contains(key);
  if (value == nullptr) return 0;
  if (value->is_int64()) return value->as_int64();
  if (value->is_uint64()) return static_cast<std::int64_t>(value->as_uint64());
  if (value->is_double()) return static_cast<std::int64_t>(value->as_double());
  return 0;
}

double number_of(const json::object& object, std::string_view key) {
  const json::value* value = object.if_contains(key);
  return value && value->is_number() ? value->to_number<double>() : 0.0;
}

bool bool_of(const json::object& object, std::string_view key) {
  const json::value* value = object.if_contains(key);
  return value && value->is_bool() && value->as_bool();
}

const json::object& object_or_empty(const json::value& value) {
  static const json::object kEmpty;
  return value.is_object() ? value.as_object() : kEmpty;
}

// The lub of two label texts ("" = the bottom); a text that does not parse is kept as the
// higher (it came from this gateway, so this only happens across a lattice change).
std::string raise_label(const policy::LabelLattice& lattice, std::string_view current,
                        std::string_view more) {
  if (more.empty()) return std::string(current);
  if (current.empty()) return std::string(more);
  auto a = lattice.parse(current);
  auto b = lattice.parse(more);
  if (!a || !b) return std::string(a ? more : current);
  return lattice.format(policy::least_upper_bound(*a, *b));
}

}  // namespace

// The engine's view of one run in this process.
struct RunEngine::Active {
  std::string tenant;
  bool driving = false;
  bool poke = false;  // something changed while driving: look again before stopping
  // Kicked while the tenant had no free slot: started when one frees up. Runs parked for a
  // decision are not woken by that, only by the decision.
  bool wants_slot = false;
  std::shared_ptr<gateway::CallCancellation> cancellation =
      std::make_shared<gateway::CallCancellation>();
};

// The conversation a run's journal adds up to, and what it calls for next.
struct RunEngine::Replay {
  struct Call {
    std::string id;
    std::string name;  // "<server>__<tool>"
    std::string arguments;
    std::int64_t tool_step = 0;  // its tool_call step; 0 = none yet
    std::string tool_status;
    std::int64_t approval_step = 0;
    std::string approval_status;
    bool approved = false;
    std::string approval_by;
  };
  bool set_up = false;
  json::array messages;
  json::array tool_defs;
  std::vector<Call> pending;  // the last model answer's calls, in order, until answered
  bool model_called = false;
  bool final_answer = false;
  std::string output_text;
  std::int64_t input_tokens = 0;
  std::int64_t output_tokens = 0;
  double cost_usd = 0;
  std::int64_t model_calls = 0;
  std::int64_t tool_calls = 0;
  std::string label;                        // raised by tool results and memory
  std::int64_t interrupted_model_step = 0;  // a model call begun but never ended
  std::int64_t unmasked_observations = 0;   // tool results compaction could still mask
  // Decisions on unknown outcomes: tool step → (action, output).
  std::map<std::int64_t, std::pair<std::string, std::string>> decisions;
  json::value error;         // {"code","message"} once failed
  json::value pending_json;  // what the run waits for, as the API shows it

  static Replay of(const std::vector<RunStep>& steps, const policy::LabelLattice& lattice);

  json::object state_json() const {
    return {{"usage", json::object{{"input_tokens", input_tokens},
                                   {"output_tokens", output_tokens},
                                   {"total_tokens", input_tokens + output_tokens},
                                   {"cost_usd", cost_usd}}},
            {"model_calls", model_calls},
            {"tool_calls", tool_calls},
            {"output_text", output_text},
            {"label", label},
            {"error", error},
            {"pending", pending_json}};
  }
  Call* find_call(std::string_view id) {
    for (Call& call : pending) {
      if (call.id == id) return &call;
    }
    return nullptr;
  }
};

RunEngine::Replay RunEngine::Replay::of(const std::vector<RunStep>& steps,
                                        const policy::LabelLattice& lattice) {
  Replay replay;
  for (const RunStep& step : steps) {
    const json::value request_value = parse_or_null(step.request_json);
    const json::value result_value = parse_or_null(step.result_json);
    const json::object& request = object_or_empty(request_value);
    const json::object& result = object_or_empty(result_value);
    const bool completed = step.status == "completed";
    if (step.kind == "setup" && completed) {
      replay.set_up = true;
      if (const auto* messages = result.if_contains("messages"); messages && messages->is_array()) {
        replay.messages = messages->as_array();
      }
      if (const auto* tools = result.if_contains("tools"); tools && tools->is_array()) {
        replay.tool_defs = tools->as_array();
      }
      replay.label = raise_label(lattice, replay.label, string_of(result, "label"));
    } else if (step.kind == "model_call") {
      if (step.status == "started") {
        replay.interrupted_model_step = step.seq;
        continue;
      }
      replay.model_calls += 1;
      replay.input_tokens += integer_of(result, "input_tokens");
      replay.output_tokens += integer_of(result, "output_tokens");
      replay.cost_usd += number_of(result, "cost_usd");
      if (!completed) continue;
      replay.model_called = true;
      const json::value* message = result.if_contains("message");
      if (message == nullptr || !message->is_object()) continue;
      replay.messages.push_back(*message);
      replay.pending.clear();
      replay.output_text = string_of(message->as_object(), "content");
      if (const auto* calls = message->as_object().if_contains("tool_calls");
          calls && calls->is_array()) {
        for (const json::value& call : calls->as_array()) {
          const json::object& entry = object_or_empty(call);
          const json::value* function_value = entry.if_contains("function");
          const json::object& function =
              function_value ? object_or_empty(*function_value) : object_or_empty(nullptr);
          Call pending;
          pending.id = string_of(entry, "id");
          pending.name = string_of(function, "name");
          pending.arguments = string_of(function, "arguments");
          replay.pending.push_back(std::move(pending));
        }
      }
      replay.final_answer = replay.pending.empty();
    } else if (step.kind == "tool_call") {
      Call* call = replay.find_call(string_of(request, "call_id"));
      if (call == nullptr) continue;
      call->tool_step = step.seq;
      call->tool_status = step.status;
      if (step.status == "started") continue;
      replay.tool_calls += 1;
      replay.messages.push_back(json::object{
          {"role", "tool"}, {"tool_call_id", call->id}, {"content", string_of(result, "output")}});
      replay.unmasked_observations += 1;
      replay.label = raise_label(lattice, replay.label, string_of(result, "label"));
    } else if (step.kind == "approval") {
      Call* call = replay.find_call(string_of(request, "call_id"));
      if (call == nullptr) continue;
      call->approval_step = step.seq;
      call->approval_status = step.status;
      call->approved = bool_of(result, "approved");
      call->approval_by = string_of(result, "by");
    } else if (step.kind == "compaction" && completed) {
      // The summary's model call counts toward the run's usage and limits.
      replay.input_tokens += integer_of(result, "input_tokens");
      replay.output_tokens += integer_of(result, "output_tokens");
      replay.cost_usd += number_of(result, "cost_usd");
      if (const auto* messages = result.if_contains("messages"); messages && messages->is_array()) {
        replay.messages = messages->as_array();
        replay.unmasked_observations = 0;
      }
    } else if (step.kind == "decision") {
      replay.decisions[integer_of(result, "step")] = {string_of(result, "action"),
                                                      string_of(result, "output")};
    }
  }
  // Calls answered (their tool step ended) are done; the rest are what the run does next.
  std::erase_if(replay.pending, [](const Call& call) {
    return call.tool_step != 0 && call.tool_status != "started";
  });
  return replay;
}

// ---- events ---------------------------------------------------------------------------------

struct RunEvents::Subscription::State {
  explicit State(asio::any_io_executor executor) : timer(executor) {}
  std::mutex mutex;
  std::deque<json::object> queue;
  asio::steady_timer timer;
};

RunEvents::Subscription::Subscription(asio::any_io_executor executor)
    : state_(std::make_shared<State>(executor)) {}
RunEvents::Subscription::~Subscription() = default;

void RunEvents::Subscription::push(json::object event) {
  {
    std::lock_guard lock(state_->mutex);
    state_->queue.push_back(std::move(event));
  }
  // The timer belongs to the subscriber's thread: wake it there.
  asio::post(state_->timer.get_executor(), [state = state_] { state->timer.cancel(); });
}

asio::awaitable<std::optional<json::object>> RunEvents::Subscription::next(
    std::chrono::milliseconds wait) {
  const auto deadline = std::chrono::steady_clock::now() + wait;
  while (true) {
    {
      std::lock_guard lock(state_->mutex);
      if (!state_->queue.empty()) {
        json::object event = std::move(state_->queue.front());
        state_->queue.pop_front();
        co_return event;
      }
    }
    if (std::chrono::steady_clock::now() >= deadline) co_return std::nullopt;
    state_->timer.expires_at(deadline);
    co_await state_->timer.async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

std::shared_ptr<RunEvents::Subscription> RunEvents::subscribe(const std::string& id,
                                                              asio::any_io_executor executor) {
  auto subscription = std::make_shared<Subscription>(std::move(executor));
  std::lock_guard lock(mutex_);
  auto& list = subscribers_[id];
  std::erase_if(list, [](const std::weak_ptr<Subscription>& weak) { return weak.expired(); });
  list.push_back(subscription);
  return subscription;
}

void RunEvents::publish(const std::string& id, json::object event) {
  std::vector<std::shared_ptr<Subscription>> targets;
  {
    std::lock_guard lock(mutex_);
    auto it = subscribers_.find(id);
    if (it == subscribers_.end()) return;
    for (const auto& weak : it->second) {
      if (auto subscription = weak.lock()) targets.push_back(std::move(subscription));
    }
    if (targets.empty()) subscribers_.erase(it);
  }
  for (const auto& subscription : targets) subscription->push(event);
}

// ---- the engine -------------------------------------------------------------------------------

RunEngine::RunEngine(gateway::Gateway& gateway, std::shared_ptr<store::RunStore> store,
                     ToolServers& tools, MemoryService& memory, BlockingPool& blocking,
                     std::shared_ptr<const quota::Clock> clock)
    : gateway_(gateway),
      store_(std::move(store)),
      tools_(tools),
      memory_(memory),
      blocking_(blocking),
      clock_(std::move(clock)),
      events_(std::make_unique<RunEvents>()) {}

RunEngine::~RunEngine() = default;

void RunEngine::on_finished(std::function<void(const RunRecord&)> callback) {
  std::lock_guard lock(mutex_);
  finished_callbacks_.push_back(std::move(callback));
}

std::int64_t RunEngine::now_ms() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

asio::awaitable<store::Result<RunRecord>> RunEngine::start(const gateway::Caller& caller,
                                                           RunSpec spec, std::string_view graph_id,
                                                           std::string_view task_id,
                                                           std::string_view run_id) {
  RunRecord run;
  run.id = run_id.empty() ? new_object_id("run") : std::string(run_id);
  run.tenant = caller.tenant;
  run.key_id = caller.key_id;
  run.graph_id = std::string(graph_id);
  run.task_id = std::string(task_id);
  run.status = "queued";
  run.spec_json = json::serialize(to_json(spec));
  run.state_json = json::serialize(Replay{}.state_json());
  run.created_at = run.updated_at = now_ms();
  auto inserted = co_await blocking_.run([&] { return store_->insert_run(run); });
  if (!inserted) co_return store::Status::error(inserted.message);
  kick(run.tenant, run.id);
  co_return run;
}

void RunEngine::resume_all() {
  auto runs = store_->runs_with_status(kActiveStatuses);
  if (!runs) {
    spdlog::error("agents: cannot list runs to resume: {}", runs.error());
    return;
  }
  if (!runs->empty()) spdlog::info("agents: resuming {} unfinished run(s)", runs->size());
  for (const RunRecord& run : *runs) kick(run.tenant, run.id);
}

void RunEngine::kick(const std::string& tenant, const std::string& id) {
  const std::size_t max_running = gateway_.table()->config().agents.max_concurrent_runs_per_tenant;
  std::lock_guard lock(mutex_);
  auto& active = active_[id];
  if (!active) {
    active = std::make_shared<Active>();
    active->tenant = tenant;
  }
  if (active->driving) {
    active->poke = true;
    return;
  }
  if (running_by_tenant_[tenant] >= max_running) {
    active->wants_slot = true;
    return;
  }
  active->wants_slot = false;
  active->driving = true;
  ++running_by_tenant_[tenant];
  asio::co_spawn(gateway_.io().next(), drive(tenant, id), asio::detached);
}

asio::awaitable<void> RunEngine::drive(std::string tenant, std::string id) {
  while (true) {
    Advance next = Advance::kDone;
    try {
      next = co_await advance(tenant, id);
    } catch (const std::exception& e) {
      // A bug must not take the gateway down; the run stays as journaled and resumes later.
      spdlog::error("agents: run {} stopped on an unexpected error: {}", id, e.what());
      next = Advance::kPark;
    }
    if (next == Advance::kContinue) continue;
    std::lock_guard lock(mutex_);
    auto it = active_.find(id);
    if (it != active_.end() && it->second->poke && next == Advance::kPark) {
      it->second->poke = false;
      continue;
    }
    if (it != active_.end()) {
      it->second->driving = false;
      it->second->poke = false;
      if (next == Advance::kDone) active_.erase(it);
    }
    --running_by_tenant_[tenant];
    break;
  }
  // A slot freed up: start a run of the tenant that waits for one.
  std::vector<std::string> waiting;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [run_id, active] : active_) {
      if (active->tenant == tenant && active->wants_slot && !active->driving) {
        waiting.push_back(run_id);
      }
    }
  }
  for (const std::string& run_id : waiting) kick(tenant, run_id);
}

asio::awaitable<store::Result<std::int64_t>> RunEngine::begin_step(const RunRecord& run,
                                                                   const RunStep& asked) {
  RunStep step = asked;
  step.started_at = now_ms();
  if (step.status.empty()) step.status = "started";
  auto seq = co_await blocking_.run([&] { return store_->begin_step(run.tenant, run.id, step); });
  if (seq) {
    step.seq = *seq;
    events_->publish(
        run.id,
        json::object{{"type", "run.step.started"}, {"run_id", run.id}, {"step", step_json(step)}});
  }
  co_return seq;
}

asio::awaitable<store::Status> RunEngine::end_step(const RunRecord& run, std::int64_t seq,
                                                   std::string_view status,
                                                   std::string_view result_json) {
  const std::int64_t at = now_ms();
  auto ended = co_await blocking_.run(
      [&] { return store_->end_step(run.tenant, run.id, seq, status, result_json, at); });
  if (ended) {
    events_->publish(run.id, json::object{{"type", "run.step.completed"},
                                          {"run_id", run.id},
                                          {"seq", seq},
                                          {"status", status},
                                          {"result", parse_or_null(result_json)}});
  }
  co_return ended;
}

asio::awaitable<void> RunEngine::set_status(const RunRecord& run, const Replay& replay,
                                            std::string_view status) {
  const std::string state = json::serialize(replay.state_json());
  const std::int64_t at = now_ms();
  auto changed = co_await blocking_.run(
      [&] { return store_->update_run(run.tenant, run.id, status, state, at, kActiveStatuses); });
  if (changed && *changed && status != run.status) {
    RunRecord updated = run;
    updated.status = std::string(status);
    updated.state_json = state;
    updated.updated_at = at;
    events_->publish(run.id, json::object{{"type", "run.status"},
                                          {"run_id", run.id},
                                          {"status", status},
                                          {"run", run_json(updated)}});
  }
}

asio::awaitable<RunEngine::Advance> RunEngine::finish(const RunRecord& run, Replay& replay,
                                                      std::string_view status,
                                                      std::string_view error_code,
                                                      std::string_view error_message) {
  if (!error_code.empty()) {
    replay.error = json::object{{"code", error_code}, {"message", error_message}};
  }
  replay.pending_json = nullptr;
  const std::string state = json::serialize(replay.state_json());
  const std::int64_t at = now_ms();
  auto changed = co_await blocking_.run(
      [&] { return store_->update_run(run.tenant, run.id, status, state, at, kActiveStatuses); });
  if (!changed || !*changed) co_return Advance::kDone;  // ended by someone else (a cancel)
  RunRecord ended = run;
  ended.status = std::string(status);
  ended.state_json = state;
  ended.updated_at = at;
  events_->publish(run.id, json::object{{"type", "run.status"},
                                        {"run_id", run.id},
                                        {"status", status},
                                        {"run", run_json(ended)}});
  std::vector<std::function<void(const RunRecord&)>> callbacks;
  {
    std::lock_guard lock(mutex_);
    callbacks = finished_callbacks_;
  }
  for (const auto& callback : callbacks) callback(ended);
  co_return Advance::kDone;
}

asio::awaitable<RunEngine::Advance> RunEngine::advance(const std::string& tenant,
                                                       const std::string& id) {
  struct Loaded {
    std::optional<RunRecord> run;
    std::vector<RunStep> steps;
    std::string error;
  };
  Loaded loaded = co_await blocking_.run([&] {
    Loaded out;
    auto run = store_->find_run(tenant, id);
    if (!run) {
      out.error = run.error();
      return out;
    }
    out.run = std::move(*run);
    if (!out.run) return out;
    auto steps = store_->steps(tenant, id);
    if (!steps) {
      out.error = steps.error();
      return out;
    }
    out.steps = std::move(*steps);
    return out;
  });
  if (!loaded.error.empty()) {
    spdlog::error("agents: cannot load run {}: {}", id, loaded.error);
    co_return Advance::kPark;
  }
  if (!loaded.run || !run_is_active(loaded.run->status)) co_return Advance::kDone;
  const RunRecord& run = *loaded.run;
  const auto table = gateway_.table();
  const policy::LabelLattice& lattice = table->policy().lattice();
  const config::AgentSettings& settings = table->config().agents;
  Replay replay = Replay::of(loaded.steps, lattice);
  auto spec = run_spec_from_json(parse_or_null(run.spec_json));
  if (!spec) {
    co_return co_await finish(run, replay, "failed", "invalid_run",
                              "The run's spec is unreadable.");
  }
  // The run's key, checked again at every step: a key revoked or expired meanwhile stops it.
  gateway::CallerResult identified = gateway::resume_caller(run.key_id, gateway_.keys(), lattice);
  if (!identified.caller) {
    co_return co_await finish(run, replay, "failed", identified.error.code,
                              identified.error.message);
  }
  const gateway::Caller& caller = *identified.caller;
  if (run.status == "queued") co_await set_status(run, replay, "running");

  // Limits, restarts included: wall time counts from the run's creation.
  const std::int64_t max_steps =
      std::min(spec->limits.max_steps.value_or(settings.max_steps), settings.max_steps);
  const std::int64_t max_tokens =
      std::min(spec->limits.max_tokens.value_or(settings.max_tokens), settings.max_tokens);
  const std::int64_t max_wall_ms = std::min<std::int64_t>(
      spec->limits.max_wall_ms.value_or(settings.max_wall.count()), settings.max_wall.count());
  // Built before the co_await below: g++ 12 mishandles temporaries inside co_await expressions.
  std::string limit_code;
  std::string limit_message;
  if (replay.model_calls + replay.tool_calls >= max_steps) {
    limit_code = "max_steps_reached";
    limit_message = "The run reached its limit of " + std::to_string(max_steps) + " steps.";
  } else if (replay.input_tokens + replay.output_tokens >= max_tokens) {
    limit_code = "max_tokens_reached";
    limit_message = "The run reached its limit of " + std::to_string(max_tokens) + " tokens.";
  } else if (spec->limits.max_cost_usd && replay.cost_usd >= *spec->limits.max_cost_usd) {
    limit_code = "max_cost_reached";
    limit_message = "The run reached its cost limit.";
  } else if (now_ms() - run.created_at >= max_wall_ms) {
    limit_code = "max_wall_time_reached";
    limit_message =
        "The run reached its wall-time limit of " + std::to_string(max_wall_ms) + " ms.";
  }
  if (!limit_code.empty()) {
    co_return co_await finish(run, replay, "stopped", std::move(limit_code),
                              std::move(limit_message));
  }

  if (!replay.set_up) co_return co_await setup(run, *spec, caller);
  if (replay.interrupted_model_step != 0) {
    // A model call the last stop cut short: its answer never arrived, so it is made again.
    co_await end_step(run, replay.interrupted_model_step, "failed",
                      R"({"error":"interrupted by a restart"})");
    co_return Advance::kContinue;
  }
  if (!replay.pending.empty()) co_return co_await call_tool(run, *spec, replay, caller);
  if (replay.final_answer) co_return co_await finish(run, replay, "completed", "", "");
  // Before the next model call: compact the context when it nears the model's window.
  if (replay.unmasked_observations > 0) {
    const json::object probe{{"messages", replay.messages}, {"tools", replay.tool_defs}};
    const std::int64_t estimate = likely_prompt_tokens(json::serialize(probe));
    if (static_cast<double>(estimate) >
        settings.compaction_threshold * static_cast<double>(settings.context_window_tokens)) {
      co_return co_await compact(run, *spec, replay, caller);
    }
  }
  co_return co_await call_model(run, *spec, replay, caller);
}

asio::awaitable<RunEngine::Advance> RunEngine::setup(const RunRecord& run, const RunSpec& spec,
                                                     const gateway::Caller& caller) {
  const auto table = gateway_.table();
  const config::Config& config = table->config();
  Replay replay;
  json::array tool_defs;
  for (const McpToolGrant& grant : spec.tools) {
    const config::McpServerSettings* server = config.find_mcp_server(grant.server);
    const bool allowed =
        server != nullptr &&
        (server->tenants.empty() || std::find(server->tenants.begin(), server->tenants.end(),
                                              caller.tenant) != server->tenants.end());
    if (!allowed) {
      std::string message =
          "No MCP server '" + grant.server + "' is configured for tenant " + caller.tenant + ".";
      co_return co_await finish(run, replay, "failed", "unknown_tool_server", std::move(message));
    }
    std::string error;
    auto listed = co_await tools_.list_tools(grant.server, error);
    if (!listed) {
      std::string message = "MCP server '" + grant.server + "' could not be reached: " + error;
      co_return co_await finish(run, replay, "failed", "tool_server_unavailable",
                                std::move(message));
    }
    for (const ToolDescription& tool : *listed) {
      if (!grant.allowed_tools.empty() &&
          std::find(grant.allowed_tools.begin(), grant.allowed_tools.end(), tool.name) ==
              grant.allowed_tools.end()) {
        continue;
      }
      json::value parameters = tool.input_schema.is_object()
                                   ? tool.input_schema
                                   : json::value(json::object{{"type", "object"}});
      tool_defs.push_back(json::object{
          {"type", "function"},
          {"function",
           json::object{{"name", grant.server + std::string(kToolSeparator) + tool.name},
                        {"description", tool.description},
                        {"parameters", std::move(parameters)}}}});
    }
  }
  // The conversation starts from the instructions, the run's memory and its input.
  std::string memory_text;
  std::string label;
  if (!spec.memory_user.empty() || !spec.memory_agent.empty()) {
    MemoryOptions options;
    options.scope = {spec.memory_user, spec.memory_agent};
    options.search = true;
    std::string query;
    for (const json::value& item : spec.input) {
      const json::object& object = object_or_empty(item);
      if (const auto* content = object.if_contains("content"); content && content->is_array()) {
        for (const json::value& part : content->as_array()) {
          query += string_of(object_or_empty(part), "text");
        }
      }
    }
    const MemoryContext context =
        co_await memory_.context_for(caller, spec.model, options, query, caller.default_label);
    memory_text = context.text;
    label = context.label_floor;
  }
  ResponsesRequest base;
  base.model = spec.model;
  if (!spec.instructions.empty()) base.instructions = spec.instructions;
  const json::value body = parse_or_null(build_chat_body(base, spec.input, memory_text, false));
  json::array messages;
  if (const auto* list = object_or_empty(body).if_contains("messages"); list && list->is_array()) {
    messages = list->as_array();
  }
  const std::string result = json::serialize(json::object{
      {"messages", std::move(messages)}, {"tools", std::move(tool_defs)}, {"label", label}});
  const RunStep next_step{0, "setup", "", "started", "{}", "", 0, 0};
  auto seq = co_await begin_step(run, next_step);
  if (!seq) {
    spdlog::error("agents: cannot journal run {}: {}", run.id, seq.error());
    co_return Advance::kPark;
  }
  co_await end_step(run, *seq, "completed", result);
  co_return Advance::kContinue;
}

asio::awaitable<RunEngine::Advance> RunEngine::call_model(const RunRecord& run, const RunSpec& spec,
                                                          const Replay& replay,
                                                          const gateway::Caller& caller) {
  json::object body{{"model", spec.model}, {"messages", replay.messages}};
  if (!replay.tool_defs.empty()) {
    body["tools"] = replay.tool_defs;
    body["tool_choice"] = "auto";
  }
  std::string text = json::serialize(body);
  const std::int64_t estimate = quota::estimate_input_tokens(text);
  const std::string request = json::serialize(
      json::object{{"messages", replay.messages.size()}, {"estimated_input_tokens", estimate}});
  const RunStep next_step{0, "model_call", "", "started", request, "", 0, 0};

  auto seq = co_await begin_step(run, next_step);
  if (!seq) {
    spdlog::error("agents: cannot journal run {}: {}", run.id, seq.error());
    co_return Advance::kPark;
  }
  std::shared_ptr<gateway::CallCancellation> cancellation;
  {
    std::lock_guard lock(mutex_);
    if (auto it = active_.find(run.id); it != active_.end()) {
      cancellation = it->second->cancellation;
    }
  }
  gateway::ModelCall model_call;
  model_call.caller = caller;
  model_call.body = std::move(text);
  model_call.route = "agents.run";
  model_call.label_floor = replay.label;
  model_call.cancellation = cancellation;
  net::HttpRequest origin;
  origin.headers.push_back({"x-request-id", run.id + "#" + std::to_string(*seq)});
  model_call.origin = &origin;
  const gateway::ModelCallResult result = co_await gateway::call_model(gateway_, model_call);

  json::object outcome{{"input_tokens", result.tokens_in},
                       {"output_tokens", result.tokens_out},
                       {"cost_usd", result.cost_usd},
                       {"label", result.label},
                       {"backend", result.backend}};
  if (!result.completed) {
    const ApiError error = result.error.value_or(make_error(502, "The model call failed."));
    outcome["error"] = json::object{{"code", error.code}, {"message", error.message}};
    const std::string serialized = json::serialize(outcome);
    co_await end_step(run, *seq, "failed", serialized);
    Replay after = replay;
    after.input_tokens += result.tokens_in;
    after.output_tokens += result.tokens_out;
    after.cost_usd += result.cost_usd;
    after.model_calls += 1;
    if (result.status == 499) co_return Advance::kDone;  // cancelled: the cancel ended the run
    // Named, not a ternary's temporary: g++ 12 frees temporaries in a co_await expression twice.
    const std::string code = error.code.empty() ? "model_call_failed" : error.code;
    co_return co_await finish(run, after, "failed", code, error.message);
  }
  // choices[0].message, as the conversation's next message.
  const json::value answer = parse_or_null(result.body);
  json::object message{{"role", "assistant"}, {"content", ""}};
  if (const auto* choices = object_or_empty(answer).if_contains("choices");
      choices && choices->is_array() && !choices->as_array().empty()) {
    const json::object& choice = object_or_empty(choices->as_array()[0]);
    if (const auto* upstream = choice.if_contains("message"); upstream && upstream->is_object()) {
      const json::object& got = upstream->as_object();
      message["content"] = string_of(got, "content");
      if (const auto* calls = got.if_contains("tool_calls");
          calls && calls->is_array() && !calls->as_array().empty()) {
        message["tool_calls"] = *calls;
      }
    }
  }
  outcome["message"] = std::move(message);
  const std::string serialized = json::serialize(outcome);
  co_await end_step(run, *seq, "completed", serialized);
  co_return Advance::kContinue;
}

asio::awaitable<RunEngine::Advance> RunEngine::call_tool(const RunRecord& run, const RunSpec& spec,
                                                         Replay& replay,
                                                         const gateway::Caller& caller) {
  const auto table = gateway_.table();
  const policy::RedLinePolicy& red_lines = table->policy();
  const policy::LabelLattice& lattice = red_lines.lattice();
  Replay::Call& call = replay.pending.front();
  const std::size_t split = call.name.find(kToolSeparator);
  const std::string server =
      split == std::string::npos ? std::string() : call.name.substr(0, split);
  const std::string tool =
      split == std::string::npos ? call.name : call.name.substr(split + kToolSeparator.size());
  const config::McpServerSettings* settings = table->config().find_mcp_server(server);
  const McpToolGrant* grant = nullptr;
  for (const McpToolGrant& candidate : spec.tools) {
    if (candidate.server == server) grant = &candidate;
  }
  const json::value arguments = parse_or_null(call.arguments);
  const std::string request = json::serialize(json::object{
      {"call_id", call.id}, {"server", server}, {"tool", tool}, {"arguments", call.arguments}});
  gateway::Accounting::ToolCallRecord audit;
  audit.request_id = run.id;
  audit.tenant = run.tenant;
  audit.key_id = run.key_id;
  audit.server = server;
  audit.tool = tool;
  audit.arguments_sha256 = audit::sha256_hex(call.arguments);

  // Answers the call without making it (refused, rejected, unknown tool): the model reads why.
  auto answer_without_call = [&](std::string_view output, std::string_view decision,
                                 int status) -> asio::awaitable<Advance> {
    const RunStep next_step{0, "tool_call", "", "started", request, "", 0, 0};

    auto seq = co_await begin_step(run, next_step);
    if (!seq) co_return Advance::kPark;
    audit.decision = std::string(decision);
    audit.status = status;
    audit.error = std::string(output);
    audit.request_id = run.id + "#" + std::to_string(*seq);
    gateway_.accounting().record_tool_call(audit);
    const json::object result{
        {"output", output}, {"is_error", true}, {"decision", decision}, {"label", ""}};
    const std::string serialized = json::serialize(result);
    co_await end_step(run, *seq, "completed", serialized);
    co_return Advance::kContinue;
  };

  // Makes the call (or makes it again, under the same step and idempotency key).
  auto make_call = [&](std::int64_t existing_step) -> asio::awaitable<Advance> {
    std::int64_t seq = existing_step;
    const std::string key = run.id + ":" + call.id;
    if (seq == 0) {
      const RunStep next_step{0, "tool_call", key, "started", request, "", 0, 0};

      auto begun = co_await begin_step(run, next_step);
      if (!begun) co_return Advance::kPark;
      seq = *begun;
    }
    const auto started = std::chrono::steady_clock::now();
    const ToolCallOutcome outcome = co_await tools_.call_tool(server, tool, arguments, key);
    const policy::Label floor = red_lines.tool_result_floor(server);
    const policy::Label label =
        policy::least_upper_bound(floor, red_lines.scan_text(outcome.output).raised);
    audit.request_id = run.id + "#" + std::to_string(seq);
    audit.label = lattice.format(label);
    audit.decision = "allow";
    audit.status = outcome.answered ? (outcome.is_error ? 422 : 200) : 502;
    audit.error = outcome.is_error ? outcome.output.substr(0, 200) : std::string();
    audit.latency_us = std::chrono::duration_cast<std::chrono::microseconds>(
                           std::chrono::steady_clock::now() - started)
                           .count();
    audit.result_sha256 = audit::sha256_hex(outcome.output);
    gateway_.accounting().record_tool_call(audit);
    if (!outcome.answered) {
      // The outcome may be unknown (a timeout, a crash): treat it like a call cut short.
      const bool idempotent =
          settings != nullptr &&
          std::find(settings->idempotent_tools.begin(), settings->idempotent_tools.end(), tool) !=
              settings->idempotent_tools.end();
      if (!idempotent) {
        replay.pending_json = json::object{{"type", "unknown_outcome"},
                                           {"step", seq},
                                           {"server", server},
                                           {"tool", tool},
                                           {"arguments", call.arguments},
                                           {"reason", outcome.output}};
        co_await set_status(run, replay, "requires_action");
        co_return Advance::kPark;
      }
    }
    // A key whose clearance is below the result's label must not receive it.
    std::string output = outcome.output;
    bool is_error = outcome.is_error || !outcome.answered;
    if (!policy::dominates(caller.max_label, label)) {
      output = "The tool's result is classified " + lattice.format(label) +
               ", above what this run's API key may receive; it was withheld.";
      is_error = true;
    }
    const json::object result{
        {"output", output}, {"is_error", is_error}, {"label", lattice.format(label)}};
    const std::string serialized = json::serialize(result);
    co_await end_step(run, seq, "completed", serialized);
    co_return Advance::kContinue;
  };

  if (call.tool_step != 0) {
    // Begun before, never ended: the outcome is unknown.
    auto decided = replay.decisions.find(call.tool_step);
    const bool idempotent =
        settings != nullptr &&
        std::find(settings->idempotent_tools.begin(), settings->idempotent_tools.end(), tool) !=
            settings->idempotent_tools.end();
    if (decided != replay.decisions.end()) {
      const auto& [action, output] = decided->second;
      if (action == "retry") co_return co_await make_call(call.tool_step);
      if (action == "fail") {
        co_await end_step(run, call.tool_step, "failed", R"({"output":"failed by decision"})");
        std::string message =
            "A call of " + server + "/" + tool + " had an unknown outcome and the run was failed.";
        co_return co_await finish(run, replay, "failed", "tool_outcome_unknown",
                                  std::move(message));
      }
      const json::object result{
          {"output", output}, {"is_error", false}, {"decision", "assume_done"}};
      const std::string serialized = json::serialize(result);
      co_await end_step(run, call.tool_step, "completed", serialized);
      co_return Advance::kContinue;
    }
    if (idempotent) co_return co_await make_call(call.tool_step);
    // Already parked for this call: nothing to write, and writing the status again could undo a
    // decision that arrived after this advance read the run.
    if (run.status == "requires_action") co_return Advance::kPark;
    // Not parked yet, so the call was cut short by a stop of the gateway.
    replay.pending_json = json::object{{"type", "unknown_outcome"},
                                       {"step", call.tool_step},
                                       {"server", server},
                                       {"tool", tool},
                                       {"arguments", call.arguments},
                                       {"reason", "the gateway stopped during the call"}};
    co_await set_status(run, replay, "requires_action");
    co_return Advance::kPark;
  }
  if (grant == nullptr || settings == nullptr) {
    std::string message = "There is no tool '" + call.name + "' in this run.";
    co_return co_await answer_without_call(std::move(message), "unknown_tool", 404);
  }

  // Red lines: the call's arguments are classified and the rules applied to the tool by name.
  policy::RequestFacts facts;
  facts.tenant = caller.tenant;
  facts.key_id = caller.key_id;
  facts.key_default = caller.default_label;
  facts.key_max = caller.max_label;
  if (!replay.label.empty()) facts.declared = lattice.parse(replay.label);
  facts.model = spec.model;
  facts.tool_names = {tool, server + "/" + tool};
  facts.findings = red_lines.scan_text(call.arguments);
  const policy::Verdict verdict = red_lines.evaluate(facts, {});
  audit.label = lattice.format(verdict.label);
  for (const policy::RuleHit& hit : verdict.hits) {
    if (!audit.rules.empty()) audit.rules += ",";
    audit.rules += hit.rule->name + (hit.applied ? "" : "(shadow)");
  }
  if (verdict.outcome == policy::Outcome::kDenyByRule) {
    std::string message =
        "The call was blocked by red-line rule '" + verdict.deciding_rule->name + "'.";
    co_return co_await answer_without_call(std::move(message), "deny", 403);
  }
  if (verdict.outcome == policy::Outcome::kAboveKeyClearance) {
    std::string message = "The call's arguments are classified " + lattice.format(verdict.label) +
                          ", above what this run's API key may send.";
    co_return co_await answer_without_call(std::move(message), "refuse", 403);
  }
  const bool needs_approval =
      verdict.outcome == policy::Outcome::kHold || grant->always_approve ||
      std::find(settings->require_approval.begin(), settings->require_approval.end(), tool) !=
          settings->require_approval.end();
  if (needs_approval && call.approval_step == 0) {
    const std::string rule =
        verdict.outcome == policy::Outcome::kHold ? verdict.deciding_rule->name : std::string();
    const std::string asked = json::serialize(json::object{{"call_id", call.id},
                                                           {"server", server},
                                                           {"tool", tool},
                                                           {"arguments", call.arguments},
                                                           {"rule", rule}});
    const RunStep next_step{0, "approval", "", "started", asked, "", 0, 0};

    auto seq = co_await begin_step(run, next_step);
    if (!seq) co_return Advance::kPark;
    call.approval_step = *seq;
    call.approval_status = "started";
  }
  if (needs_approval && call.approval_status == "started") {
    const auto timeout = gateway_.table()->config().agents.approval_timeout;
    replay.pending_json = json::object{{"type", "approval"},
                                       {"step", call.approval_step},
                                       {"server", server},
                                       {"tool", tool},
                                       {"arguments", call.arguments}};
    co_await set_status(run, replay, "waiting_approval");
    // Wakes the run when the approval times out, so it answers the model "not approved".
    auto executor = co_await asio::this_coro::executor;
    asio::co_spawn(
        executor,
        [this, tenant = run.tenant, id = run.id, seq = call.approval_step,
         timeout]() -> asio::awaitable<void> {
          asio::steady_timer timer(co_await asio::this_coro::executor, timeout);
          co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
          co_await decide_approval(tenant, id, seq, false, "timeout", "no decision in time");
        },
        asio::detached);
    co_return Advance::kPark;
  }
  if (needs_approval && !call.approved) {
    std::string message = "The call was not approved (by " + call.approval_by + ").";
    co_return co_await answer_without_call(std::move(message), "approval_denied", 403);
  }
  co_return co_await make_call(0);
}

asio::awaitable<RunEngine::Advance> RunEngine::compact(const RunRecord& run, const RunSpec& spec,
                                                       const Replay& replay,
                                                       const gateway::Caller& caller) {
  const auto table = gateway_.table();
  const config::AgentSettings& settings = table->config().agents;
  const json::array& messages = replay.messages;
  // The head (instructions, memory, the task) and the most recent steps stay as they are.
  std::size_t head_end = 0;
  while (head_end < messages.size() &&
         string_of(object_or_empty(messages[head_end]), "role") != "assistant") {
    ++head_end;
  }
  // A step is a model message and what followed it (its tool results). The last
  // keep_recent_steps steps stay whole, fewer when they alone would fill more than half of what
  // triggers a compaction: each compaction rewrites the context, which a provider's prefix
  // cache must then read anew, so it should leave room for several steps before the next.
  const double trigger =
      settings.compaction_threshold * static_cast<double>(settings.context_window_tokens);
  std::size_t recent_start = messages.size();
  std::size_t recent_chars = 0;
  for (std::size_t kept = 0; kept < settings.keep_recent_steps && recent_start > head_end; ++kept) {
    std::size_t start = recent_start;
    std::size_t chars = 0;
    do {
      --start;
      chars += json::serialize(messages[start]).size();
    } while (start > head_end &&
             string_of(object_or_empty(messages[start]), "role") != "assistant");
    if (kept > 0 && static_cast<double>(recent_chars + chars) / 4 > trigger / 2) break;
    recent_start = start;
    recent_chars += chars;
  }
  json::array middle;
  std::string to_summarise;
  std::int64_t masked = 0;
  std::int64_t summarised = 0;
  std::int64_t notes = 0;  // the model's notes summarised (besides results and the last summary)
  const bool summarise = !settings.summary_model.value.empty();
  std::map<std::string, std::string> calls_by_id;  // tool call id → "name(arguments)"
  for (std::size_t i = head_end; i < recent_start; ++i) {
    json::object message = object_or_empty(messages[i]);
    const std::string role = string_of(message, "role");
    if (const auto* calls = message.if_contains("tool_calls"); calls && calls->is_array()) {
      for (const json::value& call : calls->as_array()) {
        const json::object& asked = object_or_empty(call);
        const json::value* function = asked.if_contains("function");
        const json::object& named = function != nullptr ? object_or_empty(*function) : asked;
        calls_by_id[string_of(asked, "id")] =
            string_of(named, "name") + "(" + string_of(named, "arguments") + ")";
      }
    }
    if (role == "system" && string_of(message, "content").starts_with(kSummaryPrefix)) {
      // The last compaction's summary: folded into this one, so there is only ever one.
      to_summarise +=
          "Earlier summary: " + string_of(message, "content").substr(kSummaryPrefix.size()) + "\n";
      ++summarised;
      continue;
    }
    if (role == "tool") {
      const std::string content = string_of(message, "content");
      if (!content.starts_with("[observation masked")) {
        // What the result said lives on in the summary, when there is a summary model.
        if (summarise) {
          to_summarise += "Result of " + calls_by_id[string_of(message, "tool_call_id")] + ":\n" +
                          content.substr(0, kMaxSummarisedObservationChars) + "\n";
          ++summarised;
        }
        message["content"] =
            "[observation masked by compaction: " + std::to_string(content.size()) +
            " characters; the call above says what was asked" +
            (summarise ? "; the summary above says what it found]" : "]");
        ++masked;
      }
      middle.push_back(std::move(message));
    } else if (role == "assistant" && !message.contains("tool_calls") && summarise) {
      to_summarise += string_of(message, "content") + "\n";
      ++summarised;
      ++notes;
    } else {
      middle.push_back(std::move(message));  // tool calls and state changes stay verbatim
    }
  }
  if (masked == 0 && notes == 0) {
    // Nothing new to compact (what is large is recent): go on with the full context rather
    // than summarise the summary again before every call.
    co_return co_await call_model(run, spec, replay, caller);
  }
  // The head, as it was (it keeps the run's prefix-affinity key and its cached prefix), the
  // masked middle, the summary, then the recent steps.
  json::array compacted(messages.begin(), messages.begin() + static_cast<long>(head_end));
  for (json::value& message : middle) compacted.push_back(std::move(message));
  struct {
    std::int64_t input_tokens = 0;
    std::int64_t output_tokens = 0;
    double cost_usd = 0;
  } summary_usage;
  if (!to_summarise.empty()) {
    const json::object body{
        {"model", settings.summary_model.value},
        {"messages",
         json::array{json::object{{"role", "system"},
                                  {"content",
                                   "Summarise these earlier notes and tool results of an "
                                   "agent's work in a few sentences. Keep every fact, number, "
                                   "name, decision and open question; drop pleasantries."}},
                     json::object{{"role", "user"}, {"content", to_summarise}}}}};
    gateway::ModelCall summary_call;
    summary_call.caller = caller;
    summary_call.body = json::serialize(body);
    summary_call.route = "agents.compaction";
    summary_call.label_floor = replay.label;
    net::HttpRequest origin;
    origin.headers.push_back({"x-request-id", run.id + "#compaction"});
    summary_call.origin = &origin;
    const gateway::ModelCallResult summary = co_await gateway::call_model(gateway_, summary_call);
    summary_usage = {summary.tokens_in, summary.tokens_out, summary.cost_usd};
    std::string text;
    if (summary.completed) {
      const json::value answer = parse_or_null(summary.body);
      if (const auto* choices = object_or_empty(answer).if_contains("choices");
          choices && choices->is_array() && !choices->as_array().empty()) {
        const json::value* message = object_or_empty(choices->as_array()[0]).if_contains("message");
        if (message != nullptr) text = string_of(object_or_empty(*message), "content");
      }
    }
    if (text.empty()) text = to_summarise;  // no summary: keep the notes rather than lose them
    compacted.push_back(
        json::object{{"role", "system"}, {"content", std::string(kSummaryPrefix) + text}});
  }
  for (std::size_t i = recent_start; i < messages.size(); ++i) compacted.push_back(messages[i]);
  const std::int64_t before =
      likely_prompt_tokens(json::serialize(json::object{{"messages", messages}}));
  const std::int64_t after =
      likely_prompt_tokens(json::serialize(json::object{{"messages", compacted}}));
  const json::object asked{{"estimated_tokens_before", before}};
  RunStep step{0, "compaction", "", "started", json::serialize(asked), "", 0, 0};
  auto seq = co_await begin_step(run, step);
  if (!seq) co_return Advance::kPark;
  const json::object result{{"messages", std::move(compacted)},
                            {"estimated_tokens_before", before},
                            {"estimated_tokens_after", after},
                            {"masked", masked},
                            {"summarised", summarised},
                            {"input_tokens", summary_usage.input_tokens},
                            {"output_tokens", summary_usage.output_tokens},
                            {"cost_usd", summary_usage.cost_usd}};
  const std::string serialized = json::serialize(result);
  co_await end_step(run, *seq, "completed", serialized);
  // The audit chain records that the run's context was rewritten.
  gateway_.accounting().record_admin("agents.compaction", run.id + "#" + std::to_string(*seq),
                                     run.tenant, run.id, 200);
  co_return Advance::kContinue;
}

asio::awaitable<store::Result<bool>> RunEngine::cancel(std::string_view tenant,
                                                       std::string_view id) {
  auto found = co_await blocking_.run([&] { return store_->find_run(tenant, id); });
  if (!found) co_return store::Status::error(found.error());
  if (!*found || !run_is_active((*found)->status)) co_return false;
  Replay replay = Replay::of({}, gateway_.table()->policy().lattice());
  // Keep the usage the run had: only the status and the reason change.
  const json::value state = parse_or_null((*found)->state_json);
  json::object next = state.is_object() ? state.as_object() : replay.state_json();
  next["pending"] = nullptr;
  next["error"] = json::object{{"code", "cancelled"}, {"message", "The run was cancelled."}};
  const std::string text = json::serialize(next);
  const std::int64_t at = now_ms();
  auto changed = co_await blocking_.run(
      [&] { return store_->update_run(tenant, id, "cancelled", text, at, kActiveStatuses); });
  if (!changed) co_return store::Status::error(changed.error());
  if (!*changed) co_return false;
  std::shared_ptr<gateway::CallCancellation> cancellation;
  {
    std::lock_guard lock(mutex_);
    if (auto it = active_.find(std::string(id)); it != active_.end()) {
      cancellation = it->second->cancellation;
    }
  }
  RunRecord ended = **found;
  ended.status = "cancelled";
  ended.state_json = text;
  ended.updated_at = at;
  // The status goes out before the in-flight call is abandoned, so a subscriber's stream ends
  // with it rather than with that call's failure.
  events_->publish(ended.id, json::object{{"type", "run.status"},
                                          {"run_id", ended.id},
                                          {"status", "cancelled"},
                                          {"run", run_json(ended)}});
  if (cancellation) cancellation->cancel();
  std::vector<std::function<void(const RunRecord&)>> callbacks;
  {
    std::lock_guard lock(mutex_);
    callbacks = finished_callbacks_;
  }
  for (const auto& callback : callbacks) callback(ended);
  co_return true;
}

asio::awaitable<store::Status> RunEngine::decide_approval(std::string_view tenant,
                                                          std::string_view id, std::int64_t seq,
                                                          bool approve, std::string_view by,
                                                          std::string_view reason) {
  auto found = co_await blocking_.run([&] { return store_->find_run(tenant, id); });
  if (!found) co_return store::Status::error(found.error());
  if (!*found) co_return store::Status::error("no run " + std::string(id));
  auto steps = co_await blocking_.run([&] { return store_->steps(tenant, id, seq - 1); });
  if (!steps || steps->empty() || steps->front().seq != seq || steps->front().kind != "approval") {
    co_return store::Status::error("no approval " + std::to_string(seq) + " in run " +
                                   std::string(id));
  }
  if (steps->front().status != "started") {
    co_return store::Status::error("approval " + std::to_string(seq) + " was decided already");
  }
  const RunRecord& run = **found;
  const std::string result =
      json::serialize(json::object{{"approved", approve}, {"by", by}, {"reason", reason}});
  auto ended = co_await end_step(run, seq, "completed", result);
  if (!ended) co_return ended;
  gateway_.accounting().record_admin(approve ? "agents.approve" : "agents.reject",
                                     run.id + "#" + std::to_string(seq), run.tenant, run.id, 200);
  const std::int64_t at = now_ms();
  co_await blocking_.run([&] {
    return store_->update_run(run.tenant, run.id, "running", run.state_json, at,
                              {"waiting_approval"});
  });
  kick(run.tenant, run.id);
  co_return store::Status::success();
}

asio::awaitable<store::Status> RunEngine::resolve(std::string_view tenant, std::string_view id,
                                                  std::int64_t seq, std::string_view action,
                                                  std::string_view output) {
  if (action != "retry" && action != "assume_done" && action != "fail") {
    co_return store::Status::error("action must be retry, assume_done or fail");
  }
  auto found = co_await blocking_.run([&] { return store_->find_run(tenant, id); });
  if (!found) co_return store::Status::error(found.error());
  if (!*found) co_return store::Status::error("no run " + std::string(id));
  if ((*found)->status != "requires_action") {
    co_return store::Status::error("run " + std::string(id) + " is not waiting for a decision");
  }
  auto steps = co_await blocking_.run([&] { return store_->steps(tenant, id, seq - 1); });
  if (!steps || steps->empty() || steps->front().seq != seq || steps->front().kind != "tool_call" ||
      steps->front().status != "started") {
    co_return store::Status::error("step " + std::to_string(seq) +
                                   " is not a tool call with an unknown outcome");
  }
  const RunRecord& run = **found;
  const std::string result =
      json::serialize(json::object{{"step", seq}, {"action", action}, {"output", output}});
  const RunStep decision{0, "decision", "", "completed", "{}", result, 0, 0};
  auto decided = co_await begin_step(run, decision);
  if (!decided) co_return store::Status::error(decided.error());
  gateway_.accounting().record_admin("agents.resolve." + std::string(action),
                                     run.id + "#" + std::to_string(seq), run.tenant, run.id, 200);
  const std::int64_t at = now_ms();
  co_await blocking_.run([&] {
    return store_->update_run(run.tenant, run.id, "running", run.state_json, at,
                              {"requires_action"});
  });
  kick(run.tenant, run.id);
  co_return store::Status::success();
}

json::object RunEngine::step_json(const RunStep& step) {
  return {{"seq", step.seq},
          {"kind", step.kind},
          {"status", step.status},
          {"idempotency_key", step.idempotency_key},
          {"request", parse_or_null(step.request_json)},
          {"result", parse_or_null(step.result_json)},
          {"started_at", step.started_at},
          {"finished_at",
           step.finished_at == 0 ? json::value(nullptr) : json::value(step.finished_at)}};
}

json::object RunEngine::run_json(const RunRecord& run) const {
  json::value state = parse_or_null(run.state_json);
  json::value spec = parse_or_null(run.spec_json);
  json::object out{
      {"id", run.id},
      {"object", "agent.run"},
      {"status", run.status},
      {"created_at", run.created_at / 1000},
      {"updated_at", run.updated_at / 1000},
      {"graph_id", run.graph_id.empty() ? json::value(nullptr) : json::value(run.graph_id)},
      {"task_id", run.task_id.empty() ? json::value(nullptr) : json::value(run.task_id)}};
  const json::object& spec_object = object_or_empty(spec);
  out["model"] = string_of(spec_object, "model");
  out["limits"] = spec_object.contains("limits") ? spec_object.at("limits") : json::object{};
  out["metadata"] = spec_object.contains("metadata") ? spec_object.at("metadata") : json::object{};
  const json::object& state_object = object_or_empty(state);
  for (std::string_view key :
       {"usage", "model_calls", "tool_calls", "output_text", "label", "error", "pending"}) {
    out[key] = state_object.contains(key) ? state_object.at(key) : json::value(nullptr);
  }
  return out;
}

}  // namespace redline::agents
