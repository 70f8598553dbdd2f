#include "quota/key_expiry.h"

#include <charconv>
#include <chrono>

namespace redline::quota {
namespace {

// Exactly `digits` decimal digits at `text[at...]`.
std::optional<int> fixed_number(std::string_view text, std::size_t at, std::size_t digits) {
  if (at + digits > text.size()) return std::nullopt;
  int value = 0;
  for (char c : text.substr(at, digits)) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + (c - '0');
  }
  return value;
}

std::optional<std::int64_t> parse_timestamp(std::string_view text) {
  // YYYY-MM-DD, optionally followed by THH:MM:SSZ.
  if (text.size() != 10 && text.size() != 20) return std::nullopt;
  const auto year = fixed_number(text, 0, 4);
  const auto month = fixed_number(text, 5, 2);
  const auto day = fixed_number(text, 8, 2);
  if (!year || !month || !day || text[4] != '-' || text[7] != '-') return std::nullopt;
  const std::chrono::year_month_day date{std::chrono::year(*year),
                                         std::chrono::month(static_cast<unsigned>(*month)),
                                         std::chrono::day(static_cast<unsigned>(*day))};
  if (!date.ok()) return std::nullopt;
  std::int64_t seconds =
      std::chrono::sys_seconds(std::chrono::sys_days(date)).time_since_epoch().count();
  if (text.size() == 20) {
    const auto hour = fixed_number(text, 11, 2);
    const auto minute = fixed_number(text, 14, 2);
    const auto second = fixed_number(text, 17, 2);
    if (text[10] != 'T' || text[13] != ':' || text[16] != ':' || text[19] != 'Z' || !hour ||
        !minute || !second || *hour > 23 || *minute > 59 || *second > 59) {
      return std::nullopt;
    }
    seconds += *hour * 3600 + *minute * 60 + *second;
  }
  return seconds;
}

}  // namespace

std::optional<std::int64_t> parse_expiry(std::string_view text, std::int64_t now,
                                         std::string* error) {
  auto fail = [&](std::string message) -> std::optional<std::int64_t> {
    if (error) *error = std::move(message);
    return std::nullopt;
  };
  if (text.size() >= 2 && (text.back() == 'd' || text.back() == 'h')) {
    const auto number = text.substr(0, text.size() - 1);
    std::int64_t count = 0;
    const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), count);
    const std::int64_t unit = text.back() == 'd' ? 86400 : 3600;
    const std::int64_t limit = text.back() == 'd' ? 36500 : 876000;
    if (ec != std::errc() || end != number.data() + number.size() || count < 1 || count > limit) {
      return fail("expiry \"" + std::string(text) + "\" must be 1.." + std::to_string(limit) +
                  (text.back() == 'd' ? " days" : " hours"));
    }
    return now + count * unit;
  }
  if (auto timestamp = parse_timestamp(text)) return timestamp;
  return fail("expiry \"" + std::string(text) +
              "\" is not YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ, <n>d or <n>h");
}

}  // namespace redline::quota
