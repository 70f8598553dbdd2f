#include "gateway/access_log.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <chrono>
#include <string>

namespace redline::gateway {
namespace {

using namespace std::chrono_literals;

simdjson::dom::element parse_line(simdjson::dom::parser& parser, const std::string& line) {
  simdjson::dom::element element;
  auto error = parser.parse(line).get(element);
  EXPECT_FALSE(error) << simdjson::error_message(error) << " in " << line;
  return element;
}

std::string string_field(simdjson::dom::element object, const char* name) {
  std::string_view value;
  if (object[name].get_string().get(value)) return "<missing>";
  return std::string(value);
}

AccessRecord full_record() {
  AccessRecord record;
  record.request_id = "req-1";
  record.method = "POST";
  record.path = "/v1/chat/completions";
  record.route = "chat.completions";
  record.model = "chat";
  record.backend = "edge";
  record.remote = "127.0.0.1";
  record.status = 200;
  record.stream = true;
  record.attempts = 2;
  record.duration = 12345678ns;
  record.time_to_first_token = 1500us;
  record.tokens_in = 10;
  record.tokens_out = 20;
  return record;
}

TEST(AccessLogLine, IsOneJsonObjectWithEveryField) {
  const std::string line = access_log_line(full_record());
  EXPECT_EQ(line.find('\n'), std::string::npos);
  simdjson::dom::parser parser;
  auto object = parse_line(parser, line);
  ASSERT_TRUE(object.is_object());
  EXPECT_EQ(string_field(object, "request_id"), "req-1");
  EXPECT_EQ(string_field(object, "method"), "POST");
  EXPECT_EQ(string_field(object, "path"), "/v1/chat/completions");
  EXPECT_EQ(string_field(object, "route"), "chat.completions");
  EXPECT_EQ(string_field(object, "model"), "chat");
  EXPECT_EQ(string_field(object, "backend"), "edge");
  EXPECT_EQ(string_field(object, "remote"), "127.0.0.1");
  EXPECT_EQ(int64_t(object["status"]), 200);
  EXPECT_EQ(bool(object["stream"]), true);
  EXPECT_EQ(int64_t(object["attempts"]), 2);
  EXPECT_NEAR(double(object["duration_ms"]), 12.346, 0.0005);
  EXPECT_NEAR(double(object["ttft_ms"]), 1.5, 0.0005);
  EXPECT_EQ(int64_t(object["tokens_in"]), 10);
  EXPECT_EQ(int64_t(object["tokens_out"]), 20);
  EXPECT_TRUE(object["error"].error());  // only failed requests carry one

  std::string ts = string_field(object, "ts");
  ASSERT_EQ(ts.size(), 24u) << ts;  // 2024-01-02T03:04:05.678Z
  EXPECT_EQ(ts[4], '-');
  EXPECT_EQ(ts[10], 'T');
  EXPECT_EQ(ts[19], '.');
  EXPECT_EQ(ts.back(), 'Z');
}

TEST(AccessLogLine, OptionalFieldsAreLeftOut) {
  AccessRecord record;
  record.method = "GET";
  record.path = "/v1/models";
  record.status = 404;
  record.error = "no such route";
  simdjson::dom::parser parser;
  auto object = parse_line(parser, access_log_line(record));
  EXPECT_TRUE(object["ttft_ms"].error());
  EXPECT_TRUE(object["tokens_in"].error());
  EXPECT_TRUE(object["tokens_out"].error());
  EXPECT_EQ(bool(object["stream"]), false);
  EXPECT_EQ(string_field(object, "error"), "no such route");
  EXPECT_EQ(string_field(object, "model"), "");
}

TEST(AccessLogLine, EscapesEveryStringField) {
  const std::string nasty = "a\"b\\c\nd\re\tf\x01g</script>\xc3\xa9";
  AccessRecord record = full_record();
  record.request_id = nasty;
  record.path = nasty;
  record.model = nasty;
  record.backend = nasty;
  record.error = nasty;
  const std::string line = access_log_line(record);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_EQ(line.find('\r'), std::string::npos);
  EXPECT_EQ(line.find('\x01'), std::string::npos);
  simdjson::dom::parser parser;
  auto object = parse_line(parser, line);
  for (const char* name : {"request_id", "path", "model", "backend", "error"}) {
    EXPECT_EQ(string_field(object, name), nasty) << name;
  }
}

TEST(AccessLogLine, InvalidUtf8InAClientSuppliedFieldStillGivesValidJson) {
  // The request path comes from the client's request line, which may hold any byte >= 0x80.
  AccessRecord record = full_record();
  record.path = "/v1/\xff\xfe/x";
  const std::string line = access_log_line(record);
  simdjson::dom::parser parser;
  simdjson::dom::element element;
  auto error = parser.parse(line).get(element);
  EXPECT_FALSE(error) << simdjson::error_message(error) << " in " << line;
}

TEST(AccessLog, OffIsDisabled) {
  AccessLog log("off");
  EXPECT_FALSE(log.enabled());
  log.write(full_record());  // must be a no-op
}

}  // namespace
}  // namespace redline::gateway
