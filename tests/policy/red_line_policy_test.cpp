#include "policy/red_line_policy.h"

#include <gtest/gtest.h>

#include "policy/policy_cases.h"

namespace redline::policy {
namespace {

constexpr std::string_view kConfig = R"(
[labels]
residency = [{ label = "SECRET", jurisdictions = ["EU"] }]
[[tenants]]
name = "eu-only"
jurisdictions = ["EU"]
[[detectors.custom]]
name = "codeword"
keywords = ["bluebird"]
raise = "SECRET"
[[rules]]
name = "no-keys"
action = "deny"
detectors = ["aws_access_key"]
[[rules]]
name = "mask-for-cloud"
action = "redact"
redact = ["email"]
backend_tiers = ["cloud"]
[[rules]]
name = "review-shell"
action = "require_approval"
tools = ["shell"]
[[rules]]
name = "shadow-ssn"
action = "deny"
mode = "shadow"
detectors = ["us_ssn"]
[[backends]]
name = "onprem"
base_url = "http://127.0.0.1:1/v1"
tier = "onprem"
jurisdiction = "DE"
clearance = "SECRET//PII"
models = ["m"]
[[backends]]
name = "cloud"
base_url = "http://127.0.0.1:2/v1"
tier = "cloud"
jurisdiction = "US"
clearance = "CONFIDENTIAL//PII"
models = ["m"]
[[models]]
name = "chat"
targets = [{ backend = "onprem", model = "m" }, { backend = "cloud", model = "m" }]
)";

std::shared_ptr<const RedLinePolicy> compile(std::string_view text) {
  auto loaded = config::load_config_string(text, "test.toml");
  EXPECT_TRUE(loaded.errors.empty()) << config::format_errors(loaded.errors);
  if (!loaded.config) return nullptr;
  auto compiled = RedLinePolicy::compile(*loaded.config);
  EXPECT_TRUE(compiled.errors.empty()) << config::format_errors(compiled.errors);
  return compiled.policy;
}

std::string chat(std::string_view content) {
  return std::string(R"({"model":"chat","messages":[{"role":"user","content":")") +
         std::string(content) + "\"}]}";
}

class RedLinePolicyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    policy_ = compile(kConfig);
    ASSERT_NE(policy_, nullptr);
  }

  Verdict evaluate(std::string_view body, std::string tenant = "acme",
                   std::optional<Label> declared = std::nullopt) {
    RequestFacts facts;
    facts.tenant = std::move(tenant);
    facts.key_max = policy_->lattice().top();
    facts.declared = declared;
    facts.model = "chat";
    facts.tool_names = RedLinePolicy::tool_names(body);
    facts.findings = policy_->scan_request(RequestKind::kChatCompletions, body);
    return policy_->evaluate(facts, {"onprem", "cloud"});
  }

  std::string label(const Verdict& verdict) { return policy_->lattice().format(verdict.label); }

  std::shared_ptr<const RedLinePolicy> policy_;
};

TEST_F(RedLinePolicyTest, CleanRequestMayGoAnywhere) {
  Verdict verdict = evaluate(chat("what is the weather like"));
  EXPECT_EQ(label(verdict), "PUBLIC");
  EXPECT_EQ(verdict.outcome, Outcome::kAllow);
  EXPECT_TRUE(verdict.backends[0].eligible());
  EXPECT_TRUE(verdict.backends[1].eligible());
  EXPECT_FALSE(verdict.redacts());
}

TEST_F(RedLinePolicyTest, ClearanceDecidesEligibility) {
  Verdict verdict = evaluate(chat("the bluebird flies at dawn"));
  EXPECT_EQ(label(verdict), "SECRET");
  EXPECT_TRUE(verdict.backends[0].eligible());
  EXPECT_EQ(verdict.backends[1].reason, "cleared only to CONFIDENTIAL//PII");
}

TEST_F(RedLinePolicyTest, DeclaredLabelRaisesButNeverLowers) {
  auto secret = policy_->lattice().parse("SECRET");
  EXPECT_EQ(label(evaluate(chat("hello"), "acme", secret)), "SECRET");
  auto lowest = policy_->lattice().parse("PUBLIC");
  EXPECT_EQ(label(evaluate(chat("ssn 123-45-6789"), "acme", lowest)), "CONFIDENTIAL//PII");
}

TEST_F(RedLinePolicyTest, AboveKeyMaximumIsRefused) {
  RequestFacts facts;
  facts.key_max = *policy_->lattice().parse("INTERNAL");
  facts.declared = policy_->lattice().parse("CONFIDENTIAL");
  facts.findings = policy_->scan_request(RequestKind::kChatCompletions, chat("hi"));
  Verdict verdict = policy_->evaluate(facts, {"onprem", "cloud"});
  EXPECT_EQ(verdict.outcome, Outcome::kAboveKeyClearance);
  EXPECT_FALSE(verdict.any_eligible());
}

