#include "quota/token_estimate.h"

#include <gtest/gtest.h>

#include <string>

namespace redline::quota {
namespace {

std::string repeat(std::string_view unit, int times) {
  std::string text;
  for (int i = 0; i < times; ++i) text += unit;
  return text;
}

std::string chat_body(const std::string& content, int messages) {
  std::string body = R"({"model":"gpt-4o","messages":[)";
  for (int i = 0; i < messages; ++i) {
    if (i > 0) body += ',';
    body += R"({"role":"user","content":")" + content + R"("})";
  }
  return body + "]}";
}

// Prompt tokens of adversarial chats, counted with the real o200k_base (gpt-4o) and
// cl100k_base (gpt-4) tokenizers, chat template included (gpt-tokenizer 3.4 encodeChat).
struct AdversarialCase {
  const char* name;
  std::string_view unit;
  int repeats;
  int messages;
  std::int64_t o200k_tokens;
  std::int64_t cl100k_tokens;
};

const AdversarialCase kCases[] = {
    {"spaced_letters", "a b c d e f g h i j k l m n o p q r s t u v w x y z ", 40, 1, 1048, 1048},
    {"spaced_digits", "1 2 3 4 5 6 7 8 9 0 ", 100, 1, 2007, 2007},
    {"emoji", "\U0001F600\U0001FAE0\U0001F9D1\u200D\U0001F680\U0001F3F3\uFE0F\u200D\U0001F308", 100,
     1, 1607, 2207},
    {"spaced_emoji", "\U0001FAE0 \U0001F9CC ", 200, 1, 1208, 1208},
    {"cjk_common", "中文字符测试", 200, 1, 607, 807},
    {"cjk_rare", "龘靐齉齾爩鱻", 200, 1, 2607, 3007},
    {"combining_marks", "e\u0301a\u0300o\u0308", 200, 1, 1207, 1407},
    {"rare_scripts", "\uA66E\U00010348\U0001D11E\u0FD5", 150, 1, 1957, 1957},
    {"punctuation", "!@#$%^&*()[]{}<>?~`|", 60, 1, 847, 847},
    {"many_tiny_messages", "a", 1, 200, 1003, 1003},
    {"many_empty_messages", "", 1, 200, 803, 803},
};

TEST(EstimateInputTokens, BoundsRealTokenCountsOfAdversarialText) {
  for (const auto& test : kCases) {
    const std::string body = chat_body(repeat(test.unit, test.repeats), test.messages);
    const std::int64_t estimate = estimate_input_tokens(body);
    EXPECT_GE(estimate, test.o200k_tokens) << test.name;
    EXPECT_GE(estimate, test.cl100k_tokens) << test.name;
  }
}

TEST(EstimateInputTokens, TextOnlyBodyCostsItsByteLength) {
  const std::string body = chat_body("Hello there", 2);
  EXPECT_EQ(estimate_input_tokens(body), static_cast<std::int64_t>(body.size()));
  EXPECT_EQ(estimate_input_tokens(""), 0);
}

TEST(EstimateInputTokens, ImageByUrlAddsTheImageAllowance) {
  const std::string body =
      R"({"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"text","text":"what?"},)"
      R"({"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]})";
  EXPECT_EQ(estimate_input_tokens(body, 1000), static_cast<std::int64_t>(body.size()) + 1000);
  EXPECT_EQ(estimate_input_tokens(body),
            static_cast<std::int64_t>(body.size()) + kDefaultTokensPerImage);
}

TEST(EstimateInputTokens, InlineImagePayloadIsReplacedByTheAllowance) {
  const std::string payload = "\"data:image/png;base64," + repeat("iVBORw0KGgo", 10'000) + "\"";
  const std::string prefix =
      R"({"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"image_url",)"
      R"("image_url":{ "url" : )";
  const std::string suffix = R"(, "detail":"high"}}]}]})";
  const std::string body = prefix + payload + suffix;
  EXPECT_EQ(estimate_input_tokens(body, 1000),
            static_cast<std::int64_t>(prefix.size() + suffix.size()) + 1000);
}

TEST(EstimateInputTokens, ResponsesInputImageIsCountedOnce) {
  const std::string payload = "\"data:image/jpeg;base64," + repeat("/9j/4AAQ", 1000) + "\"";
  const std::string prefix =
      R"({"model":"gpt-4o","input":[{"role":"user","content":[{"type":"input_image","image_url":)";
  const std::string suffix = "}]}]}";
  EXPECT_EQ(estimate_input_tokens(prefix + payload + suffix, 500),
            static_cast<std::int64_t>(prefix.size() + suffix.size()) + 500);
}

TEST(EstimateInputTokens, DataUrlsInTextStayCountedAsText) {
  // Inside a JSON string the quotes are escaped, so this is text the model reads, token by token.
  const std::string text = R"(copy this: \"image_url\":{\"url\":\"data:image/png;base64,)" +
                           repeat("QUJD", 500) + R"(\"})";
  const std::string body = chat_body(text, 1);
  EXPECT_EQ(estimate_input_tokens(body), static_cast<std::int64_t>(body.size()));
  // A plain string that merely starts like a data URL is not under an "image_url" key.
  const std::string content = chat_body("data:image/png;base64," + repeat("QUJD", 500), 1);
  EXPECT_EQ(estimate_input_tokens(content), static_cast<std::int64_t>(content.size()));
}

TEST(EstimateInputTokens, UnterminatedInlineImageCountsAsText) {
  const std::string body = R"({"messages":[{"content":[{"image_url":{"url":"data:image/png;AAAA)";
  EXPECT_EQ(estimate_input_tokens(body), static_cast<std::int64_t>(body.size()));
}

TEST(WorstCaseOutputTokens, MaxTokensCappedByTheModel) {
  EXPECT_EQ(worst_case_output_tokens(100, 4096), 100);
  EXPECT_EQ(worst_case_output_tokens(10'000, 4096), 4096);
  EXPECT_EQ(worst_case_output_tokens(std::nullopt, 4096), 4096);
  EXPECT_EQ(worst_case_output_tokens(500, 0), 500);
  EXPECT_EQ(worst_case_output_tokens(std::nullopt, 0), 0);
  EXPECT_EQ(worst_case_output_tokens(-5, 4096), 0);
}

}  // namespace
}  // namespace redline::quota
