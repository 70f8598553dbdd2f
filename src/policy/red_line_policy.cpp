#include "policy/red_line_policy.h"

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <cctype>
#include <set>
#include <unordered_set>

namespace redline::policy {
namespace {

bool iequal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::toupper(static_cast<unsigned char>(x)) ==
                  std::toupper(static_cast<unsigned char>(y));
         });
}

template <typename T>
bool contains(const std::vector<T>& values, const T& value) {
  return std::find(values.begin(), values.end(), value) != values.end();
}

// Operators write "EU" for "any member state": a backend in DE is in EU.
constexpr std::array<std::string_view, 27> kEuMembers = {
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE",
    "IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE"};

bool code_covers(std::string_view allowed, std::string_view code) {
  if (code.empty()) return false;
  if (iequal(allowed, code)) return true;
  if (iequal(allowed, "EU")) {
    return std::any_of(kEuMembers.begin(), kEuMembers.end(),
                       [&](std::string_view member) { return iequal(member, code); });
  }
  return false;
}

// A backend is in a jurisdiction when its jurisdiction or its region code is covered.
bool in_jurisdiction(const BackendProfile& backend, const std::vector<std::string>& allowed) {
  return std::any_of(allowed.begin(), allowed.end(), [&](const std::string& code) {
    return code_covers(code, backend.jurisdiction) || code_covers(code, backend.region);
  });
}

std::string join(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& word : words) {
    if (!out.empty()) out += ", ";
    out += word;
  }
  return out;
}

std::string tiers_text(const std::vector<config::Tier>& tiers) {
  std::vector<std::string> names;
  for (config::Tier tier : tiers) names.emplace_back(config::to_string(tier));
  return join(names);
}

std::string where_text(const BackendProfile& backend) {
  if (!backend.jurisdiction.empty()) return backend.jurisdiction;
  if (!backend.region.empty()) return backend.region;
  return "an undeclared jurisdiction";
}

// Only detectors that fired: a redact rule over a clean text changes nothing.
void add_detector_ids(std::vector<std::uint16_t>& into, const std::vector<std::uint16_t>& ids,
                      const Findings& findings) {
  for (std::uint16_t id : ids) {
    if (findings.fired(id) && !contains(into, id)) into.push_back(id);
  }
}

// Each round of redaction can expose at most a few new matches; real text settles in one or two.
constexpr int kMaxRedactionRounds = 4;

class Compiler {
 public:
  Compiler(const config::Config& config, std::vector<config::ConfigError>& errors)
      : config_(config), errors_(errors) {}

  void error(const config::Located& at, std::string message) {
    errors_.push_back(config::ConfigError::at(config_.source, at, std::move(message)));
  }

  std::optional<Label> label(const LabelLattice& lattice, const config::Located& text) {
    std::string problem;
    auto parsed = lattice.parse(text.value, &problem);
    if (!parsed) error(text, "invalid label '" + text.value + "': " + problem);
    return parsed;
  }

  std::optional<std::uint16_t> detector(const DetectorSet& set, const config::Located& name) {
    for (std::uint16_t id = 0; id < set.size(); ++id) {
      if (set.spec(id).name == name.value) return id;
    }
    std::vector<std::string> known;
    for (std::uint16_t id = 0; id < set.size(); ++id) known.push_back(set.spec(id).name);
    error(name, "unknown detector '" + name.value + "' (known: " + join(known) + ")");
    return std::nullopt;
  }

 private:
  const config::Config& config_;
  std::vector<config::ConfigError>& errors_;
};

}  // namespace

bool Verdict::any_eligible() const {
  return std::any_of(backends.begin(), backends.end(),
                     [](const Eligibility& backend) { return backend.eligible(); });
}

bool Verdict::redacts() const {
  return std::any_of(backends.begin(), backends.end(), [](const Eligibility& backend) {
    return backend.eligible() && !backend.redact.empty();
  });
}

std::string_view to_string(Outcome outcome) {
  switch (outcome) {
    case Outcome::kAllow:
      return "allow";
    case Outcome::kDenyByRule:
      return "deny";
    case Outcome::kAboveKeyClearance:
      return "above_key_clearance";
    case Outcome::kHold:
      return "hold";
  }
  return "allow";
}

