#pragma once
// An Envoy-style retry budget: retries are allowed while the retries issued in the last second
// stay below max(min_per_second, ratio × requests in the last second). A fixed retry count per
// request multiplies load by (1 + retries) exactly when upstreams are failing; a budget bounds
// the extra load to a fraction of real traffic while still letting low-traffic routes retry.
//
// The window slides in 10 buckets of 100 ms. Thread-safe (a short internal mutex: two counters
// and a bucket rotation, taken once per request and once per retry attempt).
#include <array>
#include <cstdint>
#include <mutex>

#include "routing/clock.h"

namespace redline::routing {

class RetryBudget {
 public:
  // ratio: retries allowed per request (0.2 = 20 %); negative is treated as 0.
  // min_per_second: retries always allowed per second regardless of traffic; negative → 0.
  RetryBudget(double ratio, int min_per_second);

  RetryBudget(const RetryBudget&) = delete;
  RetryBudget& operator=(const RetryBudget&) = delete;

  // Counts one original client request (not retries: those count through try_acquire_retry).
  void record_request(TimePoint now);

  // Whether a retry may be sent now; on true the retry is counted against the budget.
  bool try_acquire_retry(TimePoint now);

  // Counts over the last second, for metrics and tests.
  std::int64_t requests_in_window(TimePoint now);
  std::int64_t retries_in_window(TimePoint now);

 private:
  static constexpr int kBuckets = 10;
  static constexpr std::int64_t kBucketNanos = 100'000'000;

  struct Bucket {
    std::int64_t epoch = -1;  // which 100 ms slice of time this bucket currently counts
    std::int64_t requests = 0;
    std::int64_t retries = 0;
  };

  // Returns the bucket for `now`, recycling it if it holds a slice that left the window.
  Bucket& current_bucket(std::int64_t epoch);
  void sum_window(std::int64_t epoch, std::int64_t& requests, std::int64_t& retries) const;
  static std::int64_t epoch_of(TimePoint now);

  const double ratio_;
  const int min_per_second_;
  std::mutex mutex_;
  std::array<Bucket, kBuckets> buckets_{};
};

}  // namespace redline::routing
