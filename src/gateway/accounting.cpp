#include "gateway/accounting.h"

#include "audit/audit_log.h"
#include "gateway/caller.h"
#include "gateway/gateway.h"
#include "gateway/metrics.h"

namespace redline::gateway {
namespace {

constexpr double kPerMillion = 1e-6;

quota::BudgetWindow window_of(config::BudgetPeriod period) {
  switch (period) {
    case config::BudgetPeriod::kDay:
      return quota::BudgetWindow::kDay;
    case config::BudgetPeriod::kMonth:
      return quota::BudgetWindow::kMonth;
    case config::BudgetPeriod::kTotal:
      return quota::BudgetWindow::kTotal;
  }
  return quota::BudgetWindow::kTotal;
}

std::vector<quota::BudgetSpec> budget_specs(const config::Config& config) {
  std::vector<quota::BudgetSpec> specs;
  for (const config::BudgetSettings& budget : config.budgets) {
    specs.push_back({budget.key.empty() ? tenant_scope(budget.tenant) : key_scope(budget.key),
                     window_of(budget.period), budget.max_tokens, budget.max_cost_usd});
  }
  return specs;
}

// What a scope spent from `since` on, read from the audit chain: the spend of earlier runs of
// this process and of other processes on the same store.
quota::Spend settled_spend(audit::AuditLog* audit, std::string_view scope, std::int64_t since) {
  if (audit == nullptr) return {};
  audit::UsageQuery query;
  if (scope.starts_with("key:")) {
    query.key_id = std::string(scope.substr(4));
  } else {
    query.tenant = std::string(scope.substr(7));
  }
  query.since_ms = since * 1000;
  auto rows = audit->usage(query);
  quota::Spend spend;
  if (!rows.ok()) return spend;
  for (const audit::UsageRow& row : *rows) {
    spend.tokens += row.tokens_in + row.tokens_out;
    spend.cost_usd += row.cost_usd;
  }
  return spend;
}

void add_fields(net::Headers& headers,
                const std::vector<std::pair<std::string_view, std::string>>& fields) {
  for (const auto& [name, value] : fields) headers.push_back({std::string(name), value});
}

}  // namespace

std::string tenant_scope(std::string_view tenant) { return "tenant:" + std::string(tenant); }
std::string key_scope(std::string_view key_id) { return "key:" + std::string(key_id); }

Accounting::Accounting(const config::Config& config, std::shared_ptr<audit::AuditLog> audit,
                       Metrics& metrics, std::shared_ptr<const quota::Clock> clock)
    : audit_(std::move(audit)),
      metrics_(metrics),
      clock_(std::move(clock)),
      durable_before_response_(audit_ != nullptr &&
                               config.audit.durability == config::AuditDurability::kBeforeResponse),
      limiter_(clock_),
      limits_(std::make_shared<const std::vector<config::LimitSettings>>(config.limits)) {
  audit::AuditLog* log = audit_.get();
  budgets_ = std::make_unique<quota::BudgetBook>(budget_specs(config), clock_,
                                                 [log](std::string_view scope, std::int64_t since) {
                                                   return settled_spend(log, scope, since);
                                                 });
}

Accounting::~Accounting() = default;

void Accounting::reconfigure(const config::Config& config) {
  budgets_->configure(budget_specs(config));
  auto limits = std::make_shared<const std::vector<config::LimitSettings>>(config.limits);
  std::lock_guard lock(limits_mutex_);
  limits_ = std::move(limits);
}

std::vector<quota::RateLimitScope> Accounting::limit_scopes(const Caller& caller) const {
  std::shared_ptr<const std::vector<config::LimitSettings>> limits;
  {
    std::lock_guard lock(limits_mutex_);
    limits = limits_;
  }
  std::vector<quota::RateLimitScope> scopes;
  for (std::size_t i = 0; i < limits->size(); ++i) {
    const config::LimitSettings& limit = (*limits)[i];
    const bool applies = !limit.key.empty() ? limit.key == caller.key_id
                                            : limit.tenant == "*" || limit.tenant == caller.tenant;
    if (!applies) continue;
    // The entry's index keeps two entries on one key or tenant from sharing buckets.
    std::string id = "limits[" + std::to_string(i) + "]:";
    const bool per_key = !limit.key.empty() || limit.each_key;
    id += per_key ? key_scope(caller.key_id) : tenant_scope(caller.tenant);
    scopes.push_back({std::move(id),
                      {limit.requests_per_minute, limit.tokens_per_minute, limit.max_concurrent}});
  }
  return scopes;
}

AdmissionResult Accounting::admit(const Caller& caller, std::int64_t input_tokens,
                                  std::int64_t output_tokens, double worst_case_cost) {
  AdmissionResult result;
  const std::int64_t worst_case_tokens = input_tokens + output_tokens;
  const std::vector<quota::RateLimitScope> scopes = limit_scopes(caller);
  quota::RateLimitAdmission limited = limiter_.admit(scopes, worst_case_tokens);
  add_fields(result.headers, limited.status.header_fields());
  if (!limited.admitted()) {
    const quota::RateLimitDenial& denial = *limited.denial;
    add_fields(result.headers, denial.retry_header_fields());
    if (denial.exceeds_limit) result.headers.push_back({"x-should-retry", "false"});
    result.refusal = make_error(429, denial.message(), "", "rate_limit_exceeded");
    return result;
  }
  const std::string budget_scopes[] = {tenant_scope(caller.tenant), key_scope(caller.key_id)};
  quota::BudgetReserveResult reserved =
      budgets_->reserve(std::span<const std::string>(budget_scopes, caller.key_id.empty() ? 1 : 2),
                        quota::Spend{worst_case_tokens, worst_case_cost});
  if (!reserved.ok()) {
    const quota::BudgetDenial& denial = *reserved.denial;
    // Waiting seconds will not refill a budget: the SDKs must not retry.
    result.headers.push_back({"x-should-retry", "false"});
    if (denial.resets_in) {
      result.headers.push_back({"Retry-After", std::to_string(denial.resets_in->count())});
    }
    result.refusal = make_error(429, denial.message(), "", "budget_exceeded");
    return result;
  }
  result.admitted =
      Admission{std::move(*limited.lease), std::move(reserved.reservation), input_tokens};
  return result;
}

void Accounting::settle(RequestContext& context, std::function<void(bool ok)> on_durable) {
  if (context.settled) {
    if (on_durable) on_durable(true);
    return;
  }
  context.settled = true;
  if (context.admission) {
    // A call cut short without a usage report is charged its prompt as estimated: the upstream
    // read it.
    if (!context.backend.empty() && context.tokens_in == 0) {
      context.tokens_in = context.admission->estimated_input_tokens;
    }
    context.cost_usd = (static_cast<double>(context.tokens_in) * context.price_input_per_mtok +
                        static_cast<double>(context.tokens_out) * context.price_output_per_mtok) *
                       kPerMillion;
    const std::int64_t tokens = context.tokens_in + context.tokens_out;
    context.admission->lease.settle(tokens);
    if (context.admission->reservation) {
      if (context.backend.empty()) {
        context.admission->reservation.reset();  // nothing reached a backend: nothing spent
      } else {
        context.admission->reservation->settle({tokens, context.cost_usd});
      }
    }
    context.admission.reset();
  }
  if (!context.backend.empty()) {
    metrics_.record_usage(context.tenant, context.model, context.tokens_in, context.tokens_out,
                          context.cost_usd);
  }
  if (!audit_) {
    if (on_durable) on_durable(true);
    return;
  }
  audit::AuditEvent event;
  event.request_id = context.request_id;
  event.tenant = context.tenant;
  event.key_id = context.key_id;
  event.model = context.model;
  event.backend = context.backend;
  event.label = context.label;
  event.decision = context.decision;
  event.detectors = context.detectors;
  event.rules = context.rules;
  event.error = context.error;
  event.status = context.status;
  event.tokens_in = context.tokens_in;
  event.tokens_out = context.tokens_out;
  event.cost_usd = context.cost_usd;
  const auto elapsed = std::chrono::steady_clock::now() - context.start;
  event.latency_us = std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count();
  event.ttft_us =
      std::chrono::duration_cast<std::chrono::microseconds>(context.time_to_first_token).count();
  event.request_sha256 = std::move(context.request_sha256);
  event.response_sha256 = std::move(context.response_sha256);
  audit_->append(std::move(event), std::move(on_durable));
}

void Accounting::record_tool_call(ToolCallRecord call) {
  if (!audit_) return;
  audit::AuditEvent event;
  event.kind = "tool";
  event.request_id = std::move(call.request_id);
  event.tenant = std::move(call.tenant);
  event.key_id = std::move(call.key_id);
  event.model = call.tool;
  event.backend = call.server;
  event.action = "tools/call";
  event.target = std::move(call.server) + "/" + std::move(call.tool);
  event.label = std::move(call.label);
  event.decision = std::move(call.decision);
  event.detectors = std::move(call.detectors);
  event.rules = std::move(call.rules);
  event.error = std::move(call.error);
  event.status = call.status;
  event.latency_us = call.latency_us;
  event.request_sha256 = std::move(call.arguments_sha256);
  event.response_sha256 = std::move(call.result_sha256);
  audit_->append(std::move(event));
}

void Accounting::record_admin(std::string_view action, std::string_view target,
                              std::string_view tenant, std::string_view request_id, int status) {
  if (!audit_) return;
  audit::AuditEvent event;
  event.kind = "admin";
  event.action = std::string(action);
  event.target = std::string(target);
  event.tenant = std::string(tenant);
  event.request_id = std::string(request_id);
  event.status = status;
  audit_->append(std::move(event));
}

}  // namespace redline::gateway
