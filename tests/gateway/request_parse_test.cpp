#include "gateway/request_parse.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <string>

namespace redline::gateway {
namespace {

ParseResult parse(ApiKind kind, std::string body, std::size_t prefix_bytes = 2048) {
  return parse_request(kind, body, prefix_bytes);
}

ParseResult parse_chat(std::string body) {
  return parse(ApiKind::kChatCompletions, std::move(body));
}

bool is_valid_json(const std::string& text) {
  simdjson::dom::parser parser;
  return !parser.parse(text).error();
}

void expect_error(const ParseResult& result, std::string_view param, std::string_view code) {
  ASSERT_FALSE(result.request.has_value());
  EXPECT_EQ(result.error.status, 400);
  EXPECT_EQ(result.error.type, "invalid_request_error");
  EXPECT_EQ(result.error.param, param);
  EXPECT_EQ(result.error.code, code);
  EXPECT_FALSE(result.error.message.empty());
}

TEST(ParseRequest, ValidChatCompletion) {
  std::string body = R"({"model":"chat","messages":[{"role":"user","content":"hi"}]})";
  auto result = parse_request(ApiKind::kChatCompletions, body, 2048);
  ASSERT_TRUE(result.request) << result.error.message;
  const auto& request = *result.request;
  EXPECT_EQ(request.model, "chat");
  EXPECT_EQ(body.substr(request.model_offset, request.model_length), "\"chat\"");
  EXPECT_FALSE(request.stream);
  EXPECT_FALSE(request.include_usage);
  EXPECT_FALSE(request.max_tokens.has_value());
  EXPECT_NE(request.affinity_hash, 0u);
}

TEST(ParseRequest, BodyContentIsUnchanged) {
  const std::string original = R"({"model":"m","messages":[]})";
  std::string body = original;
  auto result = parse_request(ApiKind::kChatCompletions, body, 2048);
  ASSERT_TRUE(result.request);
  EXPECT_EQ(body, original);
  EXPECT_GE(body.capacity(), body.size() + simdjson::SIMDJSON_PADDING);
}

TEST(ParseRequest, ValidCompletionWithStringOrArrayPrompt) {
  auto text = parse(ApiKind::kCompletions, R"({"prompt":"Once upon","model":"text"})");
  ASSERT_TRUE(text.request) << text.error.message;
  EXPECT_EQ(text.request->model, "text");
  EXPECT_NE(text.request->affinity_hash, 0u);
  auto list = parse(ApiKind::kCompletions, R"({"model":"text","prompt":["a","b"]})");
  ASSERT_TRUE(list.request) << list.error.message;
}

TEST(ParseRequest, ValidEmbeddings) {
  auto result =
      parse(ApiKind::kEmbeddings, R"({"model":"embed","input":["a","b"],"dimensions":8})");
  ASSERT_TRUE(result.request) << result.error.message;
  EXPECT_EQ(result.request->model, "embed");
  auto single = parse(ApiKind::kEmbeddings, R"({"input":"one","model":"embed"})");
  ASSERT_TRUE(single.request) << single.error.message;
}

TEST(ParseRequest, StreamIncludeUsageAndMaxTokens) {
  auto result = parse_chat(
      R"({"model":"m","messages":[],"stream":true,"stream_options":{"include_usage":true},"max_tokens":42})");
  ASSERT_TRUE(result.request) << result.error.message;
  EXPECT_TRUE(result.request->stream);
  EXPECT_TRUE(result.request->include_usage);
  EXPECT_EQ(result.request->max_tokens, 42);

  auto completion_tokens =
      parse_chat(R"({"model":"m","messages":[],"max_completion_tokens":7,"stream":false})");
  ASSERT_TRUE(completion_tokens.request);
  EXPECT_EQ(completion_tokens.request->max_tokens, 7);
  EXPECT_FALSE(completion_tokens.request->stream);

  auto other_options =
      parse_chat(R"({"model":"m","messages":[],"stream_options":{"x":1,"include_usage":false}})");
  ASSERT_TRUE(other_options.request) << other_options.error.message;
  EXPECT_FALSE(other_options.request->include_usage);
}

TEST(ParseRequest, NullOptionalFieldsAreAbsent) {
  auto result = parse_chat(
      R"({"model":"m","messages":[],"stream":null,"stream_options":null,"max_tokens":null})");
  ASSERT_TRUE(result.request) << result.error.message;
  EXPECT_FALSE(result.request->stream);
  EXPECT_FALSE(result.request->max_tokens.has_value());
}

TEST(ParseRequest, EscapedModelIsUnescaped) {
  std::string body = R"({"model":"a\"b\u00e9","messages":[]})";
  auto result = parse_request(ApiKind::kChatCompletions, body, 2048);
  ASSERT_TRUE(result.request);
  EXPECT_EQ(result.request->model, "a\"b\xc3\xa9");
  EXPECT_EQ(body.substr(result.request->model_offset, result.request->model_length),
            R"("a\"b\u00e9")");
}

