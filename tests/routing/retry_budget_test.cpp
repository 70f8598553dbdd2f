#include "routing/retry_budget.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace redline::routing {
namespace {

using namespace std::chrono_literals;

int acquire_all(RetryBudget& budget, TimePoint now, int attempts) {
  int granted = 0;
  for (int i = 0; i < attempts; ++i) granted += budget.try_acquire_retry(now) ? 1 : 0;
  return granted;
}

TEST(RetryBudget, FloorAllowsRetriesWithoutTraffic) {
  ManualClock clock;
  RetryBudget budget(0.2, 3);
  EXPECT_EQ(acquire_all(budget, clock.now(), 10), 3);
}

TEST(RetryBudget, RatioOfRequestsInWindow) {
  ManualClock clock;
  RetryBudget budget(0.2, 3);
  for (int i = 0; i < 100; ++i) budget.record_request(clock.now());
  EXPECT_EQ(acquire_all(budget, clock.now(), 50), 20);
  EXPECT_EQ(budget.requests_in_window(clock.now()), 100);
  EXPECT_EQ(budget.retries_in_window(clock.now()), 20);
}

TEST(RetryBudget, ZeroFloorAndNoTrafficAllowsNothing) {
  ManualClock clock;
  RetryBudget budget(0.5, 0);
  EXPECT_FALSE(budget.try_acquire_retry(clock.now()));
  budget.record_request(clock.now());
  budget.record_request(clock.now());
  EXPECT_TRUE(budget.try_acquire_retry(clock.now()));
  EXPECT_FALSE(budget.try_acquire_retry(clock.now()));
}

TEST(RetryBudget, WindowSlidesOverOneSecond) {
  ManualClock clock;
  RetryBudget budget(0.1, 0);
  for (int i = 0; i < 100; ++i) budget.record_request(clock.now());
  EXPECT_EQ(acquire_all(budget, clock.now(), 20), 10);

  // Still inside the window: both the requests and the spent retries count.
  clock.advance(900ms);
  EXPECT_FALSE(budget.try_acquire_retry(clock.now()));
  for (int i = 0; i < 50; ++i) budget.record_request(clock.now());
  EXPECT_EQ(acquire_all(budget, clock.now(), 20), 5);  // 0.1 × 150 = 15, 10 spent

  // The first slice has left the window: 50 requests, 5 retries remain counted.
  clock.advance(200ms);
  EXPECT_EQ(budget.requests_in_window(clock.now()), 50);
  EXPECT_EQ(budget.retries_in_window(clock.now()), 5);
  EXPECT_FALSE(budget.try_acquire_retry(clock.now()));

  // Everything has aged out.
  clock.advance(1000ms);
  EXPECT_EQ(budget.requests_in_window(clock.now()), 0);
  EXPECT_EQ(budget.retries_in_window(clock.now()), 0);
}

TEST(RetryBudget, StaleTimestampDoesNotWipeNewerSlice) {
  ManualClock clock;
  RetryBudget budget(1.0, 0);
  const TimePoint earlier = clock.now();
  clock.advance(1000ms);  // same bucket slot, ten slices later
  for (int i = 0; i < 4; ++i) budget.record_request(clock.now());
  budget.record_request(earlier);
  EXPECT_EQ(budget.requests_in_window(clock.now()), 5);
}

TEST(RetryBudget, ConcurrentAcquireNeverExceedsBudget) {
  ManualClock clock;
  RetryBudget budget(0.25, 0);
  for (int i = 0; i < 400; ++i) budget.record_request(clock.now());
  std::atomic<int> granted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] { granted += acquire_all(budget, clock.now(), 100); });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(granted.load(), 100);
}

}  // namespace
}  // namespace redline::routing
