#pragma once
// Deterministic randomness for the simulator: the same (seed, input) always gives the same
// numbers, on every platform, so tests and demos are reproducible. Not for security.
#include <cmath>
#include <cstdint>
#include <optional>
#include <string_view>

#include "sim/sim_config.h"

namespace redline::sim {

// SplitMix64's finaliser: a good 64-bit bit mixer.
constexpr std::uint64_t mix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// FNV-1a, continued from `hash`, so several strings can be folded into one hash.
constexpr std::uint64_t kHashStart = 0xcbf29ce484222325ull;
constexpr std::uint64_t hash_bytes(std::string_view bytes, std::uint64_t hash = kHashStart) {
  for (char c : bytes) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 0x100000001b3ull;
  }
  return hash;
}

// SplitMix64 generator.
class Prng {
 public:
  explicit Prng(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    state_ += 0x9e3779b97f4a7c15ull;
    std::uint64_t x = state_;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
  }
  // Uniform in [0, 1).
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  // Uniform in [0, bound); bound > 0.
  std::uint32_t below(std::uint32_t bound) {
    return static_cast<std::uint32_t>((next() >> 32) * bound >> 32);
  }
  // Standard normal (Box-Muller).
  double normal() {
    double u1 = uniform();
    double u2 = uniform();
    if (u1 < 1e-300) u1 = 1e-300;
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

 private:
  std::uint64_t state_;
};

// A sample in milliseconds, never negative.
double sample_latency_ms(const LatencyDistribution& latency, Prng& prng);

enum class Failure { kNone, kServerError, kRateLimited, kTimeout, kDisconnect };

// One draw: each failure with its configured probability, else kNone.
Failure draw_failure(const FailureRates& rates, Prng& prng);

// The value of an `x-sim-fail` header: "500", "429", "timeout", "disconnect"; nullopt otherwise.
std::optional<Failure> parse_forced_failure(std::string_view header_value);

}  // namespace redline::sim