RedLinePolicy::CompileResult RedLinePolicy::compile(const config::Config& config) {
  CompileResult result;
  Compiler compiler(config, result.errors);
  std::shared_ptr<RedLinePolicy> policy(new RedLinePolicy());

  const config::Located labels_at{"", config.labels.line, config.labels.column, "labels"};
  std::string lattice_error;
  auto lattice = LabelLattice::make(config.labels.levels, config.labels.caveats, &lattice_error);
  if (!lattice) {
    compiler.error(labels_at, lattice_error);
    return result;  // every other label depends on the lattice
  }
  policy->lattice_ = *lattice;

  // Built-ins first, with the operator's overrides; then custom detectors.
  std::vector<DetectorSpec> specs = builtin_detector_specs(policy->lattice_);
  std::set<std::string, std::less<>> custom_names;
  for (const config::DetectorSettings& settings : config.detectors) {
    auto it = std::find_if(specs.begin(), specs.end(), [&](const DetectorSpec& spec) {
      return spec.name == settings.name.value;
    });
    if (!settings.custom && it == specs.end()) {
      std::vector<std::string> known;
      for (const auto& spec : specs) known.push_back(spec.name);
      compiler.error(settings.name, "unknown built-in detector '" + settings.name.value +
                                        "' (built-ins: " + join(known) +
                                        "; add your own under [[detectors.custom]])");
      continue;
    }
    if (settings.custom) {
      if (it != specs.end() || !custom_names.insert(settings.name.value).second) {
        compiler.error(settings.name, "duplicate detector name '" + settings.name.value + "'");
        continue;
      }
      DetectorSpec spec;
      spec.name = settings.name.value;
      spec.patterns = settings.patterns;
      spec.keywords = settings.keywords;
      specs.push_back(std::move(spec));
      it = specs.end() - 1;
    }
    if (settings.raise) {
      if (auto raise = compiler.label(policy->lattice_, *settings.raise)) it->raises = *raise;
    }
    if (settings.enabled) it->enabled = *settings.enabled;
  }
  if (!result.errors.empty()) return result;
  std::string detector_error;
  policy->detectors_ = DetectorSet::compile(policy->lattice_, specs, &detector_error);
  if (!policy->detectors_) {
    compiler.error(
        labels_at.line > 0 || config.detectors.empty() ? labels_at : config.detectors.front().name,
        "detectors do not compile: " + detector_error);
    return result;
  }

  for (const config::Backend& backend : config.backends) {
    BackendProfile profile{backend.name,   backend.tier,          backend.jurisdiction,
                           backend.region, backend.operator_name, Label{}};
    if (auto clearance = compiler.label(policy->lattice_, backend.clearance)) {
      profile.clearance = *clearance;
    }
    policy->backends_.push_back(std::move(profile));
  }

  for (const config::McpServerSettings& server : config.mcp_servers) {
    Label floor;
    if (!server.result_label.value.empty()) {
      if (auto parsed = compiler.label(policy->lattice_, server.result_label)) floor = *parsed;
    }
    policy->tool_result_floors_.emplace_back(server.name, floor);
  }

  std::set<std::string, std::less<>> tenant_names;
  for (const config::TenantSettings& tenant : config.tenants) {
    if (!tenant_names.insert(tenant.name).second) {
      compiler.error({tenant.name, 0, 0, "tenants"}, "duplicate tenant '" + tenant.name + "'");
    }
  }
  policy->tenants_ = config.tenants;

  for (const config::ResidencyRule& rule : config.labels.residency) {
    if (auto label = compiler.label(policy->lattice_, rule.label)) {
      policy->residency_.push_back({*label, rule.jurisdictions, rule.tiers});
    }
  }

  std::set<std::string, std::less<>> rule_names;
  for (const config::RuleSettings& settings : config.rules) {
    if (!rule_names.insert(settings.name.value).second) {
      compiler.error(settings.name, "duplicate rule name '" + settings.name.value + "'");
    }
    CompiledRule rule;
    rule.name = settings.name.value;
    rule.action = settings.action;
    rule.mode = settings.mode;
    for (const auto& name : settings.detectors) {
      if (auto id = compiler.detector(*policy->detectors_, name)) rule.detectors.push_back(*id);
    }
    if (settings.label_at_least) {
      rule.label_at_least = compiler.label(policy->lattice_, *settings.label_at_least);
    }
    for (const auto& name : settings.redact) {
      if (auto id = compiler.detector(*policy->detectors_, name)) rule.redact.push_back(*id);
    }
    if (rule.action == config::RuleAction::kRedact && rule.redact.empty()) {
      rule.redact = rule.detectors;  // "redact what made this rule fire"
    }
    for (const auto& model : settings.models) {
      if (config.find_alias(model) == nullptr) {
        compiler.error(settings.name,
                       "rule '" + rule.name + "' names unknown model alias '" + model + "'");
      }
    }
    for (const auto& backend : settings.restrict_backends) {
      if (config.find_backend(backend) == nullptr) {
        compiler.error(settings.name,
                       "rule '" + rule.name + "' restricts to unknown backend '" + backend + "'");
      }
    }
    rule.tenants = settings.tenants;
    rule.keys = settings.keys;
    rule.models = settings.models;
    rule.tools = settings.tools;
    rule.backend_tiers = settings.backend_tiers;
    rule.backend_jurisdictions = settings.backend_jurisdictions;
    rule.restrict_tiers = settings.restrict_tiers;
    rule.restrict_jurisdictions = settings.restrict_jurisdictions;
    rule.restrict_backends = settings.restrict_backends;
    rule.approval_timeout = settings.approval_timeout;
    rule.message = settings.message;
    policy->rules_.push_back(std::move(rule));
  }
  if (result.errors.empty()) result.policy = std::move(policy);
  return result;
}

