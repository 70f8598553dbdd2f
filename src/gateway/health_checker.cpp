#include "gateway/health_checker.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "gateway/routing_table.h"
#include "net/io_pool.h"
#include "net/upstream_client.h"

namespace redline::gateway {

namespace asio = boost::asio;

namespace {

constexpr int kFailuresBeforeUnhealthy = 2;

asio::awaitable<void> probe_loop(std::weak_ptr<const RoutingTable> weak_table,
                                 std::size_t backend_index, std::size_t thread_index) {
  int consecutive_failures = 0;
  asio::steady_timer timer(co_await asio::this_coro::executor);
  for (;;) {
    std::chrono::milliseconds interval;
    {
      auto table = weak_table.lock();
      if (!table) co_return;
      const BackendRoute& backend = *table->backends()[backend_index];
      interval = backend.config->health_interval;
      std::string target = backend.config->base_path + backend.config->health_path;
      net::Headers headers = backend.upstream_headers;
      auto exchange = (*backend.pools)[thread_index]->exchange();
      auto error = co_await exchange->start({"GET", target, &headers, {}});
      std::string body;
      if (error == net::UpstreamError::kNone) error = co_await exchange->read_all(body, 1 << 20);
      bool ok = error == net::UpstreamError::kNone && exchange->status() >= 200 &&
                exchange->status() < 300;
      consecutive_failures = ok ? 0 : consecutive_failures + 1;
      if (ok) {
        backend.state->set_healthy(true);
      } else if (consecutive_failures >= kFailuresBeforeUnhealthy) {
        backend.state->set_healthy(false);
      }
    }
    timer.expires_after(interval);
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

}  // namespace

void start_health_checks(const std::shared_ptr<const RoutingTable>& table, net::IoPool& io) {
  auto backends = table->backends();
  for (std::size_t i = 0; i < backends.size(); ++i) {
    if (backends[i]->config->health_path.empty()) continue;
    std::size_t thread = i % io.size();
    asio::co_spawn(io.at(thread), probe_loop(table, i, thread), asio::detached);
  }
}

}  // namespace redline::gateway
