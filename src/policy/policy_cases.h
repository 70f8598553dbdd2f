#pragma once
// Data-driven red-line tests that operators keep next to their config (`redline policy test`).
// A case file reads like this:
//
//   # a comment
//   case email is personal data
//   key tenant=acme default=PUBLIC max=SECRET id=k_test     # all optional
//   model chat                        # the alias asked for (default: the first alias)
//   classification CONFIDENTIAL       # optional X-Redline-Classification
//   text write to bob@example.com     # a one-message chat request; \n \t \\ \uXXXX decode
//   body {"model":"chat","messages":[...]}   # or a whole request body (one line)
//   expect label INTERNAL//PII
//   expect detectors email=1          # "none" for a clean text
//   expect action allow               # allow | redact | deny | hold | refuse | no_backend
//   expect rule no-secrets            # the rule that decided (deny, hold) or "none"
//   expect eligible edge, cloud       # "none" when no backend may receive it
//
// Each case starts at a `case` line; only the expectations written are checked.
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace redline::policy {

class RedLinePolicy;

struct PolicyCase {
  std::string name;
  int line = 0;
  std::string tenant = "default";
  std::string key_id = "k_policy_test";
  std::string default_label;
  std::string max_label;
  std::string model;
  std::string classification;
  std::vector<std::string> tools;
  std::string body;
  // Expectations; an empty string is "not checked".
  std::string label;
  std::string detectors;
  std::string action;
  std::string rule;
  std::string eligible;
};

struct CaseFile {
  std::vector<PolicyCase> cases;
  std::vector<std::string> errors;  // "cases.test:12: unknown directive 'expct'"
};

CaseFile parse_case_file(std::string_view text, const std::string& source_name,
                         const std::string& default_model);

struct CaseResult {
  const PolicyCase* test = nullptr;
  std::vector<std::string> differences;  // "label: expected X, got Y"
  bool passed() const { return differences.empty(); }
};

// Runs one case. `backends_for` names the backends an alias may reach.
CaseResult run_case(const RedLinePolicy& policy, const PolicyCase& test,
                    const std::function<std::vector<std::string>(std::string_view)>& backends_for);

}  // namespace redline::policy