Label RedLinePolicy::tool_result_floor(std::string_view server) const {
  for (const auto& [name, floor] : tool_result_floors_) {
    if (name == server) return floor;
  }
  return Label{};
}

const BackendProfile* RedLinePolicy::find_backend(std::string_view name) const {
  for (const auto& backend : backends_) {
    if (backend.name == name) return &backend;
  }
  return nullptr;
}

void RedLinePolicy::add_findings(std::string_view text, std::vector<DetectorMatch>& matches,
                                 Findings& findings) const {
  matches.clear();
  if (!detectors_->scan(text, matches)) {
    // A scan that could not finish proves nothing: fail closed at the top of the lattice.
    findings.raised = lattice_.top();
  }
  for (const DetectorMatch& match : matches) {
    ++findings.counts[match.detector];
    ++findings.total;
    findings.raised = least_upper_bound(findings.raised, match.raises);
  }
}

Findings RedLinePolicy::scan_text(std::string_view text) const {
  Findings findings;
  findings.counts.assign(detectors_->size(), 0);
  std::vector<DetectorMatch> matches;
  add_findings(text, matches, findings);
  return findings;
}

Findings RedLinePolicy::scan_request(RequestKind kind, std::string_view body) const {
  Findings findings;
  findings.counts.assign(detectors_->size(), 0);
  std::vector<DetectorMatch> matches;
  // All texts end to end, scanned once: a value split across content parts or messages is
  // classified as if it were whole. A join can only add matches, never hide one.
  std::string joined;
  for_each_request_text(kind, body, [&](std::string_view text) { joined.append(text); });
  add_findings(joined, matches, findings);
  return findings;
}

std::vector<std::string> RedLinePolicy::tool_names(std::string_view body) {
  std::vector<std::string> names;
  if (body.find("\"tools\"") == std::string_view::npos &&
      body.find("\"functions\"") == std::string_view::npos) {
    return names;
  }
  boost::system::error_code ec;
  boost::json::value root = boost::json::parse(body, ec);
  if (ec || !root.is_object()) return names;
  auto add = [&](const boost::json::value* name) {
    if (name != nullptr && name->is_string()) names.emplace_back(name->as_string());
  };
  if (const auto* tools = root.as_object().if_contains("tools"); tools && tools->is_array()) {
    for (const auto& tool : tools->as_array()) {
      if (!tool.is_object()) continue;
      const auto* function = tool.as_object().if_contains("function");
      if (function && function->is_object()) add(function->as_object().if_contains("name"));
      add(tool.as_object().if_contains("name"));  // Responses API function tools
    }
  }
  if (const auto* functions = root.as_object().if_contains("functions");
      functions && functions->is_array()) {
    for (const auto& function : functions->as_array()) {
      if (function.is_object()) add(function.as_object().if_contains("name"));
    }
  }
  return names;
}

