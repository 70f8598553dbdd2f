#include "quota/budget_book.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <random>
#include <thread>

namespace redline::quota {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

constexpr std::int64_t kMarch15Noon = 1'710'504'000;  // 2024-03-15T12:00:00Z
constexpr std::int64_t kMarch15 = 1'710'460'800;      // 2024-03-15T00:00:00Z
constexpr std::int64_t kMarch16 = kMarch15 + 86'400;
constexpr std::int64_t kMarch1 = 1'709'251'200;  // 2024-03-01T00:00:00Z
constexpr std::int64_t kApril1 = 1'711'929'600;  // 2024-04-01T00:00:00Z

class ManualClock final : public Clock {
 public:
  explicit ManualClock(std::int64_t unix_seconds) : seconds_(unix_seconds) {}
  std::int64_t unix_seconds() const override { return seconds_.load(); }
  std::chrono::steady_clock::time_point monotonic() const override {
    return std::chrono::steady_clock::time_point(std::chrono::seconds(seconds_.load()));
  }
  void set(std::int64_t unix_seconds) { seconds_ = unix_seconds; }

 private:
  std::atomic<std::int64_t> seconds_;
};

// What the audit log would answer, and every question asked of it.
class SettledLog {
 public:
  void set(std::string scope, std::int64_t window_start, Spend spend) {
    std::lock_guard lock(mutex_);
    spends_[{std::move(scope), window_start}] = spend;
  }
  BudgetBook::LoadSettled loader() {
    return [this](std::string_view scope, std::int64_t window_start) {
      std::lock_guard lock(mutex_);
      calls_.emplace_back(std::string(scope), window_start);
      auto found = spends_.find({std::string(scope), window_start});
      return found == spends_.end() ? Spend{} : found->second;
    };
  }
  std::vector<std::pair<std::string, std::int64_t>> calls() {
    std::lock_guard lock(mutex_);
    return calls_;
  }

