#include "gateway/gateway.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <charconv>
#include <random>

#include "audit/audit_log.h"
#include "audit/audit_record.h"
#include "common/openai_error.h"
#include "gateway/caller.h"
#include "gateway/health_checker.h"
#include "gateway/response_filter.h"
#include "net/io_pool.h"
#include "net/sse.h"
#include "net/upstream_client.h"
#include "policy/red_line_policy.h"
#include "policy/redaction.h"
#include "quota/token_estimate.h"

namespace redline::gateway {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
// A non-streaming upstream answer larger than this is refused (502) rather than buffered.
constexpr std::size_t kMaxUpstreamBody = 64u << 20;
// Error bodies of failed attempts are kept (to relay the last one) up to this size.
constexpr std::size_t kMaxErrorBody = 64u << 10;

std::string new_request_id() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(32, '0');
  for (int half = 0; half < 2; ++half) {
    std::uint64_t bits = rng();
    for (int i = 0; i < 16; ++i) id[half * 16 + i] = kHex[(bits >> (i * 4)) & 0xf];
  }
  return id;
}

namespace {

std::string_view path_for(ApiKind kind) {
  switch (kind) {
    case ApiKind::kChatCompletions:
      return "/chat/completions";
    case ApiKind::kCompletions:
      return "/completions";
    case ApiKind::kEmbeddings:
      return "/embeddings";
  }
  return "";
}

// Retry-After in seconds (or retry-after-ms, which OpenAI also sends); HTTP-dates count as 1 s.
std::chrono::milliseconds retry_after(const net::Headers& headers) {
  if (auto ms = net::find_header(headers, "retry-after-ms"); !ms.empty()) {
    long value = 0;
    if (std::from_chars(ms.data(), ms.data() + ms.size(), value).ec == std::errc()) {
      return std::chrono::milliseconds(value);
    }
  }
  auto seconds = net::find_header(headers, "retry-after");
  if (seconds.empty()) return std::chrono::milliseconds(0);
  long value = 0;
  if (std::from_chars(seconds.data(), seconds.data() + seconds.size(), value).ec == std::errc()) {
    return std::chrono::seconds(value);
  }
  return std::chrono::seconds(1);
}

routing::FailureKind failure_kind(net::UpstreamError error) {
  switch (error) {
    case net::UpstreamError::kTimeout:
      return routing::FailureKind::kTimeout;
    case net::UpstreamError::kProtocol:
      return routing::FailureKind::kProtocol;
    default:
      return routing::FailureKind::kConnect;
  }
}

ApiError upstream_failure(net::UpstreamError error, std::string_view backend) {
  if (error == net::UpstreamError::kTimeout) {
    return make_error(
        504, "The upstream model server '" + std::string(backend) + "' did not answer in time.", "",
        "upstream_timeout");
  }
  return make_error(502,
                    "The upstream model server '" + std::string(backend) +
                        "' failed: " + std::string(net::to_string(error)) + ".",
                    "", "upstream_error");
}

// The integer value of the first `"key":` in `json`, if any.
std::optional<long> integer_field(std::string_view json, std::string_view key) {
  auto at = json.find(key);
  if (at == std::string_view::npos) return std::nullopt;
  auto rest = json.substr(at + key.size());
  auto start = rest.find_first_not_of(" \t\r\n:");
  if (start == std::string_view::npos) return std::nullopt;
  long value = 0;
  auto [end, ec] = std::from_chars(rest.data() + start, rest.data() + rest.size(), value);
  if (ec != std::errc()) return std::nullopt;
  return value;
}

// Reads usage.prompt_tokens / usage.completion_tokens. Upstreams put "usage" after the choices,
// so a scan from its last occurrence finds it without parsing the whole answer again; an
// occurrence inside a JSON string would be escaped (\"usage\") and is skipped.
void read_usage(std::string_view json, RequestContext& context) {
  auto at = json.rfind("\"usage\"");
  if (at == std::string_view::npos || (at > 0 && json[at - 1] == '\\')) return;
  auto usage = json.substr(at);
  if (auto tokens = integer_field(usage, "\"prompt_tokens\"")) context.tokens_in = *tokens;
  if (auto tokens = integer_field(usage, "\"completion_tokens\"")) context.tokens_out = *tokens;
}

std::string stream_error_event(const ApiError& error) { return net::sse_data(error_body(error)); }

// The chunk an upstream sends last when usage was requested: no choices, only usage.
bool is_usage_chunk(std::string_view payload) {
  return payload.find("\"choices\":[]") != std::string_view::npos &&
         payload.find("\"usage\":{") != std::string_view::npos;
}

policy::RequestKind request_kind(ApiKind kind) {
  switch (kind) {
    case ApiKind::kChatCompletions:
      return policy::RequestKind::kChatCompletions;
    case ApiKind::kCompletions:
      return policy::RequestKind::kCompletions;
    case ApiKind::kEmbeddings:
      return policy::RequestKind::kEmbeddings;
  }
  return policy::RequestKind::kChatCompletions;
}

std::string rules_text(const policy::Verdict& verdict) {
  std::string out;
  for (const policy::RuleHit& hit : verdict.hits) {
    std::string entry = hit.rule->name;
    if (!hit.applied) entry += "(shadow)";
    if (!hit.backend.empty()) entry += "@" + hit.backend;
    if (out.find(entry) != std::string::npos) continue;
    if (!out.empty()) out += ",";
    out += entry;
  }
  return out;
}

// "email=2,iban=1": what fired, by name and count, never the matched text.
std::string detector_counts(const policy::RedLinePolicy& red_lines,
                            const policy::Findings& findings) {
  std::string out;
  for (std::uint16_t id = 0; id < findings.counts.size(); ++id) {
    if (findings.counts[id] == 0) continue;
    if (!out.empty()) out += ",";
    out += red_lines.detectors().spec(id).name + "=" + std::to_string(findings.counts[id]);
  }
  return out;
}

// The answer to a request the red lines stop before routing (setting context.decision), if any.
std::optional<ApiError> red_line_refusal(const policy::Verdict& verdict, const Caller& caller,
                                         const policy::LabelLattice& lattice,
                                         RequestContext& context) {
  switch (verdict.outcome) {
    case policy::Outcome::kAboveKeyClearance:
      context.decision = "refuse";
      return make_error(403,
                        "This request is classified " + context.label + ", above what API key " +
                            caller.key_id + " may send (" + lattice.format(caller.max_label) + ").",
                        "", "label_above_key_clearance");
    case policy::Outcome::kDenyByRule: {
      const policy::CompiledRule& rule = *verdict.deciding_rule;
      context.decision = "deny";
      return make_error(403,
                        "Blocked by red-line rule '" + rule.name + "'" +
                            (rule.message.empty() ? "" : ": " + rule.message) + " (label " +
                            context.label + ").",
                        "", "red_line_denied");
    }
    case policy::Outcome::kHold: {
      if (context.decision == "approved") return std::nullopt;
      const bool denied = context.decision == "approval_denied";
      return make_error(403,
                        std::string(denied ? "An administrator denied this request"
                                           : "No administrator approved this request in time") +
                            " (red-line rule '" + verdict.deciding_rule->name + "', label " +
                            context.label + ").",
                        "", denied ? "approval_denied" : "approval_timed_out");
    }
    case policy::Outcome::kAllow:
      break;
  }
  return std::nullopt;
}

std::string no_cleared_backend_message(const std::vector<std::string>& names,
                                       const policy::Verdict& verdict, const std::string& label) {
  std::string message = "No backend is cleared for this request (label " + label + "): ";
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i > 0) message += "; ";
    message += names[i] + " is " + verdict.backends[i].reason;
  }
  return message + ".";
}

