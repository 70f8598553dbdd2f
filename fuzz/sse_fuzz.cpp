// Fuzzes SSE framing: the events (and whether the parser failed) must not depend on how the
// stream is split into reads. The first input bytes choose the split points.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "net/sse.h"

namespace {

// Small, so the oversize-event path is reached often.
constexpr std::size_t kMaxEventBytes = 256;

struct Outcome {
  std::vector<std::pair<std::string, std::string>> events;
  bool ok = true;
  bool in_event = false;
  bool operator==(const Outcome&) const = default;
};

Outcome parse(std::string_view stream, const std::vector<std::size_t>& cuts) {
  redline::net::SseParser parser(kMaxEventBytes);
  Outcome outcome;
  auto on_event = [&](const redline::net::SseEvent& event) {
    outcome.events.emplace_back(std::string(event.event), std::string(event.data));
  };
  std::size_t begin = 0;
  for (std::size_t cut : cuts) {
    outcome.ok = parser.feed(stream.substr(begin, cut - begin), on_event) && outcome.ok;
    begin = cut;
  }
  outcome.ok = parser.feed(stream.substr(begin), on_event) && outcome.ok;
  outcome.in_event = parser.in_event();
  return outcome;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  std::size_t cut_count = data[0] % 16;
  if (size < 1 + cut_count) return 0;
  std::string_view stream(reinterpret_cast<const char*>(data) + 1 + cut_count,
                          size - 1 - cut_count);
  // Each cut byte advances the previous cut; cuts stay sorted and within the stream.
  std::vector<std::size_t> cuts;
  std::size_t position = 0;
  for (std::size_t i = 0; i < cut_count; ++i) {
    position = std::min(stream.size(), position + data[1 + i]);
    cuts.push_back(position);
  }
  Outcome whole = parse(stream, {});
  Outcome split = parse(stream, cuts);
  if (!(whole == split)) __builtin_trap();
  // Byte by byte is the most extreme split.
  std::vector<std::size_t> every_byte;
  for (std::size_t i = 1; i < stream.size(); ++i) every_byte.push_back(i);
  if (!(whole == parse(stream, every_byte))) __builtin_trap();
  return 0;
}
