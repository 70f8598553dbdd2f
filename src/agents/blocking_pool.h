#pragma once
// Store calls block on SQLite (a commit, a chain walk, a full-text search). They run on these
// threads instead of the I/O threads, so one slow write never stalls the connections that share
// an I/O thread; the calling coroutine resumes on its own executor when the call is done.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <optional>
#include <type_traits>
#include <utility>

namespace redline::agents {

class BlockingPool {
 public:
  explicit BlockingPool(std::size_t threads) : pool_(threads) {}
  ~BlockingPool() { pool_.join(); }
  BlockingPool(const BlockingPool&) = delete;
  BlockingPool& operator=(const BlockingPool&) = delete;

  // Runs `work()` on a pool thread and returns its result to the awaiting coroutine.
  template <typename Work>
  boost::asio::awaitable<std::invoke_result_t<Work&>> run(Work work) {
    using Value = std::invoke_result_t<Work&>;
    // co_spawn needs a default-constructible result; store results are not.
    std::optional<Value> value = co_await boost::asio::co_spawn(
        pool_.get_executor(),
        [work = std::move(work)]() mutable -> boost::asio::awaitable<std::optional<Value>> {
          co_return work();
        },
        boost::asio::use_awaitable);
    co_return std::move(*value);
  }

 private:
  boost::asio::thread_pool pool_;
};

}  // namespace redline::agents