// The most a request can cost on any backend the red lines leave it: its worst case is reserved
// before routing picks one.
double worst_case_cost(const RoutingTable& table, const std::vector<std::string>& names,
                       const policy::Verdict& verdict, std::int64_t input_tokens,
                       std::int64_t output_tokens) {
  double worst = 0;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (!verdict.backends[i].eligible()) continue;
    const config::Backend* backend = table.config().find_backend(names[i]);
    if (backend == nullptr) continue;
    const double cost = (static_cast<double>(input_tokens) * backend->price_input_per_mtok +
                         static_cast<double>(output_tokens) * backend->price_output_per_mtok) *
                        1e-6;
    worst = std::max(worst, cost);
  }
  return worst;
}

ApiError audit_unavailable() {
  return make_error(503,
                    "The answer could not be recorded in the audit log, so it is withheld. "
                    "Please retry.",
                    "", "audit_unavailable");
}

// Keeps a backend's outstanding-request count right on every path out of an attempt.
class InFlight {
 public:
  explicit InFlight(routing::BackendState& backend) : backend_(backend) {
    backend_.on_request_start();
  }
  ~InFlight() { backend_.on_request_end(); }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;

 private:
  routing::BackendState& backend_;
};

}  // namespace

Gateway::Gateway(net::IoPool& io, config::Config config,
                 std::shared_ptr<const policy::RedLinePolicy> policy,
                 std::shared_ptr<quota::ApiKeyService> keys, std::shared_ptr<audit::AuditLog> audit)
    : io_(io),
      accounting_(config, std::move(audit), metrics_, quota::system_clock()),
      access_log_(std::make_unique<AccessLog>(config.server.access_log)),
      picker_(config.routing.latency_exploration, std::random_device{}()),
      keys_(std::move(keys)) {
  table_ = RoutingTable::build(std::move(config), std::move(policy), io_, registry_, nullptr);
}

