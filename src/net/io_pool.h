#pragma once
// One io_context per thread (the nginx worker model): a connection lives on one thread for its
// whole life, so per-connection and per-thread state (upstream pools) needs no locks.
#include <boost/asio/io_context.hpp>
#include <memory>
#include <thread>
#include <vector>

namespace redline::net {

class IoPool {
 public:
  explicit IoPool(std::size_t threads);
  IoPool(const IoPool&) = delete;
  IoPool& operator=(const IoPool&) = delete;
  ~IoPool();

  std::size_t size() const { return contexts_.size(); }
  boost::asio::io_context& at(std::size_t index) { return *contexts_[index]; }
  // Round-robin choice for a new connection.
  boost::asio::io_context& next();

  // Index of the pool thread the caller runs on; size() when called from another thread.
  // Lets modules keep per-thread state (upstream connection pools) without locks.
  std::size_t current_index() const;

  // Runs every context on its own thread; returns when all have stopped.
  void run();
  void stop();

 private:
  std::vector<std::unique_ptr<boost::asio::io_context>> contexts_;
  std::vector<
      std::unique_ptr<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>>>
      guards_;
  std::size_t next_ = 0;
};

}  // namespace redline::net
