// redline: one binary for the gateway, the model simulator and the operator commands.
#include <malloc.h>

#include <CLI/CLI.hpp>
#include <csignal>

#include "cli/audit_command.h"
#include "cli/keys_command.h"
#include "cli/mcp_command.h"
#include "cli/policy_command.h"
#include "cli/serve.h"

int main(int argc, char** argv) {
  // A client that hangs up must surface as a write error, not kill the process.
  std::signal(SIGPIPE, SIG_IGN);
  // Request-sized buffers come and go at high rates; glibc's default of returning the heap top
  // to the kernel after every burst costs a page fault per request. Keep up to 64 MiB around.
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
  mallopt(M_MMAP_THRESHOLD, 4 << 20);

  CLI::App app{
      "Redline: an OpenAI-compatible AI gateway with red lines, routing and an audit trail"};
  app.require_subcommand(1);

  std::string config_path;
  auto* serve = app.add_subcommand("serve", "Run the gateway (SIGHUP reloads, SIGTERM drains)");
  serve->add_option("-c,--config", config_path, "Gateway configuration (TOML)")->required();

  std::string sim_config;
  auto* sim = app.add_subcommand("sim", "Run a simulated OpenAI-compatible model server");
  sim->add_option("-c,--config", sim_config, "Simulator configuration (TOML)")->required();

  auto* config = app.add_subcommand("config", "Configuration commands");
  config->require_subcommand(1);
  std::string check_path;
  auto* check = config->add_subcommand("check", "Validate a configuration; print every error");
  check->add_option("file", check_path, "Gateway configuration (TOML)")->required();

  redline::cli::add_keys_command(
      app, redline::cli::lattice_label_validator(redline::policy::LabelLattice::defaults()));
  redline::cli::add_audit_command(app);
  redline::cli::add_mcp_command(app);

  auto* policy = app.add_subcommand("policy", "Red-line policy commands");
  policy->require_subcommand(1);
  std::string policy_config;
  std::vector<std::string> case_files;
  bool verbose = false;
  auto* policy_test =
      policy->add_subcommand("test", "Run red-line test cases against a configuration");
  policy_test->add_option("-c,--config", policy_config, "Gateway configuration (TOML)")->required();
  policy_test->add_option("cases", case_files, "Case files")->required();
  policy_test->add_flag("-v,--verbose", verbose, "List passing cases too");

  CLI11_PARSE(app, argc, argv);

  if (*serve) return redline::cli::run_gateway(config_path);
  if (*sim) return redline::cli::run_simulator(sim_config);
  if (*check) return redline::cli::check_config(check_path);
  if (*policy_test) return redline::cli::run_policy_test(policy_config, case_files, verbose);
  return 1;
}
