#include "policy/request_text.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <string>
#include <vector>

#include "policy/redaction.h"

namespace redline::policy {
namespace {

std::vector<std::string> texts_of(RequestKind kind, std::string_view body) {
  std::vector<std::string> texts;
  EXPECT_TRUE(
      for_each_request_text(kind, body, [&](std::string_view text) { texts.emplace_back(text); }));
  // The rewriting form must see exactly the same texts.
  std::vector<std::string> visited;
  std::string rewritten;
  EXPECT_TRUE(visit_request_texts(
      kind, body,
      [&](std::string& text) {
        visited.push_back(text);
        return false;
      },
      &rewritten));
  EXPECT_EQ(visited, texts);
  EXPECT_TRUE(rewritten.empty());
  return texts;
}

using Texts = std::vector<std::string>;

TEST(RequestTextTest, ChatReadsEveryTextTheModelSees) {
  const std::string body = R"({
    "model": "gpt-4o", "temperature": 0.7,
    "messages": [
      {"role": "system", "content": "You are \"helpful\"\n"},
      {"role": "user", "name": "alice@example.com", "content": [
        {"type": "text", "text": "part one"},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        {"type": "input_text", "text": "part two"}]},
      {"role": "assistant", "content": null, "tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": "send_mail", "arguments": "{\"to\":\"bob@example.com\"}"}}]},
      {"role": "tool", "tool_call_id": "call_1", "content": "sent to bob@example.com"},
      {"role": "assistant", "function_call": {"name": "f", "arguments": "{\"a\":1}"}},
      {"role": "function", "name": "f", "content": "legacy result"},
      {"role": "assistant", "content": "", "refusal": "I can't"}
    ],
    "tools": [{"type": "function", "function": {"name": "send_mail",
               "description": "Sends mail", "parameters": {"type": "object"}}}],
    "functions": [{"name": "f", "description": "Legacy function"}],
    "user": "user-123", "stop": ["\n\n"]
  })";
  EXPECT_EQ(texts_of(RequestKind::kChatCompletions, body),
            (Texts{"You are \"helpful\"\n", "part one", "part two", "{\"to\":\"bob@example.com\"}",
                   "sent to bob@example.com", "{\"a\":1}", "legacy result", "", "I can't",
                   "Sends mail", "Legacy function"}));
}

TEST(RequestTextTest, CompletionsReadPromptAndSuffixButNotTokenIds) {
  EXPECT_EQ(texts_of(RequestKind::kCompletions, R"({"model":"m","prompt":"Once upon"})"),
            (Texts{"Once upon"}));
  EXPECT_EQ(texts_of(RequestKind::kCompletions,
                     R"({"prompt":["a","b",[1,2,3],42],"suffix":"end","echo":true})"),
            (Texts{"a", "b", "end"}));
  EXPECT_EQ(texts_of(RequestKind::kCompletions, R"({"prompt":[[1,2],[3]]})"), Texts{});
}

TEST(RequestTextTest, EmbeddingsReadInputStrings) {
  EXPECT_EQ(texts_of(RequestKind::kEmbeddings, R"({"input":"one","model":"e"})"), (Texts{"one"}));
  EXPECT_EQ(texts_of(RequestKind::kEmbeddings, R"({"input":["one","two"],"dimensions":8})"),
            (Texts{"one", "two"}));
  EXPECT_EQ(texts_of(RequestKind::kEmbeddings, R"({"input":[101,102]})"), Texts{});
  // Fields of other APIs are not embedding input.
  EXPECT_EQ(texts_of(RequestKind::kEmbeddings, R"({"prompt":"x","messages":[{"content":"y"}]})"),
            Texts{});
}

TEST(RequestTextTest, ResponsesReadInstructionsInputItemsAndToolDescriptions) {
  EXPECT_EQ(texts_of(RequestKind::kResponses, R"({"instructions":"Be brief","input":"Hello"})"),
            (Texts{"Be brief", "Hello"}));
  const std::string body = R"({
    "model": "gpt-4.1",
    "input": [
      {"role": "user", "content": "plain"},
      {"type": "message", "role": "user", "content": [
        {"type": "input_text", "text": "typed"},
        {"type": "input_image", "image_url": "data:..."}]},
      {"type": "message", "role": "assistant", "content": [
        {"type": "output_text", "text": "earlier answer", "annotations": []}]},
      {"type": "function_call", "call_id": "c1", "name": "lookup", "arguments": "{\"q\":\"x\"}"},
      {"type": "function_call_output", "call_id": "c1", "output": "result text"}
    ],
    "tools": [{"type": "function", "name": "lookup", "description": "Looks up"}],
    "instructions": "System says"
  })";
  EXPECT_EQ(texts_of(RequestKind::kResponses, body),
            (Texts{"plain", "typed", "earlier answer", "{\"q\":\"x\"}", "result text", "Looks up",
                   "System says"}));
}

