// Fuzzes the red-line pipeline as the gateway runs it on an untrusted body: detectors over every
// request text, the rule evaluator, and redaction. Invariants: the verdict covers every
// candidate, the label covers what the detectors found, and no text of a redacted body still
// holds a value of a masked detector.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "config/config.h"
#include "policy/red_line_policy.h"
#include "policy/redaction.h"
#include "policy/request_text.h"

namespace {

void check(bool condition) {
  if (!condition) __builtin_trap();
}

constexpr std::string_view kConfig = R"(
[[tenants]]
name = "eu"
jurisdictions = ["EU"]
[labels]
residency = [{ label = "SECRET", jurisdictions = ["EU"] }]
[[detectors.custom]]
name = "codeword"
keywords = ["bluebird"]
patterns = ['INC-\d{6}']
raise = "SECRET"
[[rules]]
name = "deny-keys"
action = "deny"
detectors = ["private_key", "aws_access_key"]
[[rules]]
name = "mask"
action = "redact"
redact = ["email", "phone", "us_ssn", "payment_card", "iban"]
backend_tiers = ["cloud"]
[[rules]]
name = "hold-shell"
action = "require_approval"
tools = ["shell"]
[[rules]]
name = "restrict-secret"
action = "restrict"
label_at_least = "SECRET"
restrict_tiers = ["onprem"]
[[rules]]
name = "shadow"
action = "deny"
mode = "shadow"
detectors = ["email"]
[[backends]]
name = "onprem"
base_url = "http://127.0.0.1:1/v1"
tier = "onprem"
jurisdiction = "DE"
clearance = "TOP_SECRET//NOFORN/PII/PHI/PCI/EXPORT_CONTROLLED"
models = ["m"]
[[backends]]
name = "cloud"
base_url = "http://127.0.0.1:2/v1"
tier = "cloud"
jurisdiction = "US"
clearance = "CONFIDENTIAL//PII/PCI"
models = ["m"]
[[models]]
name = "chat"
targets = [{ backend = "onprem", model = "m" }, { backend = "cloud", model = "m" }]
)";

const redline::policy::RedLinePolicy& compiled_policy() {
  static const auto policy = [] {
    auto loaded = redline::config::load_config_string(kConfig, "fuzz.toml");
    check(loaded.config.has_value());
    auto compiled = redline::policy::RedLinePolicy::compile(*loaded.config);
    check(compiled.policy != nullptr);
    return compiled.policy;
  }();
  return *policy;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace redline::policy;
  const RedLinePolicy& policy = compiled_policy();
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  const std::vector<std::string> candidates{"onprem", "cloud"};

  RequestFacts facts;
  facts.tenant = size > 0 && data[0] % 2 == 0 ? "eu" : "other";
  facts.key_max = policy.lattice().top();
  facts.model = "chat";
  facts.tool_names = RedLinePolicy::tool_names(body);
  facts.findings = policy.scan_request(RequestKind::kChatCompletions, body);
  const Verdict verdict = policy.evaluate(facts, candidates);
  check(verdict.backends.size() == candidates.size());
  check(dominates(verdict.label, facts.findings.raised));
  check(verdict.outcome != Outcome::kAboveKeyClearance);

  for (const Eligibility& eligibility : verdict.backends) {
    if (!eligibility.eligible() || eligibility.redact.empty()) continue;
    RedactionVault vault;
    const auto redacted =
        policy.redact_request(RequestKind::kChatCompletions, body, eligibility.redact, vault);
    if (!redacted) continue;  // not a JSON object: the gateway sends nothing
    // Whatever was masked is gone from every text that would be sent. (Redaction works within
    // one text; a value split across texts raises the label but is not masked.)
    for_each_request_text(RequestKind::kChatCompletions, *redacted, [&](std::string_view text) {
      const Findings after = policy.scan_text(text);
      for (std::uint16_t id : eligibility.redact) check(!after.fired(id));
    });
  }
  return 0;
}
