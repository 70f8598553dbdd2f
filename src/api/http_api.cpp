#include "api/http_api.h"

#include "agents/agents_api.h"
#include "agents/memory_service.h"
#include "agents/responses_service.h"
#include "common/json_text.h"
#include "common/openai_error.h"
#include "gateway/caller.h"
#include "gateway/gateway.h"
#include "policy/red_line_policy.h"

namespace redline::api {

namespace asio = boost::asio;
using gateway::ApiKind;

namespace {

struct Route {
  std::string_view path;
  std::string_view method;
  std::string_view name;  // the route label in metrics and logs
};

constexpr Route kRoutes[] = {
    {"/v1/chat/completions", "POST", "chat.completions"},
    {"/v1/completions", "POST", "completions"},
    {"/v1/embeddings", "POST", "embeddings"},
    {"/v1/models", "GET", "models"},
    {"/healthz", "GET", "healthz"},
    {"/readyz", "GET", "readyz"},
    {"/metrics", "GET", "metrics"},
};

// A client's request id is kept when it is a sane token; otherwise Redline makes one.
std::string request_id_for(const net::HttpRequest& request) {
  std::string_view given = request.header("x-request-id");
  if (given.empty() || given.size() > 128) return gateway::new_request_id();
  for (char c : given) {
    if (c <= 0x20 || c >= 0x7f) return gateway::new_request_id();
  }
  return std::string(given);
}

net::HttpResponse json_response(int status, std::string body, const std::string& request_id) {
  return {status,
          {{"Content-Type", "application/json"}, {"x-request-id", request_id}},
          std::move(body)};
}

std::string model_json(const std::string& models_json, std::string_view id) {
  // The list is built once per configuration; one entry is cut out of it rather than rebuilt.
  std::string needle = "{\"id\":" + json_string(id) + ",";
  auto start = models_json.find(needle);
  if (start == std::string::npos) return {};
  auto end = models_json.find('}', start + needle.size());
  return models_json.substr(start, end - start + 1);
}

// "responses", "conversations", "memory" or "agent" when `path` is one of theirs; "" otherwise.
std::string_view stateful_family(std::string_view path) {
  for (std::string_view family : {"responses", "conversations", "memory", "agent"}) {
    const std::string prefix = "/v1/" + std::string(family);
    if (path == prefix || path.starts_with(prefix + "/")) return family;
  }
  return "";
}

}  // namespace

net::Handler HttpApi::handler() {
  return [this](net::HttpRequest& request, net::ResponseWriter& writer) {
    return handle(request, writer);
  };
}

asio::awaitable<void> HttpApi::handle(net::HttpRequest& request, net::ResponseWriter& writer) {
  gateway::RequestContext context;
  context.request_id = request_id_for(request);
  const std::string_view path = request.path();

  const Route* route = nullptr;
  bool path_known = false;
  for (const auto& candidate : kRoutes) {
    if (candidate.path != path) continue;
    path_known = true;
    if (candidate.method == request.method) route = &candidate;
  }
  const bool model_lookup = path.starts_with("/v1/models/") && path.size() > 11;
  if (const std::string_view family = stateful_family(path);
      !family.empty() && responses_ != nullptr && memory_ != nullptr &&
      (family != "agent" || agents_ != nullptr)) {
    co_await handle_stateful(family, request, writer, context);
    gateway_.settle(request, context);
    co_return;
  }
  if (path.starts_with("/admin/agent/") && agents_ != nullptr) {
    context.route = "admin";
    net::HttpResponse answer;
    if (auto refused = admin_.refusal(request, context.request_id)) {
      answer = std::move(*refused);
    } else {
      answer = co_await agents_->handle_admin(request);
    }
    answer.headers.push_back({"x-request-id", context.request_id});
    answer.headers.push_back({"Cache-Control", "no-store"});
    context.status = answer.status;
    co_await writer.send(std::move(answer));
    gateway_.settle(request, context);
    co_return;
  }

  net::HttpResponse response;
  // The model list is part of the API a key grants, so it asks for one like the calls do.
  const bool lists_models =
      (model_lookup && request.method == "GET") || (route != nullptr && route->name == "models");
  std::optional<gateway::CallerResult> caller;
  if (lists_models) {
    auto table = gateway_.table();
    caller = gateway::identify_caller(request, gateway_.keys(), table->policy().lattice(),
                                      table->config().auth.required);
  }
  if (path.starts_with("/admin/")) {
    context.route = "admin";
    response = admin_.handle(request, context.request_id);
  } else if (caller && !caller->caller) {
    context.route = "models";
    response = json_response(caller->error.status, error_body(caller->error), context.request_id);
  } else if (model_lookup && request.method == "GET") {
    context.route = "models";
    auto table = gateway_.table();
    std::string body = model_json(table->models_json(), path.substr(11));
    response =
        body.empty()
            ? json_response(
                  404,
                  error_body(make_error(
                      404, "The model `" + std::string(path.substr(11)) + "` does not exist.",
                      "model", "model_not_found")),
                  context.request_id)
            : json_response(200, std::move(body), context.request_id);
  } else if (!route) {
    context.route = "unknown";
    int status = (path_known || model_lookup) ? 405 : 404;
    std::string message =
        status == 405 ? "Method " + request.method + " is not allowed on " + std::string(path) + "."
                      : "Unknown request URL: " + request.method + " " + std::string(path) +
                            ". Please check the URL.";
    response =
        json_response(status,
                      error_body(make_error(status, message, "",
                                            status == 405 ? "method_not_allowed" : "unknown_url")),
                      context.request_id);
    if (status == 405) {
      for (const auto& candidate : kRoutes) {
        if (candidate.path == path)
          response.headers.push_back({"Allow", std::string(candidate.method)});
      }
    }
  } else if (route->name == "chat.completions" || route->name == "completions" ||
             route->name == "embeddings") {
    context.route = route->name;
    ApiKind kind = route->name == "chat.completions" ? ApiKind::kChatCompletions
                   : route->name == "completions"    ? ApiKind::kCompletions
                                                     : ApiKind::kEmbeddings;
    co_await gateway_.proxy(kind, request, writer, context);
    gateway_.settle(request, context);
    co_return;
  } else {
    context.route = route->name;
    if (route->name == "models") {
      response = json_response(200, gateway_.table()->models_json(), context.request_id);
    } else if (route->name == "healthz") {
      response = json_response(200, R"({"status":"ok"})", context.request_id);
    } else if (route->name == "readyz") {
      bool ready = gateway_.ready();
      response = json_response(ready ? 200 : 503,
                               ready ? R"({"status":"ready"})"
                                     : R"({"status":"not ready","reason":"no healthy backend"})",
                               context.request_id);
    } else {
      response = {
          200,
          {{"Content-Type", "text/plain; version=0.0.4"}, {"x-request-id", context.request_id}},
          gateway_.metrics().scrape(gateway_.registry())};
    }
  }
  context.status = response.status;
  co_await writer.send(std::move(response));
  gateway_.settle(request, context);
}

asio::awaitable<void> HttpApi::handle_stateful(std::string_view family, net::HttpRequest& request,
                                               net::ResponseWriter& writer,
                                               gateway::RequestContext& context) {
  context.route = family;
  auto table = gateway_.table();
  const gateway::CallerResult identified = gateway::identify_caller(
      request, gateway_.keys(), table->policy().lattice(), table->config().auth.required);
  if (!identified.caller) {
    context.status = identified.error.status;
    context.decision = "unauthenticated";
    net::HttpResponse refused =
        json_response(identified.error.status, error_body(identified.error), context.request_id);
    co_await writer.send(std::move(refused));
    co_return;
  }
  const gateway::Caller& caller = *identified.caller;
  context.tenant = caller.tenant;
  context.key_id = caller.key_id;
  if (family == "agent") {
    co_await agents_->handle(caller, request, writer, context);
    co_return;
  }
  if (family != "memory") {
    co_await responses_->handle(caller, request, writer, context);
    co_return;
  }
  net::HttpResponse response = co_await memory_->handle(caller, request, request.path());
  response.headers.push_back({"x-request-id", context.request_id});
  context.status = response.status;
  co_await writer.send(std::move(response));
}

}  // namespace redline::api