Gateway::~Gateway() = default;

std::shared_ptr<const RoutingTable> Gateway::table() const {
  std::lock_guard lock(table_mutex_);
  return table_;
}

void Gateway::reload(config::Config config, std::shared_ptr<const policy::RedLinePolicy> policy) {
  accounting_.reconfigure(config);
  auto current = table();
  auto next =
      RoutingTable::build(std::move(config), std::move(policy), io_, registry_, current.get());
  {
    std::lock_guard lock(table_mutex_);
    table_ = next;
  }
  if (health_checks_started_) start_health_checks();
}

void Gateway::start_health_checks() {
  health_checks_started_ = true;
  gateway::start_health_checks(table(), io_);
}

bool Gateway::ready() const {
  auto current = table();
  for (const auto& backend : current->backends()) {
    if (backend->state->healthy()) return true;
  }
  return false;
}

void Gateway::settle(const net::HttpRequest& request, RequestContext& context) {
  if (context.audited) accounting_.settle(context);
  auto duration = Clock::now() - context.start;
  metrics_.record_request({context.route, context.model, context.backend, context.status,
                           context.stream, duration, context.time_to_first_token, context.tokens_in,
                           context.tokens_out});
  if (access_log_->enabled()) {
    access_log_->write({context.request_id,     request.method,     request.path(),
                        context.route,          context.model,      context.backend,
                        request.remote_address, context.status,     context.stream,
                        context.attempts,       duration,           context.time_to_first_token,
                        context.tokens_in,      context.tokens_out, context.error,
                        context.tenant,         context.key_id,     context.label,
                        context.decision,       context.rules});
  }
}

asio::awaitable<void> Gateway::respond_error(net::ResponseWriter& writer, RequestContext& context,
                                             ApiError error, net::Headers extra) {
  context.status = error.status;
  context.error = error.message;
  net::HttpResponse response{error.status, std::move(extra), error_body(error)};
  response.headers.push_back({"Content-Type", "application/json"});
  response.headers.push_back({"x-request-id", context.request_id});
  if (!context.label.empty()) response.headers.push_back({"x-redline-label", context.label});
  if (accounting_.audit() != nullptr) context.response_sha256 = audit::sha256_hex(response.body);
  co_await seal(context);
  co_await writer.send(std::move(response));
}

asio::awaitable<bool> Gateway::seal(RequestContext& context) {
  if (!context.audited) co_return true;
  if (!accounting_.durable_before_response()) {
    accounting_.settle(context);
    co_return true;
  }
  // The writer thread reports through a post to this coroutine's own single-threaded
  // executor, so the report cannot run before the wait below has begun.
  auto timer = std::make_shared<asio::steady_timer>(co_await asio::this_coro::executor,
                                                    std::chrono::seconds(10));
  auto durable = std::make_shared<bool>(false);
  accounting_.settle(context, [timer, durable](bool ok) {
    asio::post(timer->get_executor(), [timer, durable, ok] {
      *durable = ok;
      timer->cancel();
    });
  });
  co_await timer->async_wait(kNoThrow);
  co_return *durable;
}

