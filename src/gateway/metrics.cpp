#include "gateway/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <mutex>
#include <unordered_map>

#include "routing/backend_state.h"

namespace redline::gateway {

namespace {

const prometheus::Histogram::BucketBoundaries& latency_buckets() {
  static const prometheus::Histogram::BucketBoundaries buckets{
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
  return buckets;
}

double seconds(std::chrono::nanoseconds d) { return std::chrono::duration<double>(d).count(); }

// Keys include the instance, so thread-local caches never hand one Metrics another's series.
std::string cache_key(const void* owner, std::initializer_list<std::string_view> parts) {
  std::string key(reinterpret_cast<const char*>(&owner), sizeof owner);
  for (auto part : parts) {
    key.append(part);
    key.push_back('\x1f');
  }
  return key;
}

}  // namespace

struct Metrics::Impl {
  prometheus::Registry registry;
  prometheus::Family<prometheus::Counter>& requests =
      prometheus::BuildCounter()
          .Name("redline_requests_total")
          .Help("Requests answered, by route, model alias, backend and status.")
          .Register(registry);
  prometheus::Family<prometheus::Histogram>& duration =
      prometheus::BuildHistogram()
          .Name("redline_request_duration_seconds")
          .Help("Time from request received to response complete.")
          .Register(registry);
  prometheus::Family<prometheus::Histogram>& ttft =
      prometheus::BuildHistogram()
          .Name("redline_time_to_first_token_seconds")
          .Help("Time from request received to the first byte of the upstream's answer.")
          .Register(registry);
  prometheus::Family<prometheus::Counter>& tokens =
      prometheus::BuildCounter()
          .Name("redline_tokens_total")
          .Help("Tokens reported by upstreams, by direction (input, output).")
          .Register(registry);
  prometheus::Family<prometheus::Counter>& tenant_tokens =
      prometheus::BuildCounter()
          .Name("redline_tenant_tokens_total")
          .Help("Settled tokens by tenant, model alias and direction (input, output)")
          .Register(registry);
  prometheus::Family<prometheus::Counter>& tenant_cost =
      prometheus::BuildCounter()
          .Name("redline_cost_usd_total")
          .Help("Settled cost in US dollars by tenant and model alias")
          .Register(registry);
  prometheus::Family<prometheus::Counter>& upstream_errors =
      prometheus::BuildCounter()
          .Name("redline_upstream_errors_total")
          .Help("Failed upstream attempts, by backend and kind.")
          .Register(registry);
  prometheus::Family<prometheus::Counter>& decisions =
      prometheus::BuildCounter()
          .Name("redline_policy_decisions_total")
          .Help("Requests by classification label and red-line decision.")
          .Register(registry);
  prometheus::Family<prometheus::Counter>& rule_matches =
      prometheus::BuildCounter()
          .Name("redline_rule_matches_total")
          .Help("Red-line rule matches, by rule, action and mode (enforce, shadow).")
          .Register(registry);
  prometheus::Family<prometheus::Counter>& retries =
      prometheus::BuildCounter()
          .Name("redline_retries_total")
          .Help("Upstream attempts beyond the first, by model alias.")
          .Register(registry);
  prometheus::Gauge& active_streams = prometheus::BuildGauge()
                                          .Name("redline_active_streams")
                                          .Help("Streaming responses in progress.")
                                          .Register(registry)
                                          .Add({});
  prometheus::Family<prometheus::Gauge>& breaker =
      prometheus::BuildGauge()
          .Name("redline_backend_circuit_state")
          .Help("Circuit breaker per backend: 0 closed, 1 half-open, 2 open.")
          .Register(registry);
  prometheus::Family<prometheus::Gauge>& healthy =
      prometheus::BuildGauge()
          .Name("redline_backend_healthy")
          .Help("1 when the backend passes its active health checks.")
          .Register(registry);
  prometheus::Family<prometheus::Gauge>& outstanding =
      prometheus::BuildGauge()
          .Name("redline_backend_outstanding_requests")
          .Help("Requests in flight to the backend.")
          .Register(registry);

