#include "cli/policy_command.h"

#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/serve.h"
#include "policy/policy_cases.h"
#include "policy/red_line_policy.h"

namespace redline::cli {

int run_policy_test(const std::string& config_path, const std::vector<std::string>& case_files,
                    bool verbose) {
  LoadedGateway loaded = load_gateway(config_path);
  if (!loaded.config) {
    std::cerr << config::format_errors(loaded.errors);
    return 2;
  }
  const config::Config& config = *loaded.config;
  auto backends_for = [&config](std::string_view alias) { return config.backends_for(alias); };
  const std::string default_model = config.models.empty() ? "" : config.models.front().name;

  int cases = 0;
  int failures = 0;
  for (const std::string& path : case_files) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      std::cerr << path << ": cannot read\n";
      return 2;
    }
    std::stringstream text;
    text << in.rdbuf();
    policy::CaseFile file = policy::parse_case_file(text.str(), path, default_model);
    if (!file.errors.empty()) {
      for (const auto& error : file.errors) std::cerr << error << "\n";
      return 2;
    }
    for (const policy::PolicyCase& test : file.cases) {
      ++cases;
      policy::CaseResult result = policy::run_case(*loaded.policy, test, backends_for);
      if (result.passed()) {
        if (verbose) std::cout << "ok   " << path << ":" << test.line << " " << test.name << "\n";
        continue;
      }
      ++failures;
      std::cout << "FAIL " << path << ":" << test.line << " " << test.name << "\n";
      for (const auto& difference : result.differences) std::cout << "     " << difference << "\n";
    }
  }
  std::cout << cases << " cases, " << (cases - failures) << " passed, " << failures << " failed\n";
  return failures == 0 ? 0 : 1;
}

}  // namespace redline::cli
