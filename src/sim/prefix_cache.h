#pragma once
// A model server's prompt-prefix cache, as far as the bill is concerned: which leading part of
// a prompt the server has seen recently, so its tokens count as cached input (what providers
// report as usage.prompt_tokens_details.cached_tokens and charge less for). Nothing is computed
// faster: the simulator only reports and counts the cached tokens.
//
// A prompt is described by the keys of its message-boundary prefixes: key i stands for messages
// 0..i (and whatever else the caller folds in, such as the model and the tools), so the keys of
// one prompt are nested prefixes, shortest first. The cache remembers at most `capacity` keys,
// least recently used out first.
#include <cstddef>
#include <cstdint>
#include <list>
#include <mutex>
#include <span>
#include <unordered_map>

namespace redline::sim {

class PrefixCache {
 public:
  // capacity 0 remembers nothing: every lookup misses.
  explicit PrefixCache(std::size_t capacity) : capacity_(capacity) {}
  PrefixCache(const PrefixCache&) = delete;
  PrefixCache& operator=(const PrefixCache&) = delete;

  // How many of `keys` (nested prefixes, shortest first) the longest remembered one covers:
  // n when keys[n - 1] is remembered and no longer key is; 0 when none is. Then remembers all
  // of them, as the most recently used. Thread-safe.
  std::size_t match_and_insert(std::span<const std::uint64_t> keys);

  // Forgets every key.
  void clear();
  std::size_t size() const;

 private:
  void touch(std::uint64_t key);  // mutex_ held

  const std::size_t capacity_;
  mutable std::mutex mutex_;
  std::list<std::uint64_t> order_;  // most recently used first
  std::unordered_map<std::uint64_t, std::list<std::uint64_t>::iterator> where_;
};

}  // namespace redline::sim
