#include "routing/strategy.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace redline::routing {
namespace {

using namespace std::chrono_literals;

RoutingPolicy test_policy() {
  RoutingPolicy policy;
  policy.breaker_failure_threshold = 1;
  policy.breaker_open_duration = 5s;
  policy.ejection_consecutive_failures = 1;
  policy.ejection_duration = 5s;
  policy.latency_ewma_alpha = 1.0;  // the last sample is the estimate: easy to reason about
  return policy;
}

class PickerTest : public ::testing::Test {
 protected:
  // Adds a backend and a candidate for it; returns the candidate index.
  std::size_t add(const std::string& name, int capacity = 10, double weight = 1.0,
                  double price_in = 1.0, double price_out = 1.0) {
    backends_.push_back(std::make_unique<BackendState>(name, capacity, 1.0, test_policy()));
    candidates_.push_back(Candidate{backends_.back().get(), price_in, price_out, weight});
    return candidates_.size() - 1;
  }
  BackendState& backend(std::size_t i) { return *backends_[i]; }
  PickRequest request(Strategy strategy) {
    PickRequest request;
    request.candidates = candidates_;
    request.strategy = strategy;
    request.now = clock_.now();
    return request;
  }
  // Counts picks per candidate index over `n` picks.
  std::map<std::size_t, int> histogram(Picker& picker, const PickRequest& request, int n) {
    std::map<std::size_t, int> counts;
    for (int i = 0; i < n; ++i) {
      auto chosen = picker.pick(request);
      EXPECT_TRUE(chosen.has_value());
      if (chosen) ++counts[*chosen];
    }
    return counts;
  }

