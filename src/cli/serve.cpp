#include "cli/serve.h"

#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <csignal>
#include <iostream>

#include "agents/agents_api.h"
#include "agents/blocking_pool.h"
#include "agents/graph_executor.h"
#include "agents/mcp_tool_servers.h"
#include "agents/memory_service.h"
#include "agents/responses_service.h"
#include "agents/run_engine.h"
#include "api/http_api.h"
#include "audit/audit_log.h"
#include "config/config.h"
#include "gateway/gateway.h"
#include "mcp/mcp_client.h"
#include "net/http_server.h"
#include "net/io_pool.h"
#include "policy/red_line_policy.h"
#include "quota/api_keys.h"
#include "sim/simulator.h"
#include "store/key_store.h"
#include "store/memory_store.h"
#include "store/run_store.h"
#include "store/session_store.h"

namespace redline::cli {

namespace asio = boost::asio;

namespace {

net::ServerLimits limits_of(const config::ServerSettings& server) {
  net::ServerLimits limits;
  limits.max_body_bytes = server.max_body_bytes;
  limits.max_header_bytes = server.max_header_bytes;
  limits.max_connections = server.max_connections;
  limits.header_timeout = server.header_timeout;
  limits.body_timeout = server.body_timeout;
  limits.idle_timeout = server.idle_timeout;
  limits.write_timeout = server.write_timeout;
  return limits;
}

// Waits for in-flight requests to finish (up to `deadline`), then stops the pool.
void drain_then_stop(net::HttpServer& server, net::IoPool& io, asio::io_context& context,
                     std::chrono::steady_clock::time_point deadline) {
  if (server.requests_in_flight() == 0 || std::chrono::steady_clock::now() >= deadline) {
    if (server.requests_in_flight() > 0) {
      spdlog::warn("drain deadline reached with {} request(s) in flight",
                   server.requests_in_flight());
    }
    io.stop();
    return;
  }
  auto timer = std::make_shared<asio::steady_timer>(context, std::chrono::milliseconds(20));
  timer->async_wait([&server, &io, &context, deadline, timer](boost::system::error_code) {
    drain_then_stop(server, io, context, deadline);
  });
}

// Retention: every purge interval, idle responses and conversations and expired memory records
// are removed, off the I/O threads.
asio::awaitable<void> purge_periodically(gateway::Gateway& gateway, agents::BlockingPool& blocking,
                                         agents::ResponsesService& responses,
                                         agents::MemoryService& memory) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  while (true) {
    timer.expires_after(gateway.table()->config().sessions.purge_interval);
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    co_await blocking.run([&] {
      const store::PurgeCounts purged = responses.purge_idle();
      const std::int64_t records = memory.purge_expired();
      if (purged.responses + purged.conversations + records > 0) {
        spdlog::info("retention: purged {} responses, {} conversations, {} memory records",
                     purged.responses, purged.conversations, records);
      }
      return 0;
    });
  }
}

bool listen_all(net::HttpServer& server, const std::vector<config::Endpoint>& listeners) {
  for (const auto& listener : listeners) {
    try {
      server.listen(listener.host, listener.port);
    } catch (const std::exception& e) {
      spdlog::error("cannot listen on {}: {}", config::to_string(listener), e.what());
      return false;
    }
  }
  return true;
}

}  // namespace

LoadedGateway load_gateway(const std::string& config_path) {
  LoadedGateway loaded;
  auto result = config::load_config_file(config_path);
  loaded.errors = std::move(result.errors);
  if (!result.config) return loaded;
  auto compiled = policy::RedLinePolicy::compile(*result.config);
  loaded.errors = std::move(compiled.errors);
  if (!compiled.policy) return loaded;
  loaded.config = std::move(result.config);
  loaded.policy = std::move(compiled.policy);
  return loaded;
}

int check_config(const std::string& config_path) {
  auto loaded = load_gateway(config_path);
  if (!loaded.config) {
    std::cerr << config::format_errors(loaded.errors);
    std::cerr << loaded.errors.size() << " error(s) in " << config_path << "\n";
    return 1;
  }
  std::cout << config_path << ": OK (" << loaded.config->backends.size() << " backends, "
            << loaded.config->models.size() << " models, " << loaded.config->rules.size()
            << " rules, " << loaded.policy->detectors().size() << " detectors)\n";
  return 0;
}

