#include "api/admin_api.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <boost/json.hpp>
#include <charconv>

#include "audit/audit_log.h"
#include "common/openai_error.h"
#include "gateway/caller.h"
#include "gateway/gateway.h"
#include "net/query_string.h"
#include "policy/red_line_policy.h"
#include "quota/api_keys.h"
#include "quota/key_json.h"

namespace redline::api {
namespace {

namespace json = boost::json;

net::HttpResponse json_answer(int status, std::string body) {
  return {status, {{"Content-Type", "application/json"}}, std::move(body)};
}

net::HttpResponse error_answer(int status, std::string message, std::string code) {
  return json_answer(status,
                     error_body(make_error(status, std::move(message), "", std::move(code))));
}

// Hashing both sides first makes the comparison constant-time in the token's length too.
bool admin_token_matches(std::string_view presented, const std::string& expected) {
  unsigned char a[SHA256_DIGEST_LENGTH];
  unsigned char b[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(presented.data()), presented.size(), a);
  SHA256(reinterpret_cast<const unsigned char*>(expected.data()), expected.size(), b);
  return CRYPTO_memcmp(a, b, sizeof a) == 0;
}

std::string list_json(json::array data) {
  return json::serialize(json::object{{"object", "list"}, {"data", std::move(data)}});
}

std::optional<std::string> optional_query(std::string_view target, std::string_view name) {
  auto value = net::query_param(target, name);
  if (value && value->empty()) return std::nullopt;
  return value;
}

// What an admin request changed, as the audit chain names it ("keys.create", ...); "" for reads.
std::string admin_action(const net::HttpRequest& request, std::string_view path) {
  if (request.method == "POST" && path == "/admin/keys") return "keys.create";
  if (request.method == "DELETE" && path.starts_with("/admin/keys/")) return "keys.revoke";
  if (request.method == "POST" && path.starts_with("/admin/approvals/")) {
    return path.ends_with("/approve") ? "approvals.approve" : "approvals.deny";
  }
  return "";
}

// The object an admin action was about: the id in its path, or the id it created.
std::string admin_target(std::string_view path, const net::HttpResponse& response) {
  if (path == "/admin/keys") {
    boost::system::error_code ec;
    json::value body = json::parse(response.body, ec);
    if (ec || !body.is_object()) return "";
    const json::value* id = body.as_object().if_contains("id");
    return id && id->is_string() ? std::string(id->as_string()) : "";
  }
  std::string_view rest = path.substr(path.find('/', 7) + 1);
  return std::string(rest.substr(0, rest.find('/')));
}

}  // namespace

std::optional<net::HttpResponse> AdminApi::refusal(const net::HttpRequest& request,
                                                   const std::string& request_id) {
  const std::string& token = gateway_.table()->config().auth.admin_token;
  if (token.empty()) {
    return error_answer(403, "The admin API is disabled: set [auth] admin_token_env.",
                        "admin_api_disabled");
  }
  if (!admin_token_matches(quota::presented_key(request.header("authorization"), ""), token)) {
    gateway_.accounting().record_admin("admin.unauthorized",
                                       request.method + " " + std::string(request.path()), "",
                                       request_id, 401);
    return error_answer(401, "The admin API needs the admin credential (Authorization: Bearer).",
                        "invalid_admin_credential");
  }
  return std::nullopt;
}

net::HttpResponse AdminApi::handle(const net::HttpRequest& request, const std::string& request_id) {
  net::HttpResponse response;
  const std::string_view path = request.path();
  if (auto refused = refusal(request, request_id)) {
    response = std::move(*refused);
  } else if (path == "/admin/keys" || path.starts_with("/admin/keys/")) {
    response = keys(request, path.substr(11));
  } else if (path == "/admin/approvals" || path.starts_with("/admin/approvals/")) {
    response = approvals(request, path.substr(16));
  } else if (path == "/admin/usage" && request.method == "GET") {
    response = usage(request);
  } else if (path == "/admin/budgets" && request.method == "GET") {
    response = budgets();
  } else {
    response = error_answer(404, "Unknown admin route: " + request.method + " " + std::string(path),
                            "unknown_url");
  }
  if (response.status != 401) {
    if (std::string action = admin_action(request, path); !action.empty()) {
      gateway_.accounting().record_admin(action, admin_target(path, response), "", request_id,
                                         response.status);
    }
  }
  response.headers.push_back({"x-request-id", request_id});
  response.headers.push_back({"Cache-Control", "no-store"});
  return response;
}

net::HttpResponse AdminApi::usage(const net::HttpRequest& request) {
  audit::AuditLog* log = gateway_.accounting().audit();
  if (log == nullptr) {
    return error_answer(503, "Usage is read from the audit log, which is disabled ([audit]).",
                        "audit_disabled");
  }
  audit::UsageQuery query;
  query.tenant = optional_query(request.target, "tenant");
  query.key_id = optional_query(request.target, "key");
  query.model = optional_query(request.target, "model");
  query.backend = optional_query(request.target, "backend");
  bool bad = false;
  if (auto since = net::integer_query_param(request.target, "since", bad)) {
    query.since_ms = *since * 1000;
  }
  if (auto until = net::integer_query_param(request.target, "until", bad)) {
    query.until_ms = *until * 1000;
  }
  if (bad) {
    return error_answer(400, "`since` and `until` are unix times in seconds.", "invalid_request");
  }
  const std::string group_by = optional_query(request.target, "group_by").value_or("");
  std::string_view groups = group_by;
  while (!groups.empty()) {
    const auto comma = groups.find(',');
    std::string_view group = groups.substr(0, comma);
    query.group_by.emplace_back(group == "key" ? "key_id" : group);
    groups = comma == std::string_view::npos ? std::string_view() : groups.substr(comma + 1);
  }
  auto rows = log->usage(query);
  if (!rows.ok()) return error_answer(400, rows.error(), "invalid_request");
  json::array data;
  for (const audit::UsageRow& row : *rows) {
    json::object entry;
    for (const auto& [name, value] : row.group) entry[name == "key_id" ? "key" : name] = value;
    entry["requests"] = row.requests;
    entry["tokens_in"] = row.tokens_in;
    entry["tokens_out"] = row.tokens_out;
    entry["cost_usd"] = row.cost_usd;
    data.push_back(std::move(entry));
  }
  return json_answer(200, list_json(std::move(data)));
}

net::HttpResponse AdminApi::budgets() {
  json::array data;
  for (const quota::BudgetStatus& budget : gateway_.accounting().budgets()) {
    json::object entry{{"scope", budget.scope},
                       {"period", quota::to_string(budget.window)},
                       {"window_start", budget.window_start},
                       {"spent_tokens", budget.settled.tokens},
                       {"spent_cost_usd", budget.settled.cost_usd},
                       {"reserved_tokens", budget.reserved.tokens},
                       {"reserved_cost_usd", budget.reserved.cost_usd}};
    entry["max_tokens"] = budget.max_tokens ? json::value(*budget.max_tokens) : json::value();
    entry["max_cost_usd"] = budget.max_cost_usd ? json::value(*budget.max_cost_usd) : json::value();
    data.push_back(std::move(entry));
  }
  return json_answer(200, list_json(std::move(data)));
}

net::HttpResponse AdminApi::keys(const net::HttpRequest& request, std::string_view rest) {
  quota::ApiKeyService* keys = gateway_.keys();
  if (keys == nullptr) return error_answer(503, "No key store is configured.", "store_unavailable");
  if (rest.empty() && request.method == "GET") {
    const auto tenant = optional_query(request.target, "tenant");
    auto listed = keys->list(tenant ? std::optional<std::string_view>(*tenant) : std::nullopt);
    if (!listed.ok()) return error_answer(500, listed.error(), "store_error");
    json::array data;
    for (const auto& key : listed.value()) data.push_back(quota::key_to_json(key));
    return json_answer(200, list_json(std::move(data)));
  }
  if (rest.empty() && request.method == "POST") return create_key(request);
  if (rest.size() > 1 && request.method == "DELETE") {
    const std::string id(rest.substr(1));
    store::Status status = keys->revoke(id);
    if (!status.ok) return error_answer(404, status.message, "key_not_found");
    return json_answer(
        200, json::serialize(json::object{{"id", id}, {"object", "api_key"}, {"revoked", true}}));
  }
  return error_answer(405, "Method " + request.method + " is not allowed here.",
                      "method_not_allowed");
}

net::HttpResponse AdminApi::create_key(const net::HttpRequest& request) {
  boost::system::error_code ec;
  json::value body = json::parse(request.body, ec);
  if (ec || !body.is_object()) {
    return error_answer(400, "The body must be a JSON object.", "invalid_json");
  }
  const json::object& fields = body.as_object();
  quota::KeyRequest key_request;
  auto read_string = [&](std::string_view name, std::string& out) {
    const json::value* value = fields.if_contains(name);
    if (value == nullptr || value->is_null()) return true;
    if (!value->is_string()) return false;
    out = std::string(value->as_string());
    return true;
  };
  if (!read_string("tenant", key_request.tenant) || key_request.tenant.empty()) {
    return error_answer(400, "`tenant` (a non-empty string) is required.", "invalid_request");
  }
  if (!read_string("default_label", key_request.default_label) ||
      !read_string("max_label", key_request.max_label) ||
      !read_string("description", key_request.description)) {
    return error_answer(400, "default_label, max_label and description must be strings.",
                        "invalid_request");
  }
  if (const json::value* models = fields.if_contains("models"); models && !models->is_null()) {
    if (!models->is_array()) {
      return error_answer(400, "`models` must be an array of model aliases.", "invalid_request");
    }
    for (const auto& model : models->as_array()) {
      if (!model.is_string()) {
        return error_answer(400, "`models` must be an array of model aliases.", "invalid_request");
      }
      key_request.models.emplace_back(model.as_string());
    }
  }
  if (const json::value* expires = fields.if_contains("expires_at");
      expires && !expires->is_null()) {
    if (!expires->is_int64()) {
      return error_answer(400, "`expires_at` must be a unix time in seconds.", "invalid_request");
    }
    key_request.expires_at = expires->as_int64();
  }
  const policy::LabelLattice& lattice = gateway_.table()->policy().lattice();
  if (auto problem =
          gateway::check_key_labels(lattice, key_request.default_label, key_request.max_label)) {
    return error_answer(400, *problem, "invalid_label");
  }
  auto created = gateway_.keys()->create(key_request);
  if (!created.ok()) return error_answer(500, created.error(), "store_error");
  json::object out = quota::key_to_json(created.value().record);
  out["key"] = created.value().secret;
  return json_answer(201, json::serialize(out));
}

net::HttpResponse AdminApi::approvals(const net::HttpRequest& request, std::string_view rest) {
  gateway::ApprovalDesk& desk = gateway_.approvals();
  if (rest.empty() && request.method == "GET") {
    std::string body = R"({"object":"list","data":[)";
    bool first = true;
    for (const auto& pending : desk.pending()) {
      if (!first) body += ",";
      first = false;
      body += gateway::to_json(pending);
    }
    return json_answer(200, body + "]}");
  }
  const bool approve = rest.ends_with("/approve");
  const bool deny = rest.ends_with("/deny");
  if (request.method != "POST" || rest.size() < 2 || (!approve && !deny)) {
    return error_answer(404, "Use POST /admin/approvals/{id}/approve or /deny.", "unknown_url");
  }
  const std::string id(rest.substr(1, rest.rfind('/') - 1));
  if (!desk.decide(id, approve)) {
    return error_answer(404, "No request with id '" + id + "' is waiting for approval.",
                        "approval_not_found");
  }
  return json_answer(
      200, json::serialize(json::object{
               {"id", id}, {"object", "approval"}, {"decision", approve ? "approved" : "denied"}}));
}

}  // namespace redline::api