  // The families' Add() locks and hashes labels; per-thread caches keep that off the hot path.
  struct RequestSeries {
    prometheus::Counter* requests;
    prometheus::Histogram* duration;
  };
  struct BackendSeries {
    prometheus::Histogram* ttft;
    prometheus::Counter* tokens_in;
    prometheus::Counter* tokens_out;
  };
  std::mutex scrape_mutex;
};

Metrics::Metrics() : impl_(std::make_unique<Impl>()) {}
Metrics::~Metrics() = default;

void Metrics::record_request(const RequestRecord& r) {
  thread_local std::unordered_map<std::string, Impl::RequestSeries> request_series;
  thread_local std::unordered_map<std::string, Impl::BackendSeries> backend_series;
  const std::string status = std::to_string(r.status);
  auto key = cache_key(this, {r.route, r.model, r.backend, status});
  auto it = request_series.find(key);
  if (it == request_series.end()) {
    Impl::RequestSeries series{
        &impl_->requests.Add({{"route", std::string(r.route)},
                              {"model", std::string(r.model)},
                              {"backend", std::string(r.backend)},
                              {"status", status}}),
        &impl_->duration.Add({{"route", std::string(r.route)}, {"model", std::string(r.model)}},
                             latency_buckets())};
    it = request_series.emplace(std::move(key), series).first;
  }
  it->second.requests->Increment();
  it->second.duration->Observe(seconds(r.duration));

  if (r.backend.empty()) return;
  auto backend_key = cache_key(this, {r.model, r.backend});
  auto bit = backend_series.find(backend_key);
  if (bit == backend_series.end()) {
    prometheus::Labels labels{{"model", std::string(r.model)}, {"backend", std::string(r.backend)}};
    auto with_direction = [&](const char* direction) {
      auto l = labels;
      l.emplace("direction", direction);
      return &impl_->tokens.Add(l);
    };
    Impl::BackendSeries series{&impl_->ttft.Add(labels, latency_buckets()), with_direction("input"),
                               with_direction("output")};
    bit = backend_series.emplace(std::move(backend_key), series).first;
  }
  if (r.time_to_first_token.count() > 0) bit->second.ttft->Observe(seconds(r.time_to_first_token));
  if (r.tokens_in > 0) bit->second.tokens_in->Increment(static_cast<double>(r.tokens_in));
  if (r.tokens_out > 0) bit->second.tokens_out->Increment(static_cast<double>(r.tokens_out));
}

void Metrics::record_upstream_error(std::string_view backend, std::string_view kind) {
  impl_->upstream_errors.Add({{"backend", std::string(backend)}, {"kind", std::string(kind)}})
      .Increment();
}

void Metrics::record_retry(std::string_view model) {
  impl_->retries.Add({{"model", std::string(model)}}).Increment();
}

void Metrics::record_decision(std::string_view label, std::string_view decision) {
  // Per request: cached per thread like the request series, so the registry lock is taken once
  // per distinct pair.
  thread_local std::unordered_map<std::string, prometheus::Counter*> series;
  std::string key;
  key.reserve(label.size() + decision.size() + 1);
  key.append(label).push_back('\0');
  key.append(decision);
  auto it = series.find(key);
  if (it == series.end()) {
    auto& counter =
        impl_->decisions.Add({{"label", std::string(label)}, {"decision", std::string(decision)}});
    it = series.emplace(std::move(key), &counter).first;
  }
  it->second->Increment();
}

void Metrics::record_rule(std::string_view rule, std::string_view action, bool enforced) {
  impl_->rule_matches
      .Add({{"rule", std::string(rule)},
            {"action", std::string(action)},
            {"mode", enforced ? "enforce" : "shadow"}})
      .Increment();
}

void Metrics::record_usage(std::string_view tenant, std::string_view model, long tokens_in,
                           long tokens_out, double cost_usd) {
  struct UsageSeries {
    prometheus::Counter* tokens_in;
    prometheus::Counter* tokens_out;
    prometheus::Counter* cost;
  };
  thread_local std::unordered_map<std::string, UsageSeries> series;
  auto key = cache_key(this, {tenant, model});
  auto it = series.find(key);
  if (it == series.end()) {
    const prometheus::Labels labels{{"tenant", std::string(tenant)}, {"model", std::string(model)}};
    auto with_direction = [&](const char* direction) {
      auto l = labels;
      l.emplace("direction", direction);
      return &impl_->tenant_tokens.Add(l);
    };
    UsageSeries added{with_direction("input"), with_direction("output"),
                      &impl_->tenant_cost.Add(labels)};
    it = series.emplace(std::move(key), added).first;
  }
  if (tokens_in > 0) it->second.tokens_in->Increment(static_cast<double>(tokens_in));
  if (tokens_out > 0) it->second.tokens_out->Increment(static_cast<double>(tokens_out));
  if (cost_usd > 0) it->second.cost->Increment(cost_usd);
}

void Metrics::stream_started() { impl_->active_streams.Increment(); }
void Metrics::stream_ended() { impl_->active_streams.Decrement(); }

std::string Metrics::scrape(const routing::BackendRegistry& backends) {
  std::lock_guard lock(impl_->scrape_mutex);
  auto now = std::chrono::steady_clock::now();
  for (const auto& backend : backends.all()) {
    prometheus::Labels labels{{"backend", backend->name()}};
    double state = 0;
    switch (backend->breaker_state(now)) {
      case routing::BreakerState::kClosed:
        state = 0;
        break;
      case routing::BreakerState::kHalfOpen:
        state = 1;
        break;
      case routing::BreakerState::kOpen:
        state = 2;
        break;
    }
    impl_->breaker.Add(labels).Set(state);
    impl_->healthy.Add(labels).Set(backend->healthy() ? 1 : 0);
    impl_->outstanding.Add(labels).Set(backend->outstanding());
  }
  return prometheus::TextSerializer().Serialize(impl_->registry.Collect());
}

}  // namespace redline::gateway
