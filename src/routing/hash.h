#pragma once
// Fast non-cryptographic 64-bit hashing for routing decisions (prefix affinity, rendezvous
// scores). Not collision-resistant against an adversary: a crafted collision can only steer
// requests to one backend, and the affinity strategy falls back to least-load when its choice
// is saturated.
#include <cstdint>
#include <string_view>

namespace redline::routing {

// Hash of all bytes of `data`, 8 bytes per step. Stable across processes and platforms of the
// same endianness handling (bytes are read little-endian).
std::uint64_t hash_bytes(std::string_view data);

// A bijective 64-bit mixer (the MurmurHash3 finaliser): every input bit affects every output
// bit, so mix64(a ^ b) is a good pairwise score for rendezvous hashing.
constexpr std::uint64_t mix64(std::uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

}  // namespace redline::routing
