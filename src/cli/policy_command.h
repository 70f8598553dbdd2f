#pragma once
#include <string>
#include <vector>

namespace redline::cli {

// `redline policy test --config FILE CASES...`: runs data-driven red-line cases against the
// config's compiled policy and prints a readable diff for each mismatch. 0 when every case
// passes; 1 on any failure; 2 when the config or a case file does not load.
int run_policy_test(const std::string& config_path, const std::vector<std::string>& case_files,
                    bool verbose);

}  // namespace redline::cli
