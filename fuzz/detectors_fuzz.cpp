// Arbitrary bytes through normalisation and the default detector set: offsets must stay inside
// the input and in order, and scanning must be deterministic.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "policy/detectors.h"
#include "policy/normalize.h"

namespace {

using redline::policy::DetectorMatch;
using redline::policy::DetectorSet;
using redline::policy::LabelLattice;

const DetectorSet& default_set() {
  static const auto set = [] {
    std::string error;
    auto compiled = DetectorSet::compile(
        LabelLattice::defaults(), redline::policy::builtin_detector_specs(LabelLattice::defaults()),
        &error);
    if (compiled == nullptr) std::abort();
    return compiled;
  }();
  return *set;
}

void check(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  redline::policy::NormalizedText normalized;
  redline::policy::normalize(text, normalized);
  if (normalized.changed) {
    check(normalized.source_begin.size() == normalized.text.size());
    check(normalized.source_end.size() == normalized.text.size());
    for (std::size_t i = 0; i < normalized.text.size(); ++i) {
      check(normalized.source_begin[i] < normalized.source_end[i]);
      check(normalized.source_end[i] <= size);
      if (i > 0) check(normalized.source_end[i - 1] <= normalized.source_begin[i]);
    }
  }

  const DetectorSet& set = default_set();
  std::vector<DetectorMatch> first;
  std::vector<DetectorMatch> second;
  check(set.scan(text, first));
  check(set.scan(text, second));
  check(first == second);
  for (const DetectorMatch& match : first) {
    check(match.detector < set.size());
    check(match.begin < match.end);
    check(match.end <= size);
  }
  const auto summary = set.classify(text);
  check(summary.scanned);
  check(summary.hits.size() == set.size());
  return 0;
}
