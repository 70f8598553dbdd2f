#include "routing/circuit_breaker.h"

#include <algorithm>

namespace redline::routing {
namespace {

std::chrono::nanoseconds::rep ticks(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

}  // namespace

CircuitBreaker::CircuitBreaker(int failure_threshold, std::chrono::milliseconds open_duration)
    : failure_threshold_(std::max(1, failure_threshold)),
      open_duration_ns_(std::chrono::nanoseconds(open_duration).count()) {}

bool CircuitBreaker::allow(TimePoint now) {
  if (half_open_at_ns_.load(std::memory_order_acquire) == kNone) return true;
  std::lock_guard lock(transition_mutex_);
  const Rep half_open_at = half_open_at_ns_.load(std::memory_order_relaxed);
  if (half_open_at == kNone) return true;  // closed while we waited for the lock
  const Rep t = ticks(now);
  if (t < half_open_at) return false;
  const Rep trial_expires = trial_expires_ns_.load(std::memory_order_relaxed);
  if (trial_expires != kNone && t < trial_expires) return false;
  trial_expires_ns_.store(t + open_duration_ns_.load(std::memory_order_relaxed),
                          std::memory_order_release);
  return true;
}

bool CircuitBreaker::would_allow(TimePoint now) const {
  const Rep half_open_at = half_open_at_ns_.load(std::memory_order_acquire);
  if (half_open_at == kNone) return true;
  const Rep t = ticks(now);
  if (t < half_open_at) return false;
  const Rep trial_expires = trial_expires_ns_.load(std::memory_order_acquire);
  return trial_expires == kNone || t >= trial_expires;
}

void CircuitBreaker::record_success() {
  if (half_open_at_ns_.load(std::memory_order_acquire) == kNone) {
    // Avoid dirtying the shared cache line on every success when there is no streak.
    if (consecutive_failures_.load(std::memory_order_relaxed) != 0) {
      consecutive_failures_.store(0, std::memory_order_relaxed);
    }
    return;
  }
  std::lock_guard lock(transition_mutex_);
  if (trial_expires_ns_.load(std::memory_order_relaxed) == kNone) return;
  consecutive_failures_.store(0, std::memory_order_relaxed);
  trial_expires_ns_.store(kNone, std::memory_order_relaxed);
  half_open_at_ns_.store(kNone, std::memory_order_release);
}

void CircuitBreaker::record_failure(TimePoint now) {
  const Rep t = ticks(now);
  if (half_open_at_ns_.load(std::memory_order_acquire) == kNone) {
    const int streak = consecutive_failures_.fetch_add(1, std::memory_order_relaxed) + 1;
    if (streak < failure_threshold_.load(std::memory_order_relaxed)) return;
    std::lock_guard lock(transition_mutex_);
    if (half_open_at_ns_.load(std::memory_order_relaxed) != kNone) return;  // another thread won
    consecutive_failures_.store(0, std::memory_order_relaxed);
    trial_expires_ns_.store(kNone, std::memory_order_relaxed);
    half_open_at_ns_.store(t + open_duration_ns_.load(std::memory_order_relaxed),
                           std::memory_order_release);
    return;
  }
  std::lock_guard lock(transition_mutex_);
  const Rep half_open_at = half_open_at_ns_.load(std::memory_order_relaxed);
  if (half_open_at == kNone || t < half_open_at) return;
  trial_expires_ns_.store(kNone, std::memory_order_relaxed);
  half_open_at_ns_.store(t + open_duration_ns_.load(std::memory_order_relaxed),
                         std::memory_order_release);
}

CircuitBreaker::State CircuitBreaker::state(TimePoint now) const {
  const Rep half_open_at = half_open_at_ns_.load(std::memory_order_acquire);
  if (half_open_at == kNone) return State::kClosed;
  return ticks(now) < half_open_at ? State::kOpen : State::kHalfOpen;
}

void CircuitBreaker::reconfigure(int failure_threshold, std::chrono::milliseconds open_duration) {
  failure_threshold_.store(std::max(1, failure_threshold), std::memory_order_relaxed);
  open_duration_ns_.store(std::chrono::nanoseconds(open_duration).count(),
                          std::memory_order_relaxed);
}

}  // namespace redline::routing
