#include "policy/stream_restore.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <map>
#include <string>
#include <tuple>
#include <vector>

namespace redline::policy {
namespace {

namespace json = boost::json;

constexpr std::string_view kEmail = "ada@example.com";
constexpr std::string_view kSecret = "p\"w\\d \xc3\xa9\xe2\x82\xac\n";  // needs JSON escaping

// A JSON string's text; a marker for anything else, so comparisons fail readably.
std::string str(const json::value& value) {
  return value.is_string() ? std::string(value.as_string())
                           : "<not a string: " + json::serialize(value) + ">";
}

class StreamRestoreTest : public ::testing::Test {
 protected:
  StreamRestoreTest() {
    email_ = std::string(vault_.placeholder_for("email", kEmail));
    secret_ = std::string(vault_.placeholder_for("secret", kSecret));
  }

  static std::string chat_chunk(json::object delta, std::int64_t index = 0,
                                std::string_view finish_reason = "") {
    json::object choice{{"index", index}, {"delta", std::move(delta)}, {"logprobs", nullptr}};
    choice["finish_reason"] =
        finish_reason.empty() ? json::value(nullptr) : json::value(json::string(finish_reason));
    json::object chunk{{"id", "chatcmpl-1"},           {"object", "chat.completion.chunk"},
                       {"created", 1700000000},        {"model", "gpt-x"},
                       {"system_fingerprint", "fp_1"}, {"choices", json::array{std::move(choice)}}};
    return json::serialize(chunk);
  }

  static std::string content_chunk(std::string_view text, std::int64_t index = 0) {
    return chat_chunk({{"content", text}}, index);
  }

  static std::string tool_chunk(std::int64_t tool_index, std::string_view arguments) {
    return chat_chunk(
        {{"tool_calls", json::array{json::object{{"index", tool_index},
                                                 {"function", {{"arguments", arguments}}}}}}});
  }

  static std::string text_chunk(std::string_view text, std::string_view finish_reason = "") {
    json::object choice{{"text", text}, {"index", 0}, {"logprobs", nullptr}};
    choice["finish_reason"] =
        finish_reason.empty() ? json::value(nullptr) : json::value(json::string(finish_reason));
    return json::serialize(json::object{{"id", "cmpl-1"},
                                        {"object", "text_completion"},
                                        {"created", 1700000000},
                                        {"model", "m"},
                                        {"choices", json::array{std::move(choice)}}});
  }

  std::vector<std::string> feed(const std::vector<std::string>& events, bool done = true) {
    StreamRestorer restorer(vault_);
    std::vector<std::string> out;
    for (const std::string& event : events) restorer.on_event(event, out);
    if (done) {
      restorer.on_event("[DONE]", out);
    } else {
      restorer.finish(out);
    }
    return out;
  }

  // Channel (choice, kind, tool index) -> the text the client reads, concatenated in order.
  using Channels = std::map<std::tuple<std::int64_t, std::string, std::int64_t>, std::string>;
  static Channels channels_of(const std::vector<std::string>& payloads) {
    Channels channels;
    for (const std::string& payload : payloads) {
      if (payload == "[DONE]") continue;
      const json::value chunk = json::parse(payload);
      for (const json::value& choice : chunk.at("choices").as_array()) {
        const std::int64_t index = choice.at("index").as_int64();
        if (const json::value* text = choice.as_object().if_contains("text")) {
          channels[{index, "text", 0}] += text->as_string();
        }
        const json::value* delta = choice.as_object().if_contains("delta");
        if (delta == nullptr) continue;
        if (const json::value* content = delta->as_object().if_contains("content")) {
          if (content->is_string()) channels[{index, "content", 0}] += content->as_string();
        }
        if (const json::value* calls = delta->as_object().if_contains("tool_calls")) {
          for (const json::value& call : calls->as_array()) {
            channels[{index, "tool", call.at("index").as_int64()}] +=
                call.at("function").at("arguments").as_string();
          }
        }
      }
    }
    return channels;
  }

  static std::string content_of(const std::vector<std::string>& payloads) {
    return channels_of(payloads)[{0, "content", 0}];
  }

