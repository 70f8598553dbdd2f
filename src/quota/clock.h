// Time enters the quota module through this interface so tests can drive expiry and cache
// lifetimes without sleeping. Two readings because they answer different questions: wall time
// is what expiry and revocation stamps are written in, and must agree with other processes;
// monotonic time measures how long a cache entry has lived, and must not jump when the wall
// clock is set.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>

namespace redline::quota {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::int64_t unix_seconds() const = 0;
  virtual std::chrono::steady_clock::time_point monotonic() const = 0;
};

// The real clocks. Stateless; one shared instance serves everyone.
std::shared_ptr<const Clock> system_clock();

}  // namespace redline::quota
