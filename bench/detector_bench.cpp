// Detector throughput: one thread scanning realistic prompts (English prose with a few personal
// data, secret and marking hits) through the default detector set. Bytes/s is per core, since
// every scan runs on the calling thread.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <string>
#include <vector>

#include "policy/detectors.h"
#include "policy/normalize.h"

namespace {

using redline::policy::builtin_detector_specs;
using redline::policy::DetectorMatch;
using redline::policy::DetectorSet;
using redline::policy::LabelLattice;

constexpr const char* kProse[] = {
    "Please review the attached quarterly summary and rewrite it for the board. ",
    "Revenue grew twelve percent year over year, driven by the enterprise segment, ",
    "while operating costs stayed flat thanks to the consolidation of two data centres. ",
    "The team shipped version 2.4.1 on 2024-03-15 and the rollout finished at 10:30. ",
    "Customer churn fell to 3.1% and the net promoter score rose by eight points. ",
    "Summarise the risks in plain language, list three actions, and keep it short. ",
    "The secret to the improvement was a simpler onboarding flow and better docs. ",
    "Order 20240315-0042 was delayed because the supplier changed its shipping terms. ",
};

constexpr const char* kHits[] = {
    "Contact jane.doe@example.com or +44 20 7946 0958 for details. ",
    "The card on file is 4111 1111 1111 1111 and the IBAN is GB82 WEST 1234 5698 7654 32. ",
    "(S//NF) This paragraph is marked. ",
    "Use key AKIAIOSFODNN7EXAMPLE from host 10.20.30.40. ",
};

// About one hit per KiB: prose with an occasional sensitive sentence.
std::string make_prompt(std::size_t size, bool unicode) {
  std::string text;
  std::size_t prose = 0;
  std::size_t hit = 0;
  while (text.size() < size) {
    if (text.size() / 1024 > hit) {
      text += kHits[hit++ % std::size(kHits)];
    } else {
      text += kProse[prose++ % std::size(kProse)];
      if (unicode && prose % 4 == 0) text += "Café naïve — “quoted” ";
    }
  }
  text.resize(size);
  return text;
}

const DetectorSet& default_set() {
  static const auto set = [] {
    std::string error;
    auto compiled = DetectorSet::compile(LabelLattice::defaults(),
                                         builtin_detector_specs(LabelLattice::defaults()), &error);
    if (compiled == nullptr) {
      std::fprintf(stderr, "detector compile failed: %s\n", error.c_str());
      std::abort();
    }
    return compiled;
  }();
  return *set;
}

void scan_benchmark(benchmark::State& state, bool unicode) {
  const std::string prompt = make_prompt(static_cast<std::size_t>(state.range(0)), unicode);
  const DetectorSet& set = default_set();
  std::vector<DetectorMatch> matches;
  for (auto _ : state) {
    matches.clear();
    benchmark::DoNotOptimize(set.scan(prompt, matches));
    benchmark::DoNotOptimize(matches.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * prompt.size()));
  state.counters["matches"] = static_cast<double>(matches.size());
}

void BM_ScanAsciiPrompt(benchmark::State& state) { scan_benchmark(state, false); }
void BM_ScanUnicodePrompt(benchmark::State& state) { scan_benchmark(state, true); }

void BM_NormalizeUnicodePrompt(benchmark::State& state) {
  const std::string prompt = make_prompt(static_cast<std::size_t>(state.range(0)), true);
  redline::policy::NormalizedText normalized;
  for (auto _ : state) {
    redline::policy::normalize(prompt, normalized);
    benchmark::DoNotOptimize(normalized.text.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * prompt.size()));
}

BENCHMARK(BM_ScanAsciiPrompt)->Arg(4 << 10)->Arg(64 << 10);
BENCHMARK(BM_ScanUnicodePrompt)->Arg(4 << 10)->Arg(64 << 10);
BENCHMARK(BM_NormalizeUnicodePrompt)->Arg(64 << 10);

}  // namespace

BENCHMARK_MAIN();