  ManualClock clock_;
  std::vector<std::unique_ptr<BackendState>> backends_;
  std::vector<Candidate> candidates_;
};

// --- eligibility -------------------------------------------------------------------------------

TEST_F(PickerTest, NoCandidatesNoPick) {
  Picker picker(0.0, 1);
  EXPECT_FALSE(picker.pick(request(Strategy::kLeastLoad)).has_value());
}

TEST_F(PickerTest, UnavailableAndExcludedAreNeverPicked) {
  const auto unhealthy = add("unhealthy");
  const auto ejected = add("ejected");
  const auto throttled = add("throttled");
  const auto broken = add("broken");
  const auto excluded = add("excluded");
  const auto good = add("good");
  backend(unhealthy).set_healthy(false);
  backend(ejected).record_failure(clock_.now(), FailureKind::kConnect);
  ASSERT_TRUE(backend(ejected).ejected(clock_.now()));
  backend(throttled).throttle_until(clock_.now() + 10s);
  backend(broken).record_failure(clock_.now(), FailureKind::kTimeout);
  ASSERT_EQ(backend(broken).breaker_state(clock_.now()), BreakerState::kOpen);
  // Make "good" the worst by every strategy's measure, so only eligibility can explain a pick.
  backend(good).on_request_start();
  backend(good).record_latency(900ms, 1, 900ms);
  for (std::size_t i = 0; i < good; ++i) backend(i).record_latency(1ms, 1, 1ms);
  candidates_[good].price_input_per_mtok = 100;
  candidates_[good].weight = 0.001;

  const std::size_t excluded_list[] = {excluded};
  Picker picker(0.5, 7);
  for (Strategy strategy : {Strategy::kLeastLoad, Strategy::kLatency, Strategy::kCost,
                            Strategy::kWeighted, Strategy::kPrefixAffinity}) {
    PickRequest req = request(strategy);
    req.excluded = excluded_list;
    for (std::uint64_t key = 1; key <= 200; ++key) {
      req.affinity_hash = key;
      ASSERT_EQ(picker.pick(req), good) << "strategy " << static_cast<int>(strategy);
    }
  }
  PickRequest req = request(Strategy::kLeastLoad);
  const std::size_t everything[] = {excluded, good};
  req.excluded = everything;
  EXPECT_FALSE(picker.pick(req).has_value());
}

// --- least load --------------------------------------------------------------------------------

TEST_F(PickerTest, LeastLoadSpreadsEvenlyAcrossEqualBackends) {
  for (int i = 0; i < 4; ++i) add("b" + std::to_string(i));
  Picker picker(0.0, 42);
  const auto counts = histogram(picker, request(Strategy::kLeastLoad), 8000);
  ASSERT_EQ(counts.size(), 4u);
  for (const auto& [index, count] : counts) EXPECT_NEAR(count, 2000, 200) << index;
}

TEST_F(PickerTest, LeastLoadPrefersTheEmptierOneRelativeToCapacity) {
  const auto big = add("big", 10);
  const auto small = add("small", 2);
  for (int i = 0; i < 4; ++i) backend(big).on_request_start();  // 0.4
  backend(small).on_request_start();                            // 0.5
  Picker picker(0.0, 1);
  EXPECT_EQ(picker.pick(request(Strategy::kLeastLoad)), big);
  backend(small).on_request_end();  // 0.0
  EXPECT_EQ(picker.pick(request(Strategy::kLeastLoad)), small);
}

TEST_F(PickerTest, LeastLoadBalancesLiveLoad) {
  // Simulates the pipeline: each pick starts a request; the loads must stay level.
  for (int i = 0; i < 3; ++i) add("b" + std::to_string(i), 100);
  Picker picker(0.0, 3);
  for (int i = 0; i < 90; ++i) {
    auto chosen = picker.pick(request(Strategy::kLeastLoad));
    ASSERT_TRUE(chosen);
    backend(*chosen).on_request_start();
  }
  for (int i = 0; i < 3; ++i) EXPECT_EQ(backend(i).outstanding(), 30);
}

// --- latency -----------------------------------------------------------------------------------

TEST_F(PickerTest, LatencyMeasuresUnmeasuredBackendsFirst) {
  const auto measured = add("measured");
  add("new1");
  add("new2");
  backend(measured).record_latency(1ms, 1, 1ms);
  Picker picker(0.0, 5);
  const auto counts = histogram(picker, request(Strategy::kLatency), 1000);
  EXPECT_EQ(counts.count(measured), 0u);
  EXPECT_EQ(counts.size(), 2u) << "both unmeasured backends get traffic";
}

TEST_F(PickerTest, LatencyPrefersTheFasterBackend) {
  const auto slow = add("slow");
  const auto fast = add("fast");
  backend(slow).record_latency(100ms, 101, 1100ms);  // 100 + 10 × 256
  backend(fast).record_latency(300ms, 101, 600ms);   // 300 + 3 × 256
  Picker picker(0.0, 5);
  EXPECT_EQ(picker.pick(request(Strategy::kLatency)), fast);
  // With very short outputs the lower ttft wins.
  PickRequest short_output = request(Strategy::kLatency);
  short_output.expected_output_tokens = 1;
  EXPECT_EQ(picker.pick(short_output), slow);
}

TEST_F(PickerTest, LatencyExploresAtTheConfiguredRate) {
  const auto fast = add("fast");
  add("slow1");
  add("slow2");
  backend(fast).record_latency(10ms, 1, 10ms);
  backend(1).record_latency(50ms, 1, 50ms);
  backend(2).record_latency(90ms, 1, 90ms);
  Picker picker(0.1, 11);
  const auto counts = histogram(picker, request(Strategy::kLatency), 10000);
  const int explored = 10000 - counts.at(fast);
  EXPECT_NEAR(explored, 1000, 150);
  EXPECT_NEAR(counts.at(1), 500, 120);
  EXPECT_NEAR(counts.at(2), 500, 120);
}

TEST_F(PickerTest, LatencySkipsSaturatedFastBackend) {
  const auto fast = add("fast", 1);
  const auto slow = add("slow", 1);
  backend(fast).record_latency(10ms, 1, 10ms);
  backend(slow).record_latency(90ms, 1, 90ms);
  backend(fast).on_request_start();
  Picker picker(0.0, 1);
  EXPECT_EQ(picker.pick(request(Strategy::kLatency)), slow);
  backend(slow).on_request_start();  // all saturated: back to the fastest
  EXPECT_EQ(picker.pick(request(Strategy::kLatency)), fast);
}

// --- cost --------------------------------------------------------------------------------------

TEST_F(PickerTest, CostPicksCheapestWithinBound) {
  const auto cheap_slow = add("cheap-slow", 10, 1, 0.1, 0.2);
  const auto mid = add("mid", 10, 1, 1.0, 2.0);
  const auto pricey = add("pricey", 10, 1, 5.0, 15.0);
  backend(cheap_slow).record_latency(5000ms, 1, 5000ms);
  backend(mid).record_latency(500ms, 1, 500ms);
  backend(pricey).record_latency(100ms, 1, 100ms);
  Picker picker(0.0, 1);
  PickRequest req = request(Strategy::kCost);
  EXPECT_EQ(picker.pick(req), cheap_slow) << "unbounded: cheapest";
  req.max_latency_ms = 1000;
  EXPECT_EQ(picker.pick(req), mid);
  req.max_latency_ms = 200;
  EXPECT_EQ(picker.pick(req), pricey);
  req.max_latency_ms = 50;
  EXPECT_EQ(picker.pick(req), pricey) << "nothing within bound: lowest latency";
}

TEST_F(PickerTest, CostTreatsUnmeasuredAsWithinBound) {
  const auto measured = add("measured", 10, 1, 0.5, 0.5);
  const auto fresh = add("fresh", 10, 1, 0.1, 0.1);
  backend(measured).record_latency(10ms, 1, 10ms);
  Picker picker(0.0, 1);
  PickRequest req = request(Strategy::kCost);
  req.max_latency_ms = 100;
  EXPECT_EQ(picker.pick(req), fresh);
}

TEST_F(PickerTest, CostBlendsInputAndOutputPrices) {
  const auto cheap_input = add("cheap-input", 10, 1, 0.1, 10.0);
  const auto cheap_output = add("cheap-output", 10, 1, 3.0, 1.0);
  Picker picker(0.0, 1);
  PickRequest req = request(Strategy::kCost);
  req.expected_input_tokens = 10000;
  req.expected_output_tokens = 10;
  EXPECT_EQ(picker.pick(req), cheap_input);
  req.expected_input_tokens = 10;
  req.expected_output_tokens = 10000;
  EXPECT_EQ(picker.pick(req), cheap_output);
}

TEST_F(PickerTest, CostSkipsSaturatedCheapest) {
  const auto cheap = add("cheap", 1, 1, 0.1, 0.1);
  const auto dear = add("dear", 1, 1, 1.0, 1.0);
  backend(cheap).on_request_start();
  Picker picker(0.0, 1);
  EXPECT_EQ(picker.pick(request(Strategy::kCost)), dear);
}

// --- weighted ----------------------------------------------------------------------------------

TEST_F(PickerTest, WeightedMatchesWeights) {
  const auto heavy = add("heavy", 10, 3.0);
  const auto light = add("light", 10, 1.0);
  const auto off = add("off", 10, 0.0);
  Picker picker(0.0, 99);
  const auto counts = histogram(picker, request(Strategy::kWeighted), 10000);
  EXPECT_NEAR(counts.at(heavy), 7500, 250);
  EXPECT_NEAR(counts.at(light), 2500, 250);
  EXPECT_EQ(counts.count(off), 0u);
}

TEST_F(PickerTest, WeightedScalesByBackendWeight) {
  const auto a = add("a", 10, 1.0);
  const auto b = add("b", 10, 1.0);
  backend(a).set_weight(4.0);
  Picker picker(0.0, 99);
  const auto counts = histogram(picker, request(Strategy::kWeighted), 10000);
  EXPECT_NEAR(counts.at(a), 8000, 250);
  EXPECT_NEAR(counts.at(b), 2000, 250);
}

TEST_F(PickerTest, WeightedAllZeroIsUniform) {
  add("a", 10, 0.0);
  add("b", 10, 0.0);
  Picker picker(0.0, 99);
  const auto counts = histogram(picker, request(Strategy::kWeighted), 4000);
  ASSERT_EQ(counts.size(), 2u);
  EXPECT_NEAR(counts.at(0), 2000, 200);
}

// --- prefix affinity ---------------------------------------------------------------------------

TEST_F(PickerTest, AffinityIsStableForAKey) {
  for (int i = 0; i < 5; ++i) add("b" + std::to_string(i));
  Picker picker(0.0, 1);
  PickRequest req = request(Strategy::kPrefixAffinity);
  req.affinity_hash = prefix_hash("You are a helpful assistant. Summarise:", 64);
  const auto first = picker.pick(req);
  ASSERT_TRUE(first);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(picker.pick(req), first);
  // Load elsewhere does not move it while the owner has room.
  for (int i = 0; i < 5; ++i) {
    if (i != static_cast<int>(*first)) backend(i).on_request_start();
  }
  backend(*first).on_request_start();
  backend(*first).on_request_start();
  EXPECT_EQ(picker.pick(req), first);
}

TEST_F(PickerTest, AffinityDistributesDistinctKeys) {
  for (int i = 0; i < 4; ++i) add("b" + std::to_string(i));
  Picker picker(0.0, 1);
  PickRequest req = request(Strategy::kPrefixAffinity);
  std::map<std::size_t, int> counts;
  for (int key = 0; key < 4000; ++key) {
    req.affinity_hash = prefix_hash("conversation-" + std::to_string(key), 256);
    ++counts[*picker.pick(req)];
  }
  ASSERT_EQ(counts.size(), 4u);
  for (const auto& [index, count] : counts) EXPECT_NEAR(count, 1000, 150) << index;
}

TEST_F(PickerTest, AffinityMovesOnlyTheRemovedBackendsKeys) {
  for (int i = 0; i < 5; ++i) add("b" + std::to_string(i));
  Picker picker(0.0, 1);
  constexpr int kKeys = 5000;
  std::vector<std::string> before(kKeys);
  PickRequest req = request(Strategy::kPrefixAffinity);
  for (int key = 0; key < kKeys; ++key) {
    req.affinity_hash = prefix_hash("k" + std::to_string(key), 64);
    before[key] = candidates_[*picker.pick(req)].backend->name();
  }
  // Remove b2 from the alias.
  candidates_.erase(candidates_.begin() + 2);
  req = request(Strategy::kPrefixAffinity);
  int moved = 0;
  for (int key = 0; key < kKeys; ++key) {
    req.affinity_hash = prefix_hash("k" + std::to_string(key), 64);
    const std::string& after = candidates_[*picker.pick(req)].backend->name();
    if (after != before[key]) {
      ++moved;
      EXPECT_EQ(before[key], "b2") << "only keys of the removed backend may move";
    }
  }
  EXPECT_NEAR(moved, kKeys / 5, kKeys / 20);  // about the removed backend's share
}

TEST_F(PickerTest, AffinityFallsBackToLeastLoadWhenOwnerSaturatesOrFails) {
  for (int i = 0; i < 3; ++i) add("b" + std::to_string(i), 2);
  Picker picker(0.0, 1);
  PickRequest req = request(Strategy::kPrefixAffinity);
  req.affinity_hash = prefix_hash("system prompt", 64);
  const std::size_t owner = *picker.pick(req);
  const std::size_t other1 = (owner + 1) % 3;
  const std::size_t other2 = (owner + 2) % 3;

  backend(owner).on_request_start();
  backend(owner).on_request_start();  // saturated
  backend(other1).on_request_start();
  EXPECT_EQ(picker.pick(req), other2) << "least loaded of the rest";

  backend(owner).on_request_end();
  EXPECT_EQ(picker.pick(req), owner) << "back home once it has room";

  const std::size_t tried[] = {owner};
  req.excluded = tried;
  EXPECT_EQ(picker.pick(req), other2);
  req.excluded = {};

  backend(owner).set_healthy(false);
  EXPECT_EQ(picker.pick(req), other2);
}

TEST_F(PickerTest, AffinityKeepsSaturatedOwnerWhenNothingElseIsEligible) {
  const auto owner_candidate = add("only", 1);
  const auto down = add("down", 1);
  backend(down).set_healthy(false);
  backend(owner_candidate).on_request_start();
  Picker picker(0.0, 1);
  PickRequest req = request(Strategy::kPrefixAffinity);
  for (std::uint64_t key = 1; key < 50; ++key) {
    req.affinity_hash = key;
    EXPECT_EQ(picker.pick(req), owner_candidate);
  }
}

TEST_F(PickerTest, AffinityWithoutHashIsLeastLoad) {
  const auto busy = add("busy");
  const auto idle = add("idle");
  backend(busy).on_request_start();
  Picker picker(0.0, 1);
  EXPECT_EQ(picker.pick(request(Strategy::kPrefixAffinity)), idle);
}

TEST(PrefixHash, ReservesZeroAndTruncates) {
  EXPECT_EQ(prefix_hash("", 100), 0u);
  EXPECT_EQ(prefix_hash("abc", 0), 0u);
  EXPECT_NE(prefix_hash("a", 100), 0u);
  EXPECT_EQ(prefix_hash("same prefix, different tail A", 11),
            prefix_hash("same prefix, different tail B", 11));
  EXPECT_NE(prefix_hash("same prefix, different tail A", 100),
            prefix_hash("same prefix, different tail B", 100));
  EXPECT_NE(prefix_hash("ab", 10), prefix_hash(std::string_view("ab\0", 3), 10));
  EXPECT_EQ(prefix_hash("deterministic", 64), prefix_hash("deterministic", 64));
}

TEST(StableConversationPrefixTest, AConversationKeepsItsPrefixAsItGrows) {
  const std::string head = R"([{"role":"system","content":"You are a {careful} agent."},)"
                           R"({"role":"user","content":"Find the dates."})";
  const std::string first = head + "]";
  const std::string later = head + R"(,{"role":"assistant","content":null,"tool_calls":[]},)"
                                   R"({"role":"tool","tool_call_id":"c1","content":"found"}])";
  const std::string compacted =
      head + R"(,{"role": "assistant","content":"[observation masked by compaction]"}])";
  EXPECT_EQ(stable_conversation_prefix(first), head);
  EXPECT_EQ(stable_conversation_prefix(later), head);
  EXPECT_EQ(stable_conversation_prefix(compacted), head);
  // An "assistant" inside a content string is escaped: not a role.
  const std::string quoted = R"([{"role":"user","content":"say \"assistant\""}])";
  EXPECT_EQ(stable_conversation_prefix(quoted), quoted.substr(0, quoted.size() - 1));
  // Nothing before the first assistant message, or no object at all: the whole text.
  EXPECT_EQ(stable_conversation_prefix(R"([{"role":"assistant","content":"hi"}])"),
            R"([{"role":"assistant","content":"hi"}])");
  EXPECT_EQ(stable_conversation_prefix("[]"), "[]");
}

}  // namespace
}  // namespace redline::routing
