#include "quota/key_expiry.h"

#include <gtest/gtest.h>

namespace redline::quota {
namespace {

constexpr std::int64_t kNow = 1'700'000'000;  // 2023-11-14T22:13:20Z

TEST(ParseExpiry, RelativeDaysAndHours) {
  EXPECT_EQ(parse_expiry("30d", kNow, nullptr), kNow + 30 * 86400);
  EXPECT_EQ(parse_expiry("12h", kNow, nullptr), kNow + 12 * 3600);
  EXPECT_EQ(parse_expiry("1d", kNow, nullptr), kNow + 86400);
}

TEST(ParseExpiry, DatesAreUtc) {
  EXPECT_EQ(parse_expiry("2027-01-31", kNow, nullptr), 1'801'353'600);
  EXPECT_EQ(parse_expiry("2027-01-31T12:30:15Z", kNow, nullptr), 1'801'353'600 + 45015);
  EXPECT_EQ(parse_expiry("2028-02-29", kNow, nullptr), 1'835'395'200);  // leap day
}

TEST(ParseExpiry, RejectsEverythingElseWithAMessage) {
  for (const char* bad :
       {"", "d", "0d", "-3d", "30", "30x", "3.5d", "36501d", "99999999999999999999h", "2027-02-30",
        "2027-13-01", "2027-1-31", "2027-01-31T25:00:00Z", "2027-01-31T12:00:00",
        "2027-01-31 12:00:00Z", "tomorrow"}) {
    std::string error;
    EXPECT_EQ(parse_expiry(bad, kNow, &error), std::nullopt) << bad;
    EXPECT_FALSE(error.empty()) << bad;
  }
}

}  // namespace
}  // namespace redline::quota
