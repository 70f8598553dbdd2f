#include "agents/turn_queue.h"

#include <gtest/gtest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agents/blocking_pool.h"

namespace redline::agents {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

asio::awaitable<void> pause(std::chrono::milliseconds duration) {
  asio::steady_timer timer(co_await asio::this_coro::executor, duration);
  co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
}

// What the turns did, in the order they did it, from any thread.
struct Journal {
  std::mutex mutex;
  std::vector<std::string> events;
  std::vector<std::string> arrivals;
  int inside = 0;
  int most_inside = 0;

  void arrive(const std::string& who) {
    std::lock_guard lock(mutex);
    arrivals.push_back(who);
  }
  void enter(const std::string& who) {
    std::lock_guard lock(mutex);
    events.push_back("enter " + who);
    most_inside = std::max(most_inside, ++inside);
  }
  void leave(const std::string& who) {
    std::lock_guard lock(mutex);
    events.push_back("leave " + who);
    --inside;
  }
};

asio::awaitable<void> turn(TurnQueue& queue, std::string key, std::string who,
                           std::chrono::milliseconds arrive_after, Journal& journal) {
  co_await pause(arrive_after);
  journal.arrive(who);
  TurnLease lease = co_await queue.acquire(key);
  journal.enter(who);
  co_await pause(20ms);  // the model call
  journal.leave(who);
}

TEST(TurnQueueTest, TurnsOnOneKeyRunOneAtATimeInArrivalOrderAcrossThreads) {
  TurnQueue queue;
  Journal journal;
  // Turns arrive on two I/O threads, as connections of one conversation would.
  asio::io_context first;
  asio::io_context second;
  for (int i = 0; i < 6; ++i) {
    asio::io_context& io = i % 2 == 0 ? first : second;
    asio::co_spawn(
        io, turn(queue, "conv_1", std::to_string(i), std::chrono::milliseconds(i * 5), journal),
        asio::detached);
  }
  std::thread other([&] { second.run(); });
  first.run();
  other.join();

  EXPECT_EQ(journal.most_inside, 1);
  ASSERT_EQ(journal.arrivals.size(), 6u);
  std::vector<std::string> expected;
  for (const std::string& who : journal.arrivals) {
    expected.push_back("enter " + who);
    expected.push_back("leave " + who);
  }
  EXPECT_EQ(journal.events, expected);
  EXPECT_EQ(queue.depth("conv_1"), 0u);
}

TEST(TurnQueueTest, DifferentKeysDoNotWaitForEachOther) {
  TurnQueue queue;
  Journal journal;
  asio::io_context io;
  asio::co_spawn(io, turn(queue, "conv_a", "a", 0ms, journal), asio::detached);
  asio::co_spawn(io, turn(queue, "conv_b", "b", 0ms, journal), asio::detached);
  io.run();
  EXPECT_EQ(journal.most_inside, 2);
}

TEST(TurnQueueTest, ReleasingEarlyLetsTheNextTurnInAndMovedLeasesReleaseOnce) {
  TurnQueue queue;
  asio::io_context io;
  std::vector<std::string> order;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        TurnLease held = co_await queue.acquire("k");
        EXPECT_EQ(queue.depth("k"), 1u);
        TurnLease moved = std::move(held);
        EXPECT_FALSE(held.held());
        co_await pause(10ms);
        EXPECT_EQ(queue.depth("k"), 2u);  // the second turn waits
        order.push_back("first done");
        moved.release();
        moved.release();  // a second release is a no-op
        co_await pause(10ms);
        order.push_back("first after release");
      },
      asio::detached);
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        co_await pause(2ms);
        TurnLease lease = co_await queue.acquire("k");
        order.push_back("second in");
      },
      asio::detached);
  io.run();
  EXPECT_EQ(order, (std::vector<std::string>{"first done", "second in", "first after release"}));
  EXPECT_EQ(queue.depth("k"), 0u);
}

TEST(BlockingPoolTest, RunsWorkOffTheCallingThreadAndResumesOnIt) {
  BlockingPool pool(1);
  asio::io_context io;
  std::thread::id caller;
  std::thread::id worker;
  std::thread::id resumed;
  int result = 0;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        caller = std::this_thread::get_id();
        result = co_await pool.run([&] {
          worker = std::this_thread::get_id();
          return 42;
        });
        resumed = std::this_thread::get_id();
      },
      asio::detached);
  io.run();
  EXPECT_EQ(result, 42);
  EXPECT_NE(worker, caller);
  EXPECT_EQ(resumed, caller);
}

}  // namespace
}  // namespace redline::agents