  RedactionVault vault_;
  std::string email_;
  std::string secret_;
};

TEST_F(StreamRestoreTest, PlaceholderSplitInTwoAtEveryByteIsRestored) {
  const std::string text = "Mail " + email_ + " today";
  const std::string expected = "Mail " + std::string(kEmail) + " today";
  for (std::size_t cut = 0; cut <= text.size(); ++cut) {
    const auto out = feed({content_chunk(text.substr(0, cut)), content_chunk(text.substr(cut))});
    EXPECT_EQ(content_of(out), expected) << "cut at " << cut;
    EXPECT_EQ(out.back(), "[DONE]");
  }
}

TEST_F(StreamRestoreTest, PlaceholderSplitInThreeAtEveryPairOfBytesIsRestored) {
  const std::string text = email_ + secret_ + "[x";
  const std::string expected = std::string(kEmail) + std::string(kSecret) + "[x";
  for (std::size_t first = 0; first <= text.size(); ++first) {
    for (std::size_t second = first; second <= text.size(); ++second) {
      const auto out = feed(
          {content_chunk(text.substr(0, first)), content_chunk(text.substr(first, second - first)),
           content_chunk(text.substr(second))},
          /*done=*/second % 2 == 0);
      ASSERT_EQ(content_of(out), expected) << "cuts at " << first << ", " << second;
    }
  }
}

TEST_F(StreamRestoreTest, HeldFragmentRidesInTheNextChunkOfItsChannel) {
  const auto out =
      feed({content_chunk("Hello [RED"), content_chunk("ACTED_EM"), content_chunk("AIL_1] and")});
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(str(json::parse(out[0]).at("choices").at(0).at("delta").at("content")), "Hello ");
  EXPECT_EQ(str(json::parse(out[1]).at("choices").at(0).at("delta").at("content")), "");
  EXPECT_EQ(str(json::parse(out[2]).at("choices").at(0).at("delta").at("content")),
            std::string(kEmail) + " and");
  // Everything but the content is kept, in its original order.
  EXPECT_EQ(out[2], content_chunk(std::string(kEmail) + " and"));
}

TEST_F(StreamRestoreTest, PrefixThatIsNotAPlaceholderIsEmittedUnchanged) {
  const auto out = feed({content_chunk("see [RE"), content_chunk("d] ok")});
  EXPECT_EQ(content_of(out), "see [REd] ok");
  const auto held_to_end = feed({content_chunk("trailing [REDACTED_EM")});
  EXPECT_EQ(content_of(held_to_end), "trailing [REDACTED_EM");
  const auto cut_stream = feed({content_chunk("cut [REDACTED_EMAIL_")}, /*done=*/false);
  ASSERT_EQ(cut_stream.size(), 2u);
  EXPECT_EQ(content_of(cut_stream), "cut [REDACTED_EMAIL_");
}

TEST_F(StreamRestoreTest, UnknownPlaceholderPassesThroughUnchanged) {
  const std::string chunk = content_chunk("ask [REDACTED_EMAIL_99] now");
  const auto out = feed({chunk});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0], chunk);
  EXPECT_EQ(content_of(feed({content_chunk("ask [REDACTED_EMAIL_9"), content_chunk("9] now")})),
            "ask [REDACTED_EMAIL_99] now");
}

TEST_F(StreamRestoreTest, EventsWithNothingToChangePassThroughByteIdentical) {
  const std::vector<std::string> events = {
      R"({"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]})",
      "{\"id\":\"c\", \"choices\" : [ {\"index\":0,\"delta\":{\"content\":\"[x] \\u00e9 [1]\"}} ] "
      "}",
      R"({"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null})",
      R"({"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}})",
      ": not json at all",
      R"({"error":{"message":"upstream [RED failure"}})",
  };
  const auto out = feed(events);
  ASSERT_EQ(out.size(), events.size() + 1);
  for (std::size_t i = 0; i < events.size(); ++i) EXPECT_EQ(out[i], events[i]);
  EXPECT_EQ(out.back(), "[DONE]");
}

TEST_F(StreamRestoreTest, HeldFragmentIsFlushedBeforeFinishReasonInAChunkOfItsOwn) {
  const auto out =
      feed({content_chunk("tail ["), chat_chunk({}, 0, "stop"), content_chunk("ignored", 1)});
  ASSERT_EQ(out.size(), 5u);
  const json::value flush = json::parse(out[1]);
  EXPECT_EQ(str(flush.at("id")), "chatcmpl-1");
  EXPECT_EQ(str(flush.at("object")), "chat.completion.chunk");
  EXPECT_EQ(flush.at("created"), 1700000000);
  EXPECT_EQ(str(flush.at("model")), "gpt-x");
  EXPECT_EQ(str(flush.at("choices").at(0).at("delta").at("content")), "[");
  EXPECT_TRUE(flush.at("choices").at(0).at("finish_reason").is_null());
  EXPECT_EQ(out[2], chat_chunk({}, 0, "stop"));
}

