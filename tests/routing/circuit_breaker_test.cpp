#include "routing/circuit_breaker.h"

#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <thread>
#include <vector>

namespace redline::routing {
namespace {

using namespace std::chrono_literals;
using State = CircuitBreaker::State;

class CircuitBreakerTest : public ::testing::Test {
 protected:
  void fail(int times) {
    for (int i = 0; i < times; ++i) breaker_.record_failure(clock_.now());
  }
  ManualClock clock_;
  CircuitBreaker breaker_{3, 1000ms};
};

TEST_F(CircuitBreakerTest, StaysClosedBelowThreshold) {
  fail(2);
  EXPECT_EQ(breaker_.state(clock_.now()), State::kClosed);
  EXPECT_TRUE(breaker_.allow(clock_.now()));
}

TEST_F(CircuitBreakerTest, SuccessResetsTheStreak) {
  fail(2);
  breaker_.record_success();
  fail(2);
  EXPECT_EQ(breaker_.state(clock_.now()), State::kClosed);
  fail(1);
  EXPECT_EQ(breaker_.state(clock_.now()), State::kOpen);
}

TEST_F(CircuitBreakerTest, OpensAtThresholdAndRejects) {
  fail(3);
  EXPECT_EQ(breaker_.state(clock_.now()), State::kOpen);
  EXPECT_FALSE(breaker_.would_allow(clock_.now()));
  EXPECT_FALSE(breaker_.allow(clock_.now()));
  clock_.advance(999ms);
  EXPECT_FALSE(breaker_.allow(clock_.now()));
}

TEST_F(CircuitBreakerTest, LateFailuresWhileOpenDoNotExtendIt) {
  fail(3);
  clock_.advance(900ms);
  fail(5);
  clock_.advance(100ms);
  EXPECT_EQ(breaker_.state(clock_.now()), State::kHalfOpen);
}

TEST_F(CircuitBreakerTest, HalfOpenAllowsExactlyOneTrial) {
  fail(3);
  clock_.advance(1000ms);
  EXPECT_EQ(breaker_.state(clock_.now()), State::kHalfOpen);
  EXPECT_TRUE(breaker_.would_allow(clock_.now()));
  EXPECT_TRUE(breaker_.would_allow(clock_.now())) << "would_allow must not reserve the trial";
  EXPECT_TRUE(breaker_.allow(clock_.now()));
  EXPECT_FALSE(breaker_.allow(clock_.now()));
  EXPECT_FALSE(breaker_.would_allow(clock_.now()));
}

TEST_F(CircuitBreakerTest, TrialSuccessCloses) {
  fail(3);
  clock_.advance(1000ms);
  ASSERT_TRUE(breaker_.allow(clock_.now()));
  breaker_.record_success();
  EXPECT_EQ(breaker_.state(clock_.now()), State::kClosed);
  EXPECT_TRUE(breaker_.allow(clock_.now()));
  EXPECT_TRUE(breaker_.allow(clock_.now()));
  // The streak starts from zero after closing.
  fail(2);
  EXPECT_EQ(breaker_.state(clock_.now()), State::kClosed);
}

TEST_F(CircuitBreakerTest, TrialFailureReopensForFullDuration) {
  fail(3);
  clock_.advance(1500ms);
  ASSERT_TRUE(breaker_.allow(clock_.now()));
  breaker_.record_failure(clock_.now());
  EXPECT_EQ(breaker_.state(clock_.now()), State::kOpen);
  clock_.advance(999ms);
  EXPECT_FALSE(breaker_.allow(clock_.now()));
  clock_.advance(1ms);
  EXPECT_EQ(breaker_.state(clock_.now()), State::kHalfOpen);
  EXPECT_TRUE(breaker_.allow(clock_.now()));
}

TEST_F(CircuitBreakerTest, LateSuccessWhileOpenDoesNotClose) {
  fail(3);
  breaker_.record_success();  // a request sent before the breaker opened
  EXPECT_EQ(breaker_.state(clock_.now()), State::kOpen);
}

TEST_F(CircuitBreakerTest, AbandonedTrialExpires) {
  fail(3);
  clock_.advance(1000ms);
  ASSERT_TRUE(breaker_.allow(clock_.now()));
  clock_.advance(999ms);
  EXPECT_FALSE(breaker_.allow(clock_.now()));
  clock_.advance(1ms);
  EXPECT_TRUE(breaker_.allow(clock_.now())) << "a trial with no outcome must not wedge the breaker";
}

TEST_F(CircuitBreakerTest, ReconfigureChangesThreshold) {
  breaker_.reconfigure(1, 50ms);
  fail(1);
  EXPECT_EQ(breaker_.state(clock_.now()), State::kOpen);
  clock_.advance(50ms);
  EXPECT_EQ(breaker_.state(clock_.now()), State::kHalfOpen);
}

TEST(CircuitBreakerConcurrency, ConcurrentAllowInHalfOpenGrantsOneTrial) {
  constexpr int kThreads = 8;
  for (int round = 0; round < 50; ++round) {
    ManualClock clock;
    CircuitBreaker breaker(1, 100ms);
    breaker.record_failure(clock.now());
    clock.advance(100ms);
    std::atomic<int> granted{0};
    std::barrier start(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&] {
        start.arrive_and_wait();
        for (int i = 0; i < 100; ++i) {
          if (breaker.allow(clock.now())) granted.fetch_add(1);
        }
      });
    }
    for (auto& thread : threads) thread.join();
    ASSERT_EQ(granted.load(), 1) << "round " << round;
  }
}

TEST(CircuitBreakerConcurrency, ConcurrentFailuresOpenOnce) {
  ManualClock clock;
  CircuitBreaker breaker(100, 1000ms);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) breaker.record_failure(clock.now());
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(breaker.state(clock.now()), State::kOpen);
  clock.advance(1000ms);
  EXPECT_EQ(breaker.state(clock.now()), State::kHalfOpen);
}

}  // namespace
}  // namespace redline::routing
