#pragma once
// One writer per conversation: turns on the same conversation run one at a time, in the order
// they arrived, so none reads a history another is about to extend (no forks) and none's items
// are lost. Waiting turns park their coroutine on their own I/O thread; the turn ahead of them
// wakes the next one there when it ends.
#include <boost/asio/awaitable.hpp>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace redline::agents {

class TurnQueue;

// Holds the turn until destroyed (or released); then the next waiting turn on the key runs.
class TurnLease {
 public:
  TurnLease() = default;
  TurnLease(TurnQueue* queue, std::string key) : queue_(queue), key_(std::move(key)) {}
  TurnLease(TurnLease&& other) noexcept;
  TurnLease& operator=(TurnLease&& other) noexcept;
  TurnLease(const TurnLease&) = delete;
  TurnLease& operator=(const TurnLease&) = delete;
  ~TurnLease() { release(); }

  void release();
  bool held() const { return queue_ != nullptr; }

 private:
  TurnQueue* queue_ = nullptr;
  std::string key_;
};

class TurnQueue {
 public:
  TurnQueue();
  ~TurnQueue();
  TurnQueue(const TurnQueue&) = delete;
  TurnQueue& operator=(const TurnQueue&) = delete;

  // Waits, without blocking the thread, until every turn that asked for `key` earlier has ended.
  // A view, copied before the first suspension: g++ 12 destroys a by-value string argument of a
  // coroutine twice.
  boost::asio::awaitable<TurnLease> acquire(std::string_view key_view);

  // Turns running or waiting on `key` (for tests and metrics).
  std::size_t depth(const std::string& key) const;

 private:
  friend class TurnLease;
  struct Waiter;
  struct Line;
  void release(const std::string& key);

  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::unique_ptr<Line>> lines_;
};

}  // namespace redline::agents