bool RedLinePolicy::rule_matches(const CompiledRule& rule, const RequestFacts& facts,
                                 const Label& label) const {
  if (!rule.detectors.empty() &&
      std::none_of(rule.detectors.begin(), rule.detectors.end(),
                   [&](std::uint16_t id) { return facts.findings.fired(id); })) {
    return false;
  }
  // A redact rule with nothing of its own to redact has nothing to do.
  if (rule.action == config::RuleAction::kRedact &&
      std::none_of(rule.redact.begin(), rule.redact.end(),
                   [&](std::uint16_t id) { return facts.findings.fired(id); })) {
    return false;
  }
  if (rule.label_at_least && !dominates(label, *rule.label_at_least)) return false;
  if (!rule.tenants.empty() && !contains(rule.tenants, facts.tenant)) return false;
  if (!rule.keys.empty() && !contains(rule.keys, facts.key_id)) return false;
  if (!rule.models.empty() && !contains(rule.models, facts.model)) return false;
  if (!rule.tools.empty() &&
      std::none_of(facts.tool_names.begin(), facts.tool_names.end(),
                   [&](const std::string& tool) { return contains(rule.tools, tool); })) {
    return false;
  }
  return true;
}

std::string RedLinePolicy::jurisdiction_block(const BackendProfile& backend,
                                              const RequestFacts& facts, const Label& label) const {
  for (const auto& tenant : tenants_) {
    if (tenant.name == facts.tenant && !tenant.jurisdictions.empty() &&
        !in_jurisdiction(backend, tenant.jurisdictions)) {
      return "in " + where_text(backend) + ", outside tenant '" + facts.tenant +
             "' jurisdictions (" + join(tenant.jurisdictions) + ")";
    }
  }
  for (const auto& residency : residency_) {
    if (!dominates(label, residency.label)) continue;
    if (!residency.jurisdictions.empty() && !in_jurisdiction(backend, residency.jurisdictions)) {
      return "in " + where_text(backend) + ", but " + lattice_.format(residency.label) +
             " and above must stay in " + join(residency.jurisdictions);
    }
    if (!residency.tiers.empty() && !contains(residency.tiers, backend.tier)) {
      return "tier " + std::string(config::to_string(backend.tier)) + ", but " +
             lattice_.format(residency.label) + " and above must stay on " +
             tiers_text(residency.tiers);
    }
  }
  return "";
}

