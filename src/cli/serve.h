#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "audit/audit_log.h"
#include "config/config.h"

namespace redline::policy {
class RedLinePolicy;
}

namespace redline::cli {

// A gateway configuration with its red lines compiled: what `serve`, `config check`, `policy
// test` and `keys` all start from. `config` is set only when there are no errors.
struct LoadedGateway {
  std::optional<config::Config> config;
  std::shared_ptr<const policy::RedLinePolicy> policy;
  std::vector<config::ConfigError> errors;
};
LoadedGateway load_gateway(const std::string& config_path);

// `redline serve`: runs the gateway until SIGTERM/SIGINT (drain) — SIGHUP reloads the config.
int run_gateway(const std::string& config_path);
// `redline sim`: runs the simulated model server until SIGTERM/SIGINT.
int run_simulator(const std::string& config_path);
// `redline config check`: prints every error with its location; 0 when valid.
int check_config(const std::string& config_path);

// How the audit log of a configuration is opened: in the store's file, with the [audit] settings.
audit::AuditOptions audit_options_from(const config::Config& config);

}  // namespace redline::cli
