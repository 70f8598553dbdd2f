#include "common/ids.h"

#include <cstdint>
#include <random>

namespace redline {

std::string new_object_id(std::string_view prefix) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id;
  id.reserve(prefix.size() + 33);
  id.append(prefix);
  id.push_back('_');
  for (int half = 0; half < 2; ++half) {
    const std::uint64_t bits = rng();
    for (int i = 0; i < 16; ++i) id.push_back(kHex[(bits >> (i * 4)) & 0xf]);
  }
  return id;
}

}  // namespace redline