Verdict RedLinePolicy::evaluate(const RequestFacts& facts,
                                const std::vector<std::string>& candidates) const {
  Verdict verdict;
  Label label = least_upper_bound(facts.key_default, facts.findings.raised);
  if (facts.declared) label = least_upper_bound(label, *facts.declared);
  verdict.label = label;
  verdict.backends.resize(candidates.size());
  if (!dominates(facts.key_max, label)) {
    verdict.outcome = Outcome::kAboveKeyClearance;
    for (auto& backend : verdict.backends) backend.reason = "the key may not send this label";
    return verdict;
  }

  std::vector<std::uint16_t> redact_everywhere;
  std::vector<const CompiledRule*> restrictions;
  std::vector<const CompiledRule*> per_backend;
  for (const CompiledRule& rule : rules_) {
    if (!rule_matches(rule, facts, label)) continue;
    if (rule.per_backend()) {
      per_backend.push_back(&rule);
      continue;
    }
    const bool enforce = rule.mode == config::RuleMode::kEnforce;
    verdict.hits.push_back({&rule, enforce, ""});
    if (!enforce) continue;
    switch (rule.action) {
      case config::RuleAction::kDeny:
        if (verdict.outcome != Outcome::kDenyByRule) {
          verdict.outcome = Outcome::kDenyByRule;
          verdict.deciding_rule = &rule;
        }
        break;
      case config::RuleAction::kRequireApproval:
        if (verdict.outcome == Outcome::kAllow) {
          verdict.outcome = Outcome::kHold;
          verdict.deciding_rule = &rule;
        }
        break;
      case config::RuleAction::kRedact:
        add_detector_ids(redact_everywhere, rule.redact, facts.findings);
        break;
      case config::RuleAction::kRestrict:
        restrictions.push_back(&rule);
        break;
      case config::RuleAction::kLog:
        break;
    }
  }

  for (std::size_t i = 0; i < candidates.size(); ++i) {
    Eligibility& eligibility = verdict.backends[i];
    const BackendProfile* backend = find_backend(candidates[i]);
    if (backend == nullptr) {
      eligibility.reason = "not configured";
      continue;
    }
    if (!dominates(backend->clearance, label)) {
      eligibility.reason = "cleared only to " + lattice_.format(backend->clearance);
      continue;
    }
    if (auto blocked = jurisdiction_block(*backend, facts, label); !blocked.empty()) {
      eligibility.reason = std::move(blocked);
      continue;
    }
    for (const CompiledRule* rule : restrictions) {
      const bool tier_ok =
          rule->restrict_tiers.empty() || contains(rule->restrict_tiers, backend->tier);
      const bool place_ok = rule->restrict_jurisdictions.empty() ||
                            in_jurisdiction(*backend, rule->restrict_jurisdictions);
      const bool name_ok =
          rule->restrict_backends.empty() || contains(rule->restrict_backends, backend->name);
      if (!tier_ok || !place_ok || !name_ok) {
        eligibility.reason = "excluded by rule '" + rule->name + "'";
        break;
      }
    }
    if (!eligibility.eligible()) continue;
    eligibility.redact = redact_everywhere;
    for (const CompiledRule* rule : per_backend) {
      const bool tier_match =
          rule->backend_tiers.empty() || contains(rule->backend_tiers, backend->tier);
      const bool place_match = rule->backend_jurisdictions.empty() ||
                               in_jurisdiction(*backend, rule->backend_jurisdictions);
      if (!tier_match || !place_match) continue;
      const bool enforce = rule->mode == config::RuleMode::kEnforce;
      verdict.hits.push_back({rule, enforce, backend->name});
      if (!enforce) continue;
      if (rule->action == config::RuleAction::kDeny) {
        eligibility.reason = "excluded by rule '" + rule->name + "'";
        eligibility.redact.clear();
        break;
      }
      if (rule->action == config::RuleAction::kRedact) {
        add_detector_ids(eligibility.redact, rule->redact, facts.findings);
      }
    }
    std::sort(eligibility.redact.begin(), eligibility.redact.end());
  }
  return verdict;
}

std::optional<std::string> RedLinePolicy::redact_request(
    RequestKind kind, std::string_view body, const std::vector<std::uint16_t>& detectors,
    RedactionVault& vault) const {
  std::string rewritten;
  std::vector<DetectorMatch> matches;
  std::vector<Span> spans;
  const bool walked = visit_request_texts(
      kind, body,
      [&](std::string& text) {
        // A placeholder can complete a match its neighbours did not make before (a phone number
        // no longer glued to the address in front of it), so redact until nothing is left.
        bool changed = false;
        for (int round = 0; round < kMaxRedactionRounds; ++round) {
          matches.clear();
          detectors_->scan(text, matches);
          spans.clear();
          for (const DetectorMatch& match : matches) {
            if (!std::binary_search(detectors.begin(), detectors.end(), match.detector)) continue;
            spans.push_back({match.begin, match.end, detectors_->spec(match.detector).name});
          }
          if (spans.empty()) break;
          text = redact_text(text, std::move(spans), vault);
          changed = true;
        }
        return changed;
      },
      &rewritten);
  if (!walked) return std::nullopt;
  return rewritten.empty() ? std::string(body) : rewritten;
}

}  // namespace redline::policy