 private:
  std::mutex mutex_;
  std::map<std::pair<std::string, std::int64_t>, Spend> spends_;
  std::vector<std::pair<std::string, std::int64_t>> calls_;
};

BudgetSpec tokens(std::string scope, BudgetWindow window, std::int64_t max) {
  return {std::move(scope), window, max, std::nullopt};
}
BudgetSpec cost(std::string scope, BudgetWindow window, double max) {
  return {std::move(scope), window, std::nullopt, max};
}

const BudgetStatus& find(const std::vector<BudgetStatus>& statuses, std::string_view scope,
                         BudgetWindow window) {
  for (const auto& status : statuses) {
    if (status.scope == scope && status.window == window) return status;
  }
  ADD_FAILURE() << "no budget " << scope;
  static const BudgetStatus none;
  return none;
}

class BudgetBookTest : public ::testing::Test {
 protected:
  std::unique_ptr<BudgetBook> book(std::vector<BudgetSpec> specs) {
    return std::make_unique<BudgetBook>(std::move(specs), clock_, log_.loader());
  }
  std::shared_ptr<ManualClock> clock_ = std::make_shared<ManualClock>(kMarch15Noon);
  SettledLog log_;
  const std::vector<std::string> acme_{"tenant:acme", "key:k_1"};
};

TEST(BudgetWindows, StartAndEndOnUtcCalendarBoundaries) {
  EXPECT_EQ(window_start(BudgetWindow::kDay, kMarch15Noon), kMarch15);
  EXPECT_EQ(window_start(BudgetWindow::kDay, kMarch15), kMarch15);
  EXPECT_EQ(next_window_start(BudgetWindow::kDay, kMarch15Noon), kMarch16);
  EXPECT_EQ(window_start(BudgetWindow::kMonth, kMarch15Noon), kMarch1);
  EXPECT_EQ(next_window_start(BudgetWindow::kMonth, kMarch15Noon), kApril1);
  EXPECT_EQ(window_start(BudgetWindow::kMonth, kApril1 - 1), kMarch1);
  // Leap February and a year boundary.
  EXPECT_EQ(next_window_start(BudgetWindow::kMonth, 1'707'000'000), 1'709'251'200);
  EXPECT_EQ(next_window_start(BudgetWindow::kMonth, 1'703'980'800), 1'704'067'200);
  EXPECT_EQ(window_start(BudgetWindow::kTotal, kMarch15Noon), 0);
  EXPECT_EQ(next_window_start(BudgetWindow::kTotal, kMarch15Noon), std::nullopt);
  EXPECT_EQ(to_string(BudgetWindow::kMonth), "month");
}

TEST_F(BudgetBookTest, ReservesWhileSettledPlusReservedFitsTheLimit) {
  log_.set("tenant:acme", kMarch15, {9000, 0});
  auto budgets = book({tokens("tenant:acme", BudgetWindow::kDay, 10'000)});
  auto first = budgets->reserve(acme_, {600, 0});
  ASSERT_TRUE(first.ok());
  auto second = budgets->reserve(acme_, {400, 0});
  ASSERT_TRUE(second.ok());
  auto refused = budgets->reserve(acme_, {1, 0});
  ASSERT_FALSE(refused.ok());
  const BudgetDenial& denial = *refused.denial;
  EXPECT_EQ(denial.scope, "tenant:acme");
  EXPECT_EQ(denial.window, BudgetWindow::kDay);
  EXPECT_EQ(denial.dimension, BudgetDimension::kTokens);
  EXPECT_EQ(denial.limit, 10'000);
  EXPECT_EQ(denial.spent, 9000);
  EXPECT_EQ(denial.reserved, 1000);
  EXPECT_EQ(denial.requested, 1);
  EXPECT_EQ(denial.resets_in, 12h);
  EXPECT_EQ(denial.message(),
            "Budget exceeded for tenant:acme (daily tokens): limit 10000, spent 9000, reserved "
            "1000, requested 1; resets in 12h0m0s.");
  // Ending a request without settling returns its reservation.
  first.reservation.reset();
  EXPECT_TRUE(budgets->reserve(acme_, {600, 0}).ok());
}

TEST_F(BudgetBookTest, SettleReplacesTheReservationByTheActualSpend) {
  auto budgets = book({tokens("tenant:acme", BudgetWindow::kDay, 1000)});
  auto reserved = budgets->reserve(acme_, {800, 0});
  ASSERT_TRUE(reserved.ok());
  EXPECT_EQ(budgets->snapshot()[0].reserved.tokens, 800);
  reserved.reservation->settle({300, 0});
  reserved.reservation->settle({300, 0});  // once only
  auto status = budgets->snapshot()[0];
  EXPECT_EQ(status.reserved.tokens, 0);
  EXPECT_EQ(status.settled.tokens, 300);
  EXPECT_TRUE(budgets->reserve(acme_, {700, 0}).ok());
  EXPECT_FALSE(budgets->reserve(acme_, {701, 0}).ok());
}

TEST_F(BudgetBookTest, SpendAboveTheReservationIsStillCounted) {
  auto budgets = book({tokens("tenant:acme", BudgetWindow::kTotal, 1000)});
  auto reserved = budgets->reserve(acme_, {100, 0});
  reserved.reservation->settle({1500, 0});
  auto status = budgets->snapshot()[0];
  EXPECT_EQ(status.settled.tokens, 1500);
  auto refused = budgets->reserve(acme_, {0, 0});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.denial->resets_in, std::nullopt);
  EXPECT_THAT(refused.denial->message(), HasSubstr("(total tokens)"));
  EXPECT_THAT(refused.denial->message(), ::testing::Not(HasSubstr("resets")));
}

TEST_F(BudgetBookTest, AllOrNothingAcrossScopes) {
  auto budgets = book({tokens("tenant:acme", BudgetWindow::kDay, 10'000),
                       cost("key:k_1", BudgetWindow::kMonth, 1.0)});
  auto refused = budgets->reserve(acme_, {500, 2.5});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.denial->scope, "key:k_1");
  EXPECT_EQ(refused.denial->dimension, BudgetDimension::kCost);
  EXPECT_DOUBLE_EQ(refused.denial->requested, 2.5);
  EXPECT_THAT(refused.denial->message(),
              HasSubstr("(monthly cost): limit $1.0000, spent $0.0000, reserved $0.0000, "
                        "requested $2.5000; resets in"));
  for (const auto& status : budgets->snapshot()) {
    EXPECT_EQ(status.reserved.tokens, 0) << status.scope;
    EXPECT_EQ(status.reserved.cost_usd, 0) << status.scope;
  }
  auto ok = budgets->reserve(acme_, {500, 0.5});
  ASSERT_TRUE(ok.ok());
  auto statuses = budgets->snapshot();
  EXPECT_EQ(find(statuses, "tenant:acme", BudgetWindow::kDay).reserved.tokens, 500);
  EXPECT_DOUBLE_EQ(find(statuses, "key:k_1", BudgetWindow::kMonth).reserved.cost_usd, 0.5);
}

TEST_F(BudgetBookTest, ScopesWithoutBudgetsCostNothing) {
  auto budgets = book({tokens("tenant:other", BudgetWindow::kDay, 1)});
  auto reserved = budgets->reserve(acme_, {1'000'000, 1000.0});
  ASSERT_TRUE(reserved.ok());
  reserved.reservation->settle({1'000'000, 1000.0});
  EXPECT_TRUE(log_.calls().empty());
}

TEST_F(BudgetBookTest, LoadsSettledSpendOncePerWindowAndRollsOver) {
  log_.set("tenant:acme", kMarch15, {900, 0});
  log_.set("tenant:acme", kMarch16, {50, 0});
  auto budgets = book({tokens("tenant:acme", BudgetWindow::kDay, 1000)});
  EXPECT_TRUE(log_.calls().empty());  // lazily
  auto before_midnight = budgets->reserve(acme_, {100, 0});
  ASSERT_TRUE(before_midnight.ok());
  EXPECT_FALSE(budgets->reserve(acme_, {1, 0}).ok());
  ASSERT_EQ(log_.calls().size(), 1u);
  EXPECT_EQ(log_.calls()[0], std::pair(std::string("tenant:acme"), kMarch15));

  clock_->set(kMarch16 + 10);
  // A new day: the spend restarts from what the log holds for it; the request still in flight
  // keeps its reservation.
  auto refused = budgets->reserve(acme_, {851, 0});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.denial->spent, 50);
  EXPECT_EQ(refused.denial->reserved, 100);
  EXPECT_EQ(refused.denial->resets_in, std::chrono::seconds(86'400 - 10));
  ASSERT_EQ(log_.calls().size(), 2u);
  EXPECT_EQ(log_.calls()[1], std::pair(std::string("tenant:acme"), kMarch16));
  before_midnight.reservation->settle({70, 0});
  auto status = budgets->snapshot()[0];
  EXPECT_EQ(status.window_start, kMarch16);
  EXPECT_EQ(status.settled.tokens, 120);
  EXPECT_EQ(status.reserved.tokens, 0);
  EXPECT_EQ(log_.calls().size(), 2u);
}

TEST_F(BudgetBookTest, BudgetsOnOneScopeAndWindowShareTheSpend) {
  auto budgets = book({tokens("tenant:acme", BudgetWindow::kMonth, 1000),
                       cost("tenant:acme", BudgetWindow::kMonth, 2.0),
                       tokens("tenant:acme", BudgetWindow::kTotal, 5000)});
  auto reserved = budgets->reserve(acme_, {400, 1.5});
  ASSERT_TRUE(reserved.ok());
  reserved.reservation->settle({300, 1.25});
  auto statuses = budgets->snapshot();
  ASSERT_EQ(statuses.size(), 3u);
  EXPECT_EQ(statuses[0].settled.tokens, 300);
  EXPECT_DOUBLE_EQ(statuses[1].settled.cost_usd, 1.25);
  EXPECT_EQ(statuses[1].settled.tokens, 300);
  EXPECT_EQ(statuses[2].settled.tokens, 300);
  EXPECT_EQ(statuses[0].window_start, kMarch1);
  EXPECT_EQ(statuses[2].window_start, 0);
  EXPECT_EQ(statuses[1].max_cost_usd, 2.0);
  EXPECT_EQ(statuses[1].max_tokens, std::nullopt);
  // One load per (scope, window), not per budget.
  EXPECT_EQ(log_.calls().size(), 2u);
}

TEST_F(BudgetBookTest, DenialNamesTheBudgetThatStaysClosedLongest) {
  auto budgets = book({tokens("key:k_1", BudgetWindow::kDay, 10),
                       tokens("tenant:acme", BudgetWindow::kTotal, 10),
                       tokens("tenant:acme", BudgetWindow::kMonth, 10)});
  auto refused = budgets->reserve(acme_, {11, 0});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.denial->window, BudgetWindow::kTotal);
}

TEST_F(BudgetBookTest, CostIsTrackedExactly) {
  auto budgets = book({cost("tenant:acme", BudgetWindow::kDay, 1.0)});
  for (int i = 0; i < 10; ++i) {
    auto reserved = budgets->reserve(acme_, {0, 0.1});
    ASSERT_TRUE(reserved.ok()) << i;
    reserved.reservation->settle({0, 0.1});
  }
  auto status = budgets->snapshot()[0];
  EXPECT_EQ(status.reserved.cost_usd, 0.0);
  EXPECT_DOUBLE_EQ(status.settled.cost_usd, 1.0);
  EXPECT_FALSE(budgets->reserve(acme_, {0, 0.000'001}).ok());
  EXPECT_TRUE(budgets->reserve(acme_, {0, 0}).ok());
}

TEST_F(BudgetBookTest, ConfigureKeepsSpendOfBudgetsThatStay) {
  auto budgets = book({tokens("tenant:acme", BudgetWindow::kDay, 1000),
                       tokens("key:k_1", BudgetWindow::kDay, 1000)});
  auto in_flight = budgets->reserve(acme_, {200, 0});
  budgets->reserve(acme_, {300, 0}).reservation->settle({300, 0});
  budgets->configure({tokens("tenant:acme", BudgetWindow::kDay, 600),
                      tokens("tenant:acme", BudgetWindow::kMonth, 100'000)});
  auto statuses = budgets->snapshot();
  ASSERT_EQ(statuses.size(), 2u);
  EXPECT_EQ(statuses[0].max_tokens, 600);
  EXPECT_EQ(statuses[0].settled.tokens, 300);
  EXPECT_EQ(statuses[0].reserved.tokens, 200);
  EXPECT_EQ(statuses[1].settled.tokens, 0);
  EXPECT_FALSE(budgets->reserve(acme_, {101, 0}).ok());
  EXPECT_TRUE(budgets->reserve(acme_, {100, 0}).ok());
  // The key's budget is gone; a reservation made under it still ends cleanly.
  in_flight.reservation->settle({200, 0});
  EXPECT_EQ(budgets->snapshot()[0].settled.tokens, 500);
}

TEST_F(BudgetBookTest, ReservationMayOutliveTheBook) {
  std::optional<BudgetReservation> reservation;
  {
    auto budgets = book({tokens("tenant:acme", BudgetWindow::kDay, 1000)});
    reservation = std::move(budgets->reserve(acme_, {10, 0}).reservation);
  }
  ASSERT_TRUE(reservation.has_value());
  reservation->settle({5, 0});
}

TEST_F(BudgetBookTest, MovedReservationReleasesOnce) {
  auto budgets = book({tokens("tenant:acme", BudgetWindow::kDay, 100)});
  BudgetReservation held = std::move(*budgets->reserve(acme_, {60, 0}).reservation);
  EXPECT_EQ(budgets->snapshot()[0].reserved.tokens, 60);
  BudgetReservation other;
  other = std::move(held);
  EXPECT_EQ(budgets->snapshot()[0].reserved.tokens, 60);
  other = BudgetReservation();
  EXPECT_EQ(budgets->snapshot()[0].reserved.tokens, 0);
}

TEST_F(BudgetBookTest, ManyThreadsNeverOverspendNorLeak) {
  constexpr std::int64_t kTokenLimit = 50'000;
  constexpr double kCostLimit = 5.0;
  log_.set("tenant:acme", kMarch15, {1000, 0.25});
  auto budgets = book({tokens("tenant:acme", BudgetWindow::kDay, kTokenLimit),
                       cost("tenant:acme", BudgetWindow::kDay, kCostLimit),
                       tokens("key:k_1", BudgetWindow::kTotal, kTokenLimit)});
  std::atomic<int> refusals{0};
  std::atomic<bool> overspent{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 64; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 random(t);
      for (int i = 0; i < 300; ++i) {
        const Spend worst{std::uniform_int_distribution<std::int64_t>(1, 400)(random),
                          std::uniform_int_distribution<int>(1, 400)(random) / 10'000.0};
        auto result = budgets->reserve(acme_, worst);
        if (!result.ok()) {
          ++refusals;
          continue;
        }
        const Spend actual{std::uniform_int_distribution<std::int64_t>(0, worst.tokens)(random),
                           worst.cost_usd * std::uniform_real_distribution<>(0, 1)(random)};
        if (i % 7 == 0) continue;  // a failed request: the reservation is dropped
        result.reservation->settle(actual);
        for (const auto& status : budgets->snapshot()) {
          if (status.settled.tokens + status.reserved.tokens > kTokenLimit ||
              status.settled.cost_usd + status.reserved.cost_usd > kCostLimit + 1e-9) {
            overspent = true;
          }
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_FALSE(overspent.load());
  EXPECT_GT(refusals.load(), 0);  // the limits were actually reached
  for (const auto& status : budgets->snapshot()) {
    EXPECT_EQ(status.reserved.tokens, 0) << status.scope;
    EXPECT_EQ(status.reserved.cost_usd, 0) << status.scope;
    EXPECT_LE(status.settled.tokens, kTokenLimit) << status.scope;
    EXPECT_LE(status.settled.cost_usd, kCostLimit + 1e-9) << status.scope;
  }
  // Each (scope, window) was loaded once.
  EXPECT_EQ(log_.calls().size(), 2u);
}

}  // namespace
}  // namespace redline::quota
