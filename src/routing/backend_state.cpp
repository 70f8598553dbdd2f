#include "routing/backend_state.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_set>

#include "routing/hash.h"

namespace redline::routing {
namespace {

constexpr std::chrono::nanoseconds::rep kNever = std::numeric_limits<std::int64_t>::min();
constexpr double kNoSample = std::numeric_limits<double>::quiet_NaN();

std::chrono::nanoseconds::rep ticks(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

std::chrono::nanoseconds::rep nanos(std::chrono::milliseconds d) {
  return std::chrono::nanoseconds(d).count();
}

double clamp_alpha(double alpha) {
  // alpha outside (0, 1] would either freeze the estimate or make it diverge.
  if (!(alpha > 0.0)) return 0.3;
  return std::min(alpha, 1.0);
}

// Folds `sample` into an EWMA stored in `ewma`; the first sample seeds it.
void update_ewma(std::atomic<double>& ewma, double sample, double alpha) {
  double current = ewma.load(std::memory_order_relaxed);
  double next;
  do {
    next = std::isnan(current) ? sample : current + alpha * (sample - current);
  } while (!ewma.compare_exchange_weak(current, next, std::memory_order_relaxed));
}

void raise_to(std::atomic<std::int64_t>& value, std::int64_t candidate) {
  std::int64_t current = value.load(std::memory_order_relaxed);
  while (current < candidate &&
         !value.compare_exchange_weak(current, candidate, std::memory_order_relaxed)) {
  }
}

}  // namespace

BackendState::BackendState(std::string name, int capacity, double weight,
                           const RoutingPolicy& policy)
    : name_(std::move(name)),
      name_hash_(hash_bytes(name_)),
      capacity_(std::max(1, capacity)),
      weight_(std::max(0.0, weight)),
      latency_alpha_(clamp_alpha(policy.latency_ewma_alpha)),
      ttft_ms_(kNoSample),
      tpot_ms_(kNoSample),
      breaker_(policy.breaker_failure_threshold, policy.breaker_open_duration),
      ejection_threshold_(std::max(1, policy.ejection_consecutive_failures)),
      ejection_duration_ns_(nanos(policy.ejection_duration)),
      throttle_on_429_ns_(nanos(policy.throttle_on_429)),
      ejected_until_ns_(kNever),
      throttled_until_ns_(kNever) {}

void BackendState::set_capacity(int capacity) {
  capacity_.store(std::max(1, capacity), std::memory_order_relaxed);
}

void BackendState::set_weight(double weight) {
  weight_.store(std::max(0.0, weight), std::memory_order_relaxed);
}

void BackendState::set_policy(const RoutingPolicy& policy) {
  latency_alpha_.store(clamp_alpha(policy.latency_ewma_alpha), std::memory_order_relaxed);
  breaker_.reconfigure(policy.breaker_failure_threshold, policy.breaker_open_duration);
  ejection_threshold_.store(std::max(1, policy.ejection_consecutive_failures),
                            std::memory_order_relaxed);
  ejection_duration_ns_.store(nanos(policy.ejection_duration), std::memory_order_relaxed);
  throttle_on_429_ns_.store(nanos(policy.throttle_on_429), std::memory_order_relaxed);
}

void BackendState::record_latency(std::chrono::nanoseconds ttft, int tokens_out,
                                  std::chrono::nanoseconds total) {
  using Ms = std::chrono::duration<double, std::milli>;
  const double alpha = latency_alpha_.load(std::memory_order_relaxed);
  const double ttft_ms = std::max(0.0, Ms(ttft).count());
  update_ewma(ttft_ms_, ttft_ms, alpha);
  if (tokens_out > 1 && total > ttft) {
    update_ewma(tpot_ms_, Ms(total - ttft).count() / (tokens_out - 1), alpha);
  }
}

double BackendState::expected_latency_ms(int expected_output_tokens) const {
  const double ttft = ttft_ms_.load(std::memory_order_relaxed);
  if (std::isnan(ttft)) return 0.0;
  const double tpot = tpot_ms_.load(std::memory_order_relaxed);
  if (std::isnan(tpot)) return ttft;
  return ttft + tpot * std::max(0, expected_output_tokens);
}

bool BackendState::has_latency_sample() const {
  return !std::isnan(ttft_ms_.load(std::memory_order_relaxed));
}

double BackendState::ttft_ms() const { return ttft_ms_.load(std::memory_order_relaxed); }
double BackendState::tpot_ms() const { return tpot_ms_.load(std::memory_order_relaxed); }

void BackendState::record_success() {
  if (ejection_streak_.load(std::memory_order_relaxed) != 0) {
    ejection_streak_.store(0, std::memory_order_relaxed);
  }
  breaker_.record_success();
}

void BackendState::record_failure(TimePoint now, FailureKind kind) {
  const auto t = ticks(now);
  if (kind == FailureKind::kStatus429) {
    raise_to(throttled_until_ns_, t + throttle_on_429_ns_.load(std::memory_order_relaxed));
    return;
  }
  breaker_.record_failure(now);
  if (kind != FailureKind::kConnect && kind != FailureKind::kStatus5xx) return;
  const int streak = ejection_streak_.fetch_add(1, std::memory_order_relaxed) + 1;
  if (streak < ejection_threshold_.load(std::memory_order_relaxed)) return;
  // The streak restarts, so a backend that keeps failing after it returns is ejected again only
  // after another full streak rather than on its first failure.
  ejection_streak_.store(0, std::memory_order_relaxed);
  raise_to(ejected_until_ns_, t + ejection_duration_ns_.load(std::memory_order_relaxed));
}

void BackendState::throttle_until(TimePoint until) { raise_to(throttled_until_ns_, ticks(until)); }

bool BackendState::ejected(TimePoint now) const {
  return ticks(now) < ejected_until_ns_.load(std::memory_order_relaxed);
}

bool BackendState::throttled(TimePoint now) const {
  return ticks(now) < throttled_until_ns_.load(std::memory_order_relaxed);
}

bool BackendState::available(TimePoint now) const {
  return healthy() && !ejected(now) && !throttled(now) && breaker_.would_allow(now);
}

bool BackendState::try_acquire(TimePoint now) {
  return healthy() && !ejected(now) && !throttled(now) && breaker_.allow(now);
}

BackendRegistry::BackendRegistry(RoutingPolicy policy) : policy_(policy) {}

std::shared_ptr<BackendState> BackendRegistry::get_or_create(const std::string& name, int capacity,
                                                             double weight) {
  std::lock_guard lock(mutex_);
  auto [it, inserted] = states_.try_emplace(name);
  if (inserted) {
    it->second = std::make_shared<BackendState>(name, capacity, weight, policy_);
  } else {
    it->second->set_capacity(capacity);
    it->second->set_weight(weight);
  }
  return it->second;
}

std::shared_ptr<BackendState> BackendRegistry::find(const std::string& name) const {
  std::lock_guard lock(mutex_);
  auto it = states_.find(name);
  return it == states_.end() ? nullptr : it->second;
}

void BackendRegistry::retain_only(const std::vector<std::string>& names) {
  const std::unordered_set<std::string> keep(names.begin(), names.end());
  std::lock_guard lock(mutex_);
  std::erase_if(states_, [&](const auto& entry) { return !keep.contains(entry.first); });
}

void BackendRegistry::set_policy(const RoutingPolicy& policy) {
  std::lock_guard lock(mutex_);
  policy_ = policy;
  for (auto& [name, state] : states_) state->set_policy(policy);
}

std::vector<std::shared_ptr<BackendState>> BackendRegistry::all() const {
  std::lock_guard lock(mutex_);
  std::vector<std::shared_ptr<BackendState>> result;
  result.reserve(states_.size());
  for (const auto& [name, state] : states_) result.push_back(state);
  // Stable order for metrics output and tests.
  std::sort(result.begin(), result.end(),
            [](const auto& a, const auto& b) { return a->name() < b->name(); });
  return result;
}

}  // namespace redline::routing
