// Classification labels: a level (totally ordered) plus a set of caveats (independent flags).
// Together they form a lattice: a request's label is the least upper bound of everything that
// classified it, and a backend may serve it only when its clearance dominates that label.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace redline::policy {

// A point in the lattice. `level` indexes LabelLattice::levels() (0 = lowest); bit i of
// `caveats` is LabelLattice::caveats()[i]. The default label is the lowest level, no caveats.
struct Label {
  std::uint8_t level = 0;
  std::uint64_t caveats = 0;
  friend bool operator==(const Label&, const Label&) = default;
};

// True when `clearance` may see data labelled `label`: clearance.level >= label.level and every
// caveat of `label` is also in `clearance`.
bool dominates(const Label& clearance, const Label& label);

// The smallest label that dominates both: the higher level and the union of caveats.
Label least_upper_bound(const Label& a, const Label& b);

// The names of a lattice's levels and caveats, and the text form of labels. Immutable once built
// and cheap to copy (copies share one name table), so compiled policies can hold it by value.
class LabelLattice {
 public:
  static constexpr std::size_t kMaxLevels = 32;
  static constexpr std::size_t kMaxCaveats = 64;

  // PUBLIC < INTERNAL < CONFIDENTIAL < SECRET < TOP_SECRET;
  // caveats NOFORN, PII, PHI, PCI, EXPORT_CONTROLLED.
  static LabelLattice defaults();

  // `levels` lowest first (1..32 names), `caveats` (0..64 names). Names are [A-Za-z0-9_]+,
  // stored upper-case, and unique across both lists. On bad input returns nullopt and, when
  // `error` is not null, sets it to a message such as: level name "x y" is not [A-Z0-9_]+.
  static std::optional<LabelLattice> make(std::vector<std::string> levels,
                                          std::vector<std::string> caveats, std::string* error);

  // Parses the text form, case-insensitively: a level first, then caveats separated by "//",
  // "/" or ",", e.g. "SECRET", "secret//noforn", "CONFIDENTIAL//PII/PHI",
  // "CONFIDENTIAL//PII,PHI", "INTERNAL//PII//PCI". Spaces inside the level stand for '_'
  // ("TOP SECRET" is TOP_SECRET). Unknown or missing names give nullopt and, when `error` is
  // not null, a message naming the offending word.
  std::optional<Label> parse(std::string_view text, std::string* error = nullptr) const;

  // "SECRET//NOFORN/PII": the level, then caveats in lattice order; just the level when there
  // are no caveats. `label` must belong to this lattice (level < levels().size()).
  std::string format(const Label& label) const;

  // Case-insensitive look-ups.
  std::optional<std::uint8_t> find_level(std::string_view name) const;
  // The caveat's bit (a single set bit), e.g. 1 << index.
  std::optional<std::uint64_t> find_caveat(std::string_view name) const;

  const std::vector<std::string>& levels() const;
  const std::vector<std::string>& caveats() const;

  // The highest level with every caveat: dominates every label of this lattice.
  Label top() const;

 private:
  struct Names {
    std::vector<std::string> levels;
    std::vector<std::string> caveats;
  };
  explicit LabelLattice(std::shared_ptr<const Names> names) : names_(std::move(names)) {}

  std::shared_ptr<const Names> names_;
};

}  // namespace redline::policy
