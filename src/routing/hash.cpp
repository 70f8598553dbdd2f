#include "routing/hash.h"

#include <cstring>

namespace redline::routing {
namespace {

constexpr std::uint64_t kMul1 = 0x87c37b91114253d5ULL;
constexpr std::uint64_t kMul2 = 0x4cf5ad432745937fULL;

std::uint64_t load_le64(const char* p, std::size_t n) {
  unsigned char bytes[8] = {};
  std::memcpy(bytes, p, n);
  std::uint64_t word = 0;
  for (int i = 7; i >= 0; --i) word = (word << 8) | bytes[i];
  return word;
}

std::uint64_t rotl(std::uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

}  // namespace

std::uint64_t hash_bytes(std::string_view data) {
  std::uint64_t h = 0x9e3779b97f4a7c15ULL ^ (data.size() * kMul2);
  std::size_t i = 0;
  for (; i + 8 <= data.size(); i += 8) {
    h ^= rotl(load_le64(data.data() + i, 8) * kMul1, 31) * kMul2;
    h = rotl(h, 27) * 5 + 0x52dce729;
  }
  if (i < data.size()) {
    h ^= rotl(load_le64(data.data() + i, data.size() - i) * kMul1, 31) * kMul2;
  }
  return mix64(h);
}

}  // namespace redline::routing
