#pragma once
// The request pipeline of the data plane: authenticate → parse → resolve alias → classify and
// apply red-line rules → route among cleared backends → upstream → relay (restore redactions,
// check output) → settle (metrics, access log). The HTTP routes call it; nothing reaches an
// upstream otherwise.
#include <boost/asio/awaitable.hpp>
#include <memory>
#include <mutex>
#include <string>

#include "config/config.h"
#include "gateway/access_log.h"
#include "gateway/accounting.h"
#include "gateway/approvals.h"
#include "gateway/caller.h"
#include "gateway/metrics.h"
#include "gateway/request_parse.h"
#include "gateway/routing_table.h"
#include "net/http_server.h"
#include "routing/backend_state.h"
#include "routing/strategy.h"

namespace redline::quota {
class ApiKeyService;
}
namespace redline::policy {
class RedLinePolicy;
class RedactionVault;
}  // namespace redline::policy
namespace redline::audit {
class AuditLog;
}

namespace redline::gateway {

// What one request did, filled in as it goes and written to metrics and the access log at the end.
struct RequestContext {
  std::string request_id;
  std::string_view route;
  std::string model;
  std::string backend;
  int status = 0;
  bool stream = false;
  int attempts = 0;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  std::chrono::nanoseconds time_to_first_token{0};
  long tokens_in = 0;
  long tokens_out = 0;
  std::string error;
  std::string tenant;
  std::string key_id;
  std::string label;      // the request's classification, once known
  std::string decision;   // allow | deny | redact | hold | approved | ...
  std::string rules;      // rules that matched, "name" or "name(shadow)", comma separated
  std::string detectors;  // what fired, "email=2,iban=1" (names and counts, never matches)
  // Accounting: what the request holds until it settles, what the serving backend charges, what
  // it cost, and the digests its audit record carries.
  std::optional<Admission> admission;
  double price_input_per_mtok = 0;
  double price_output_per_mtok = 0;
  double cost_usd = 0;
  std::string request_sha256;
  std::string response_sha256;
  // Who the call is for, when Redline established it already (a durable run resuming under its
  // key): the request's own credentials are then not read.
  std::optional<Caller> caller;
  // Placeholders that must stay stable beyond this request (a conversation's, across its turns):
  // redaction takes and adds placeholders here instead of in a vault of its own. Null for a
  // plain request.
  policy::RedactionVault* session_vault = nullptr;
  bool audited = false;  // a model call: settles into the audit chain
  bool settled = false;
};

class Gateway {
 public:
  // `keys` may be null when no store is configured (then only anonymous requests pass).
  Gateway(net::IoPool& io, config::Config config,
          std::shared_ptr<const policy::RedLinePolicy> policy,
          std::shared_ptr<quota::ApiKeyService> keys,
          std::shared_ptr<audit::AuditLog> audit = nullptr);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // Swaps in a new (already validated) configuration; requests in flight finish on the old one.
  void reload(config::Config config, std::shared_ptr<const policy::RedLinePolicy> policy);
  std::shared_ptr<const RoutingTable> table() const;

  // Forwards one OpenAI API call. Never throws; always answers the client (or notices it left).
  boost::asio::awaitable<void> proxy(ApiKind kind, net::HttpRequest& request,
                                     net::ResponseWriter& writer, RequestContext& context);

  // Starts the periodic active health checks of every backend (and again after each reload).
  void start_health_checks();
  // Ready when at least one backend is healthy.
  bool ready() const;

  Metrics& metrics() { return metrics_; }
  net::IoPool& io() { return io_; }
  ApprovalDesk& approvals() { return approvals_; }
  quota::ApiKeyService* keys() { return keys_.get(); }
  Accounting& accounting() { return accounting_; }
  routing::BackendRegistry& registry() { return registry_; }
  // Settles a finished request: usage, limits, budgets and its audit record (unless settled
  // already), metrics and the access log.
  void settle(const net::HttpRequest& request, RequestContext& context);

 private:
  struct Attempt;
  boost::asio::awaitable<void> respond_error(net::ResponseWriter& writer, RequestContext& context,
                                             ApiError error, net::Headers extra = {});
  // The last step before the end of an answer goes out (its digest already in the context):
  // settles the request, so a client that sends its next request as soon as this one ends finds
  // its concurrency slot free and its usage counted; with [audit] durability = before_response,
  // also waits, without blocking the thread, for its record to be durable. False when it could
  // not be made durable.
  boost::asio::awaitable<bool> seal(RequestContext& context);

  net::IoPool& io_;
  routing::BackendRegistry registry_;
  Metrics metrics_;
  Accounting accounting_;
  std::unique_ptr<AccessLog> access_log_;
  routing::Picker picker_;
  std::shared_ptr<quota::ApiKeyService> keys_;
  ApprovalDesk approvals_;
  mutable std::mutex table_mutex_;
  std::shared_ptr<const RoutingTable> table_;
  bool health_checks_started_ = false;
};

// A request id for a request that did not bring one: 32 hex digits.
std::string new_request_id();

}  // namespace redline::gateway
