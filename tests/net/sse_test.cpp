#include "net/sse.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace redline::net {
namespace {

using Events = std::vector<std::pair<std::string, std::string>>;

struct Parsed {
  Events events;
  bool ok = true;
};

Parsed parse_in_pieces(std::string_view stream, const std::vector<std::string_view>& pieces,
                       std::size_t max_event_bytes = 1 << 20) {
  SseParser parser(max_event_bytes);
  Parsed parsed;
  for (auto piece : pieces) {
    parsed.ok = parser.feed(piece, [&](const SseEvent& event) {
      parsed.events.emplace_back(std::string(event.event), std::string(event.data));
    });
  }
  return parsed;
}

Parsed parse(std::string_view stream, std::size_t max_event_bytes = 1 << 20) {
  return parse_in_pieces(stream, {stream}, max_event_bytes);
}

TEST(SseParser, LfLineEnds) {
  auto parsed = parse("data: one\n\ndata: two\n\n");
  EXPECT_TRUE(parsed.ok);
  EXPECT_EQ(parsed.events, (Events{{"", "one"}, {"", "two"}}));
}

TEST(SseParser, CrLfLineEnds) {
  auto parsed = parse("data: one\r\n\r\ndata: two\r\n\r\n");
  EXPECT_EQ(parsed.events, (Events{{"", "one"}, {"", "two"}}));
}

TEST(SseParser, CrLineEnds) {
  auto parsed = parse("data: one\r\rdata: two\r\r");
  EXPECT_EQ(parsed.events, (Events{{"", "one"}, {"", "two"}}));
}

TEST(SseParser, MixedLineEnds) {
  auto parsed = parse("data: a\r\ndata: b\rdata: c\n\r\n");
  EXPECT_EQ(parsed.events, (Events{{"", "a\nb\nc"}}));
}

TEST(SseParser, MultiLineDataJoinedWithNewline) {
  auto parsed = parse("data: first\ndata: second\ndata:third\n\n");
  EXPECT_EQ(parsed.events, (Events{{"", "first\nsecond\nthird"}}));
}

TEST(SseParser, OnlyOneLeadingSpaceIsStripped) {
  auto parsed = parse("data:  two spaces\n\ndata\n\n");
  EXPECT_EQ(parsed.events, (Events{{"", " two spaces"}, {"", ""}}));
}

TEST(SseParser, CommentsAreIgnored) {
  auto parsed = parse(": keep-alive\n\n:another\ndata: x\n: in between\n\n");
  EXPECT_EQ(parsed.events, (Events{{"", "x"}}));
}

TEST(SseParser, EventFieldIsReportedAndReset) {
  auto parsed = parse("event: ping\ndata: 1\n\ndata: 2\n\n");
  EXPECT_EQ(parsed.events, (Events{{"ping", "1"}, {"", "2"}}));
}

TEST(SseParser, EventWithoutDataIsNotDispatched) {
  auto parsed = parse("event: lonely\n\nid: 7\nretry: 100\n\ndata: y\n\n");
  EXPECT_EQ(parsed.events, (Events{{"", "y"}}));
}

TEST(SseParser, UnfinishedEventIsHeldBack) {
  SseParser parser;
  Events events;
  auto collect = [&](const SseEvent& e) { events.emplace_back(e.event, e.data); };
  EXPECT_FALSE(parser.in_event());
  EXPECT_TRUE(parser.feed("data: part", collect));
  EXPECT_TRUE(events.empty());
  EXPECT_TRUE(parser.in_event());
  EXPECT_TRUE(parser.feed("ial\n", collect));
  EXPECT_TRUE(events.empty());
  EXPECT_TRUE(parser.in_event());
  EXPECT_TRUE(parser.feed("\n", collect));
  EXPECT_EQ(events, (Events{{"", "partial"}}));
  EXPECT_FALSE(parser.in_event());
}

TEST(SseParser, EverySplitPositionGivesTheSameEvents) {
  const std::string stream =
      "event: message\r\ndata: {\"a\":1}\r\n\r\n: comment\rdata: x\rdata: y\r\r"
      "data: [DONE]\n\n";
  const Events expected{{"message", "{\"a\":1}"}, {"", "x\ny"}, {"", "[DONE]"}};
  ASSERT_EQ(parse(stream).events, expected);
  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    std::string_view view = stream;
    auto parsed = parse_in_pieces(stream, {view.substr(0, cut), view.substr(cut)});
    EXPECT_TRUE(parsed.ok);
    EXPECT_EQ(parsed.events, expected) << "split at byte " << cut;
  }
  std::vector<std::string_view> bytes;
  for (std::size_t i = 0; i < stream.size(); ++i)
    bytes.push_back(std::string_view(stream).substr(i, 1));
  EXPECT_EQ(parse_in_pieces(stream, bytes).events, expected);
}

TEST(SseParser, OversizeEventFails) {
  const std::string big_line = "data: " + std::string(100, 'x') + "\n\n";
  auto parsed = parse(big_line, 64);
  EXPECT_FALSE(parsed.ok);
  EXPECT_TRUE(parsed.events.empty());
}

TEST(SseParser, OversizeAcrossDataLinesFails) {
  // Each line fits, but the event's joined data does not.
  std::string stream;
  for (int i = 0; i < 10; ++i) stream += "data: " + std::string(20, 'y') + "\n";
  stream += "\n";
  EXPECT_FALSE(parse(stream, 64).ok);
  EXPECT_TRUE(parse(stream, 1024).ok);
}

TEST(SseParser, StaysFailedAfterOversize) {
  SseParser parser(16);
  int events = 0;
  auto count = [&](const SseEvent&) { ++events; };
  EXPECT_FALSE(parser.feed("data: " + std::string(32, 'z'), count));
  EXPECT_FALSE(parser.feed("\n\ndata: ok\n\n", count));
  EXPECT_EQ(events, 0);
}

TEST(SseParser, EventsBeforeTheOversizeOneAreDelivered) {
  auto parsed = parse("data: small\n\ndata: " + std::string(100, 'x') + "\n\n", 32);
  EXPECT_FALSE(parsed.ok);
  EXPECT_EQ(parsed.events, (Events{{"", "small"}}));
}

TEST(SseData, FormatsOneEvent) {
  EXPECT_EQ(sse_data("{\"x\":1}"), "data: {\"x\":1}\n\n");
  auto parsed = parse(sse_data("payload"));
  EXPECT_EQ(parsed.events, (Events{{"", "payload"}}));
}

}  // namespace
}  // namespace redline::net