TEST(ParseRequest, InvalidJson) {
  expect_error(parse_chat(R"({"model":"m","messages":[)"), "", "invalid_json");
  expect_error(parse_chat(""), "", "invalid_json");
  expect_error(parse_chat("not json"), "", "invalid_json");
  expect_error(parse_chat(R"({"model":"m" "messages":[]})"), "", "invalid_json");
}

TEST(ParseRequest, TrailingGarbageIsInvalid) {
  expect_error(parse_chat(R"({"model":"m","messages":[]} x)"), "", "invalid_json");
  expect_error(parse_chat(R"({"model":"m","messages":[]}{})"), "", "invalid_json");
  auto whitespace = parse_chat("{\"model\":\"m\",\"messages\":[]}  \r\n\t");
  EXPECT_TRUE(whitespace.request) << whitespace.error.message;
}

TEST(ParseRequest, MalformedValuesInsideSkippedFieldsAreInvalid) {
  // Fields the parser does not read still must be JSON: the body is forwarded as is.
  expect_error(parse_chat(R"({"model":"m","messages":[],"x":[1,,2]})"), "", "invalid_json");
  expect_error(parse_chat(R"({"model":"m","messages":[],"x":tru})"), "", "invalid_json");
  expect_error(parse_chat(R"({"model":"m","messages":[{"role":"user","content":nul}]})"), "",
               "invalid_json");
}

TEST(ParseRequest, NonObjectIsInvalid) {
  expect_error(parse_chat("[]"), "", "invalid_json");
  expect_error(parse_chat(R"("model")"), "", "invalid_json");
  expect_error(parse_chat("42"), "", "invalid_json");
  expect_error(parse_chat("null"), "", "invalid_json");
}

TEST(ParseRequest, MissingRequiredFields) {
  expect_error(parse_chat(R"({"messages":[]})"), "model", "missing_required_parameter");
  expect_error(parse_chat(R"({"model":"m"})"), "messages", "missing_required_parameter");
  expect_error(parse(ApiKind::kCompletions, R"({"model":"m"})"), "prompt",
               "missing_required_parameter");
  expect_error(parse(ApiKind::kEmbeddings, R"({"model":"m","messages":[]})"), "input",
               "missing_required_parameter");
  expect_error(parse_chat("{}"), "model", "missing_required_parameter");
}

TEST(ParseRequest, WrongTypesNameTheirParam) {
  expect_error(parse_chat(R"({"model":3,"messages":[]})"), "model", "invalid_type");
  expect_error(parse_chat(R"({"model":null,"messages":[]})"), "model", "invalid_type");
  expect_error(parse_chat(R"({"model":"m","messages":"hi"})"), "messages", "invalid_type");
  expect_error(parse_chat(R"({"model":"m","messages":{}})"), "messages", "invalid_type");
  expect_error(parse_chat(R"({"model":"m","messages":[],"stream":"yes"})"), "stream",
               "invalid_type");
  expect_error(parse_chat(R"({"model":"m","messages":[],"stream_options":true})"), "stream_options",
               "invalid_type");
  expect_error(parse_chat(R"({"model":"m","messages":[],"stream_options":{"include_usage":1}})"),
               "stream_options.include_usage", "invalid_type");
  expect_error(parse_chat(R"({"model":"m","messages":[],"max_tokens":"10"})"), "max_tokens",
               "invalid_type");
  expect_error(parse_chat(R"({"model":"m","messages":[],"max_tokens":1.5})"), "max_tokens",
               "invalid_type");
  expect_error(parse_chat(R"({"model":"m","messages":[],"max_completion_tokens":[]})"),
               "max_completion_tokens", "invalid_type");
}

TEST(ParseRequest, NonPositiveMaxTokensIsInvalidValue) {
  expect_error(parse_chat(R"({"model":"m","messages":[],"max_tokens":0})"), "max_tokens",
               "invalid_value");
  expect_error(parse_chat(R"({"model":"m","messages":[],"max_completion_tokens":-3})"),
               "max_completion_tokens", "invalid_value");
}

TEST(WithModel, ReplacesOnlyTheModelToken) {
  const std::string original =
      "{ \"temperature\" : 0.5,\n  \"model\" :  \"chat\"  ,\"messages\":[{\"role\":\"user\","
      "\"content\":\"x\"}], \"x-unknown\": {\"nested\": [1, 2.0e1, null]}\t}";
  std::string body = original;
  auto result = parse_request(ApiKind::kChatCompletions, body, 2048);
  ASSERT_TRUE(result.request) << result.error.message;
  const auto& request = *result.request;
  std::string spliced = with_model(body, request, "llama-3.1-8b");

  const std::string before = original.substr(0, request.model_offset);
  const std::string after = original.substr(request.model_offset + request.model_length);
  EXPECT_EQ(before, "{ \"temperature\" : 0.5,\n  \"model\" :  ");
  EXPECT_EQ(after.substr(0, 3), "  ,");  // whitespace after the token is kept
  EXPECT_EQ(spliced, before + "\"llama-3.1-8b\"" + after);
  EXPECT_TRUE(is_valid_json(spliced));

  auto reparsed = parse_chat(spliced);
  ASSERT_TRUE(reparsed.request);
  EXPECT_EQ(reparsed.request->model, "llama-3.1-8b");
}

