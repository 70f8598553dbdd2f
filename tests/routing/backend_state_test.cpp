#include "routing/backend_state.h"

#include <gtest/gtest.h>

#include <cmath>

namespace redline::routing {
namespace {

using namespace std::chrono_literals;

RoutingPolicy test_policy() {
  RoutingPolicy policy;
  policy.breaker_failure_threshold = 100;  // out of the way unless a test lowers it
  policy.breaker_open_duration = 5s;
  policy.ejection_consecutive_failures = 3;
  policy.ejection_duration = 10s;
  policy.throttle_on_429 = 2s;
  policy.latency_ewma_alpha = 0.5;
  return policy;
}

class BackendStateTest : public ::testing::Test {
 protected:
  ManualClock clock_;
  BackendState backend_{"gpu-a", 2, 1.0, test_policy()};
};

TEST_F(BackendStateTest, OutstandingAndSaturation) {
  EXPECT_EQ(backend_.outstanding(), 0);
  EXPECT_FALSE(backend_.saturated());
  backend_.on_request_start();
  EXPECT_DOUBLE_EQ(backend_.load(), 0.5);
  backend_.on_request_start();
  EXPECT_TRUE(backend_.saturated());
  backend_.set_capacity(3);
  EXPECT_FALSE(backend_.saturated());
  backend_.on_request_end();
  backend_.on_request_end();
  EXPECT_EQ(backend_.outstanding(), 0);
}

TEST_F(BackendStateTest, CapacityAndWeightAreClamped) {
  backend_.set_capacity(0);
  EXPECT_EQ(backend_.capacity(), 1);
  backend_.set_weight(-2);
  EXPECT_EQ(backend_.weight(), 0);
}

TEST_F(BackendStateTest, LatencyModelSeedsThenSmooths) {
  EXPECT_FALSE(backend_.has_latency_sample());
  EXPECT_EQ(backend_.expected_latency_ms(100), 0);
  EXPECT_TRUE(std::isnan(backend_.ttft_ms()));

  // ttft 100 ms, 11 tokens over 1100 ms → 100 ms per token after the first.
  backend_.record_latency(100ms, 11, 1100ms);
  EXPECT_TRUE(backend_.has_latency_sample());
  EXPECT_DOUBLE_EQ(backend_.ttft_ms(), 100);
  EXPECT_DOUBLE_EQ(backend_.tpot_ms(), 100);
  EXPECT_DOUBLE_EQ(backend_.expected_latency_ms(10), 1100);

  // alpha 0.5: halfway to the new sample.
  backend_.record_latency(300ms, 11, 800ms);
  EXPECT_DOUBLE_EQ(backend_.ttft_ms(), 200);
  EXPECT_DOUBLE_EQ(backend_.tpot_ms(), 75);
}

TEST_F(BackendStateTest, NonStreamingSampleOnlyUpdatesTtft) {
  backend_.record_latency(400ms, 50, 400ms);
  EXPECT_DOUBLE_EQ(backend_.ttft_ms(), 400);
  EXPECT_TRUE(std::isnan(backend_.tpot_ms()));
  EXPECT_DOUBLE_EQ(backend_.expected_latency_ms(256), 400);
}

TEST_F(BackendStateTest, EjectedAfterConsecutiveFailuresAndRecovers) {
  backend_.record_failure(clock_.now(), FailureKind::kConnect);
  backend_.record_failure(clock_.now(), FailureKind::kStatus5xx);
  EXPECT_TRUE(backend_.available(clock_.now()));
  backend_.record_failure(clock_.now(), FailureKind::kStatus5xx);
  EXPECT_TRUE(backend_.ejected(clock_.now()));
  EXPECT_FALSE(backend_.available(clock_.now()));
  EXPECT_FALSE(backend_.try_acquire(clock_.now()));
  clock_.advance(9999ms);
  EXPECT_FALSE(backend_.available(clock_.now()));
  clock_.advance(1ms);
  EXPECT_FALSE(backend_.ejected(clock_.now()));
  EXPECT_TRUE(backend_.available(clock_.now()));
  // The streak restarted: one more failure does not eject again.
  backend_.record_failure(clock_.now(), FailureKind::kConnect);
  EXPECT_TRUE(backend_.available(clock_.now()));
}

TEST_F(BackendStateTest, SuccessBreaksTheEjectionStreak) {
  backend_.record_failure(clock_.now(), FailureKind::kConnect);
  backend_.record_failure(clock_.now(), FailureKind::kConnect);
  backend_.record_success();
  backend_.record_failure(clock_.now(), FailureKind::kConnect);
  backend_.record_failure(clock_.now(), FailureKind::kConnect);
  EXPECT_FALSE(backend_.ejected(clock_.now()));
}

TEST_F(BackendStateTest, TimeoutsAndProtocolErrorsDoNotEject) {
  for (int i = 0; i < 5; ++i) backend_.record_failure(clock_.now(), FailureKind::kTimeout);
  for (int i = 0; i < 5; ++i) backend_.record_failure(clock_.now(), FailureKind::kProtocol);
  EXPECT_FALSE(backend_.ejected(clock_.now()));
}

TEST_F(BackendStateTest, Status429ThrottlesWithoutCountingAsFailure) {
  backend_.record_failure(clock_.now(), FailureKind::kStatus429);
  EXPECT_TRUE(backend_.throttled(clock_.now()));
  EXPECT_FALSE(backend_.available(clock_.now()));
  clock_.advance(2s);
  EXPECT_TRUE(backend_.available(clock_.now()));
  for (int i = 0; i < 10; ++i) backend_.record_failure(clock_.now(), FailureKind::kStatus429);
  EXPECT_FALSE(backend_.ejected(clock_.now()));
  EXPECT_EQ(backend_.breaker_state(clock_.now()), BreakerState::kClosed);
}

TEST_F(BackendStateTest, ThrottleUntilOnlyExtends) {
  backend_.throttle_until(clock_.now() + 30s);
  backend_.record_failure(clock_.now(), FailureKind::kStatus429);  // 2 s must not shorten it
  clock_.advance(29s);
  EXPECT_TRUE(backend_.throttled(clock_.now()));
  clock_.advance(1s);
  EXPECT_FALSE(backend_.throttled(clock_.now()));
}

TEST_F(BackendStateTest, UnhealthyIsUnavailable) {
  backend_.set_healthy(false);
  EXPECT_FALSE(backend_.available(clock_.now()));
  EXPECT_FALSE(backend_.try_acquire(clock_.now()));
  backend_.set_healthy(true);
  EXPECT_TRUE(backend_.available(clock_.now()));
}

TEST(BackendStateBreaker, AvailabilityDoesNotConsumeHalfOpenTrial) {
  RoutingPolicy policy = test_policy();
  policy.breaker_failure_threshold = 2;
  policy.breaker_open_duration = 1s;
  ManualClock clock;
  BackendState backend("gpu-b", 4, 1.0, policy);
  backend.record_failure(clock.now(), FailureKind::kTimeout);
  backend.record_failure(clock.now(), FailureKind::kTimeout);
  EXPECT_EQ(backend.breaker_state(clock.now()), BreakerState::kOpen);
  EXPECT_FALSE(backend.available(clock.now()));
  clock.advance(1s);
  EXPECT_EQ(backend.breaker_state(clock.now()), BreakerState::kHalfOpen);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(backend.available(clock.now()));
  EXPECT_TRUE(backend.try_acquire(clock.now()));
  EXPECT_FALSE(backend.try_acquire(clock.now()));
  EXPECT_FALSE(backend.available(clock.now())) << "the trial is out";
  backend.record_success();
  EXPECT_EQ(backend.breaker_state(clock.now()), BreakerState::kClosed);
  EXPECT_TRUE(backend.try_acquire(clock.now()));
}

TEST(BackendRegistry, KeepsStateAcrossReloads) {
  BackendRegistry registry(test_policy());
  auto a = registry.get_or_create("a", 4, 1.0);
  a->on_request_start();
  a->record_latency(50ms, 1, 50ms);
  auto again = registry.get_or_create("a", 8, 2.0);
  EXPECT_EQ(a, again);
  EXPECT_EQ(again->capacity(), 8);
  EXPECT_EQ(again->weight(), 2.0);
  EXPECT_EQ(again->outstanding(), 1);
  EXPECT_TRUE(again->has_latency_sample());
}

TEST(BackendRegistry, RetainOnlyDropsOthersButHoldersKeepThem) {
  BackendRegistry registry(test_policy());
  auto a = registry.get_or_create("a", 1, 1);
  registry.get_or_create("b", 1, 1);
  registry.get_or_create("c", 1, 1);
  registry.retain_only({"c", "b"});
  EXPECT_EQ(registry.find("a"), nullptr);
  ASSERT_EQ(registry.all().size(), 2u);
  EXPECT_EQ(registry.all()[0]->name(), "b");
  EXPECT_EQ(registry.all()[1]->name(), "c");
  EXPECT_EQ(a->name(), "a");  // an in-flight request's reference stays valid
  // A re-added backend starts fresh.
  EXPECT_NE(registry.get_or_create("a", 1, 1), a);
}

TEST(BackendRegistry, SetPolicyReachesExistingStates) {
  BackendRegistry registry(test_policy());
  ManualClock clock;
  auto a = registry.get_or_create("a", 1, 1);
  RoutingPolicy strict = test_policy();
  strict.ejection_consecutive_failures = 1;
  registry.set_policy(strict);
  a->record_failure(clock.now(), FailureKind::kConnect);
  EXPECT_TRUE(a->ejected(clock.now()));
  auto b = registry.get_or_create("b", 1, 1);
  b->record_failure(clock.now(), FailureKind::kConnect);
  EXPECT_TRUE(b->ejected(clock.now()));
}

}  // namespace
}  // namespace redline::routing
