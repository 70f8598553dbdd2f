#pragma once
// Time enters the routing logic through this interface so tests can drive breakers, ejection
// windows and retry budgets without sleeping. Routing functions take `now` as a parameter; the
// request pipeline reads it once per decision from a Clock.
#include <atomic>
#include <chrono>

namespace redline::routing {

using TimePoint = std::chrono::steady_clock::time_point;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint now() const = 0;
};

// The real monotonic clock.
class SteadyClock final : public Clock {
 public:
  TimePoint now() const override { return std::chrono::steady_clock::now(); }
};

// A clock that only moves when told to. Starts at an arbitrary non-zero point so that
// "time_point{}" sentinels in callers never coincide with a real reading. Thread-safe.
class ManualClock final : public Clock {
 public:
  ManualClock() : nanos_(std::chrono::nanoseconds(std::chrono::hours(1)).count()) {}

  TimePoint now() const override {
    return TimePoint(std::chrono::nanoseconds(nanos_.load(std::memory_order_acquire)));
  }
  void advance(std::chrono::nanoseconds by) { nanos_.fetch_add(by.count()); }
  void set(TimePoint to) { nanos_.store(to.time_since_epoch().count()); }

 private:
  std::atomic<std::chrono::nanoseconds::rep> nanos_;
};

}  // namespace redline::routing
