#pragma once
// A per-backend circuit breaker: closed → open after N consecutive failures → half-open once the
// open duration has passed, where exactly one trial request may go through → closed when that
// trial succeeds, open again when it fails.
//
// Thread-safety: all members may be called concurrently. The closed state (the common case) is
// served by a single atomic load; transitions and trial reservation take a short internal mutex.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>

#include "routing/clock.h"

namespace redline::routing {

class CircuitBreaker {
 public:
  enum class State { kClosed, kOpen, kHalfOpen };

  // failure_threshold < 1 is treated as 1.
  CircuitBreaker(int failure_threshold, std::chrono::milliseconds open_duration);

  CircuitBreaker(const CircuitBreaker&) = delete;
  CircuitBreaker& operator=(const CircuitBreaker&) = delete;

  // Whether a request may be sent now. In the half-open state this RESERVES the single trial:
  // the first caller gets true, every other caller gets false until the trial's outcome is
  // recorded. A trial whose outcome is never recorded (a cancelled request) expires after one
  // open duration, so an abandoned trial cannot wedge the breaker half-open forever.
  bool allow(TimePoint now);

  // The same answer allow() would give, without reserving anything. For eligibility scans that
  // must not consume the half-open trial. Lock-free; may be momentarily stale under concurrent
  // transitions, which is harmless because allow() is the authoritative check.
  bool would_allow(TimePoint now) const;

  // A request succeeded. Closed: resets the failure streak. Half-open with a trial out: closes.
  // Open with no trial out: ignored (a late success of a request sent before the breaker opened
  // says nothing about the backend's state now).
  void record_success();

  // A request failed. Closed: extends the streak and opens at the threshold. Half-open: opens
  // again for a full duration. Open: ignored (late failures must not extend the open period).
  void record_failure(TimePoint now);

  State state(TimePoint now) const;

  // Applies new settings (config reload). A breaker that is currently open keeps its deadline.
  void reconfigure(int failure_threshold, std::chrono::milliseconds open_duration);

 private:
  using Rep = std::chrono::nanoseconds::rep;
  static constexpr Rep kNone = INT64_MIN;

  std::atomic<int> failure_threshold_;
  std::atomic<Rep> open_duration_ns_;
  std::atomic<int> consecutive_failures_{0};
  // kNone while closed; otherwise the instant the half-open state begins.
  std::atomic<Rep> half_open_at_ns_{kNone};
  // kNone when no trial is out; otherwise the instant a reserved trial expires.
  std::atomic<Rep> trial_expires_ns_{kNone};
  std::mutex transition_mutex_;
};

}  // namespace redline::routing
