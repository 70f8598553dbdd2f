#include "policy/policy_cases.h"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "common/json_text.h"
#include "policy/red_line_policy.h"

namespace redline::policy {
namespace {

std::string_view trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
    text.remove_prefix(1);
  }
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
    text.remove_suffix(1);
  }
  return text;
}

void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// `text` lines: \n \t \\ and \uXXXX (surrogate pairs too) stand for what they say, so cases can
// carry invisible and look-alike characters readably.
std::string decode_text(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\\' || i + 1 >= text.size()) {
      out += text[i];
      continue;
    }
    const char next = text[i + 1];
    if (next == 'n' || next == 't' || next == '\\') {
      out += next == 'n' ? '\n' : next == 't' ? '\t' : '\\';
      ++i;
      continue;
    }
    std::uint32_t cp = 0;
    if (next == 'u' && i + 6 <= text.size() &&
        std::from_chars(text.data() + i + 2, text.data() + i + 6, cp, 16).ptr ==
            text.data() + i + 6) {
      i += 5;
      std::uint32_t low = 0;
      if (cp >= 0xD800 && cp < 0xDC00 && i + 7 <= text.size() && text[i + 1] == '\\' &&
          text[i + 2] == 'u' &&
          std::from_chars(text.data() + i + 3, text.data() + i + 7, low, 16).ptr ==
              text.data() + i + 7 &&
          low >= 0xDC00 && low < 0xE000) {
        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        i += 6;
      }
      append_utf8(out, cp);
      continue;
    }
    out += text[i];
  }
  return out;
}

std::vector<std::string> split_list(std::string_view text) {
  std::vector<std::string> out;
  while (!text.empty()) {
    auto comma = text.find(',');
    auto item = trim(text.substr(0, comma));
    if (!item.empty() && item != "none") out.emplace_back(item);
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string join(const std::vector<std::string>& items) {
  if (items.empty()) return "none";
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += ", ";
    out += item;
  }
  return out;
}

RequestKind kind_of(std::string_view body) {
  if (body.find("\"messages\"") != std::string_view::npos) return RequestKind::kChatCompletions;
  if (body.find("\"prompt\"") != std::string_view::npos) return RequestKind::kCompletions;
  if (body.find("\"input\"") != std::string_view::npos) return RequestKind::kEmbeddings;
  return RequestKind::kChatCompletions;
}

std::string_view action_of(const Verdict& verdict) {
  switch (verdict.outcome) {
    case Outcome::kAboveKeyClearance:
      return "refuse";
    case Outcome::kDenyByRule:
      return "deny";
    case Outcome::kHold:
      return "hold";
    case Outcome::kAllow:
      break;
  }
  if (!verdict.any_eligible()) return "no_backend";
  return verdict.redacts() ? "redact" : "allow";
}

}  // namespace

CaseFile parse_case_file(std::string_view text, const std::string& source_name,
                         const std::string& default_model) {
  CaseFile file;
  int line_number = 0;
  PolicyCase* current = nullptr;
  auto fail = [&](const std::string& message) {
    file.errors.push_back(source_name + ":" + std::to_string(line_number) + ": " + message);
  };
  while (!text.empty()) {
    auto newline = text.find('\n');
    std::string_view line = text.substr(0, newline);
    text.remove_prefix(newline == std::string_view::npos ? text.size() : newline + 1);
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    std::string_view content = trim(line);
    if (content.empty() || content.front() == '#') continue;
    auto space = content.find_first_of(" \t");
    std::string_view directive = content.substr(0, space);
    std::string_view value =
        space == std::string_view::npos ? std::string_view{} : trim(content.substr(space));
    if (directive == "case") {
      file.cases.push_back({});
      current = &file.cases.back();
      current->name = std::string(value);
      current->line = line_number;
      current->model = default_model;
      continue;
    }
    if (current == nullptr) {
      fail("'" + std::string(directive) + "' before the first 'case' line");
      continue;
    }
    if (directive == "key") {
      std::string_view rest = value;
      while (!rest.empty()) {
        auto end = rest.find_first_of(" \t");
        std::string_view pair = rest.substr(0, end);
        rest = end == std::string_view::npos ? std::string_view{} : trim(rest.substr(end));
        auto equals = pair.find('=');
        if (equals == std::string_view::npos) {
          fail("key settings are name=value (tenant, default, max, id)");
          continue;
        }
        std::string_view name = pair.substr(0, equals);
        std::string setting(pair.substr(equals + 1));
        if (name == "tenant") {
          current->tenant = setting;
        } else if (name == "default") {
          current->default_label = setting;
        } else if (name == "max") {
          current->max_label = setting;
        } else if (name == "id") {
          current->key_id = setting;
        } else {
          fail("unknown key setting '" + std::string(name) + "' (tenant, default, max, id)");
        }
      }
    } else if (directive == "model") {
      current->model = std::string(value);
    } else if (directive == "classification") {
      current->classification = std::string(value);
    } else if (directive == "tools") {
      current->tools = split_list(value);
    } else if (directive == "text") {
      current->body =
          "{\"model\":" + json_string(current->model) +
          ",\"messages\":[{\"role\":\"user\",\"content\":" + json_string(decode_text(value)) +
          "}]}";
    } else if (directive == "body") {
      current->body = std::string(value);
    } else if (directive == "expect") {
      auto expect_space = value.find_first_of(" \t");
      std::string_view what = value.substr(0, expect_space);
      std::string expected(expect_space == std::string_view::npos
                               ? std::string_view{}
                               : trim(value.substr(expect_space)));
      if (expected.empty()) {
        fail("'expect " + std::string(what) + "' needs a value");
      } else if (what == "label") {
        current->label = expected;
      } else if (what == "detectors") {
        current->detectors = expected;
      } else if (what == "action") {
        current->action = expected;
      } else if (what == "rule") {
        current->rule = expected;
      } else if (what == "eligible") {
        current->eligible = expected;
      } else {
        fail("unknown expectation '" + std::string(what) +
             "' (label, detectors, action, rule, eligible)");
      }
    } else {
      fail("unknown directive '" + std::string(directive) +
           "' (case, key, model, classification, tools, text, body, expect)");
    }
  }
  for (const auto& test : file.cases) {
    if (test.body.empty()) {
      file.errors.push_back(source_name + ":" + std::to_string(test.line) + ": case '" + test.name +
                            "' has neither 'text' nor 'body'");
    }
  }
  return file;
}