TEST_F(StreamRestoreTest, AddedChunkCopiesOnlyScalarIdentityFields) {
  const auto out = feed(
      {R"({"id":{"nested":1},"model":["m"],"created":"soon","choices":[{"delta":{"content":"x ["}}]})"});
  ASSERT_EQ(out.size(), 3u);
  const json::value flush = json::parse(out[1]);
  EXPECT_EQ(flush.as_object().size(), 2u);
  EXPECT_EQ(str(flush.at("object")), "chat.completion.chunk");
  EXPECT_EQ(str(flush.at("choices").at(0).at("delta").at("content")), "[");
}

TEST_F(StreamRestoreTest, FinishingChunkFlushesItsOwnTextWithoutHolding) {
  const auto out =
      feed({content_chunk("a [REDACTED_"), chat_chunk({{"content", "EMAIL_1"}}, 0, "length")});
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(content_of(out), "a [REDACTED_EMAIL_1");
}

TEST_F(StreamRestoreTest, ToolCallArgumentsGetJsonEscapedValues) {
  const std::string arguments = R"({"to":")" + email_ + R"(","password":")" + secret_ + R"("})";
  for (std::size_t cut = 0; cut <= arguments.size(); ++cut) {
    const auto out =
        feed({tool_chunk(0, arguments.substr(0, cut)), tool_chunk(0, arguments.substr(cut))});
    const std::string restored = channels_of(out)[{0, "tool", 0}];
    const json::value parsed = json::parse(restored);
    ASSERT_EQ(str(parsed.at("to")), kEmail) << "cut at " << cut;
    ASSERT_EQ(str(parsed.at("password")), kSecret) << "cut at " << cut;
  }
}

TEST_F(StreamRestoreTest, InterleavedToolCallsKeepTheirOwnHeldFragments) {
  const auto out = feed({tool_chunk(0, "{\"a\":\"[REDAC"), tool_chunk(1, "{\"b\":\"[REDACTED_SE"),
                         tool_chunk(0, "TED_EMAIL_1]\"}"), tool_chunk(1, "CRET_1]\"}"),
                         chat_chunk({}, 0, "tool_calls")});
  auto channels = channels_of(out);
  EXPECT_EQ(str(json::parse(channels[{0, "tool", 0}]).at("a")), kEmail);
  EXPECT_EQ(str(json::parse(channels[{0, "tool", 1}]).at("b")), kSecret);
}

TEST_F(StreamRestoreTest, ToolCallsHeldAtFinishAreFlushedWithTheirIndexes) {
  const auto out = feed({tool_chunk(0, "x["), tool_chunk(3, "y[RE"), content_chunk("c[")},
                        /*done=*/false);
  ASSERT_EQ(out.size(), 4u);
  const json::value flush = json::parse(out[3]);
  const json::value& delta = flush.at("choices").at(0).at("delta");
  EXPECT_EQ(str(delta.at("content")), "[");
  EXPECT_EQ(delta.at("tool_calls").at(0).at("index"), 0);
  EXPECT_EQ(str(delta.at("tool_calls").at(0).at("function").at("arguments")), "[");
  EXPECT_EQ(delta.at("tool_calls").at(1).at("index"), 3);
  EXPECT_EQ(str(delta.at("tool_calls").at(1).at("function").at("arguments")), "[RE");
}

TEST_F(StreamRestoreTest, ChoicesAreRestoredIndependently) {
  // n=2: both choices split the same placeholder differently, interleaved in one stream, and
  // one chunk carrying both choices.
  const std::string two_choices = json::serialize(json::object{
      {"id", "chatcmpl-1"},
      {"choices", json::array{json::object{{"index", 1}, {"delta", {{"content", "ED_SECRET_1]!"}}}},
                              json::object{{"index", 0}, {"delta", {{"content", "L_1]."}}}}}}});
  const auto out = feed({content_chunk("zero [REDACTED_EMAI", 0), content_chunk("one [REDACT", 1),
                         two_choices, chat_chunk({}, 1, "stop"), chat_chunk({}, 0, "stop")});
  auto channels = channels_of(out);
  EXPECT_EQ((channels[{0, "content", 0}]), "zero " + std::string(kEmail) + ".");
  EXPECT_EQ((channels[{1, "content", 0}]), "one " + std::string(kSecret) + "!");
}

TEST_F(StreamRestoreTest, TextCompletionStreamsAreRestored) {
  const auto out =
      feed({text_chunk("Dear [REDACTED_EM"), text_chunk("AIL_1], hi ["), text_chunk("", "stop")});
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ((channels_of(out)[{0, "text", 0}]), "Dear " + std::string(kEmail) + ", hi [");
  // The finishing chunk carries the held fragment itself.
  EXPECT_EQ(str(json::parse(out[2]).at("choices").at(0).at("text")), "[");

  const auto flushed_at_done = feed({text_chunk("x [")});
  ASSERT_EQ(flushed_at_done.size(), 3u);
  const json::value flush = json::parse(flushed_at_done[1]);
  EXPECT_EQ(str(flush.at("object")), "text_completion");
  EXPECT_EQ(str(flush.at("id")), "cmpl-1");
  EXPECT_EQ(str(flush.at("choices").at(0).at("text")), "[");
  EXPECT_EQ(flushed_at_done[2], "[DONE]");
}

TEST_F(StreamRestoreTest, EmptyVaultPassesEverythingThrough) {
  RedactionVault empty;
  StreamRestorer restorer(empty);
  std::vector<std::string> out;
  const std::string chunk = content_chunk("[REDACTED_EMAIL_1] [");
  restorer.on_event(chunk, out);
  restorer.finish(out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], chunk);
}

