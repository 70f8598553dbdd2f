// The detector engine: every enabled detector (built-in personal data, secrets and classification
// markings, plus custom regexes and keywords) compiled into ONE vectorscan database, so a prompt is
// scanned once whatever the number of detectors. Text is normalised first (see normalize.h) and
// matches are reported in offsets of the original text.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "policy/label.h"

namespace redline::policy {

// A check a candidate match must pass before it counts; for custom detectors whose regex alone
// would over-match (e.g. a card range without the Luhn digit).
enum class Validator { kNone, kLuhn, kIban };

// What configuration compiles into: one detector.
struct DetectorSpec {
  // A built-in name ("email", "phone", "us_ssn", "payment_card", "iban", "ip_address",
  // "aws_access_key", "private_key", "jwt", "provider_token", "classification_banner",
  // "portion_mark", "classification_word") takes its patterns from the engine; any other name
  // is a custom detector and needs patterns or keywords.
  std::string name;
  // Vectorscan regexes (PCRE subset, no look-around or back-references), matched as bytes and
  // case-sensitively unless the pattern says (?i). Added to a built-in's own patterns.
  std::vector<std::string> patterns;
  // Literal keywords, matched case-insensitively on word boundaries.
  std::vector<std::string> keywords;
  // Applied to matches of `patterns` (built-ins validate their own patterns as they need).
  Validator validator = Validator::kNone;
  // Lub'd into the label of a request where this detector hits.
  Label raises;
  bool enabled = true;
};

// Classification markings. Three built-ins find them, each match raising the label it names
// (TS/TOP SECRET → TOP_SECRET, S/SECRET → SECRET, C/CONFIDENTIAL → CONFIDENTIAL, NF/NOFORN →
// NOFORN, and any other caveat word the lattice has; U/UNCLASSIFIED and names the lattice lacks
// raise nothing, and a marking that raises nothing is not reported):
//   classification_banner: "SECRET//NOFORN", "TOP SECRET//SCI", "CONFIDENTIAL//REL TO USA, GBR";
//   portion_mark: "(TS//SCI)", "(S//NF)", "(C)" — a bare single-letter mark only at the start of
//     a line and not as a copyright sign, since "(C)" and "(S)" are common list items;
//   classification_word: TOP SECRET, SECRET, CONFIDENTIAL written in CAPITALS as whole words.
// Lower- and mixed-case "secret"/"Confidential" are ordinary prose and never raise; identifiers
// such as AWS_SECRET_ACCESS_KEY do not either ('_' joins words). All three also match spaced-out
// ("S E C R E T", "S-E-C-R-E-T"), full-width, homoglyph and zero-width-split forms. Capitals in
// shouted prose ("THIS IS CONFIDENTIAL") do raise: over-classifying is the safe error here.

// Every built-in detector with its default raise in `lattice`: email, phone, ip_address →
// INTERNAL//PII; us_ssn, iban → CONFIDENTIAL//PII; payment_card → CONFIDENTIAL//PCI; secrets
// (aws_access_key, private_key, jwt, provider_token) → CONFIDENTIAL; markings → nothing of their
// own, because each marking match raises the label it names (see DetectorMatch::raises). Names
// missing from `lattice` are left out of the default raise.
std::vector<DetectorSpec> builtin_detector_specs(const LabelLattice& lattice);

// One hit. Offsets are bytes of the ORIGINAL text (before normalisation), end exclusive.
struct DetectorMatch {
  std::uint16_t detector = 0;  // index into DetectorSet::spec()
  std::uint32_t begin = 0;
  std::uint32_t end = 0;
  // What this hit raises the request label to: the detector's `raises`, lub'd, for markings,
  // with the label the marking names ("SECRET//NOFORN" raises SECRET//NOFORN).
  Label raises;
  friend bool operator==(const DetectorMatch&, const DetectorMatch&) = default;
};

// The label a text raises to and how often each detector hit.
struct ScanSummary {
  Label label;                      // lub of every hit's raises (lowest label when no hit)
  std::vector<std::uint32_t> hits;  // indexed by detector id
  bool scanned = true;              // false when vectorscan failed; `label` is then top()
};

// An immutable, compiled set of detectors; shared by every request thread until the next
// configuration reload replaces it.
class DetectorSet {
 public:
  // Compiles `specs` (ids are their positions). On error returns null and sets `*error` (when not
  // null): an unknown name with no patterns or keywords, an empty keyword, or a regex vectorscan
  // rejects (the message names the detector, the pattern and vectorscan's reason).
  static std::shared_ptr<const DetectorSet> compile(const LabelLattice& lattice,
                                                    std::vector<DetectorSpec> specs,
                                                    std::string* error);
  ~DetectorSet();
  DetectorSet(const DetectorSet&) = delete;
  DetectorSet& operator=(const DetectorSet&) = delete;

  std::size_t size() const;
  const DetectorSpec& spec(std::uint16_t id) const;
  const LabelLattice& lattice() const;

  // Scans `text` (UTF-8, possibly invalid; shorter than 4 GiB) and appends its matches to `out`:
  // validated, and per detector non-overlapping (leftmost first, longest at the same start),
  // in detector order then position. Thread-safe: each thread uses its own vectorscan scratch,
  // grown on first use with a set. Returns false only when vectorscan itself fails (out of
  // memory); the matches appended so far are then incomplete and callers should fail closed.
  bool scan(std::string_view text, std::vector<DetectorMatch>& out) const;

  // Scans and summarises: the lub of every hit's raises and the hit count per detector.
  // Fails closed: if vectorscan fails, the label is lattice().top() and `scanned` is false.
  ScanSummary classify(std::string_view text) const;

  struct Compiled;  // vectorscan database and per-pattern tables (detectors.cpp)

 private:
  DetectorSet() = default;

  LabelLattice lattice_ = LabelLattice::defaults();
  std::vector<DetectorSpec> specs_;
  std::unique_ptr<Compiled> compiled_;
};

}  // namespace redline::policy
