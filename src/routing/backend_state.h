#pragma once
// Runtime state of upstream backends, shared by all I/O threads and kept across config reloads
// (a reload must not reset load counters, latency estimates or an open breaker).
//
// Request lifecycle as seen from one attempt:
//   1. Picker::pick (strategy.h) chooses among candidates whose backend is available(now).
//      available() is a pure read: it never consumes the half-open breaker trial.
//   2. try_acquire(now) right before sending. This is the reserving check: in the half-open
//      state only one caller gets true. On false, exclude the candidate and pick again.
//   3. on_request_start() ... on_request_end() around the upstream exchange.
//   4. Exactly one outcome: record_success() or record_failure(now, kind); on success also
//      record_latency(...). A 429 with Retry-After additionally calls throttle_until().
//
// Thread-safety: every member may be called concurrently. All hot-path reads (available,
// outstanding, saturated, expected_latency_ms) are lock-free atomic loads.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "routing/circuit_breaker.h"
#include "routing/clock.h"
#include "routing/routing_policy.h"

namespace redline::routing {

enum class FailureKind {
  kConnect,    // could not connect / TLS handshake failed / connection reset before a response
  kTimeout,    // no (complete) response in time
  kStatus5xx,  // upstream answered 5xx
  kStatus429,  // upstream is rate limiting us
  kProtocol,   // malformed or unparseable response
};

using BreakerState = CircuitBreaker::State;

class BackendState {
 public:
  // capacity < 1 is treated as 1; weight < 0 as 0.
  BackendState(std::string name, int capacity, double weight, const RoutingPolicy& policy);

  BackendState(const BackendState&) = delete;
  BackendState& operator=(const BackendState&) = delete;

  const std::string& name() const { return name_; }
  // A hash of name(), computed once, for rendezvous hashing.
  std::uint64_t name_hash() const { return name_hash_; }

  int capacity() const { return capacity_.load(std::memory_order_relaxed); }
  double weight() const { return weight_.load(std::memory_order_relaxed); }
  void set_capacity(int capacity);
  void set_weight(double weight);
  void set_policy(const RoutingPolicy& policy);

  // --- load -----------------------------------------------------------------------------------
  void on_request_start() { outstanding_.fetch_add(1, std::memory_order_relaxed); }
  void on_request_end() { outstanding_.fetch_sub(1, std::memory_order_relaxed); }
  int outstanding() const { return outstanding_.load(std::memory_order_relaxed); }
  bool saturated() const { return outstanding() >= capacity(); }
  // outstanding / capacity; 1.0 means saturated.
  double load() const { return static_cast<double>(outstanding()) / capacity(); }

  // --- latency model --------------------------------------------------------------------------
  // One completed response. ttft: time to the first output token (streaming) or to the whole
  // response (non-streaming, where ttft == total). tokens_out: output tokens. The per-token
  // estimate is updated only when the response shows generation time: tokens_out > 1 and
  // total > ttft, as (total - ttft) / (tokens_out - 1).
  void record_latency(std::chrono::nanoseconds ttft, int tokens_out,
                      std::chrono::nanoseconds total);
  // EWMA(ttft) + EWMA(time per output token) × expected_output_tokens, in ms. 0 without samples.
  double expected_latency_ms(int expected_output_tokens) const;
  bool has_latency_sample() const;
  double ttft_ms() const;  // NaN without a sample
  double tpot_ms() const;  // NaN without a sample

  // --- health, failures -----------------------------------------------------------------------
  // Result of active health checks. Backends start healthy so traffic flows before the first
  // check; the breaker and ejection protect against a backend that is down from the start.
  void set_healthy(bool healthy) { healthy_.store(healthy, std::memory_order_relaxed); }
  bool healthy() const { return healthy_.load(std::memory_order_relaxed); }

  // Resets the consecutive-failure streaks and closes a half-open breaker.
  void record_success();
  // Breaker: every kind except kStatus429 counts. Ejection: kConnect and kStatus5xx count; a
  // kTimeout or kProtocol neither counts nor resets the ejection streak. kStatus429 throttles
  // for RoutingPolicy::throttle_on_429 and counts toward neither.
  void record_failure(TimePoint now, FailureKind kind);

  // Keeps the backend out of rotation until `until` (from a 429's Retry-After). Only extends:
  // the later of the current throttle and `until` wins.
  void throttle_until(TimePoint until);

  bool ejected(TimePoint now) const;
  bool throttled(TimePoint now) const;
  BreakerState breaker_state(TimePoint now) const { return breaker_.state(now); }

  // healthy ∧ breaker would allow ∧ not ejected ∧ not throttled. Non-reserving (see top).
  bool available(TimePoint now) const;
  // available(now), and reserves the half-open breaker trial if the breaker is half-open.
  // Call once per attempt, right before sending.
  bool try_acquire(TimePoint now);

 private:
  using Rep = std::chrono::nanoseconds::rep;

  const std::string name_;
  const std::uint64_t name_hash_;
  std::atomic<int> capacity_;
  std::atomic<double> weight_;
  std::atomic<int> outstanding_{0};

  std::atomic<double> latency_alpha_;
  std::atomic<double> ttft_ms_;  // NaN until the first sample
  std::atomic<double> tpot_ms_;  // NaN until the first sample

  std::atomic<bool> healthy_{true};
  CircuitBreaker breaker_;
  std::atomic<int> ejection_threshold_;
  std::atomic<Rep> ejection_duration_ns_;
  std::atomic<Rep> throttle_on_429_ns_;
  std::atomic<int> ejection_streak_{0};
  std::atomic<Rep> ejected_until_ns_;
  std::atomic<Rep> throttled_until_ns_;
};

// Backend states by name. Config reloads call get_or_create for every configured backend and
// then retain_only with their names; states of backends that stay keep their counters. States
// removed from the registry live on while in-flight requests still hold them. Thread-safe;
// not on the per-request path (the pipeline keeps the shared_ptrs it resolved at reload).
class BackendRegistry {
 public:
  explicit BackendRegistry(RoutingPolicy policy = {});

  // The state for `name`, created if new; an existing one gets the new capacity and weight.
  std::shared_ptr<BackendState> get_or_create(const std::string& name, int capacity, double weight);
  // The state for `name`, or null.
  std::shared_ptr<BackendState> find(const std::string& name) const;
  // Drops every state whose name is not in `names`.
  void retain_only(const std::vector<std::string>& names);
  // Applies to all current states and to those created later.
  void set_policy(const RoutingPolicy& policy);
  // All states, ordered by name.
  std::vector<std::shared_ptr<BackendState>> all() const;

 private:
  mutable std::mutex mutex_;
  RoutingPolicy policy_;
  std::unordered_map<std::string, std::shared_ptr<BackendState>> states_;
};

}  // namespace redline::routing
