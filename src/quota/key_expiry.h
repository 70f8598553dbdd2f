// The expiry forms an operator types for a key (`redline keys create --expires ...`, and the
// admin API when it takes the same text).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace redline::quota {

// Parses, relative to `now` (unix seconds):
//   "2027-01-31"            the start of that day, UTC (the key no longer works on that date)
//   "2027-01-31T12:00:00Z"  that instant, UTC
//   "30d", "12h"            that many days or hours from now (1..36500 days / 876000 hours)
// Returns unix seconds, or nullopt with `*error` (when not null) set to a one-line message.
std::optional<std::int64_t> parse_expiry(std::string_view text, std::int64_t now,
                                         std::string* error);

}  // namespace redline::quota