TEST_F(StreamRestoreTest, ResponseBodyRoundTrip) {
  const std::string body = R"({
  "id": "chatcmpl-9", "object": "chat.completion", "created": 1700000000, "model": "gpt-x",
  "choices": [
    {"index": 0, "message": {"role": "assistant", "content": "Contact )" +
                           email_ +
                           R"( or [REDACTED_EMAIL_99].",
      "tool_calls": [{"id": "call_1", "type": "function",
        "function": {"name": "login", "arguments": "{\"password\":\")" +
                           secret_ + R"(\"}"}}]},
     "finish_reason": "tool_calls"},
    {"index": 1, "message": {"role": "assistant", "content": null,
      "function_call": {"name": "f", "arguments": "{\"p\":\")" +
                           secret_ + R"(\"}"}},
     "finish_reason": "function_call"}
  ],
  "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}
})";
  const std::string restored = restore_response_body(body, vault_);
  const json::value parsed = json::parse(restored);
  const auto& choices = parsed.at("choices").as_array();
  EXPECT_EQ(str(choices[0].at("message").at("content")),
            "Contact " + std::string(kEmail) + " or [REDACTED_EMAIL_99].");
  EXPECT_EQ(str(json::parse(choices[0]
                                .at("message")
                                .at("tool_calls")
                                .at(0)
                                .at("function")
                                .at("arguments")
                                .as_string())
                    .at("password")),
            kSecret);
  EXPECT_EQ(
      str(json::parse(choices[1].at("message").at("function_call").at("arguments").as_string())
              .at("p")),
      kSecret);
  // Only the restored strings changed.
  json::value expected = json::parse(body);
  expected.at("choices").at(0).at("message").at("content") = choices[0].at("message").at("content");
  expected.at("choices").at(0).at("message").at("tool_calls").at(0).at("function").at("arguments") =
      choices[0].at("message").at("tool_calls").at(0).at("function").at("arguments");
  expected.at("choices").at(1).at("message").at("function_call").at("arguments") =
      choices[1].at("message").at("function_call").at("arguments");
  EXPECT_EQ(parsed, expected);
  EXPECT_EQ(restored.substr(0, 80), body.substr(0, 80));
}

TEST_F(StreamRestoreTest, ResponseBodyWithoutPlaceholdersIsReturnedAsIs) {
  const std::string body =
      R"({"object":"chat.completion","choices":[{"index":0,"message":{"content":"[REDACTED_EMAIL_99] [x]"}}]})";
  EXPECT_EQ(restore_response_body(body, vault_), body);
  const std::string completion =
      R"({"object":"text_completion","choices":[{"index":0,"text":"Hi )" + email_ + R"("}]})";
  EXPECT_EQ(restore_response_body(completion, vault_),
            R"({"object":"text_completion","choices":[{"index":0,"text":"Hi ada@example.com"}]})");
  EXPECT_EQ(restore_response_body("not json [REDACTED_EMAIL_1]", vault_),
            "not json [REDACTED_EMAIL_1]");
}

TEST(OutputTextTest, ReportsEveryOutputTextInDocumentOrder) {
  std::vector<std::string> texts;
  auto collect = [&](std::string_view text) { texts.emplace_back(text); };
  for_each_output_text(
      R"({"choices":[{"index":0,"delta":{"content":"a\nb","tool_calls":[{"index":0,"function":{"name":"n","arguments":"{\"x\""}}]}},{"index":1,"delta":{"function_call":{"arguments":"1"}}}]})",
      collect);
  for_each_output_text(R"({"choices":[{"message":{"role":"assistant","content":"whole"}}]})",
                       collect);
  for_each_output_text(R"({"choices":[{"text":"completion","index":0}]})", collect);
  for_each_output_text("[DONE]", collect);
  for_each_output_text(R"({"choices":[{"delta":{"content":null}}]})", collect);
  EXPECT_EQ(texts, (std::vector<std::string>{"a\nb", "{\"x\"", "1", "whole", "completion"}));
}

}  // namespace
}  // namespace redline::policy
