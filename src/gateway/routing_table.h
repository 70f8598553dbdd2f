#pragma once
// The routing table: one immutable view of a configuration, resolved for the data plane (aliases
// to candidate backends with their runtime state and per-thread connection pools). A reload
// builds a new table; requests in flight keep the one they started with.
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "config/config.h"
#include "net/http_message.h"
#include "routing/backend_state.h"
#include "routing/retry_budget.h"
#include "routing/strategy.h"

namespace redline::net {
class IoPool;
class UpstreamPool;
}  // namespace redline::net

namespace redline::policy {
class RedLinePolicy;
}

namespace redline::gateway {

// One UpstreamPool per I/O thread, indexed by IoPool::current_index().
using ThreadPools = std::vector<std::unique_ptr<net::UpstreamPool>>;

struct BackendRoute {
  const config::Backend* config = nullptr;
  std::shared_ptr<routing::BackendState> state;
  std::shared_ptr<ThreadPools> pools;
  net::Headers upstream_headers;  // Authorization and content negotiation, built once
};

struct AliasRoute {
  const config::ModelAlias* config = nullptr;
  routing::Strategy strategy = routing::Strategy::kLeastLoad;
  std::vector<routing::Candidate> candidates;
  std::vector<const BackendRoute*> backends;  // parallel to candidates
  std::vector<std::string> upstream_models;   // parallel to candidates
  // This alias followed by its fallbacks, depth first and without repeats: the order in which a
  // request tries them.
  std::vector<const AliasRoute*> chain;
  // The names of every backend in the chain, each once: what the red lines are evaluated on.
  std::vector<std::string> reachable_backends;
};

class RoutingTable {
 public:
  // `previous` lends its connection pools to backends whose endpoint did not change.
  static std::shared_ptr<const RoutingTable> build(
      config::Config config, std::shared_ptr<const policy::RedLinePolicy> policy, net::IoPool& io,
      routing::BackendRegistry& registry, const RoutingTable* previous);
  ~RoutingTable();

  const config::Config& config() const { return config_; }
  const policy::RedLinePolicy& policy() const { return *policy_; }
  const AliasRoute* find_alias(std::string_view name) const;
  std::span<const std::unique_ptr<BackendRoute>> backends() const { return backends_; }
  const std::string& models_json() const { return models_json_; }
  routing::RetryBudget& retry_budget() const { return *retry_budget_; }

 private:
  RoutingTable() = default;

  config::Config config_;
  std::shared_ptr<const policy::RedLinePolicy> policy_;
  std::vector<std::unique_ptr<BackendRoute>> backends_;
  std::unordered_map<std::string_view, std::unique_ptr<AliasRoute>> aliases_;
  std::string models_json_;
  std::unique_ptr<routing::RetryBudget> retry_budget_;
};

}  // namespace redline::gateway