audit::AuditOptions audit_options_from(const config::Config& config) {
  audit::AuditOptions options;
  options.sqlite_path = config.store.sqlite_path;
  options.signing_key_path = config.audit.signing_key_path;
  options.durability = config.audit.durability == config::AuditDurability::kBeforeResponse
                           ? audit::Durability::kBeforeResponse
                           : audit::Durability::kBatched;
  options.flush_interval = config.audit.flush_interval;
  options.checkpoint_interval = config.audit.checkpoint_interval;
  switch (config.audit.store_bodies) {
    case config::AuditBodies::kNone:
      options.bodies = audit::BodyRetention::kNone;
      break;
    case config::AuditBodies::kFlagged:
      options.bodies = audit::BodyRetention::kFlagged;
      break;
    case config::AuditBodies::kAll:
      options.bodies = audit::BodyRetention::kAll;
      break;
  }
  options.body_key = config.audit.body_key;
  options.body_retention = config.audit.body_retention;
  return options;
}

int run_gateway(const std::string& config_path) {
  auto loaded = load_gateway(config_path);
  if (!loaded.config) {
    std::cerr << config::format_errors(loaded.errors);
    std::cerr << "redline: refusing to start: " << loaded.errors.size() << " error(s) in "
              << config_path << "\n";
    return 2;
  }
  config::Config config = std::move(*loaded.config);
  std::string store_error;
  std::shared_ptr<store::KeyStore> key_store =
      store::open_sqlite_store(config.store.sqlite_path, &store_error);
  if (!key_store) {
    std::cerr << "redline: cannot open the store " << config.store.sqlite_path << ": "
              << store_error << "\n";
    return 2;
  }
  auto keys = std::make_shared<quota::ApiKeyService>(key_store, quota::system_clock(),
                                                     config.auth.key_cache_ttl);
  std::shared_ptr<audit::AuditLog> audit_log;
  if (config.audit.enabled) {
    std::string audit_error;
    audit_log = audit::AuditLog::open(audit_options_from(config), &audit_error);
    if (!audit_log) {
      std::cerr << "redline: cannot open the audit log in " << config.store.sqlite_path << ": "
                << audit_error << "\n";
      return 2;
    }
  }
  const std::string store_path = config.store.sqlite_path;
  spdlog::set_level(spdlog::level::from_str(config.server.log_level));
  const auto drain_timeout = config.server.drain_timeout;
  const auto listeners = config.server.listeners;

  std::shared_ptr<store::SessionStore> session_store;
  std::shared_ptr<store::MemoryStore> memory_store;
  std::shared_ptr<store::RunStore> run_store;
  if (config.sessions.enabled) {
    std::string session_error;
    session_store = store::open_sqlite_session_store(config.store.sqlite_path, &session_error);
    if (session_store) {
      memory_store = store::open_sqlite_memory_store(config.store.sqlite_path, &session_error);
    }
    if (memory_store) {
      run_store = store::open_sqlite_run_store(config.store.sqlite_path, &session_error);
    }
    if (!session_store || !memory_store || !run_store) {
      std::cerr << "redline: cannot open the session store in " << config.store.sqlite_path << ": "
                << session_error << "\n";
      return 2;
    }
  }
  const bool sessions_enabled = config.sessions.enabled;

  // Turns suspended when the process stops are destroyed with the I/O pool, and their locals
  // (a conversation's turn lease) refer to the services: so the services outlive the pool...
  std::unique_ptr<agents::MemoryService> memory;
  std::unique_ptr<agents::ResponsesService> responses;
  std::unique_ptr<agents::RunEngine> runs;
  std::unique_ptr<agents::GraphExecutor> graphs;
  net::IoPool io(config.server.threads);
  gateway::Gateway gateway(io, config, loaded.policy, keys, audit_log);
  api::HttpApi api(gateway);
  // ...while store calls still running on the blocking threads refer to those turns: the
  // threads are joined before the pool goes.
  agents::BlockingPool blocking(2);
  // MCP servers are spoken to from the first I/O thread; their processes end with the clients,
  // after the pool has stopped.
  mcp::McpClients mcp_clients(io.at(0), config);
  agents::McpToolServers tool_servers(mcp_clients);
  std::unique_ptr<agents::AgentsApi> agents_api;
  if (sessions_enabled) {
    memory = std::make_unique<agents::MemoryService>(gateway, memory_store, blocking,
                                                     quota::system_clock());
    responses = std::make_unique<agents::ResponsesService>(gateway, session_store, *memory,
                                                           blocking, quota::system_clock());
    if (const std::size_t interrupted = responses->fail_interrupted(); interrupted > 0) {
      spdlog::warn("{} background response(s) were interrupted by the last stop; marked failed",
                   interrupted);
    }
    api.serve_sessions(responses.get(), memory.get());
    runs = std::make_unique<agents::RunEngine>(gateway, run_store, tool_servers, *memory, blocking,
                                               quota::system_clock());
    graphs = std::make_unique<agents::GraphExecutor>(gateway, *runs, run_store, *memory, blocking);
    agents_api = std::make_unique<agents::AgentsApi>(gateway, *runs, *graphs, blocking);
    api.serve_agents(agents_api.get());
    responses->run_mcp_tools_with(runs.get());
    // Runs and graphs the last stop left unfinished go on where their journal says.
    runs->resume_all();
    graphs->resume_all();
    asio::co_spawn(io.at(0), purge_periodically(gateway, blocking, *responses, *memory),
                   asio::detached);
  }
  net::HttpServer server(io, limits_of(config.server), api.handler());
  if (!listen_all(server, listeners)) return 1;
  gateway.start_health_checks();
  for (std::size_t i = 0; i < listeners.size(); ++i) {
    spdlog::info("redline gateway listening on {}:{} ({} threads)", listeners[i].host,
                 server.bound_port(i), io.size());
  }

  asio::io_context& control = io.at(0);
  asio::signal_set signals(control, SIGHUP, SIGTERM, SIGINT);
  std::function<void(boost::system::error_code, int)> on_signal = [&](boost::system::error_code ec,
                                                                      int signal) {
    if (ec) return;
    if (signal == SIGHUP) {
      auto reloaded = load_gateway(config_path);
      if (!reloaded.config) {
        spdlog::error("reload rejected, keeping the running configuration:\n{}",
                      config::format_errors(reloaded.errors));
      } else {
        if (reloaded.config->server.listeners != listeners) {
          spdlog::warn("reload: listener changes take effect after a restart");
        }
        if (reloaded.config->store.sqlite_path != store_path) {
          spdlog::warn("reload: a new store path takes effect after a restart");
        }
        gateway.reload(std::move(*reloaded.config), std::move(reloaded.policy));
        spdlog::info("configuration reloaded from {}", config_path);
      }
      signals.async_wait(on_signal);
      return;
    }
    spdlog::info("draining: {} request(s) in flight, deadline {} ms", server.requests_in_flight(),
                 drain_timeout.count());
    server.stop_accepting();
    drain_then_stop(server, io, control, std::chrono::steady_clock::now() + drain_timeout);
  };
  signals.async_wait(on_signal);
  io.run();
  spdlog::info("redline gateway stopped");
  return 0;
}

int run_simulator(const std::string& config_path) {
  auto loaded = sim::load_sim_config_file(config_path);
  if (!loaded.errors.empty()) {
    for (const auto& error : loaded.errors) std::cerr << error << "\n";
    return 2;
  }
  sim::Simulator simulator(*loaded.config);
  const auto& config = simulator.config();
  net::IoPool io(config.threads);
  net::ServerLimits limits;
  limits.idle_timeout = std::chrono::minutes(5);
  // Load tests hold tens of thousands of streams; the open-files limit is the real bound.
  limits.max_connections = 1'000'000;
  net::HttpServer server(io, limits, simulator.handler());
  try {
    server.listen(config.host, config.port);
  } catch (const std::exception& e) {
    spdlog::error("cannot listen on {}:{}: {}", config.host, config.port, e.what());
    return 1;
  }
  spdlog::info("redline sim '{}' listening on {}:{}", config.name, config.host,
               server.bound_port());
  asio::signal_set signals(io.at(0), SIGTERM, SIGINT);
  signals.async_wait([&](boost::system::error_code ec, int) {
    if (!ec) io.stop();
  });
  io.run();
  return 0;
}

}  // namespace redline::cli
