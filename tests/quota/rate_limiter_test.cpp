#include "quota/rate_limiter.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace redline::quota {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

class ManualClock final : public Clock {
 public:
  std::int64_t unix_seconds() const override {
    return 1'700'000'000 + nanos_.load() / 1'000'000'000;
  }
  std::chrono::steady_clock::time_point monotonic() const override {
    return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(nanos_.load()));
  }
  void advance(std::chrono::nanoseconds by) { nanos_ += by.count(); }

 private:
  std::atomic<std::int64_t> nanos_{3'600'000'000'000};
};

RateLimitScope scope(std::string id, std::int64_t rpm, std::int64_t tpm,
                     std::int64_t concurrent = 0) {
  return {std::move(id), {rpm, tpm, concurrent}};
}

class RateLimiterTest : public ::testing::Test {
 protected:
  RateLimitAdmission admit(const std::vector<RateLimitScope>& scopes, std::int64_t tokens) {
    return limiter_.admit(scopes, tokens);
  }

  std::shared_ptr<ManualClock> clock_ = std::make_shared<ManualClock>();
  RateLimiter limiter_{clock_};
};

TEST_F(RateLimiterTest, RequestsRefillContinuouslyAndRetryAfterIsExact) {
  const std::vector scopes{scope("key:a", 60, 0)};
  for (int i = 0; i < 60; ++i) ASSERT_TRUE(admit(scopes, 0).admitted()) << i;
  auto refused = admit(scopes, 0);
  ASSERT_FALSE(refused.admitted());
  EXPECT_EQ(refused.denial->scope, "key:a");
  EXPECT_EQ(refused.denial->dimension, RateLimitDimension::kRequests);
  EXPECT_EQ(refused.denial->retry_after, 1000ms);
  EXPECT_FALSE(refused.denial->exceeds_limit);
  clock_->advance(999ms);
  EXPECT_FALSE(admit(scopes, 0).admitted());
  clock_->advance(1ms);
  EXPECT_TRUE(admit(scopes, 0).admitted());
  EXPECT_FALSE(admit(scopes, 0).admitted());
}

