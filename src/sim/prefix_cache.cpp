#include "sim/prefix_cache.h"

namespace redline::sim {

std::size_t PrefixCache::match_and_insert(std::span<const std::uint64_t> keys) {
  if (capacity_ == 0 || keys.empty()) return 0;
  std::lock_guard lock(mutex_);
  std::size_t matched = 0;
  for (std::size_t i = keys.size(); i > 0; --i) {
    if (where_.contains(keys[i - 1])) {
      matched = i;
      break;
    }
  }
  for (std::uint64_t key : keys) touch(key);
  return matched;
}

void PrefixCache::touch(std::uint64_t key) {
  if (auto it = where_.find(key); it != where_.end()) {
    order_.splice(order_.begin(), order_, it->second);
    return;
  }
  if (where_.size() == capacity_) {
    where_.erase(order_.back());
    // Reuse the evicted node rather than free one and allocate another.
    order_.splice(order_.begin(), order_, std::prev(order_.end()));
    order_.front() = key;
  } else {
    order_.push_front(key);
  }
  where_.emplace(key, order_.begin());
}

void PrefixCache::clear() {
  std::lock_guard lock(mutex_);
  order_.clear();
  where_.clear();
}

std::size_t PrefixCache::size() const {
  std::lock_guard lock(mutex_);
  return where_.size();
}

}  // namespace redline::sim
