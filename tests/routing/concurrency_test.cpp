// Several threads share backends and a Picker the way the I/O threads do. Run under
// ASan/UBSan (and TSan locally) this shows the hot path is race-free; the assertions check
// that no count is lost.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "routing/backend_state.h"
#include "routing/retry_budget.h"
#include "routing/strategy.h"

namespace redline::routing {
namespace {

using namespace std::chrono_literals;

TEST(RoutingConcurrency, PickAndAccountFromManyThreads) {
  RoutingPolicy policy;
  policy.breaker_failure_threshold = 3;
  policy.breaker_open_duration = 1ms;
  policy.ejection_consecutive_failures = 4;
  policy.ejection_duration = 1ms;
  policy.throttle_on_429 = 1ms;
  BackendRegistry registry(policy);
  std::vector<std::shared_ptr<BackendState>> states;
  std::vector<Candidate> candidates;
  for (int i = 0; i < 4; ++i) {
    states.push_back(registry.get_or_create("b" + std::to_string(i), 8, 1.0));
    candidates.push_back(Candidate{states.back().get(), 1.0 + i, 2.0 + i, 1.0 + i});
  }
  ManualClock clock;
  Picker picker(0.1, 2024);
  RetryBudget budget(0.2, 10);
  constexpr int kThreads = 4;
  constexpr int kIterations = 5000;
  std::atomic<int> picks{0};

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kIterations; ++i) {
        if (i % 64 == 0) clock.advance(1ms);  // every thread moves time, so breakers reopen
        const TimePoint now = clock.now();
        PickRequest request;
        request.candidates = candidates;
        request.strategy = static_cast<Strategy>(i % 5);
        request.affinity_hash = static_cast<std::uint64_t>(i % 17);
        request.now = now;
        budget.record_request(now);
        const auto chosen = picker.pick(request);
        if (!chosen) continue;
        BackendState& backend = *candidates[*chosen].backend;
        if (!backend.try_acquire(now)) continue;
        ++picks;
        backend.on_request_start();
        if ((i + t) % 3 == 0) {
          backend.record_failure(now, static_cast<FailureKind>(i % 5));
          budget.try_acquire_retry(now);
        } else {
          backend.record_success();
          backend.record_latency(std::chrono::milliseconds(5 + i % 20), 1 + i % 50,
                                 std::chrono::milliseconds(50 + i % 200));
        }
        backend.on_request_end();
        if (t == 1 && i % 500 == 0) {
          registry.get_or_create(backend.name(), 8 + i % 3, 1.0);
          registry.set_policy(policy);
          backend.set_healthy(true);
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();

  EXPECT_GT(picks.load(), kThreads * kIterations / 2) << "failure handling should not starve";
  for (const auto& state : states) {
    EXPECT_EQ(state->outstanding(), 0) << state->name();
    EXPECT_TRUE(state->has_latency_sample()) << state->name();
  }
}

}  // namespace
}  // namespace redline::routing
