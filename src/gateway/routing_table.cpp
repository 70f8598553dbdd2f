#include "gateway/routing_table.h"

#include <ctime>

#include "common/json_text.h"
#include "net/io_pool.h"
#include "net/upstream_client.h"
#include "policy/red_line_policy.h"

namespace redline::gateway {

namespace {

routing::Strategy to_routing(config::Strategy strategy) {
  switch (strategy) {
    case config::Strategy::kLeastLoad:
      return routing::Strategy::kLeastLoad;
    case config::Strategy::kLatency:
      return routing::Strategy::kLatency;
    case config::Strategy::kCost:
      return routing::Strategy::kCost;
    case config::Strategy::kWeighted:
      return routing::Strategy::kWeighted;
    case config::Strategy::kPrefixAffinity:
      return routing::Strategy::kPrefixAffinity;
  }
  return routing::Strategy::kLeastLoad;
}

net::UpstreamEndpoint endpoint_of(const config::Backend& backend) {
  net::UpstreamEndpoint endpoint;
  endpoint.host = backend.host;
  endpoint.port = backend.port;
  endpoint.tls = backend.tls;
  endpoint.ca_file = backend.ca_file;
  endpoint.connect_timeout = backend.connect_timeout;
  endpoint.first_byte_timeout = backend.first_byte_timeout;
  endpoint.idle_timeout = backend.idle_timeout;
  endpoint.max_idle_connections = static_cast<std::size_t>(backend.max_concurrency);
  return endpoint;
}

bool same_endpoint(const config::Backend& a, const config::Backend& b) {
  return a.host == b.host && a.port == b.port && a.tls == b.tls && a.ca_file == b.ca_file &&
         a.connect_timeout == b.connect_timeout && a.first_byte_timeout == b.first_byte_timeout &&
         a.idle_timeout == b.idle_timeout && a.max_concurrency == b.max_concurrency;
}

routing::RoutingPolicy policy_of(const config::RoutingSettings& routing) {
  routing::RoutingPolicy policy;
  policy.breaker_failure_threshold = routing.breaker_failure_threshold;
  policy.breaker_open_duration = routing.breaker_open_duration;
  policy.ejection_consecutive_failures = routing.outlier_consecutive_5xx;
  policy.ejection_duration = routing.outlier_ejection;
  return policy;
}

std::string build_models_json(const config::Config& config) {
  const long created = static_cast<long>(std::time(nullptr));
  std::string out = R"({"object":"list","data":[)";
  bool first = true;
  for (const auto& alias : config.models) {
    if (!first) out.push_back(',');
    first = false;
    out += R"({"id":)";
    append_json_string(out, alias.name);
    out += R"(,"object":"model","created":)" + std::to_string(created) + R"(,"owned_by":)";
    append_json_string(out, alias.owned_by);
    out.push_back('}');
  }
  out += "]}";
  return out;
}

void append_chain(const AliasRoute* alias,
                  const std::unordered_map<std::string_view, std::unique_ptr<AliasRoute>>& all,
                  std::vector<const AliasRoute*>& chain) {
  for (const auto* seen : chain) {
    if (seen == alias) return;
  }
  chain.push_back(alias);
  for (const auto& name : alias->config->fallbacks) {
    auto it = all.find(name);
    if (it != all.end()) append_chain(it->second.get(), all, chain);
  }
}

}  // namespace

RoutingTable::~RoutingTable() = default;

std::shared_ptr<const RoutingTable> RoutingTable::build(
    config::Config config, std::shared_ptr<const policy::RedLinePolicy> policy, net::IoPool& io,
    routing::BackendRegistry& registry, const RoutingTable* previous) {
  std::shared_ptr<RoutingTable> table(new RoutingTable());
  table->config_ = std::move(config);
  table->policy_ = std::move(policy);
  const auto& cfg = table->config_;
  registry.set_policy(policy_of(cfg.routing));

  std::vector<std::string> names;
  for (const auto& backend : cfg.backends) {
    auto route = std::make_unique<BackendRoute>();
    route->config = &backend;
    route->state = registry.get_or_create(backend.name, backend.max_concurrency, backend.weight);
    if (previous) {
      for (const auto& old : previous->backends_) {
        if (old->config->name == backend.name && same_endpoint(*old->config, backend)) {
          route->pools = old->pools;
        }
      }
    }
    if (!route->pools) {
      route->pools = std::make_shared<ThreadPools>();
      for (std::size_t i = 0; i < io.size(); ++i) {
        route->pools->push_back(
            std::make_unique<net::UpstreamPool>(io.at(i), endpoint_of(backend)));
      }
    }
    route->upstream_headers.push_back({"Content-Type", "application/json"});
    if (!backend.api_key.empty()) {
      route->upstream_headers.push_back({"Authorization", "Bearer " + backend.api_key});
    }
    names.push_back(backend.name);
    table->backends_.push_back(std::move(route));
  }
  registry.retain_only(names);

  for (const auto& alias : cfg.models) {
    auto route = std::make_unique<AliasRoute>();
    route->config = &alias;
    route->strategy = to_routing(alias.strategy);
    for (const auto& target : alias.targets) {
      for (const auto& backend : table->backends_) {
        if (backend->config->name != target.backend) continue;
        const auto* served = backend->config->find_model(target.model);
        route->candidates.push_back({backend->state.get(), backend->config->price_input_per_mtok,
                                     backend->config->price_output_per_mtok, 1.0});
        route->backends.push_back(backend.get());
        route->upstream_models.push_back(served ? served->upstream_name : target.model);
      }
    }
    table->aliases_.emplace(alias.name, std::move(route));
  }
  for (auto& [name, alias] : table->aliases_) {
    append_chain(alias.get(), table->aliases_, alias->chain);
    alias->reachable_backends = cfg.backends_for(name);
  }

  table->models_json_ = build_models_json(cfg);
  table->retry_budget_ = std::make_unique<routing::RetryBudget>(
      cfg.routing.retry_budget_ratio, cfg.routing.retry_budget_min_per_second);
  return table;
}

const AliasRoute* RoutingTable::find_alias(std::string_view name) const {
  auto it = aliases_.find(name);
  return it == aliases_.end() ? nullptr : it->second.get();
}

}  // namespace redline::gateway
