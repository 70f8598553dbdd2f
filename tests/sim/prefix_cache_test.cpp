#include "sim/prefix_cache.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace redline::sim {
namespace {

using Keys = std::vector<std::uint64_t>;

TEST(PrefixCacheTest, MatchesTheLongestRememberedPrefix) {
  PrefixCache cache(100);
  EXPECT_EQ(cache.match_and_insert(Keys{1, 2, 3}), 0u);
  EXPECT_EQ(cache.size(), 3u);
  // The same conversation one turn later: everything it had before is cached.
  EXPECT_EQ(cache.match_and_insert(Keys{1, 2, 3, 4, 5}), 3u);
  // The same request again: all of it.
  EXPECT_EQ(cache.match_and_insert(Keys{1, 2, 3, 4, 5}), 5u);
  // A conversation that shares the first two messages, then differs.
  EXPECT_EQ(cache.match_and_insert(Keys{1, 2, 9}), 2u);
  // Another conversation altogether.
  EXPECT_EQ(cache.match_and_insert(Keys{7, 8}), 0u);
  EXPECT_EQ(cache.size(), 8u);
  EXPECT_EQ(cache.match_and_insert(Keys{}), 0u);
}

TEST(PrefixCacheTest, TheLongestKeyCountsEvenWhenShorterOnesWereEvicted) {
  PrefixCache cache(3);
  cache.match_and_insert(Keys{1, 2, 3});
  cache.match_and_insert(Keys{4});  // evicts 1, the least recently used
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_EQ(cache.match_and_insert(Keys{1, 2, 3}), 3u);
}

TEST(PrefixCacheTest, EvictsTheLeastRecentlyUsed) {
  PrefixCache cache(2);
  cache.match_and_insert(Keys{1});
  cache.match_and_insert(Keys{2});
  cache.match_and_insert(Keys{1});  // 1 is now more recent than 2
  cache.match_and_insert(Keys{3});  // evicts 2
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(cache.match_and_insert(Keys{1}), 1u);
  EXPECT_EQ(cache.match_and_insert(Keys{3}), 1u);
  EXPECT_EQ(cache.match_and_insert(Keys{2}), 0u);
}

TEST(PrefixCacheTest, ARequestLongerThanTheCacheKeepsItsLastKeys) {
  PrefixCache cache(2);
  EXPECT_EQ(cache.match_and_insert(Keys{1, 2, 3, 4}), 0u);
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(cache.match_and_insert(Keys{1, 2, 3, 4, 5}), 4u);
  EXPECT_EQ(cache.match_and_insert(Keys{1, 2}), 0u);
}

TEST(PrefixCacheTest, ZeroCapacityAndClear) {
  PrefixCache off(0);
  off.match_and_insert(Keys{1, 2});
  EXPECT_EQ(off.match_and_insert(Keys{1, 2}), 0u);
  EXPECT_EQ(off.size(), 0u);

  PrefixCache cache(10);
  cache.match_and_insert(Keys{1, 2});
  cache.clear();
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(cache.match_and_insert(Keys{1, 2}), 0u);
}

TEST(PrefixCacheTest, ConcurrentUseStaysBounded) {
  PrefixCache cache(64);
  std::vector<std::thread> threads;
  for (std::uint64_t t = 0; t < 4; ++t) {
    threads.emplace_back([&cache, t] {
      for (std::uint64_t i = 0; i < 2000; ++i) {
        cache.match_and_insert(Keys{t, t * 10000 + i % 50, t * 10000 + 100 + i % 7});
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(cache.size(), 64u);
  // Still a working LRU: what was just inserted is found.
  EXPECT_EQ(cache.match_and_insert(Keys{424242}), 0u);
  EXPECT_EQ(cache.match_and_insert(Keys{424242}), 1u);
  EXPECT_EQ(cache.size(), 64u);
}

}  // namespace
}  // namespace redline::sim
