#include "routing/retry_budget.h"

#include <algorithm>

namespace redline::routing {

RetryBudget::RetryBudget(double ratio, int min_per_second)
    : ratio_(std::max(0.0, ratio)), min_per_second_(std::max(0, min_per_second)) {}

std::int64_t RetryBudget::epoch_of(TimePoint now) {
  const auto nanos =
      std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count();
  // Floor division, so instants before the clock's epoch still map to distinct slices.
  return nanos >= 0 ? nanos / kBucketNanos : -((-nanos + kBucketNanos - 1) / kBucketNanos);
}

RetryBudget::Bucket& RetryBudget::current_bucket(std::int64_t epoch) {
  const auto slot = static_cast<std::size_t>(((epoch % kBuckets) + kBuckets) % kBuckets);
  Bucket& bucket = buckets_[slot];
  // Only recycle forward: a caller that read the clock just before another thread moved the
  // bucket on must not wipe the newer slice; its count lands in the newer slice instead.
  if (bucket.epoch < epoch) bucket = Bucket{epoch, 0, 0};
  return bucket;
}

void RetryBudget::sum_window(std::int64_t epoch, std::int64_t& requests,
                             std::int64_t& retries) const {
  requests = 0;
  retries = 0;
  for (const Bucket& bucket : buckets_) {
    if (bucket.epoch > epoch - kBuckets && bucket.epoch <= epoch) {
      requests += bucket.requests;
      retries += bucket.retries;
    }
  }
}

void RetryBudget::record_request(TimePoint now) {
  std::lock_guard lock(mutex_);
  ++current_bucket(epoch_of(now)).requests;
}

bool RetryBudget::try_acquire_retry(TimePoint now) {
  const std::int64_t epoch = epoch_of(now);
  std::lock_guard lock(mutex_);
  std::int64_t requests = 0;
  std::int64_t retries = 0;
  sum_window(epoch, requests, retries);
  const double allowed =
      std::max(static_cast<double>(min_per_second_), ratio_ * static_cast<double>(requests));
  if (static_cast<double>(retries) >= allowed) return false;
  ++current_bucket(epoch).retries;
  return true;
}

std::int64_t RetryBudget::requests_in_window(TimePoint now) {
  std::lock_guard lock(mutex_);
  std::int64_t requests = 0;
  std::int64_t retries = 0;
  sum_window(epoch_of(now), requests, retries);
  return requests;
}

std::int64_t RetryBudget::retries_in_window(TimePoint now) {
  std::lock_guard lock(mutex_);
  std::int64_t requests = 0;
  std::int64_t retries = 0;
  sum_window(epoch_of(now), requests, retries);
  return retries;
}

}  // namespace redline::routing