TEST(WithModel, EscapesTheUpstreamName) {
  std::string body = R"({"model":"m","messages":[]})";
  auto result = parse_request(ApiKind::kChatCompletions, body, 2048);
  ASSERT_TRUE(result.request);
  std::string spliced = with_model(body, *result.request, "we\"ird\\name\n");
  EXPECT_EQ(spliced, R"({"model":"we\"ird\\name\n","messages":[]})");
  EXPECT_TRUE(is_valid_json(spliced));
  auto reparsed = parse_chat(spliced);
  ASSERT_TRUE(reparsed.request);
  EXPECT_EQ(reparsed.request->model, "we\"ird\\name\n");
}

TEST(WithModel, ModelLastInTheBody) {
  std::string body = R"({"input":"x","model":"e"})";
  auto result = parse_request(ApiKind::kEmbeddings, body, 2048);
  ASSERT_TRUE(result.request);
  EXPECT_EQ(with_model(body, *result.request, "nomic-embed-text"),
            R"({"input":"x","model":"nomic-embed-text"})");
}

TEST(AffinityHash, SameLeadingMessagesHashAlike) {
  const std::string system =
      R"({"role":"system","content":"You are a careful assistant for the billing team."})";
  auto first = parse(
      ApiKind::kChatCompletions,
      R"({"model":"m","messages":[)" + system + R"(,{"role":"user","content":"first question"}]})",
      48);
  auto second = parse(
      ApiKind::kChatCompletions,
      R"({"messages":[)" + system + R"(,{"role":"user","content":"another one"}],"model":"other"})",
      48);
  ASSERT_TRUE(first.request && second.request);
  EXPECT_NE(first.request->affinity_hash, 0u);
  EXPECT_EQ(first.request->affinity_hash, second.request->affinity_hash);
}

TEST(AffinityHash, DifferentLeadingMessagesHashApart) {
  auto first = parse(ApiKind::kChatCompletions,
                     R"({"model":"m","messages":[{"role":"user","content":"alpha"}]})", 48);
  auto second = parse(ApiKind::kChatCompletions,
                      R"({"model":"m","messages":[{"role":"user","content":"bravo"}]})", 48);
  ASSERT_TRUE(first.request && second.request);
  EXPECT_NE(first.request->affinity_hash, second.request->affinity_hash);
}

TEST(AffinityHash, OnlyThePrefixCounts) {
  // With a 16-byte window the differing tail is not seen; with a large one it is.
  const std::string a =
      R"({"model":"m","messages":[{"role":"user","content":"same start, then A"}]})";
  const std::string b =
      R"({"model":"m","messages":[{"role":"user","content":"same start, then B"}]})";
  EXPECT_EQ(parse(ApiKind::kChatCompletions, a, 16).request->affinity_hash,
            parse(ApiKind::kChatCompletions, b, 16).request->affinity_hash);
  EXPECT_NE(parse(ApiKind::kChatCompletions, a, 4096).request->affinity_hash,
            parse(ApiKind::kChatCompletions, b, 4096).request->affinity_hash);
}

TEST(AffinityHash, ZeroWhenDisabledOrEmpty) {
  EXPECT_EQ(parse(ApiKind::kChatCompletions, R"({"model":"m","messages":[{"a":1}]})", 0)
                .request->affinity_hash,
            0u);
  EXPECT_EQ(parse(ApiKind::kCompletions, R"({"model":"m","prompt":null})").request->affinity_hash,
            0u);
}

TEST(ApiKindNames, AreStable) {
  EXPECT_EQ(to_string(ApiKind::kChatCompletions), "chat.completions");
  EXPECT_EQ(to_string(ApiKind::kCompletions), "completions");
  EXPECT_EQ(to_string(ApiKind::kEmbeddings), "embeddings");
}

TEST(UsageRequested, AddsStreamOptionsAsTheLastMemberAndParsesBack) {
  const std::string body = with_usage_requested(
      R"({"model":"m","stream":true,"messages":[{"role":"user","content":"}"}]} )");
  EXPECT_EQ(body, R"({"model":"m","stream":true,"messages":[{"role":"user","content":"}"}],)"
                  R"("stream_options":{"include_usage":true}} )");
  auto parsed = parse_chat(body);
  ASSERT_TRUE(parsed.request.has_value());
  EXPECT_TRUE(parsed.request->include_usage);

  // A client's own stream_options is overridden, because parsers keep the last duplicate.
  auto overridden = parse_chat(with_usage_requested(
      R"({"model":"m","stream":true,"stream_options":{"include_usage":false},"messages":[]})"));
  ASSERT_TRUE(overridden.request.has_value());
  EXPECT_TRUE(overridden.request->include_usage);
  EXPECT_EQ(with_usage_requested("{ }"), R"({ "stream_options":{"include_usage":true}})");
}

}  // namespace
}  // namespace redline::gateway