TEST_F(RedLinePolicyTest, TenantJurisdictionAndResidencyExcludeBackends) {
  Verdict eu = evaluate(chat("hello"), "eu-only");
  EXPECT_TRUE(eu.backends[0].eligible()) << eu.backends[0].reason;  // DE is in the EU
  EXPECT_FALSE(eu.backends[1].eligible());
  EXPECT_NE(eu.backends[1].reason.find("eu-only"), std::string::npos);
}

TEST_F(RedLinePolicyTest, DenyRuleWinsAndNamesItself) {
  Verdict verdict = evaluate(chat("key AKIAIOSFODNN7EXAMPLE"));
  EXPECT_EQ(verdict.outcome, Outcome::kDenyByRule);
  ASSERT_NE(verdict.deciding_rule, nullptr);
  EXPECT_EQ(verdict.deciding_rule->name, "no-keys");
}

TEST_F(RedLinePolicyTest, PerBackendRedactionOnlyForCloud) {
  Verdict verdict = evaluate(chat("write to bob@example.com"));
  EXPECT_TRUE(verdict.backends[0].redact.empty());
  ASSERT_EQ(verdict.backends[1].redact.size(), 1u);
  RedactionVault vault;
  std::string body =
      policy_
          ->redact_request(RequestKind::kChatCompletions, chat("write to bob@example.com"),
                           verdict.backends[1].redact, vault)
          .value();
  EXPECT_EQ(body.find("bob@example.com"), std::string::npos);
  EXPECT_NE(body.find("[REDACTED_EMAIL_1]"), std::string::npos);
}

TEST_F(RedLinePolicyTest, ShadowRulesAreRecordedButNotApplied) {
  Verdict verdict = evaluate(chat("ssn 123-45-6789"));
  EXPECT_EQ(verdict.outcome, Outcome::kAllow);
  ASSERT_EQ(verdict.hits.size(), 1u);
  EXPECT_EQ(verdict.hits[0].rule->name, "shadow-ssn");
  EXPECT_FALSE(verdict.hits[0].applied);
}

TEST_F(RedLinePolicyTest, ToolConditionHoldsForApproval) {
  Verdict verdict = evaluate(R"({"model":"chat","messages":[{"role":"user","content":"ls"}],)"
                             R"("tools":[{"type":"function","function":{"name":"shell"}}]})");
  EXPECT_EQ(verdict.outcome, Outcome::kHold);
  EXPECT_EQ(verdict.deciding_rule->name, "review-shell");
}

TEST(RedLinePolicyCompile, ErrorsPointIntoTheFile) {
  auto loaded = config::load_config_string(R"([[rules]]
name = "r"
action = "deny"
detectors = ["emial"]
[[backends]]
name = "b"
base_url = "http://127.0.0.1:1/v1"
clearance = "SECRET//NOPE"
models = ["m"]
[[models]]
name = "chat"
targets = [{ backend = "b", model = "m" }]
)",
                                           "bad.toml");
  ASSERT_TRUE(loaded.config);
  auto compiled = RedLinePolicy::compile(*loaded.config);
  EXPECT_EQ(compiled.policy, nullptr);
  ASSERT_EQ(compiled.errors.size(), 2u) << config::format_errors(compiled.errors);
  const std::string text = config::format_errors(compiled.errors);
  EXPECT_NE(text.find("bad.toml:4:14: rules[0].detectors[0]: unknown detector 'emial'"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("bad.toml:8:13: backends[0].clearance: invalid label"), std::string::npos)
      << text;
}

TEST(PolicyCases, ParsesAndReportsDifferences) {
  auto policy = compile(kConfig);
  ASSERT_NE(policy, nullptr);
  CaseFile file = parse_case_file(R"(# comment
case bluebird is secret
text the bluebird \u0062ird
expect label SECRET
expect eligible onprem
expect action allow

case wrong on purpose
text hello
expect label SECRET
expect detectors email
)",
                                  "cases.test", "chat");
  ASSERT_TRUE(file.errors.empty());
  ASSERT_EQ(file.cases.size(), 2u);
  auto backends = [](std::string_view) { return std::vector<std::string>{"onprem", "cloud"}; };
  EXPECT_TRUE(run_case(*policy, file.cases[0], backends).passed());
  CaseResult wrong = run_case(*policy, file.cases[1], backends);
  ASSERT_EQ(wrong.differences.size(), 2u);
  EXPECT_NE(wrong.differences[0].find("label: expected SECRET"), std::string::npos);
  EXPECT_NE(wrong.differences[1].find("detectors: expected email"), std::string::npos);

  CaseFile broken = parse_case_file("case x\nexpct label SECRET\n", "b.test", "chat");
  ASSERT_EQ(broken.errors.size(), 2u);
  EXPECT_EQ(broken.errors[0].rfind("b.test:2: unknown directive 'expct'", 0), 0u);
}

}  // namespace
}  // namespace redline::policy
