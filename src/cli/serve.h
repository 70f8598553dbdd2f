#pragma once
#include <string>

namespace redline::cli {

// `redline serve`: runs the gateway until SIGTERM/SIGINT (drain) — SIGHUP reloads the config.
int run_gateway(const std::string& config_path);
// `redline sim`: runs the simulated model server until SIGTERM/SIGINT.
int run_simulator(const std::string& config_path);
// `redline config check`: prints every error with its location; 0 when valid.
int check_config(const std::string& config_path);

}  // namespace redline::cli