CaseResult run_case(const RedLinePolicy& policy, const PolicyCase& test,
                    const std::function<std::vector<std::string>(std::string_view)>& backends_for) {
  CaseResult result;
  result.test = &test;
  const LabelLattice& lattice = policy.lattice();
  auto differ = [&](std::string_view what, const std::string& expected, const std::string& got) {
    result.differences.push_back(std::string(what) + ": expected " + expected + "\n" +
                                 std::string(what.size() + 2, ' ') + "     got " + got);
  };
  auto parse_label = [&](const std::string& text, std::string_view what) -> std::optional<Label> {
    std::string problem;
    auto label = lattice.parse(text, &problem);
    if (!label) result.differences.push_back(std::string(what) + ": " + problem);
    return label;
  };

  RequestFacts facts;
  facts.tenant = test.tenant;
  facts.key_id = test.key_id;
  facts.key_max = lattice.top();
  if (!test.default_label.empty()) {
    if (auto label = parse_label(test.default_label, "key default")) facts.key_default = *label;
  }
  if (!test.max_label.empty()) {
    if (auto label = parse_label(test.max_label, "key max")) facts.key_max = *label;
  }
  if (!test.classification.empty()) {
    facts.declared = parse_label(test.classification, "classification");
  }
  if (!result.differences.empty()) return result;
  facts.model = test.model;
  facts.tool_names = test.tools.empty() ? RedLinePolicy::tool_names(test.body) : test.tools;
  facts.findings = policy.scan_request(kind_of(test.body), test.body);
  const std::vector<std::string> candidates = backends_for(test.model);
  if (candidates.empty()) {
    result.differences.push_back("model: no alias '" + test.model + "' in the config");
    return result;
  }
  const Verdict verdict = policy.evaluate(facts, candidates);

  if (!test.label.empty()) {
    if (auto expected = parse_label(test.label, "expected label");
        expected && !(*expected == verdict.label)) {
      differ("label", lattice.format(*expected), lattice.format(verdict.label));
    }
  }
  if (!test.detectors.empty()) {
    std::vector<std::string> fired;
    for (std::uint16_t id = 0; id < facts.findings.counts.size(); ++id) {
      if (facts.findings.counts[id] == 0) continue;
      fired.push_back(policy.detectors().spec(id).name + "=" +
                      std::to_string(facts.findings.counts[id]));
    }
    std::sort(fired.begin(), fired.end());
    // "email" alone accepts any count; "email=2" pins it.
    std::vector<std::string> expected = split_list(test.detectors);
    std::vector<std::string> comparable;
    for (const auto& name : fired) {
      const std::string bare = name.substr(0, name.find('='));
      const bool counted = std::any_of(expected.begin(), expected.end(), [&](const auto& e) {
        return e.find('=') != std::string::npos && e.substr(0, e.find('=')) == bare;
      });
      comparable.push_back(counted ? name : bare);
    }
    std::sort(comparable.begin(), comparable.end());
    if (comparable != expected) differ("detectors", join(expected), join(fired));
  }
  if (!test.action.empty() && test.action != action_of(verdict)) {
    differ("action", test.action, std::string(action_of(verdict)));
  }
  if (!test.rule.empty()) {
    const std::string got = verdict.deciding_rule ? verdict.deciding_rule->name : "none";
    if (got != test.rule) differ("rule", test.rule, got);
  }
  if (!test.eligible.empty()) {
    std::vector<std::string> eligible;
    for (std::size_t i = 0; i < candidates.size(); ++i) {
      if (verdict.backends[i].eligible()) eligible.push_back(candidates[i]);
    }
    std::sort(eligible.begin(), eligible.end());
    const std::vector<std::string> expected = split_list(test.eligible);
    if (eligible != expected) differ("eligible", join(expected), join(eligible));
  }
  return result;
}

}  // namespace redline::policy
