#include "net/io_pool.h"

#include <boost/asio/executor_work_guard.hpp>

namespace redline::net {

namespace {
thread_local const IoPool* current_pool = nullptr;
thread_local std::size_t current_pool_index = 0;
}  // namespace

IoPool::IoPool(std::size_t threads) {
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  for (std::size_t i = 0; i < threads; ++i) {
    // Concurrency hint 1: each context is only ever run by one thread.
    contexts_.push_back(std::make_unique<boost::asio::io_context>(1));
    guards_.push_back(
        std::make_unique<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>>(
            contexts_.back()->get_executor()));
  }
}

IoPool::~IoPool() { stop(); }

boost::asio::io_context& IoPool::next() {
  // Called from the accepting thread only.
  auto& context = *contexts_[next_];
  next_ = (next_ + 1) % contexts_.size();
  return context;
}

std::size_t IoPool::current_index() const {
  return current_pool == this ? current_pool_index : contexts_.size();
}

void IoPool::run() {
  auto run_context = [this](std::size_t i) {
    current_pool = this;
    current_pool_index = i;
    contexts_[i]->run();
    current_pool = nullptr;
  };
  std::vector<std::thread> threads;
  for (std::size_t i = 1; i < contexts_.size(); ++i) threads.emplace_back(run_context, i);
  run_context(0);
  for (auto& t : threads) t.join();
}

void IoPool::stop() {
  guards_.clear();
  for (auto& context : contexts_) context->stop();
}

}  // namespace redline::net