TEST(RequestTextTest, SkipsFieldsOfUnexpectedTypes) {
  EXPECT_EQ(texts_of(RequestKind::kChatCompletions,
                     R"({"messages":[{"content":42},"junk",{"content":{"text":"x"}},
                         {"tool_calls":"no"},{"function_call":[1]}],"tools":{"a":1}})"),
            Texts{});
  EXPECT_EQ(texts_of(RequestKind::kChatCompletions, R"({"messages":null})"), Texts{});
}

TEST(RequestTextTest, RejectsBodiesThatAreNotJsonObjects) {
  auto ignore = [](std::string_view) {};
  EXPECT_FALSE(for_each_request_text(RequestKind::kChatCompletions, "[1,2]", ignore));
  EXPECT_FALSE(for_each_request_text(RequestKind::kChatCompletions, "\"text\"", ignore));
  EXPECT_FALSE(for_each_request_text(RequestKind::kChatCompletions, "", ignore));
  EXPECT_FALSE(for_each_request_text(RequestKind::kChatCompletions, "not json", ignore));
  EXPECT_FALSE(for_each_request_text(RequestKind::kChatCompletions, R"({"messages":[{"content":"a)",
                                     ignore));
  std::string rewritten = "stale";
  EXPECT_FALSE(visit_request_texts(
      RequestKind::kCompletions, "42", [](std::string&) { return true; }, &rewritten));
  EXPECT_TRUE(rewritten.empty());
}

TEST(RequestTextTest, RewriteReplacesOnlyTheVisitedStringsAndKeepsEveryOtherByte) {
  const std::string body =
      "{\"model\": \"m\",  \"temperature\": 0.70, \"n\": 12345678901234567890,\n"
      " \"messages\": [{\"role\": \"user\", \"name\": \"keep me\", \"content\": \"hi \\u00e9 "
      "there\" },\n {\"role\": \"assistant\", \"content\": \"untouched\"}]}";
  std::string rewritten;
  ASSERT_TRUE(visit_request_texts(
      RequestKind::kChatCompletions, body,
      [](std::string& text) {
        if (text.find("there") == std::string::npos) return false;
        text = "now \"quoted\" \\ and \xc3\xa9\ttab";
        return true;
      },
      &rewritten));
  EXPECT_EQ(rewritten,
            "{\"model\": \"m\",  \"temperature\": 0.70, \"n\": 12345678901234567890,\n"
            " \"messages\": [{\"role\": \"user\", \"name\": \"keep me\", \"content\": \"now "
            "\\\"quoted\\\" \\\\ and \xc3\xa9\\ttab\" },\n {\"role\": \"assistant\", \"content\": "
            "\"untouched\"}]}");
  const boost::json::value parsed = boost::json::parse(rewritten);
  EXPECT_EQ(parsed.at("messages").at(0).at("content").as_string(),
            "now \"quoted\" \\ and \xc3\xa9\ttab");
}

TEST(RequestTextTest, RedactionThroughTheVisitorReachesEveryKindOfText) {
  RedactionVault vault;
  const std::string email = "bob@example.com";
  auto redact_emails = [&](std::string& text) {
    std::vector<Span> spans;
    for (std::size_t at = text.find(email); at != std::string::npos;
         at = text.find(email, at + 1)) {
      spans.push_back({at, at + email.size(), "email"});
    }
    if (spans.empty()) return false;
    text = redact_text(text, spans, vault);
    return true;
  };
  const std::string body = R"({"messages":[
    {"role":"user","content":[{"type":"text","text":"mail bob@example.com"}]},
    {"role":"assistant","tool_calls":[{"function":{"name":"bob@example.com",
      "arguments":"{\"to\":\"bob@example.com\"}"}}]},
    {"role":"tool","content":"sent to bob@example.com"}]})";
  std::string rewritten;
  ASSERT_TRUE(visit_request_texts(RequestKind::kChatCompletions, body, redact_emails, &rewritten));
  const boost::json::value parsed = boost::json::parse(rewritten);
  const auto& messages = parsed.at("messages").as_array();
  EXPECT_EQ(messages[0].at("content").at(0).at("text").as_string(), "mail [REDACTED_EMAIL_1]");
  EXPECT_EQ(messages[1].at("tool_calls").at(0).at("function").at("arguments").as_string(),
            "{\"to\":\"[REDACTED_EMAIL_1]\"}");
  // A function name is an identifier, not content: it is left as it is.
  EXPECT_EQ(messages[1].at("tool_calls").at(0).at("function").at("name").as_string(), email);
  EXPECT_EQ(messages[2].at("content").as_string(), "sent to [REDACTED_EMAIL_1]");
  EXPECT_EQ(vault.size(), 1u);
}

}  // namespace
}  // namespace redline::policy
