#include "agents/turn_queue.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <deque>

namespace redline::agents {

namespace asio = boost::asio;

struct TurnQueue::Waiter {
  explicit Waiter(asio::any_io_executor executor) : timer(executor) {}
  asio::steady_timer timer;
  bool woken = false;  // under the queue's mutex
};

// The turns of one key: whether one is running, and who waits behind it, in arrival order.
struct TurnQueue::Line {
  std::deque<std::shared_ptr<Waiter>> waiting;
};

TurnLease::TurnLease(TurnLease&& other) noexcept
    : queue_(std::exchange(other.queue_, nullptr)), key_(std::move(other.key_)) {}

TurnLease& TurnLease::operator=(TurnLease&& other) noexcept {
  if (this != &other) {
    release();
    queue_ = std::exchange(other.queue_, nullptr);
    key_ = std::move(other.key_);
  }
  return *this;
}

void TurnLease::release() {
  if (queue_ == nullptr) return;
  std::exchange(queue_, nullptr)->release(key_);
}

TurnQueue::TurnQueue() = default;
TurnQueue::~TurnQueue() = default;

asio::awaitable<TurnLease> TurnQueue::acquire(std::string_view key_view) {
  const std::string key(key_view);
  auto waiter = std::make_shared<Waiter>(co_await asio::this_coro::executor);
  waiter->timer.expires_at(asio::steady_timer::time_point::max());
  bool runs_now = false;
  {
    std::lock_guard lock(mutex_);
    auto [line, fresh] = lines_.try_emplace(key);
    if (fresh) {
      // Nobody holds the key: the line exists while a turn runs, so this turn runs now.
      line->second = std::make_unique<Line>();
      runs_now = true;
    } else {
      line->second->waiting.push_back(waiter);
    }
  }
  if (runs_now) co_return TurnLease(this, std::move(key));
  // The wake-up is posted to this coroutine's own executor, so it cannot run before the wait
  // below has begun; `woken` tells it from anything else ending the wait.
  while (true) {
    co_await waiter->timer.async_wait(asio::as_tuple(asio::use_awaitable));
    std::lock_guard lock(mutex_);
    if (waiter->woken) break;
  }
  co_return TurnLease(this, std::move(key));
}

void TurnQueue::release(const std::string& key) {
  std::shared_ptr<Waiter> next;
  {
    std::lock_guard lock(mutex_);
    auto line = lines_.find(key);
    if (line == lines_.end()) return;
    if (line->second->waiting.empty()) {
      lines_.erase(line);
      return;
    }
    // The key passes straight to the next turn; the line stays.
    next = std::move(line->second->waiting.front());
    line->second->waiting.pop_front();
    next->woken = true;
  }
  asio::post(next->timer.get_executor(), [next] { next->timer.cancel(); });
}

std::size_t TurnQueue::depth(const std::string& key) const {
  std::lock_guard lock(mutex_);
  auto line = lines_.find(key);
  return line == lines_.end() ? 0 : 1 + line->second->waiting.size();
}

}  // namespace redline::agents
