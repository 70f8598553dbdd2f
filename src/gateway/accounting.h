#pragma once
// Admission and settlement of model calls. Before a request goes upstream: its rate limits
// (requests, tokens, concurrency per key and tenant) and a reservation of its worst-case spend in
// every budget it is subject to. When it ends: usage and cost settle the limits and budgets, feed
// the Prometheus counters and become the request's record in the audit chain, which is also
// where usage accounting and the budgets' spend before a restart are read from.
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/openai_error.h"
#include "config/config.h"
#include "net/http_message.h"
#include "quota/budget_book.h"
#include "quota/rate_limiter.h"

namespace redline::audit {
class AuditLog;
struct AuditEvent;
}  // namespace redline::audit

namespace redline::gateway {

class Metrics;
struct Caller;
struct RequestContext;

// What an admitted request holds until it settles.
struct Admission {
  quota::RateLimitLease lease;
  std::optional<quota::BudgetReservation> reservation;
  std::int64_t estimated_input_tokens = 0;
};

struct AdmissionResult {
  std::optional<Admission> admitted;
  std::optional<ApiError> refusal;  // a 429 when not admitted
  net::Headers headers;             // x-ratelimit-* either way; Retry-After on refusals
};

class Accounting {
 public:
  // `audit` may be null ([audit] enabled = false): nothing is recorded and budgets start empty.
  Accounting(const config::Config& config, std::shared_ptr<audit::AuditLog> audit, Metrics& metrics,
             std::shared_ptr<const quota::Clock> clock);
  ~Accounting();

  // Limits and budgets of a reloaded configuration; budgets in use keep their spend.
  void reconfigure(const config::Config& config);

  // Rate limits, then budgets, for a request estimated at `input_tokens` in and at most
  // `output_tokens` out, whose cost is at most `worst_case_cost`. All or nothing.
  AdmissionResult admit(const Caller& caller, std::int64_t input_tokens, std::int64_t output_tokens,
                        double worst_case_cost);

  // Settles a finished model call: cost from the serving backend's prices, the admission's
  // limits and budgets, the usage counters, and the audit record. Idempotent per context.
  // `on_durable(ok)` runs (on the audit writer's thread) once the record is committed; at once
  // with true when nothing is recorded.
  void settle(RequestContext& context, std::function<void(bool ok)> on_durable = {});

  // Records a tool call an agent run made (or was refused): the server, the tool, the call's
  // label, the red-line decision and rules, and digests of the arguments and of the result, in
  // the chain as kind "tool" (never counted as model usage).
  struct ToolCallRecord {
    std::string request_id;  // the run's id and step: "run_…#7"
    std::string tenant, key_id;
    std::string server, tool;
    std::string label, decision, detectors, rules, error;
    int status = 200;  // 200 done, 403 refused by the red lines, 502 the tool failed
    std::int64_t latency_us = 0;
    std::string arguments_sha256, result_sha256;
  };
  void record_tool_call(ToolCallRecord call);

  // Records an admin action (key created or revoked, approval decided) in the chain.
  void record_admin(std::string_view action, std::string_view target, std::string_view tenant,
                    std::string_view request_id, int status);

  // Whether the end of an answer waits for its record ([audit] durability = before_response).
  bool durable_before_response() const { return durable_before_response_; }
  audit::AuditLog* audit() const { return audit_.get(); }
  std::vector<quota::BudgetStatus> budgets() { return budgets_->snapshot(); }

 private:
  std::vector<quota::RateLimitScope> limit_scopes(const Caller& caller) const;

  std::shared_ptr<audit::AuditLog> audit_;
  Metrics& metrics_;
  std::shared_ptr<const quota::Clock> clock_;
  bool durable_before_response_ = false;
  quota::RateLimiter limiter_;
  std::unique_ptr<quota::BudgetBook> budgets_;
  mutable std::mutex limits_mutex_;
  std::shared_ptr<const std::vector<config::LimitSettings>> limits_;
};

// The budget scope names of a caller: "tenant:<name>" and, with a key, "key:<id>".
std::string tenant_scope(std::string_view tenant);
std::string key_scope(std::string_view key_id);

}  // namespace redline::gateway