asio::awaitable<void> Gateway::proxy(ApiKind kind, net::HttpRequest& request,
                                     net::ResponseWriter& writer, RequestContext& context) {
  auto table = this->table();
  const auto& routing_settings = table->config().routing;
  const policy::RedLinePolicy& red_lines = table->policy();
  const policy::LabelLattice& lattice = red_lines.lattice();
  context.audited = true;
  if (accounting_.audit() != nullptr) context.request_sha256 = audit::sha256_hex(request.body);

  CallerResult identified;
  if (context.caller) {
    identified.caller = context.caller;
  } else {
    identified = identify_caller(request, keys_.get(), lattice, table->config().auth.required);
  }
  if (!identified.caller) {
    context.decision = "unauthenticated";
    co_await respond_error(writer, context, std::move(identified.error));
    co_return;
  }
  const Caller& caller = *identified.caller;
  context.tenant = caller.tenant;
  context.key_id = caller.key_id;

  ParseResult parsed = parse_request(kind, request.body, routing_settings.prefix_affinity_bytes);
  if (!parsed.request) {
    co_await respond_error(writer, context, std::move(parsed.error));
    co_return;
  }
  const ParsedRequest& call = *parsed.request;
  context.model = call.model;
  context.stream = call.stream;

  const AliasRoute* alias = table->find_alias(call.model);
  if (!alias || !caller.may_use(call.model)) {
    // Built before the co_await: g++ 12 mishandles temporaries inside co_await expressions.
    ApiError refusal =
        !alias ? make_error(404,
                            "The model `" + call.model +
                                "` does not exist or you do not have access to it.",
                            "model", "model_not_found")
               : make_error(403,
                            "API key " + caller.key_id + " may not use model `" + call.model + "`.",
                            "model", "model_not_allowed");
    co_await respond_error(writer, context, std::move(refusal));
    co_return;
  }

  // Classify, then apply the red lines: nothing below reaches a backend the verdict excludes.
  std::optional<ApiError> header_error;
  auto declared = declared_label(request, lattice, header_error);
  if (header_error) {
    co_await respond_error(writer, context, std::move(*header_error));
    co_return;
  }
  const policy::RequestKind text_kind = request_kind(kind);
  policy::RequestFacts facts{caller.tenant,
                             caller.key_id,
                             caller.default_label,
                             caller.max_label,
                             declared,
                             call.model,
                             policy::RedLinePolicy::tool_names(request.body),
                             red_lines.scan_request(text_kind, request.body)};
  const std::vector<std::string>& candidate_names = alias->reachable_backends;
  const policy::Verdict verdict = red_lines.evaluate(facts, candidate_names);
  context.label = lattice.format(verdict.label);
  context.rules = rules_text(verdict);
  context.detectors = detector_counts(red_lines, facts.findings);
  for (const policy::RuleHit& hit : verdict.hits) {
    metrics_.record_rule(hit.rule->name, config::to_string(hit.rule->action), hit.applied);
  }
  if (verdict.outcome == policy::Outcome::kHold) {
    const policy::CompiledRule& rule = *verdict.deciding_rule;
    ApprovalRequest held{context.request_id,
                         caller.tenant,
                         caller.key_id,
                         call.model,
                         context.label,
                         rule.name,
                         detector_counts(red_lines, facts.findings)};
    const std::function<void(std::function<void()>)> on_held =
        [&writer](std::function<void()> abandon) { writer.watch_disconnect(std::move(abandon)); };
    const ApprovalDecision decision =
        co_await approvals_.hold(std::move(held), rule.approval_timeout, on_held);
    writer.watch_disconnect({});
    if (decision == ApprovalDecision::kAbandoned || writer.client_gone()) {
      context.status = 499;
      context.decision = "abandoned";
      context.error = "client closed the connection while held for approval";
      co_return;
    }
    context.decision = decision == ApprovalDecision::kApproved ? "approved"
                       : decision == ApprovalDecision::kDenied ? "approval_denied"
                                                               : "approval_timeout";
  }
  std::optional<ApiError> refusal = red_line_refusal(verdict, caller, lattice, context);
  if (!refusal && !verdict.any_eligible()) {
    context.decision = "no_cleared_backend";
    refusal = make_error(503, no_cleared_backend_message(candidate_names, verdict, context.label),
                         "", "no_cleared_backend");
  }
  if (refusal) {
    metrics_.record_decision(context.label, context.decision);
    co_await respond_error(writer, context, std::move(*refusal));
    co_return;
  }
  if (context.decision.empty()) context.decision = verdict.redacts() ? "redact" : "allow";
  metrics_.record_decision(context.label, context.decision);

  // Admission: rate limits, then the worst case reserved in every budget that applies.
  const std::int64_t input_tokens = quota::estimate_input_tokens(request.body);
  const std::int64_t output_tokens =
      kind == ApiKind::kEmbeddings
          ? 0
          : quota::worst_case_output_tokens(call.max_tokens, alias->config->max_output_tokens);
  AdmissionResult admission = accounting_.admit(
      caller, input_tokens, output_tokens,
      worst_case_cost(*table, candidate_names, verdict, input_tokens, output_tokens));
  if (admission.refusal) {
    co_await respond_error(writer, context, std::move(*admission.refusal),
                           std::move(admission.headers));
    co_return;
  }
  context.admission = std::move(admission.admitted);
  const net::Headers& rate_limit_headers = admission.headers;
  auto eligibility_of = [&](const BackendRoute& backend) -> const policy::Eligibility& {
    auto it = std::find(candidate_names.begin(), candidate_names.end(), backend.config->name);
    return verdict.backends[static_cast<std::size_t>(it - candidate_names.begin())];
  };
  // Candidates the verdict rules out start excluded, so no strategy can ever pick them.
  auto ineligible = [&](const AliasRoute& route) {
    std::vector<std::size_t> out;
    for (std::size_t i = 0; i < route.backends.size(); ++i) {
      if (!eligibility_of(*route.backends[i]).eligible()) out.push_back(i);
    }
    return out;
  };
  const std::optional<policy::Label> output_limit =
      caller.max_label == lattice.top() ? std::nullopt : std::optional(caller.max_label);
  policy::RedactionVault request_vault;
  policy::RedactionVault& vault =
      context.session_vault != nullptr ? *context.session_vault : request_vault;
  std::vector<std::uint16_t> redacted_for;
  std::string redacted_body;
  std::optional<ParsedRequest> redacted_call;

  auto& retry_budget = table->retry_budget();
  retry_budget.record_request(Clock::now());
  const std::size_t thread = io_.current_index();
  const std::string_view upstream_path = path_for(kind);

  // What the client gets if every attempt fails: the last upstream error answer if there was
  // one (its status and body are the most truthful), else the last transport failure.
  std::optional<net::HttpResponse> last_upstream_answer;
  std::optional<ApiError> last_failure;
  std::string unavailable_reasons;
  std::chrono::milliseconds pending_retry_after{0};

  // Streams always ask the upstream for usage (budgets and accounting need it); the usage chunk
  // is kept from a client that did not ask for it.
  const bool strip_usage = call.stream && !call.include_usage;

  std::size_t chain_index = 0;
  std::vector<std::size_t> excluded = ineligible(*alias->chain[0]);
  std::string upstream_body;
  std::string chunk;

  while (context.attempts < routing_settings.max_attempts && chain_index < alias->chain.size()) {
    const AliasRoute& route = *alias->chain[chain_index];
    const auto now = Clock::now();
    auto picked = picker_.pick({route.candidates, route.strategy, call.affinity_hash, excluded,
                                static_cast<double>(route.config->max_latency.count()), 768,
                                static_cast<int>(call.max_tokens.value_or(256)), now});
    if (!picked) {
      // A throttled backend that asked us to come back soon is worth the wait if nothing else
      // can serve and the client has not been answered.
      if (pending_retry_after.count() > 0 &&
          pending_retry_after <= routing_settings.max_retry_after &&
          chain_index + 1 == alias->chain.size()) {
        asio::steady_timer timer(co_await asio::this_coro::executor, pending_retry_after);
        co_await timer.async_wait(kNoThrow);
        pending_retry_after = std::chrono::milliseconds(0);
        excluded = ineligible(route);
        if (writer.client_gone()) break;
        continue;
      }
      for (std::size_t i = 0; i < route.candidates.size(); ++i) {
        if (std::find(excluded.begin(), excluded.end(), i) != excluded.end()) continue;
        const auto& state = *route.candidates[i].backend;
        unavailable_reasons += unavailable_reasons.empty() ? "" : "; ";
        unavailable_reasons += state.name() + " is ";
        unavailable_reasons += !state.healthy()       ? "failing health checks"
                               : state.throttled(now) ? "rate limiting"
                               : state.ejected(now)   ? "ejected after repeated errors"
                                                      : "behind an open circuit breaker";
      }
      ++chain_index;
      if (chain_index < alias->chain.size()) excluded = ineligible(*alias->chain[chain_index]);
      continue;
    }
    const std::size_t index = *picked;
    excluded.push_back(index);
    const BackendRoute& backend = *route.backends[index];
    routing::BackendState& state = *backend.state;

    if (context.attempts > 0) {
      if (!retry_budget.try_acquire_retry(now)) {
        context.error = "retry budget exhausted";
        break;
      }
      metrics_.record_retry(context.model);
    }
    if (!state.try_acquire(now)) continue;  // another request holds the half-open trial
    ++context.attempts;
    context.backend = state.name();
    context.price_input_per_mtok = backend.config->price_input_per_mtok;
    context.price_output_per_mtok = backend.config->price_output_per_mtok;

    InFlight in_flight(state);
    // A backend the red lines clear only for redacted text gets the redacted body; the vault
    // keeps the placeholders stable across attempts so restoring works whichever answers.
    const std::vector<std::uint16_t>& redact = eligibility_of(backend).redact;
    const bool sent_redacted = !redact.empty();
    std::string_view body = request.body;
    const ParsedRequest* body_call = &call;
    if (sent_redacted) {
      if (!redacted_call || redacted_for != redact) {
        redacted_for = redact;
        auto redacted = red_lines.redact_request(text_kind, request.body, redact, vault);
        redacted_body = redacted ? std::move(*redacted) : std::string();
        redacted_call = parse_request(kind, redacted_body, 0).request;
      }
      if (!redacted_call) {
        // Cannot happen for a body that parsed above; if it ever does, nothing is sent.
        ApiError failed =
            make_error(500, "The request could not be redacted.", "", "redaction_failed");
        co_await respond_error(writer, context, std::move(failed));
        co_return;
      }
      body = redacted_body;
      body_call = &*redacted_call;
    }
    if (route.upstream_models[index] != call.model) {
      upstream_body = with_model(body, *body_call, route.upstream_models[index]);
      body = upstream_body;
    }
    if (strip_usage) {
      std::string with_usage = with_usage_requested(body);
      upstream_body = std::move(with_usage);
      body = upstream_body;
    }
    std::string target = backend.config->base_path;
    target.append(upstream_path);
    net::Headers headers = backend.upstream_headers;
    headers.push_back({"Accept", call.stream ? "text/event-stream" : "application/json"});
    headers.push_back({"x-request-id", context.request_id});

    auto exchange = (*backend.pools)[thread]->exchange();
    writer.watch_disconnect([&exchange] { exchange->cancel(); });
    const auto sent_at = Clock::now();
    net::UpstreamError error = co_await exchange->start(
        {"POST", target, &headers, body, sent_at + backend.config->request_timeout});

    // Before the first byte goes to the client, any failure may still be retried elsewhere.
    if (error == net::UpstreamError::kNone && exchange->status() != 429 &&
        exchange->status() < 500) {
      chunk.clear();
      if (call.stream && exchange->status() == 200) {
        error = co_await exchange->read_some(chunk);
        while (error == net::UpstreamError::kNone && chunk.empty() && !exchange->done()) {
          error = co_await exchange->read_some(chunk);
        }
      } else {
        error = co_await exchange->read_all(chunk, kMaxUpstreamBody);
      }
    }
    if (writer.client_gone()) {
      writer.watch_disconnect({});
      context.status = 499;
      context.error = "client closed the connection";
      co_return;
    }
    if (error != net::UpstreamError::kNone) {
      writer.watch_disconnect({});
      state.record_failure(Clock::now(), failure_kind(error));
      metrics_.record_upstream_error(state.name(), net::to_string(error));
      last_failure = upstream_failure(error, state.name());
      continue;
    }

    const int status = exchange->status();
    if (status == 429 || status >= 500) {
      std::string error_body_text;
      co_await exchange->read_all(error_body_text, kMaxErrorBody);
      writer.watch_disconnect({});
      const auto failed_at = Clock::now();
      if (status == 429) {
        auto wait = retry_after(exchange->headers());
        state.throttle_until(failed_at + (wait.count() > 0 ? wait : std::chrono::seconds(1)));
        pending_retry_after = wait;
      }
      state.record_failure(failed_at, status == 429 ? routing::FailureKind::kStatus429
                                                    : routing::FailureKind::kStatus5xx);
      metrics_.record_upstream_error(state.name(), "status_" + std::to_string(status));
      net::HttpResponse answer{status, {}, std::move(error_body_text)};
      for (const char* name : {"Retry-After", "retry-after-ms", "Content-Type"}) {
        if (auto value = net::find_header(exchange->headers(), name); !value.empty()) {
          answer.headers.push_back({name, std::string(value)});
        }
      }
      last_upstream_answer = std::move(answer);
      continue;
    }

    // The upstream has answered: from here on the client receives this attempt's response.
    state.record_success();
    context.status = status;
    context.time_to_first_token = Clock::now() - context.start;
    net::Headers response_headers;
    auto content_type = net::find_header(exchange->headers(), "content-type");
    response_headers.push_back(
        {"Content-Type", content_type.empty() ? "application/json" : std::string(content_type)});
    response_headers.push_back({"x-request-id", context.request_id});
    response_headers.push_back({"x-redline-backend", state.name()});
    response_headers.push_back({"x-redline-label", context.label});
    response_headers.insert(response_headers.end(), rate_limit_headers.begin(),
                            rate_limit_headers.end());
    ResponseFilter filter(red_lines, sent_redacted ? &vault : nullptr, output_limit);
    auto output_blocked = [&] {
      context.decision = "output_blocked";
      return make_error(403,
                        "The model's answer is classified " +
                            lattice.format(filter.output_label()) + ", above what API key " +
                            caller.key_id + " may receive (" + lattice.format(caller.max_label) +
                            ").",
                        "", "output_above_clearance");
    };

    if (!call.stream || status != 200) {
      writer.watch_disconnect({});
      if (status == 200) read_usage(chunk, context);
      state.record_latency(Clock::now() - sent_at, static_cast<int>(context.tokens_out),
                           Clock::now() - sent_at);
      if (status == 200 && filter.active()) {
        chunk = filter.filter_body(std::move(chunk));
        if (filter.blocked()) {
          ApiError blocked = output_blocked();
          co_await respond_error(writer, context, std::move(blocked));
          co_return;
        }
      }
      if (accounting_.audit() != nullptr) context.response_sha256 = audit::sha256_hex(chunk);
      if (!co_await seal(context)) {
        ApiError unrecorded = audit_unavailable();
        co_await respond_error(writer, context, std::move(unrecorded));
        co_return;
      }
      net::HttpResponse response{status, std::move(response_headers), std::move(chunk)};
      co_await writer.send(std::move(response));
      co_return;
    }

    response_headers.push_back({"Cache-Control", "no-cache"});
    metrics_.stream_started();
    const auto first_byte_at = Clock::now();
    net::SseParser sse;
    bool saw_done = false;
    long content_chunks = 0;
    auto observe = [&](const net::SseEvent& event) {
      if (event.data == "[DONE]") {
        saw_done = true;
      } else {
        ++content_chunks;
        if (event.data.find("\"usage\"") != std::string_view::npos) read_usage(event.data, context);
      }
    };
    // Events are re-framed when something must change (restoration, output checks, a usage chunk
    // to drop) or when the end of the stream waits for its audit record; otherwise bytes are
    // relayed as they come. Re-framed, whatever follows "[DONE]" is held in `final_events` and
    // sent once the request is settled.
    const bool reframe = filter.active() || strip_usage || accounting_.durable_before_response();
    std::string filtered;
    std::string final_events;
    auto relay_event = [&](const net::SseEvent& event) {
      observe(event);
      if (strip_usage && is_usage_chunk(event.data)) return;
      std::string& out = saw_done ? final_events : filtered;
      if (filter.active()) {
        filter.on_event(event.data, out);
      } else {
        out += net::sse_data(event.data);
      }
    };
    // What the client receives, for the audit record.
    std::optional<audit::BodyDigest> digest;
    if (accounting_.audit() != nullptr) digest.emplace();
    bool client_ok = co_await writer.begin_stream(200, std::move(response_headers));
    while (client_ok) {
      const bool framed = reframe ? sse.feed(chunk, relay_event) : sse.feed(chunk, observe);
      if (!framed) {
        error = net::UpstreamError::kProtocol;
        break;
      }
      if (reframe) {
        chunk.swap(filtered);
        filtered.clear();
      }
      if (!chunk.empty()) {
        if (digest) digest->update(chunk);
        client_ok = co_await writer.write_chunk(chunk);
      }
      if (filter.blocked()) break;
      if (!client_ok || exchange->done()) break;
      chunk.clear();
      error = co_await exchange->read_some(chunk);
      if (error != net::UpstreamError::kNone) break;
    }
    writer.watch_disconnect({});
    metrics_.stream_ended();
    if (!client_ok || writer.client_gone()) {
      exchange->cancel();
      context.status = 499;
      context.error = "client closed the connection during the stream";
      co_return;
    }
    if (context.tokens_out == 0) context.tokens_out = content_chunks;
    if (filter.blocked()) {
      exchange->cancel();
      const ApiError blocked = output_blocked();
      context.error = blocked.message;
      context.status = 403;
      const std::string event = stream_error_event(blocked);
      co_await writer.write_chunk(event);
      co_await writer.end_stream();
      co_return;
    }
    if (error == net::UpstreamError::kNone && saw_done) {
      const auto end = Clock::now();
      state.record_latency(first_byte_at - sent_at, static_cast<int>(context.tokens_out),
                           end - sent_at);
      if (digest) {
        digest->update(final_events);
        context.response_sha256 = digest->hex();
      }
      if (!co_await seal(context)) {
        // Only the end is withheld; the client learns the answer was not recorded.
        const ApiError unrecorded = audit_unavailable();
        context.status = unrecorded.status;
        context.error = unrecorded.message;
        final_events = stream_error_event(unrecorded);
      }
      if (!final_events.empty()) co_await writer.write_chunk(final_events);
      co_await writer.end_stream();
      co_return;
    }
    // The upstream broke off: say so in-band, so no client mistakes a truncated answer for a
    // complete one.
    state.record_failure(
        Clock::now(),
        failure_kind(error == net::UpstreamError::kNone ? net::UpstreamError::kClosed : error));
    metrics_.record_upstream_error(state.name(), "stream_" + std::string(net::to_string(error)));
    ApiError broken = make_error(
        502,
        "The upstream model server '" + state.name() +
            "' ended the stream before it was complete (" +
            std::string(net::to_string(
                error == net::UpstreamError::kNone ? net::UpstreamError::kClosed : error)) +
            ").",
        "", "upstream_stream_interrupted");
    context.error = broken.message;
    context.status = 502;
    std::string held_back;
    filter.finish(held_back);
    held_back += stream_error_event(broken);
    co_await writer.write_chunk(held_back);
    co_await writer.end_stream();
    co_return;
  }

  if (last_upstream_answer) {
    context.status = last_upstream_answer->status;
    context.error = "upstream answered " + std::to_string(context.status);
    last_upstream_answer->headers.push_back({"x-request-id", context.request_id});
    last_upstream_answer->headers.push_back({"x-redline-label", context.label});
    last_upstream_answer->headers.insert(last_upstream_answer->headers.end(),
                                         rate_limit_headers.begin(), rate_limit_headers.end());
    if (accounting_.audit() != nullptr) {
      context.response_sha256 = audit::sha256_hex(last_upstream_answer->body);
    }
    co_await seal(context);
    if (!context.backend.empty()) {
      last_upstream_answer->headers.push_back({"x-redline-backend", context.backend});
    }
    co_await writer.send(std::move(*last_upstream_answer));
    co_return;
  }
  if (last_failure) {
    co_await respond_error(writer, context, std::move(*last_failure));
    co_return;
  }
  std::string message = "No backend is available for model '" + call.model + "'";
  message += unavailable_reasons.empty() ? "." : ": " + unavailable_reasons + ".";
  ApiError unavailable = make_error(503, message, "", "no_backend_available");
  co_await respond_error(writer, context, std::move(unavailable));
}

}  // namespace redline::gateway
