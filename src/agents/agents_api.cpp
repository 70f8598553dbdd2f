#include "agents/agents_api.h"

#include <boost/json.hpp>
#include <chrono>

#include "agents/blocking_pool.h"
#include "agents/graph_executor.h"
#include "agents/json_answer.h"
#include "agents/run_engine.h"
#include "agents/run_spec.h"
#include "agents/task_graph.h"
#include "gateway/caller.h"
#include "gateway/gateway.h"
#include "net/query_string.h"
#include "net/sse.h"

namespace redline::agents {

namespace asio = boost::asio;
namespace json = boost::json;

namespace {

constexpr auto kHeartbeat = std::chrono::seconds(15);

net::HttpResponse not_found(std::string_view what, std::string_view id) {
  return json_error(make_error(404, std::string(what) + " '" + std::string(id) + "' not found.", "",
                               "not_found"));
}

net::HttpResponse store_failed(const std::string& message) {
  return json_error(make_error(500, "The run store failed: " + message, "", "store_error"));
}

net::HttpResponse unknown_url(const net::HttpRequest& request) {
  return json_error(make_error(
      404, "Unknown request URL: " + request.method + " " + std::string(request.path()) + ".", "",
      "unknown_url"));
}

std::string event_frame(std::string_view type, const json::object& data) {
  return "event: " + std::string(type) + "\ndata: " + json::serialize(data) + "\n\n";
}

}  // namespace

asio::awaitable<void> AgentsApi::handle(const gateway::Caller& caller, net::HttpRequest& request,
                                        net::ResponseWriter& writer,
                                        gateway::RequestContext& context) {
  const std::string_view path = request.path();
  constexpr std::string_view kRuns = "/v1/agent/runs";
  constexpr std::string_view kGraphs = "/v1/agent/graphs";
  const bool events = request.method == "GET" && path.ends_with("/events");
  if (events && path.starts_with(std::string(kRuns) + "/")) {
    const std::string_view id = path.substr(kRuns.size() + 1, path.size() - kRuns.size() - 8);
    co_await stream_events(caller, id, false, writer, context);
    co_return;
  }
  if (events && path.starts_with(std::string(kGraphs) + "/")) {
    const std::string_view id = path.substr(kGraphs.size() + 1, path.size() - kGraphs.size() - 8);
    co_await stream_events(caller, id, true, writer, context);
    co_return;
  }
  net::HttpResponse answer;
  if (path == kRuns || path.starts_with(std::string(kRuns) + "/")) {
    answer = co_await runs(caller, request, path.substr(kRuns.size()));
  } else if (path == kGraphs || path.starts_with(std::string(kGraphs) + "/")) {
    answer = co_await graphs(caller, request, path.substr(kGraphs.size()));
  } else {
    answer = unknown_url(request);
  }
  answer.headers.push_back({"x-request-id", context.request_id});
  context.status = answer.status;
  co_await writer.send(std::move(answer));
}

asio::awaitable<net::HttpResponse> AgentsApi::runs(const gateway::Caller& caller,
                                                   const net::HttpRequest& request,
                                                   std::string_view rest) {
  store::RunStore& store = runs_.store();
  const std::string tenant = caller.tenant;
  if (rest.empty()) {
    if (request.method == "POST") {
      RunSpecParse parsed = parse_run_spec(request.body);
      if (!parsed.spec) co_return json_error(parsed.error);
      if (auto refusal =
              check_run_request(gateway_, caller, parsed.spec->model, parsed.spec->tools, "")) {
        co_return json_error(*refusal);
      }
      auto started = co_await runs_.start(caller, std::move(*parsed.spec));
      if (!started) co_return store_failed(started.error());
      co_return json_ok(runs_.run_json(*started));
    }
    if (request.method == "GET") {
      bool bad = false;
      const auto limit = net::integer_query_param(request.target, "limit", bad).value_or(20);
      if (bad || limit < 1 || limit > 100) {
        co_return json_error(
            make_error(400, "`limit` must be between 1 and 100.", "limit", "invalid_value"));
      }
      const std::string graph_id = net::query_param(request.target, "graph_id").value_or("");
      auto listed = co_await blocking_.run(
          [&] { return store.list_runs(tenant, graph_id, static_cast<std::size_t>(limit)); });
      if (!listed) co_return store_failed(listed.error());
      json::array data;
      for (const store::RunRecord& run : *listed) data.push_back(runs_.run_json(run));
      co_return json_list(std::move(data));
    }
    co_return method_not_allowed(request, "GET, POST");
  }
  rest.remove_prefix(1);
  const auto slash = rest.find('/');
  const std::string id(rest.substr(0, slash));
  const std::string_view action = slash == std::string_view::npos ? "" : rest.substr(slash);
  auto found = co_await blocking_.run([&] { return store.find_run(tenant, id); });
  if (!found) co_return store_failed(found.error());
  if (!*found) co_return not_found("Run", id);
  const store::RunRecord& run = **found;

  if (action.empty()) {
    if (request.method != "GET") co_return method_not_allowed(request, "GET");
    co_return json_ok(runs_.run_json(run));
  }
  if (action == "/steps") {
    if (request.method != "GET") co_return method_not_allowed(request, "GET");
    auto steps = co_await blocking_.run([&] { return store.steps(tenant, id); });
    if (!steps) co_return store_failed(steps.error());
    json::array data;
    for (const store::RunStep& step : *steps) data.push_back(RunEngine::step_json(step));
    co_return json_list(std::move(data));
  }
  if (action == "/cancel") {
    if (request.method != "POST") co_return method_not_allowed(request, "POST");
    auto cancelled = co_await runs_.cancel(tenant, id);
    if (!cancelled) co_return store_failed(cancelled.error());
    auto now = co_await blocking_.run([&] { return store.find_run(tenant, id); });
    if (!now || !*now) co_return not_found("Run", id);
    co_return json_ok(runs_.run_json(**now));
  }
  boost::system::error_code ec;
  const json::value body =
      request.body.empty() ? json::value(json::object{}) : json::parse(request.body, ec);
  if (ec || !body.is_object()) {
    co_return json_error(make_error(400, "The body must be a JSON object.", "", "invalid_json"));
  }
  const json::object& fields = body.as_object();
  // Only the key that started a run (or the admin, through /admin/agent/) decides for it.
  if ((action.starts_with("/approvals/") || action == "/resolve") && run.key_id != caller.key_id) {
    co_return json_error(make_error(
        403,
        "Only the API key that started run " + id + " (or an administrator) may decide for it.", "",
        "not_run_owner"));
  }
  if (action.starts_with("/approvals/")) {
    if (request.method != "POST") co_return method_not_allowed(request, "POST");
    std::int64_t seq = 0;
    try {
      seq = std::stoll(std::string(action.substr(11)));
    } catch (const std::exception&) {
      co_return unknown_url(request);
    }
    const json::value* approve = fields.if_contains("approve");
    if (approve == nullptr || !approve->is_bool()) {
      co_return json_error(make_error(400, "`approve` (true or false) is required.", "approve",
                                      "missing_required_parameter"));
    }
    const json::value* reason = fields.if_contains("reason");
    std::string reason_text =
        reason && reason->is_string() ? std::string(reason->as_string()) : std::string();
    std::string by = "key:" + caller.key_id;
    auto decided = co_await runs_.decide_approval(tenant, id, seq, approve->as_bool(),
                                                  std::move(by), std::move(reason_text));
    if (!decided) co_return json_error(make_error(409, decided.message, "", "conflict"));
    auto now = co_await blocking_.run([&] { return store.find_run(tenant, id); });
    if (!now || !*now) co_return not_found("Run", id);
    co_return json_ok(runs_.run_json(**now));
  }
  if (action == "/resolve") {
    if (request.method != "POST") co_return method_not_allowed(request, "POST");
    const json::value* step = fields.if_contains("step");
    const json::value* decision = fields.if_contains("action");
    const json::value* output = fields.if_contains("output");
    if (step == nullptr || !step->is_int64() || decision == nullptr || !decision->is_string()) {
      co_return json_error(make_error(400,
                                      "`step` (the tool call's step) and `action` (retry, "
                                      "assume_done or fail) are required.",
                                      "action", "missing_required_parameter"));
    }
    std::string action_text(decision->as_string());
    std::string output_text =
        output && output->is_string() ? std::string(output->as_string()) : std::string();
    auto resolved = co_await runs_.resolve(tenant, id, step->as_int64(), std::move(action_text),
                                           std::move(output_text));
    if (!resolved) co_return json_error(make_error(409, resolved.message, "", "conflict"));
    auto now = co_await blocking_.run([&] { return store.find_run(tenant, id); });
    if (!now || !*now) co_return not_found("Run", id);
    co_return json_ok(runs_.run_json(**now));
  }
  co_return unknown_url(request);
}

asio::awaitable<net::HttpResponse> AgentsApi::graphs(const gateway::Caller& caller,
                                                     const net::HttpRequest& request,
                                                     std::string_view rest) {
  const auto table = gateway_.table();
  const config::AgentSettings& settings = table->config().agents;
  if (rest.empty()) {
    if (request.method != "POST") co_return method_not_allowed(request, "POST");
    GraphLimits limits;
    limits.max_tasks = settings.max_graph_tasks;
    limits.max_concurrency = settings.max_graph_concurrency;
    GraphParse parsed = parse_graph_spec(request.body, limits);
    if (!parsed.graph) co_return json_error(parsed.error);
    for (std::size_t i = 0; i < parsed.graph->tasks.size(); ++i) {
      const TaskSpec& task = parsed.graph->tasks[i];
      const std::string prefix = "tasks[" + std::to_string(i) + "].";
      std::optional<ApiError> error;
      const auto grants = read_mcp_grants(task.tools, prefix + "tools", error);
      if (!error) error = check_run_request(gateway_, caller, task.model, grants, prefix);
      if (error) co_return json_error(*error);
    }
    auto started = co_await graphs_.start(caller, std::move(*parsed.graph));
    if (!started) co_return store_failed(started.error());
    auto described = co_await graphs_.describe(caller.tenant, started->id);
    if (!described || !*described) co_return store_failed("the graph vanished");
    co_return json_ok(**described);
  }
  rest.remove_prefix(1);
  const auto slash = rest.find('/');
  const std::string id(rest.substr(0, slash));
  const std::string_view action = slash == std::string_view::npos ? "" : rest.substr(slash);
  if (action == "/cancel") {
    if (request.method != "POST") co_return method_not_allowed(request, "POST");
    auto cancelled = co_await graphs_.cancel(caller.tenant, id);
    if (!cancelled) co_return store_failed(cancelled.error());
  } else if (!action.empty()) {
    co_return unknown_url(request);
  } else if (request.method != "GET") {
    co_return method_not_allowed(request, "GET");
  }
  auto described = co_await graphs_.describe(caller.tenant, id);
  if (!described) co_return store_failed(described.error());
  if (!*described) co_return not_found("Graph", id);
  co_return json_ok(**described);
}

asio::awaitable<void> AgentsApi::stream_events(const gateway::Caller& caller, std::string_view id,
                                               bool graph, net::ResponseWriter& writer,
                                               gateway::RequestContext& context) {
  const std::string object_id(id);
  // Subscribed before the snapshot is read, so nothing falls between the two.
  auto subscription = runs_.events().subscribe(object_id, co_await asio::this_coro::executor);
  std::string opening;
  bool ended = false;
  std::int64_t replayed_seq = 0;
  if (graph) {
    auto described = co_await graphs_.describe(caller.tenant, object_id);
    if (!described || !*described) {
      net::HttpResponse missing = not_found("Graph", object_id);
      context.status = missing.status;
      co_await writer.send(std::move(missing));
      co_return;
    }
    const std::string status(described->value().at("status").as_string());
    ended = status != "running";
    opening = event_frame("graph.snapshot",
                          json::object{{"type", "graph.snapshot"}, {"graph", **described}});
  } else {
    store::RunStore& store = runs_.store();
    const std::string tenant = caller.tenant;
    auto found = co_await blocking_.run([&] { return store.find_run(tenant, object_id); });
    if (!found || !*found) {
      net::HttpResponse missing = not_found("Run", object_id);
      context.status = missing.status;
      co_await writer.send(std::move(missing));
      co_return;
    }
    auto steps = co_await blocking_.run([&] { return store.steps(tenant, object_id); });
    if (steps) {
      for (const store::RunStep& step : *steps) {
        opening += event_frame("run.step", json::object{{"type", "run.step"},
                                                        {"run_id", object_id},
                                                        {"step", RunEngine::step_json(step)}});
        replayed_seq = step.seq;
      }
    }
    opening += event_frame("run.status", json::object{{"type", "run.status"},
                                                      {"run_id", object_id},
                                                      {"status", (*found)->status},
                                                      {"run", runs_.run_json(**found)}});
    ended = !run_is_active((*found)->status);
  }
  net::Headers headers{{"Content-Type", "text/event-stream"},
                       {"Cache-Control", "no-cache"},
                       {"x-request-id", context.request_id}};
  context.status = 200;
  if (!co_await writer.begin_stream(200, std::move(headers))) co_return;
  bool open = co_await writer.write_chunk(opening);
  while (open && !ended) {
    auto event = co_await subscription->next(kHeartbeat);
    if (writer.client_gone()) break;
    if (!event) {
      open = co_await writer.write_chunk(": keep-alive\n\n");
      continue;
    }
    // Steps the snapshot already showed are not sent twice.
    if (const auto* step = event->if_contains("step"); step && step->is_object()) {
      const auto* seq = step->as_object().if_contains("seq");
      if (seq && seq->is_int64() && seq->as_int64() <= replayed_seq &&
          event->at("type").as_string() == "run.step.started") {
        continue;
      }
    }
    const std::string type(event->at("type").as_string());
    if (type == "run.status") {
      ended = !run_is_active(event->at("status").as_string());
    } else if (type == "graph.status") {
      ended = event->at("status").as_string() != "running";
    }
    const std::string frame = event_frame(type, *event);
    open = co_await writer.write_chunk(frame);
  }
  if (open) co_await writer.end_stream();
}

asio::awaitable<net::HttpResponse> AgentsApi::handle_admin(const net::HttpRequest& request) {
  const std::string_view path = request.path();
  store::RunStore& store = runs_.store();
  if (path == "/admin/agent/approvals" && request.method == "GET") {
    auto waiting =
        co_await blocking_.run([&] { return store.runs_with_status({"waiting_approval"}); });
    if (!waiting) co_return store_failed(waiting.error());
    json::array data;
    for (const store::RunRecord& run : *waiting) {
      json::object entry = runs_.run_json(run);
      entry["tenant"] = run.tenant;
      data.push_back(std::move(entry));
    }
    co_return json_list(std::move(data));
  }
  // /admin/agent/runs/{tenant}/{id}/approvals/{seq}
  constexpr std::string_view kPrefix = "/admin/agent/runs/";
  if (path.starts_with(kPrefix) && request.method == "POST") {
    std::string_view rest = path.substr(kPrefix.size());
    const auto first = rest.find('/');
    const auto marker = rest.find("/approvals/");
    if (first == std::string_view::npos || marker == std::string_view::npos || marker <= first) {
      co_return unknown_url(request);
    }
    const std::string tenant(rest.substr(0, first));
    const std::string id(rest.substr(first + 1, marker - first - 1));
    std::int64_t seq = 0;
    try {
      seq = std::stoll(std::string(rest.substr(marker + 11)));
    } catch (const std::exception&) {
      co_return unknown_url(request);
    }
    boost::system::error_code ec;
    const json::value body = json::parse(request.body, ec);
    const json::value* approve =
        !ec && body.is_object() ? body.as_object().if_contains("approve") : nullptr;
    if (approve == nullptr || !approve->is_bool()) {
      co_return json_error(make_error(400, "`approve` (true or false) is required.", "approve",
                                      "missing_required_parameter"));
    }
    const json::value* reason = body.as_object().if_contains("reason");
    std::string reason_text =
        reason && reason->is_string() ? std::string(reason->as_string()) : std::string();
    auto decided = co_await runs_.decide_approval(tenant, id, seq, approve->as_bool(), "admin",
                                                  std::move(reason_text));
    if (!decided) co_return json_error(make_error(409, decided.message, "", "conflict"));
    auto now = co_await blocking_.run([&] { return store.find_run(tenant, id); });
    if (!now || !*now) co_return not_found("Run", id);
    co_return json_ok(runs_.run_json(**now));
  }
  co_return unknown_url(request);
}

}  // namespace redline::agents
