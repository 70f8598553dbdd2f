#pragma once
// The red lines of one configuration, compiled: the label lattice, the detector database, every
// backend's clearance and jurisdiction, tenant jurisdictions, residency rules and the red-line
// rules. Evaluating a request is plain logic over plain values, so the gateway, `redline policy
// test` and the agent runtime reach the same verdict for the same request.
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "policy/detectors.h"
#include "policy/label.h"
#include "policy/redaction.h"
#include "policy/request_text.h"

namespace redline::policy {

struct BackendProfile {
  std::string name;
  config::Tier tier = config::Tier::kCloud;
  std::string jurisdiction;  // country or region code
  std::string region;
  std::string operator_name;
  Label clearance;
};

struct CompiledRule {
  std::string name;
  config::RuleAction action = config::RuleAction::kLog;
  config::RuleMode mode = config::RuleMode::kEnforce;
  std::vector<std::uint16_t> detectors;  // any of them must have fired
  std::optional<Label> label_at_least;   // the request label must dominate it
  std::vector<std::string> tenants;
  std::vector<std::string> keys;
  std::vector<std::string> models;
  std::vector<std::string> tools;
  std::vector<config::Tier> backend_tiers;
  std::vector<std::string> backend_jurisdictions;
  std::vector<std::uint16_t> redact;  // detector ids whose matches are replaced
  std::vector<config::Tier> restrict_tiers;
  std::vector<std::string> restrict_jurisdictions;
  std::vector<std::string> restrict_backends;
  std::chrono::milliseconds approval_timeout{60000};
  std::string message;

  bool per_backend() const { return !backend_tiers.empty() || !backend_jurisdictions.empty(); }
};

struct CompiledResidency {
  Label label;
  std::vector<std::string> jurisdictions;
  std::vector<config::Tier> tiers;
};

// What detectors found in the texts of one request (or one response).
struct Findings {
  Label raised;                       // lub of every hit's raise
  std::vector<std::uint32_t> counts;  // per detector id
  std::uint32_t total = 0;

  bool fired(std::uint16_t detector) const {
    return detector < counts.size() && counts[detector] > 0;
  }
};

// Who is asking and what they declared, as the gateway established it.
struct RequestFacts {
  std::string tenant;
  std::string key_id;
  Label key_default;
  Label key_max;
  std::optional<Label> declared;  // X-Redline-Classification
  std::string model;              // the alias the client asked for
  std::vector<std::string> tool_names;
  Findings findings;
};

enum class Outcome {
  kAllow,
  kDenyByRule,         // an enforced deny rule matched
  kAboveKeyClearance,  // the label is above what the key may send
  kHold,               // require_approval: wait for an admin
};

struct RuleHit {
  const CompiledRule* rule = nullptr;
  bool applied = false;  // false in shadow mode
  std::string backend;   // set for per-backend rules
};

// Why a backend may not receive this request; "" when it may.
struct Eligibility {
  std::string reason;
  std::vector<std::uint16_t> redact;  // detector ids to redact before sending there, sorted
  bool eligible() const { return reason.empty(); }
};

struct Verdict {
  Label label;
  Outcome outcome = Outcome::kAllow;
  const CompiledRule* deciding_rule = nullptr;  // for kDenyByRule and kHold
  std::vector<Eligibility> backends;            // parallel to the candidates evaluated
  std::vector<RuleHit> hits;
  bool any_eligible() const;
  bool redacts() const;
};

class RedLinePolicy {
 public:
  struct CompileResult {
    std::shared_ptr<const RedLinePolicy> policy;
    std::vector<config::ConfigError> errors;
  };
  // Resolves every label, detector and rule reference of a loaded config; errors point into the
  // config file.
  static CompileResult compile(const config::Config& config);

  const LabelLattice& lattice() const { return lattice_; }
  const DetectorSet& detectors() const { return *detectors_; }
  const std::vector<BackendProfile>& backends() const { return backends_; }
  const BackendProfile* find_backend(std::string_view name) const;
  // The least label the results of an MCP server's tools carry ([[mcp_servers]] result_label).
  Label tool_result_floor(std::string_view server) const;
  const std::vector<CompiledRule>& rules() const { return rules_; }

  // Scans every text the upstream would see.
  Findings scan_request(RequestKind kind, std::string_view body) const;
  // Scans model output (a response body, or the text of some stream deltas).
  Findings scan_text(std::string_view text) const;
  // The names of the tools a request declares (tools[].function.name, functions[].name).
  static std::vector<std::string> tool_names(std::string_view body);

  // The verdict for one request against the named candidate backends (the alias chain's).
  Verdict evaluate(const RequestFacts& facts, const std::vector<std::string>& candidates) const;

  // The body to send to a backend whose eligibility asks for redaction: each match of the
  // listed detectors replaced by its vault placeholder. nullopt when the body cannot be
  // rewritten (not a JSON object): such a body must not be sent at all.
  std::optional<std::string> redact_request(RequestKind kind, std::string_view body,
                                            const std::vector<std::uint16_t>& detectors,
                                            RedactionVault& vault) const;

 private:
  RedLinePolicy() = default;
  void add_findings(std::string_view text, std::vector<DetectorMatch>& matches,
                    Findings& findings) const;
  bool rule_matches(const CompiledRule& rule, const RequestFacts& facts, const Label& label) const;
  std::string jurisdiction_block(const BackendProfile& backend, const RequestFacts& facts,
                                 const Label& label) const;

  LabelLattice lattice_ = LabelLattice::defaults();
  std::shared_ptr<const DetectorSet> detectors_;
  std::vector<BackendProfile> backends_;
  std::vector<config::TenantSettings> tenants_;
  std::vector<CompiledResidency> residency_;
  std::vector<CompiledRule> rules_;
  std::vector<std::pair<std::string, Label>> tool_result_floors_;
};

std::string_view to_string(Outcome outcome);

}  // namespace redline::policy