TEST_F(RateLimiterTest, TokensWaitForTheMissingPart) {
  const std::vector scopes{scope("key:a", 0, 600)};  // 10 tokens per second
  ASSERT_TRUE(admit(scopes, 500).admitted());
  auto refused = admit(scopes, 200);
  ASSERT_FALSE(refused.admitted());
  EXPECT_EQ(refused.denial->dimension, RateLimitDimension::kTokens);
  EXPECT_EQ(refused.denial->requested, 200);
  EXPECT_EQ(refused.denial->limit, 600);
  EXPECT_EQ(refused.denial->retry_after, 10s);
  EXPECT_THAT(refused.denial->retry_header_fields(),
              ElementsAre(Pair("Retry-After", "10"), Pair("retry-after-ms", "10000")));
  EXPECT_EQ(refused.denial->message(),
            "Rate limit reached for key:a on tokens per min (TPM): Limit 600, Requested 200. "
            "Please try again in 10s.");
  clock_->advance(9'999ms);
  EXPECT_FALSE(admit(scopes, 200).admitted());
  clock_->advance(1ms);
  EXPECT_TRUE(admit(scopes, 200).admitted());
}

TEST_F(RateLimiterTest, RetryAfterSecondsRoundUp) {
  const std::vector scopes{scope("key:a", 0, 60)};  // one token per second
  ASSERT_TRUE(admit(scopes, 60).admitted());
  clock_->advance(500ms);
  auto refused = admit(scopes, 2);
  ASSERT_FALSE(refused.admitted());
  EXPECT_EQ(refused.denial->retry_after, 1500ms);
  EXPECT_THAT(refused.denial->retry_header_fields(),
              ElementsAre(Pair("Retry-After", "2"), Pair("retry-after-ms", "1500")));
}

TEST_F(RateLimiterTest, RequestLargerThanTheWholeLimitIsRefusedDistinctly) {
  const std::vector scopes{scope("tenant:acme", 0, 1000)};
  auto refused = admit(scopes, 1001);
  ASSERT_FALSE(refused.admitted());
  EXPECT_TRUE(refused.denial->exceeds_limit);
  EXPECT_EQ(refused.denial->retry_after, 0ms);
  EXPECT_TRUE(refused.denial->retry_header_fields().empty());
  EXPECT_THAT(refused.denial->message(), HasSubstr("Request too large for tenant:acme"));
  // Nothing was taken: the whole allowance is still there.
  EXPECT_TRUE(admit(scopes, 1000).admitted());
}

TEST_F(RateLimiterTest, TooLargeWinsOverAWaitInAnotherScope) {
  const std::vector scopes{scope("tenant:acme", 1, 0), scope("key:a", 0, 100)};
  ASSERT_TRUE(admit(scopes, 10).admitted());
  auto refused = admit(scopes, 500);
  ASSERT_FALSE(refused.admitted());
  EXPECT_EQ(refused.denial->scope, "key:a");
  EXPECT_TRUE(refused.denial->exceeds_limit);
}

TEST_F(RateLimiterTest, ReportsTheLongestWaitAcrossScopes) {
  const std::vector scopes{scope("tenant:acme", 60, 0), scope("key:a", 0, 60)};
  ASSERT_TRUE(admit(scopes, 60).admitted());
  clock_->advance(1s);  // tenant: 1 request back at once; key: 1 token back
  auto refused = admit(scopes, 5);
  ASSERT_FALSE(refused.admitted());
  EXPECT_EQ(refused.denial->scope, "key:a");
  EXPECT_EQ(refused.denial->retry_after, 4s);
}

TEST_F(RateLimiterTest, RefusalInOneScopeTakesNothingFromTheOthers) {
  const std::vector both{scope("tenant:acme", 10, 1000, 1), scope("key:a", 0, 100)};
  const std::vector tenant_only{scope("tenant:acme", 10, 1000, 1)};
  auto refused = admit(both, 150);
  ASSERT_FALSE(refused.admitted());
  // The tenant still has its request, tokens and concurrency slot.
  auto admitted = admit(tenant_only, 1000);
  ASSERT_TRUE(admitted.admitted());
  EXPECT_EQ(admitted.status.requests.remaining, 9);
  EXPECT_EQ(admitted.status.tokens.remaining, 0);
}

TEST_F(RateLimiterTest, ConcurrencySlotsAreHeldByLeases) {
  const std::vector scopes{scope("key:a", 0, 0, 2)};
  auto first = admit(scopes, 0);
  auto second = admit(scopes, 0);
  ASSERT_TRUE(first.admitted() && second.admitted());
  auto refused = admit(scopes, 0);
  ASSERT_FALSE(refused.admitted());
  EXPECT_EQ(refused.denial->dimension, RateLimitDimension::kConcurrent);
  EXPECT_EQ(refused.denial->retry_after, 1s);
  EXPECT_THAT(refused.denial->message(), HasSubstr("Too many concurrent requests for key:a"));
  first.lease->settle(0);  // the request is over: its slot frees at once
  auto third = admit(scopes, 0);
  ASSERT_TRUE(third.admitted());
  EXPECT_FALSE(admit(scopes, 0).admitted());
  second.lease.reset();  // dropped without settling: the slot frees too
  EXPECT_TRUE(admit(scopes, 0).admitted());
}

TEST_F(RateLimiterTest, MovedLeaseReleasesOnce) {
  const std::vector scopes{scope("key:a", 0, 0, 1)};
  auto admitted = admit(scopes, 0);
  RateLimitLease lease = std::move(*admitted.lease);
  admitted.lease.reset();
  EXPECT_FALSE(admit(scopes, 0).admitted());
  RateLimitLease other;
  other = std::move(lease);
  EXPECT_FALSE(admit(scopes, 0).admitted());
  other = RateLimitLease();
  auto next = admit(scopes, 0);
  EXPECT_TRUE(next.admitted());
  EXPECT_FALSE(admit(scopes, 0).admitted());
}

TEST_F(RateLimiterTest, SettleRefundsOrChargesTheDifference) {
  const std::vector scopes{scope("key:a", 0, 600)};
  auto admitted = admit(scopes, 500);
  EXPECT_EQ(admitted.status.tokens.remaining, 100);
  admitted.lease->settle(100);
  EXPECT_EQ(admit(scopes, 0).status.tokens.remaining, 500);
  admitted.lease->settle(0);  // a second settle changes nothing
  EXPECT_EQ(admit(scopes, 0).status.tokens.remaining, 500);

  auto over = admit(scopes, 100);
  over.lease->settle(1100);  // 1000 more than estimated: the bucket goes to -600
  auto refused = admit(scopes, 60);
  ASSERT_FALSE(refused.admitted());
  EXPECT_EQ(refused.status.tokens.remaining, 0);
  EXPECT_EQ(refused.denial->retry_after, 66s);  // 660 tokens at 10 per second
}

TEST_F(RateLimiterTest, RefundNeverOverfillsTheBucket) {
  const std::vector scopes{scope("key:a", 0, 600)};
  auto admitted = admit(scopes, 600);
  clock_->advance(60s);
  admitted.lease->settle(0);
  EXPECT_EQ(admit(scopes, 0).status.tokens.remaining, 600);
}

TEST_F(RateLimiterTest, DroppedLeaseKeepsTheEstimatedCharge) {
  const std::vector scopes{scope("key:a", 0, 600)};
  admit(scopes, 400);
  EXPECT_EQ(admit(scopes, 0).status.tokens.remaining, 200);
}

TEST_F(RateLimiterTest, StatusReportsTheMostConstrainedScopePerDimension) {
  const std::vector scopes{scope("tenant:acme", 100, 10'000), scope("key:a", 1000, 600)};
  auto admitted = admit(scopes, 300);
  ASSERT_TRUE(admitted.admitted());
  EXPECT_EQ(admitted.status.requests.limit, 100);
  EXPECT_EQ(admitted.status.requests.remaining, 99);
  EXPECT_EQ(admitted.status.requests.reset, 600ms);
  EXPECT_EQ(admitted.status.tokens.limit, 600);
  EXPECT_EQ(admitted.status.tokens.remaining, 300);
  EXPECT_EQ(admitted.status.tokens.reset, 30s);
  EXPECT_THAT(
      admitted.status.header_fields(),
      ElementsAre(
          Pair("x-ratelimit-limit-requests", "100"), Pair("x-ratelimit-remaining-requests", "99"),
          Pair("x-ratelimit-reset-requests", "600ms"), Pair("x-ratelimit-limit-tokens", "600"),
          Pair("x-ratelimit-remaining-tokens", "300"), Pair("x-ratelimit-reset-tokens", "30s")));
}

TEST_F(RateLimiterTest, UnlimitedScopesCostNothing) {
  const std::vector scopes{scope("tenant:free", 0, 0, 0)};
  for (int i = 0; i < 1000; ++i) {
    auto admitted = admit(scopes, 1'000'000);
    ASSERT_TRUE(admitted.admitted());
    EXPECT_FALSE(admitted.status.requests.limited);
    EXPECT_TRUE(admitted.status.header_fields().empty());
  }
  const std::vector only_tokens{scope("key:a", 0, 600)};
  auto admitted = admit(only_tokens, 1);
  EXPECT_FALSE(admitted.status.requests.limited);
  EXPECT_TRUE(admitted.status.tokens.limited);
  EXPECT_EQ(admitted.status.header_fields().size(), 3u);
}

TEST_F(RateLimiterTest, SameScopeNamedTwiceCountsOnce) {
  const std::vector scopes{scope("key:a", 10, 0), scope("key:a", 10, 0)};
  EXPECT_EQ(admit(scopes, 0).status.requests.remaining, 9);
}

TEST_F(RateLimiterTest, SpecChangesApplyOnTheNextCall) {
  ASSERT_TRUE(admit({scope("key:a", 100, 0)}, 0).admitted());
  // Lowered: the level is clamped to the new capacity.
  EXPECT_EQ(admit({scope("key:a", 10, 0)}, 0).status.requests.remaining, 9);
  // Raised: the level is kept, and refills toward the new capacity.
  EXPECT_EQ(admit({scope("key:a", 1000, 0)}, 0).status.requests.remaining, 8);
  // A dimension that becomes limited starts full.
  auto admitted = admit({scope("key:a", 1000, 600)}, 100);
  EXPECT_EQ(admitted.status.tokens.remaining, 500);
  // And one that becomes unlimited stops counting.
  for (int i = 0; i < 2000; ++i) ASSERT_TRUE(admit({scope("key:a", 0, 600)}, 0).admitted());
}

TEST_F(RateLimiterTest, LeaseMayOutliveTheLimiter) {
  std::optional<RateLimitLease> lease;
  {
    RateLimiter limiter(clock_);
    lease = std::move(limiter.admit(std::vector{scope("key:a", 10, 100, 1)}, 50).lease);
  }
  ASSERT_TRUE(lease.has_value());
  lease->settle(20);
  lease.reset();
}

TEST_F(RateLimiterTest, ManyThreadsNeverExceedTheLimits) {
  // The clock stands still: exactly the capacity is admitted, never more concurrently than
  // allowed, and every slot comes back.
  const std::vector scopes{scope("tenant:acme", 5000, 0, 4), scope("key:a", 0, 0, 3)};
  std::atomic<int> admitted{0};
  std::atomic<int> in_flight{0};
  std::atomic<int> most_in_flight{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        auto result = limiter_.admit(scopes, 1);
        if (!result.admitted()) continue;
        ++admitted;
        const int now = ++in_flight;
        int seen = most_in_flight.load();
        while (now > seen && !most_in_flight.compare_exchange_weak(seen, now)) {
        }
        --in_flight;
        result.lease->settle(1);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_LE(most_in_flight.load(), 3);
  EXPECT_LE(admitted.load(), 5000);
  // Only concurrency refusals can have kept the count below capacity; take the rest now.
  int remaining = 0;
  while (admit(scopes, 1).admitted()) ++remaining;
  EXPECT_EQ(admitted.load() + remaining, 5000);
}

TEST(FormatReset, WritesDurationsTheWayOpenAIDoes) {
  EXPECT_EQ(format_reset(0ms), "0s");
  EXPECT_EQ(format_reset(-5ms), "0s");
  EXPECT_EQ(format_reset(120ms), "120ms");
  EXPECT_EQ(format_reset(1s), "1s");
  EXPECT_EQ(format_reset(1500ms), "1.5s");
  EXPECT_EQ(format_reset(1020ms), "1.02s");
  EXPECT_EQ(format_reset(6min), "6m0s");
  EXPECT_EQ(format_reset(61'001ms), "1m1.001s");
  EXPECT_EQ(format_reset(1h + 2min + 3s), "1h2m3s");
  EXPECT_EQ(format_reset(2h), "2h0m0s");
}

TEST(RateLimitDimensionNames, AreTheWordsTheGatewayReports) {
  EXPECT_EQ(to_string(RateLimitDimension::kRequests), "requests");
  EXPECT_EQ(to_string(RateLimitDimension::kTokens), "tokens");
  EXPECT_EQ(to_string(RateLimitDimension::kConcurrent), "concurrent");
}

}  // namespace
}  // namespace redline::quota
