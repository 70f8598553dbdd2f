#include "policy/label.h"

#include <algorithm>
#include <cassert>

namespace redline::policy {
namespace {

char ascii_upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c; }

bool equals_caseless(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (ascii_upper(a[i]) != ascii_upper(b[i])) return false;
  }
  return true;
}

bool is_name_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

void set_error(std::string* error, std::string message) {
  if (error != nullptr) *error = std::move(message);
}

// Upper-cases a name in place and checks its alphabet; `kind` is "level" or "caveat".
bool canonicalise_name(std::string& name, std::string_view kind, std::string* error) {
  const bool valid = !name.empty() &&
                     std::all_of(name.begin(), name.end(), [](char c) { return is_name_char(c); });
  if (!valid) {
    set_error(error, std::string(kind) + " name \"" + name + "\" is not [A-Z0-9_]+");
    return false;
  }
  std::transform(name.begin(), name.end(), name.begin(), ascii_upper);
  return true;
}

}  // namespace

bool dominates(const Label& clearance, const Label& label) {
  return clearance.level >= label.level && (label.caveats & ~clearance.caveats) == 0;
}

Label least_upper_bound(const Label& a, const Label& b) {
  return Label{std::max(a.level, b.level), a.caveats | b.caveats};
}

LabelLattice LabelLattice::defaults() {
  static const std::shared_ptr<const Names> names = std::make_shared<const Names>(
      Names{{"PUBLIC", "INTERNAL", "CONFIDENTIAL", "SECRET", "TOP_SECRET"},
            {"NOFORN", "PII", "PHI", "PCI", "EXPORT_CONTROLLED"}});
  return LabelLattice(names);
}

std::optional<LabelLattice> LabelLattice::make(std::vector<std::string> levels,
                                               std::vector<std::string> caveats,
                                               std::string* error) {
  if (levels.empty() || levels.size() > kMaxLevels) {
    set_error(error, "a lattice needs 1 to " + std::to_string(kMaxLevels) + " levels, got " +
                         std::to_string(levels.size()));
    return std::nullopt;
  }
  if (caveats.size() > kMaxCaveats) {
    set_error(error, "a lattice has at most " + std::to_string(kMaxCaveats) + " caveats, got " +
                         std::to_string(caveats.size()));
    return std::nullopt;
  }
  for (auto& name : levels) {
    if (!canonicalise_name(name, "level", error)) return std::nullopt;
  }
  for (auto& name : caveats) {
    if (!canonicalise_name(name, "caveat", error)) return std::nullopt;
  }
  std::vector<std::string> all = levels;
  all.insert(all.end(), caveats.begin(), caveats.end());
  std::sort(all.begin(), all.end());
  if (auto dup = std::adjacent_find(all.begin(), all.end()); dup != all.end()) {
    set_error(error, "name \"" + *dup + "\" appears more than once in the lattice");
    return std::nullopt;
  }
  return LabelLattice(std::make_shared<const Names>(Names{std::move(levels), std::move(caveats)}));
}

std::optional<Label> LabelLattice::parse(std::string_view text, std::string* error) const {
  // Tokens are separated by '/' or ','; "//" simply yields an empty token that is skipped.
  Label label;
  bool have_level = false;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t end = text.find_first_of("/,", pos);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view token = trim(text.substr(pos, end - pos));
    pos = end + 1;
    if (token.empty()) continue;
    if (!have_level) {
      std::string name(token);
      // "TOP SECRET" and "top-secret" name TOP_SECRET.
      for (char& c : name) {
        if (is_space(c) || c == '-') c = '_';
      }
      const auto level = find_level(name);
      if (!level) {
        set_error(error, "unknown classification level \"" + std::string(token) + "\"");
        return std::nullopt;
      }
      label.level = *level;
      have_level = true;
      continue;
    }
    const auto caveat = find_caveat(token);
    if (!caveat) {
      set_error(error, "unknown caveat \"" + std::string(token) + "\"");
      return std::nullopt;
    }
    label.caveats |= *caveat;
  }
  if (!have_level) {
    set_error(error, "label \"" + std::string(text) + "\" names no classification level");
    return std::nullopt;
  }
  return label;
}

std::string LabelLattice::format(const Label& label) const {
  assert(label.level < names_->levels.size());
  std::string out = names_->levels[std::min<std::size_t>(label.level, names_->levels.size() - 1)];
  bool first = true;
  for (std::size_t i = 0; i < names_->caveats.size(); ++i) {
    if ((label.caveats >> i & 1U) == 0) continue;
    out += first ? "//" : "/";
    out += names_->caveats[i];
    first = false;
  }
  return out;
}

std::optional<std::uint8_t> LabelLattice::find_level(std::string_view name) const {
  for (std::size_t i = 0; i < names_->levels.size(); ++i) {
    if (equals_caseless(names_->levels[i], name)) return static_cast<std::uint8_t>(i);
  }
  return std::nullopt;
}

std::optional<std::uint64_t> LabelLattice::find_caveat(std::string_view name) const {
  for (std::size_t i = 0; i < names_->caveats.size(); ++i) {
    if (equals_caseless(names_->caveats[i], name)) return std::uint64_t{1} << i;
  }
  return std::nullopt;
}

const std::vector<std::string>& LabelLattice::levels() const { return names_->levels; }

const std::vector<std::string>& LabelLattice::caveats() const { return names_->caveats; }

Label LabelLattice::top() const {
  const std::size_t n = names_->caveats.size();
  const std::uint64_t all = n == 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << n) - 1;
  return Label{static_cast<std::uint8_t>(names_->levels.size() - 1), all};
}

}  // namespace redline::policy
