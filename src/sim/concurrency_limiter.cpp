#include "sim/concurrency_limiter.h"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace redline::sim {

namespace asio = boost::asio;

ConcurrencyLimiter::ConcurrencyLimiter(int max_concurrency, int queue_size)
    : max_concurrency_(max_concurrency), queue_size_(queue_size) {}

ConcurrencyLimiter::Outcome ConcurrencyLimiter::try_acquire(const asio::any_io_executor& executor,
                                                            std::shared_ptr<Waiter>& waiter) {
  std::lock_guard lock(mutex_);
  if (max_concurrency_ == 0 || active_ < max_concurrency_) {
    ++active_;
    return Outcome::kAdmitted;
  }
  if (static_cast<int>(queue_.size()) >= queue_size_) return Outcome::kRejected;
  waiter = std::make_shared<Waiter>(executor);
  waiter->timer.expires_at(asio::steady_timer::time_point::max());
  queue_.push_back(waiter);
  return Outcome::kQueued;
}

asio::awaitable<bool> ConcurrencyLimiter::wait(std::shared_ptr<Waiter> waiter) {
  boost::system::error_code ignored;
  co_await waiter->timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
  std::lock_guard lock(mutex_);
  if (waiter->granted) co_return true;
  queue_.erase(std::remove(queue_.begin(), queue_.end(), waiter), queue_.end());
  co_return false;
}

void ConcurrencyLimiter::release() {
  std::shared_ptr<Waiter> next;
  {
    std::lock_guard lock(mutex_);
    if (queue_.empty()) {
      --active_;
      return;
    }
    // The slot passes straight to the first waiter, so active_ stays as it is.
    next = std::move(queue_.front());
    queue_.pop_front();
    next->granted = true;
  }
  // A timer may only be touched on its own executor.
  asio::post(next->timer.get_executor(), [next] { next->timer.cancel(); });
}

int ConcurrencyLimiter::active() const {
  std::lock_guard lock(mutex_);
  return active_;
}

int ConcurrencyLimiter::queued() const {
  std::lock_guard lock(mutex_);
  return static_cast<int>(queue_.size());
}

}  // namespace redline::sim
