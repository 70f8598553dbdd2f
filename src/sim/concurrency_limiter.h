#pragma once
// At most N requests of a model generate at once; up to Q more wait in FIFO order; beyond
// that requests are turned away. Handlers on several threads share one limiter: the queue is
// under a mutex, and a waiter is woken on its own executor.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <deque>
#include <memory>
#include <mutex>

namespace redline::sim {

class ConcurrencyLimiter {
 public:
  // max_concurrency 0 = unlimited (the queue is then never used).
  ConcurrencyLimiter(int max_concurrency, int queue_size);

  // A place in the queue. Its timer never expires on its own: granting a slot, or
  // abandon(), cancels it.
  struct Waiter {
    explicit Waiter(const boost::asio::any_io_executor& executor) : timer(executor) {}
    boost::asio::steady_timer timer;
    bool granted = false;  // under the limiter's mutex
  };

  enum class Outcome { kAdmitted, kQueued, kRejected };
  // kQueued sets `waiter`; the caller then co_awaits wait().
  Outcome try_acquire(const boost::asio::any_io_executor& executor,
                      std::shared_ptr<Waiter>& waiter);
  // True once the waiter holds a slot; false when it was cancelled first (the client left;
  // cancel waiter->timer to get there), in which case it has left the queue and holds nothing.
  boost::asio::awaitable<bool> wait(std::shared_ptr<Waiter> waiter);
  // Gives a slot back: to the first waiter, else to the pool.
  void release();

  int active() const;
  int queued() const;

 private:
  const int max_concurrency_;
  const int queue_size_;
  mutable std::mutex mutex_;
  int active_ = 0;
  std::deque<std::shared_ptr<Waiter>> queue_;
};

// Releases a slot when it goes out of scope.
class ConcurrencySlot {
 public:
  ConcurrencySlot() = default;
  explicit ConcurrencySlot(ConcurrencyLimiter* limiter) : limiter_(limiter) {}
  ConcurrencySlot(const ConcurrencySlot&) = delete;
  ConcurrencySlot& operator=(const ConcurrencySlot&) = delete;
  ~ConcurrencySlot() {
    if (limiter_ != nullptr) limiter_->release();
  }

 private:
  ConcurrencyLimiter* limiter_ = nullptr;
};

}  // namespace redline::sim
