#include "sim/generation.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cmath>
#include <cstring>

#include "sim/sim_random.h"

namespace redline::sim {
namespace {

namespace json = boost::json;
using ::testing::HasSubstr;
using ::testing::StartsWith;

ModelProfile profile(int output_tokens = 16) {
  ModelProfile model;
  model.name = "*";
  model.output_tokens = output_tokens;
  return model;
}

Generation chat(std::string_view body, std::uint64_t seed = 42, int output_tokens = 16) {
  Parsed<ChatRequest> parsed = parse_chat_request(body);
  EXPECT_FALSE(parsed.error) << parsed.error->message;
  Parsed<Generation> generated = generate_chat(parsed.request, profile(output_tokens), seed);
  EXPECT_FALSE(generated.error) << generated.error->message;
  return generated.request;
}

json::object chat_response(std::string_view body, std::uint64_t seed = 42) {
  ResponseMeta meta{"chatcmpl-1", 1700000000, "m"};
  return json::parse(render_chat_response(meta, chat(body, seed))).as_object();
}

// The JSON objects of a stream's events, and whether it ended with [DONE].
struct ParsedStream {
  std::vector<json::object> chunks;
  bool done_last = false;
};

ParsedStream parse_stream(const StreamEvents& events) {
  ParsedStream parsed;
  std::vector<std::string> all = events.head;
  all.insert(all.end(), events.pieces.begin(), events.pieces.end());
  all.insert(all.end(), events.tail.begin(), events.tail.end());
  for (std::size_t i = 0; i < all.size(); ++i) {
    const std::string& event = all[i];
    EXPECT_THAT(event, StartsWith("data: "));
    EXPECT_EQ(event.substr(event.size() - 2), "\n\n");
    std::string payload = event.substr(6, event.size() - 8);
    if (payload == "[DONE]") {
      parsed.done_last = i + 1 == all.size();
      continue;
    }
    parsed.chunks.push_back(json::parse(payload).as_object());
  }
  return parsed;
}

constexpr std::string_view kHello =
    R"({"model":"m","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hello there, simulator!"}]})";

TEST(GenerationTest, SameRequestSameAnswerOtherSeedOtherAnswer) {
  std::string first = chat(kHello).choices[0].text;
  EXPECT_EQ(chat(kHello).choices[0].text, first);
  // Whitespace in the JSON does not matter; the messages do.
  EXPECT_EQ(chat(R"({ "messages" : [{"role":"system","content":"Be brief."},
                  {"content":"Hello there, simulator!","role":"user"}], "model":"m" })")
                .choices[0]
                .text,
            first);
  EXPECT_NE(chat(kHello, 43).choices[0].text, first);
  EXPECT_NE(
      chat(R"({"model":"m","messages":[{"role":"user","content":"Hello there"}]})").choices[0].text,
      first);
}

TEST(GenerationTest, NonStreamingChatShapeAndUsage) {
  json::object response = chat_response(kHello);
  EXPECT_EQ(response["id"], "chatcmpl-1");
  EXPECT_EQ(response["object"], "chat.completion");
  EXPECT_EQ(response["created"], 1700000000);
  EXPECT_EQ(response["model"], "m");
  json::object choice = response["choices"].as_array().at(0).as_object();
  EXPECT_EQ(choice["index"], 0);
  EXPECT_EQ(choice["finish_reason"], "stop");
  EXPECT_EQ(choice["message"].at("role"), "assistant");
  std::string content(choice["message"].at("content").as_string());
  // 16 words from the vocabulary.
  EXPECT_EQ(std::count(content.begin(), content.end(), ' '), 15);
  json::object usage = response["usage"].as_object();
  // "Be brief." (9) + "Hello there, simulator!" (23) = 32 characters → 8 tokens.
  EXPECT_EQ(usage["prompt_tokens"], 8);
  EXPECT_EQ(usage["completion_tokens"], 16);
  EXPECT_EQ(usage["total_tokens"], 24);
}

TEST(GenerationTest, MaxTokensCutsWithLength) {
  Generation cut =
      chat(R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}]})");
  EXPECT_EQ(cut.choices[0].tokens(), 5);
  EXPECT_EQ(cut.choices[0].finish_reason, "length");
  EXPECT_EQ(cut.prompt_tokens, 1);
  // max_completion_tokens wins over max_tokens; a limit above the profile's length is no cut.
  Generation newer = chat(
      R"({"model":"m","max_tokens":5,"max_completion_tokens":50,"messages":[{"role":"user","content":"x"}]})");
  EXPECT_EQ(newer.choices[0].tokens(), 16);
  EXPECT_EQ(newer.choices[0].finish_reason, "stop");
}

TEST(GenerationTest, ContentPartsCountAsPrompt) {
  Generation generation = chat(
      R"({"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"abcdefghijklmnop"},{"type":"image_url","image_url":{"url":"x"}}]}]})");
  EXPECT_EQ(generation.prompt_tokens, 4);
}

TEST(GenerationTest, JsonModeIsAnObject) {
  json::object response = chat_response(
      R"({"model":"m","response_format":{"type":"json_object"},"messages":[{"role":"user","content":"json please"}]})");
  json::value content =
      json::parse(response["choices"].as_array()[0].at("message").at("content").as_string());
  ASSERT_TRUE(content.is_object());
  EXPECT_TRUE(content.at("answer").is_string());
}

TEST(GenerationTest, JsonSchemaFillsRequiredProperties) {
  json::object response = chat_response(R"({"model":"m","messages":[{"role":"user","content":"x"}],
    "response_format":{"type":"json_schema","json_schema":{"name":"person","strict":true,"schema":{
      "type":"object","required":["name","age","tags","address","kind"],
      "properties":{"name":{"type":"string"},"age":{"type":"integer"},
        "tags":{"type":"array","items":{"type":"string"}},
        "address":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]},
        "kind":{"enum":["a","b"]}}}}}})");
  json::object content =
      json::parse(response["choices"].as_array()[0].at("message").at("content").as_string())
          .as_object();
  EXPECT_TRUE(content["name"].is_string());
  EXPECT_TRUE(content["age"].is_int64());
  ASSERT_TRUE(content["tags"].is_array());
  EXPECT_TRUE(content["tags"].as_array().at(0).is_string());
  EXPECT_TRUE(content["address"].at("city").is_string());
  EXPECT_EQ(content["kind"], "a");
}

constexpr std::string_view kTools = R"("tools":[
  {"type":"function","function":{"name":"get_weather","parameters":{"type":"object",
    "properties":{"city":{"type":"string"},"days":{"type":"integer"},"metric":{"type":"boolean"},
      "unit":{"type":"string","enum":["c","f"]},"optional":{"type":"string"}},
    "required":["city","days","metric","unit"]}}},
  {"type":"function","function":{"name":"get_time","parameters":{"type":"object",
    "properties":{"zone":{"type":"number"}},"required":["zone"]}}}])";

std::string tool_request(std::string_view extra, std::string_view last_message) {
  return std::string(R"({"model":"m",)") + std::string(kTools) + std::string(extra) +
         R"(,"messages":[{"role":"user","content":"weather?"})" + std::string(last_message) + "]}";
}

TEST(GenerationTest, ToolCallHasRequiredArgumentsOfDeclaredTypes) {
  json::object response = chat_response(tool_request("", ""));
  json::object choice = response["choices"].as_array()[0].as_object();
  EXPECT_EQ(choice["finish_reason"], "tool_calls");
  EXPECT_TRUE(choice["message"].at("content").is_null());
  json::object call = choice["message"].at("tool_calls").as_array().at(0).as_object();
  EXPECT_THAT(std::string(call["id"].as_string()), StartsWith("call_"));
  EXPECT_EQ(call["type"], "function");
  EXPECT_EQ(call["function"].at("name"), "get_weather");
  json::object arguments = json::parse(call["function"].at("arguments").as_string()).as_object();
  EXPECT_TRUE(arguments["city"].is_string());
  EXPECT_TRUE(arguments["days"].is_int64());
  EXPECT_TRUE(arguments["metric"].is_bool());
  EXPECT_EQ(arguments["unit"], "c");
  EXPECT_FALSE(arguments.contains("optional"));
}

TEST(GenerationTest, ToolChoiceSelectsOrSuppressesTools) {
  json::object named = chat_response(
      tool_request(R"(,"tool_choice":{"type":"function","function":{"name":"get_time"}})", ""));
  json::object call =
      named["choices"].as_array()[0].at("message").at("tool_calls").as_array()[0].as_object();
  EXPECT_EQ(call["function"].at("name"), "get_time");
  EXPECT_TRUE(json::parse(call["function"].at("arguments").as_string()).at("zone").is_number());

  json::object none = chat_response(tool_request(R"(,"tool_choice":"none")", ""));
  EXPECT_EQ(none["choices"].as_array()[0].at("finish_reason"), "stop");
  EXPECT_TRUE(none["choices"].as_array()[0].at("message").at("content").is_string());

  Parsed<ChatRequest> unknown = parse_chat_request(
      tool_request(R"(,"tool_choice":{"type":"function","function":{"name":"nope"}})", ""));
  ASSERT_FALSE(unknown.error);
  Parsed<Generation> generated = generate_chat(unknown.request, profile(), 42);
  ASSERT_TRUE(generated.error);
  EXPECT_EQ(generated.error->status, 400);
  EXPECT_EQ(generated.error->param, "tool_choice");
}

TEST(GenerationTest, AnswersInTextAfterAToolResult) {
  json::object response = chat_response(tool_request(
      "",
      R"(,{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{}"}}]},{"role":"tool","tool_call_id":"call_1","content":"sunny"})"));
  json::object choice = response["choices"].as_array()[0].as_object();
  EXPECT_EQ(choice["finish_reason"], "stop");
  EXPECT_FALSE(choice["message"].as_object().contains("tool_calls"));
}

TEST(GenerationTest, ToolRoundsKeepCallingToolsUntilThatManyResultsThenCiteTheLast) {
  const std::string turn =
      R"(,{"role":"assistant","content":null,"tool_calls":[{"id":"call_%","type":"function","function":{"name":"get_weather","arguments":"{}"}}]},{"role":"tool","tool_call_id":"call_%","content":"sunny in Porto\nsecond line"})";
  auto rounds = [&](int results) {
    std::string history;
    for (int i = 0; i < results; ++i) history += turn;
    return history;
  };
  ModelProfile three = profile();
  three.tool_rounds = 3;
  three.cite_tool_results = true;
  auto generate = [&](const std::string& body) {
    Parsed<ChatRequest> parsed = parse_chat_request(body);
    EXPECT_FALSE(parsed.error);
    return generate_chat(parsed.request, three, 42).request.choices.at(0);
  };
  EXPECT_EQ(generate(tool_request("", rounds(0))).finish_reason, "tool_calls");
  EXPECT_EQ(generate(tool_request("", rounds(2))).finish_reason, "tool_calls");
  const Choice answer = generate(tool_request("", rounds(3)));
  EXPECT_EQ(answer.finish_reason, "stop");
  EXPECT_THAT(answer.text, StartsWith("Found: sunny in Porto. "));
  // A new user message starts a new round of tool calls.
  EXPECT_EQ(generate(tool_request("", rounds(3) + R"(,{"role":"user","content":"and now?"})"))
                .finish_reason,
            "tool_calls");
  // Without cite_tool_results the answer does not quote the tools.
  EXPECT_THAT(chat(tool_request("", rounds(1))).choices.at(0).text,
              ::testing::Not(HasSubstr("Found:")));
}

TEST(GenerationTest, InvalidChatRequestsAre400WithParam) {
  struct Case {
    std::string_view body;
    std::string_view param;
  };
  for (Case c : {Case{R"({"messages":[{"role":"user","content":"x"}]})", "model"},
                 Case{R"({"model":3,"messages":[{"role":"user","content":"x"}]})", "model"},
                 Case{R"({"model":"m"})", "messages"},
                 Case{R"({"model":"m","messages":{"role":"user"}})", "messages"},
                 Case{R"({"model":"m","messages":[]})", "messages"},
                 Case{R"({"model":"m","messages":[{"content":"x"}]})", "messages"},
                 Case{R"({"model":"m","max_tokens":0,"messages":[{"role":"user","content":"x"}]})",
                      "max_tokens"},
                 Case{R"({"model":"m","stream":"yes","messages":[{"role":"user","content":"x"}]})",
                      "stream"},
                 Case{R"({"model":"m","messages":[{"role":"user","content":"x"}],)", ""},
                 Case{R"([1,2])", ""}, Case{"", ""}}) {
    Parsed<ChatRequest> parsed = parse_chat_request(c.body);
    ASSERT_TRUE(parsed.error) << c.body;
    EXPECT_EQ(parsed.error->status, 400) << c.body;
    EXPECT_EQ(parsed.error->param, c.param) << c.body;
  }
}

TEST(GenerationTest, ChatStreamSequence) {
  std::string body =
      R"({"model":"m","stream":true,"messages":[{"role":"user","content":"stream it"}]})";
  Generation generation = chat(body);
  ResponseMeta meta{"chatcmpl-9", 5, "m"};
  ParsedStream stream = parse_stream(render_chat_stream(meta, generation, false));
  ASSERT_TRUE(stream.done_last);
  ASSERT_EQ(stream.chunks.size(), 1 + 16 + 1u);
  std::string content;
  for (std::size_t i = 0; i < stream.chunks.size(); ++i) {
    json::object& chunk = stream.chunks[i];
    EXPECT_EQ(chunk["object"], "chat.completion.chunk");
    EXPECT_EQ(chunk["id"], "chatcmpl-9");
    json::object choice = chunk["choices"].as_array().at(0).as_object();
    json::object delta = choice["delta"].as_object();
    EXPECT_EQ(delta.contains("role"), i == 0);
    bool last = i + 1 == stream.chunks.size();
    EXPECT_EQ(choice["finish_reason"].is_null(), !last);
    if (last) {
      EXPECT_EQ(choice["finish_reason"], "stop");
    }
    if (delta.contains("content")) content += delta["content"].as_string();
  }
  EXPECT_EQ(content, generation.choices[0].text);
  // A piece is a word, with its leading space after the first.
  EXPECT_EQ(stream.chunks[2]["choices"].as_array()[0].at("delta").at("content").as_string()[0],
            ' ');
}

TEST(GenerationTest, UsageChunkOnlyWhenAsked) {
  Generation generation = chat(kHello);
  ResponseMeta meta{"chatcmpl-9", 5, "m"};
  ParsedStream with_usage = parse_stream(render_chat_stream(meta, generation, true));
  ASSERT_TRUE(with_usage.done_last);
  json::object& usage_chunk = with_usage.chunks.back();
  EXPECT_TRUE(usage_chunk["choices"].as_array().empty());
  EXPECT_EQ(usage_chunk["usage"].at("completion_tokens"), 16);
  EXPECT_EQ(usage_chunk["usage"].at("prompt_tokens"), 8);
  ParsedStream without = parse_stream(render_chat_stream(meta, generation, false));
  EXPECT_EQ(without.chunks.size() + 1, with_usage.chunks.size());
  for (auto& chunk : without.chunks) EXPECT_FALSE(chunk.contains("usage"));
}

TEST(GenerationTest, PrefixesAreNestedPerMessageAndIgnoreKeyOrder) {
  auto parse = [](std::string_view body) {
    Parsed<ChatRequest> parsed = parse_chat_request(body);
    EXPECT_FALSE(parsed.error);
    return parsed.request;
  };
  ChatRequest two = parse(kHello);
  ASSERT_EQ(two.prefixes.size(), 2u);
  EXPECT_EQ(two.prefixes[0].chars, 9u);  // "Be brief."
  EXPECT_EQ(two.prefixes[1].chars, 32u);
  EXPECT_NE(two.prefixes[0].hash, two.prefixes[1].hash);
  EXPECT_EQ(two.tools_hash, 0u);

  // One more message: the first two prefixes are the same, whatever the order of their keys.
  ChatRequest three = parse(
      R"({"messages":[{"content":"Be brief.","role":"system"},{"role":"user","content":"Hello there, simulator!"},{"role":"assistant","content":"Hi."}],"model":"m"})");
  ASSERT_EQ(three.prefixes.size(), 3u);
  EXPECT_EQ(three.prefixes[0].hash, two.prefixes[0].hash);
  EXPECT_EQ(three.prefixes[1].hash, two.prefixes[1].hash);
  EXPECT_EQ(three.prefixes[2].chars, 35u);

  // A different earlier message changes every prefix from it on.
  ChatRequest other = parse(
      R"({"model":"m","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hello there, simulator?"}]})");
  EXPECT_EQ(other.prefixes[0].hash, two.prefixes[0].hash);
  EXPECT_NE(other.prefixes[1].hash, two.prefixes[1].hash);

  // Tool calls are part of the prefix (the answer's hash ignores them); tools are hashed apart.
  const std::string call =
      R"(,{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"get_time","arguments":"{\"zone\":1}"}}]})";
  const std::string other_call =
      R"(,{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"get_time","arguments":"{\"zone\":2}"}}]})";
  ChatRequest with_call = parse(tool_request("", call));
  ChatRequest with_other_call = parse(tool_request("", other_call));
  EXPECT_EQ(with_call.input_hash, with_other_call.input_hash);
  EXPECT_EQ(with_call.prefixes[0].hash, with_other_call.prefixes[0].hash);
  EXPECT_NE(with_call.prefixes[1].hash, with_other_call.prefixes[1].hash);
  EXPECT_NE(with_call.tools_hash, 0u);
}

TEST(GenerationTest, CachedTokensAreInTheUsageOnlyWhenSet) {
  Generation generation = chat(kHello);
  ResponseMeta meta{"chatcmpl-9", 5, "m"};
  json::object plain = json::parse(render_chat_response(meta, generation)).as_object();
  EXPECT_FALSE(plain["usage"].as_object().contains("prompt_tokens_details"));

  generation.cached_tokens = 2;
  json::object cached = json::parse(render_chat_response(meta, generation)).as_object();
  EXPECT_EQ(cached["usage"].at("prompt_tokens"), 8);
  EXPECT_EQ(cached["usage"].at("prompt_tokens_details").at("cached_tokens"), 2);
  ParsedStream stream = parse_stream(render_chat_stream(meta, generation, true));
  EXPECT_EQ(stream.chunks.back()["usage"].at("prompt_tokens_details").at("cached_tokens"), 2);
  EXPECT_EQ(prefix_tokens(0), 0);
  EXPECT_EQ(prefix_tokens(7), 1);
  EXPECT_EQ(prefix_tokens(8), 2);
}

TEST(GenerationTest, ToolCallStreamShape) {
  Generation generation = chat(tool_request("", ""));
  ResponseMeta meta{"chatcmpl-9", 5, "m"};
  ParsedStream stream = parse_stream(render_chat_stream(meta, generation, false));
  ASSERT_GE(stream.chunks.size(), 3u);
  json::object first = stream.chunks[0]["choices"].as_array()[0].at("delta").as_object();
  EXPECT_EQ(first["role"], "assistant");
  json::object header = first["tool_calls"].as_array()[0].as_object();
  EXPECT_EQ(header["index"], 0);
  EXPECT_EQ(std::string(header["id"].as_string()), generation.choices[0].tool_call_id);
  EXPECT_EQ(header["type"], "function");
  EXPECT_EQ(header["function"].at("name"), "get_weather");
  std::string arguments;
  for (std::size_t i = 1; i + 1 < stream.chunks.size(); ++i) {
    json::object call = stream.chunks[i]["choices"]
                            .as_array()[0]
                            .at("delta")
                            .at("tool_calls")
                            .as_array()[0]
                            .as_object();
    EXPECT_EQ(call["index"], 0);
    EXPECT_FALSE(call.contains("id"));
    arguments += call["function"].at("arguments").as_string();
  }
  EXPECT_TRUE(json::parse(arguments).at("city").is_string());
  EXPECT_EQ(stream.chunks.back()["choices"].as_array()[0].at("finish_reason"), "tool_calls");
}

TEST(GenerationTest, LegacyCompletions) {
  Parsed<CompletionRequest> parsed = parse_completion_request(
      R"({"model":"m","prompt":["Once upon a time","abcd"],"max_tokens":4})");
  ASSERT_FALSE(parsed.error);
  Generation generation = generate_completion(parsed.request, profile(), 42);
  ResponseMeta meta{"cmpl-1", 5, "m"};
  json::object response = json::parse(render_completion_response(meta, generation)).as_object();
  EXPECT_EQ(response["object"], "text_completion");
  json::array choices = response["choices"].as_array();
  ASSERT_EQ(choices.size(), 2u);
  EXPECT_EQ(choices[1].at("index"), 1);
  EXPECT_EQ(choices[0].at("finish_reason"), "length");
  EXPECT_NE(choices[0].at("text"), choices[1].at("text"));
  EXPECT_EQ(response["usage"].at("prompt_tokens"), 4 + 1);
  EXPECT_EQ(response["usage"].at("completion_tokens"), 8);

  ParsedStream stream = parse_stream(render_completion_stream(meta, generation, true));
  ASSERT_TRUE(stream.done_last);
  std::string first_text;
  for (auto& chunk : stream.chunks) {
    if (chunk["choices"].as_array().empty()) continue;
    json::object choice = chunk["choices"].as_array()[0].as_object();
    if (choice["index"] == 0) first_text += choice["text"].as_string();
  }
  EXPECT_EQ(first_text, choices[0].at("text").as_string());
  EXPECT_TRUE(stream.chunks.back().contains("usage"));

  Parsed<CompletionRequest> tokens = parse_completion_request(R"({"model":"m","prompt":[1,2,3]})");
  ASSERT_FALSE(tokens.error);
  EXPECT_EQ(tokens.request.prompt_hashes.size(), 1u);
  EXPECT_EQ(tokens.request.prompt_tokens, 3);
  EXPECT_TRUE(parse_completion_request(R"({"model":"m","prompt":{}})").error);
  EXPECT_TRUE(parse_completion_request(R"({"model":"m"})").error);
}

std::vector<float> decode_base64_floats(std::string_view text) {
  auto value = [](char c) -> std::uint32_t {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    return c == '+' ? 62 : 63;
  };
  std::vector<unsigned char> bytes;
  for (std::size_t i = 0; i + 3 < text.size(); i += 4) {
    std::uint32_t chunk = value(text[i]) << 18 | value(text[i + 1]) << 12;
    if (text[i + 2] != '=') chunk |= value(text[i + 2]) << 6;
    if (text[i + 3] != '=') chunk |= value(text[i + 3]);
    bytes.push_back(chunk >> 16);
    if (text[i + 2] != '=') bytes.push_back((chunk >> 8) & 0xff);
    if (text[i + 3] != '=') bytes.push_back(chunk & 0xff);
  }
  std::vector<float> floats(bytes.size() / 4);
  for (std::size_t i = 0; i < floats.size(); ++i) {
    std::uint32_t bits = bytes[i * 4] | bytes[i * 4 + 1] << 8 | bytes[i * 4 + 2] << 16 |
                         static_cast<std::uint32_t>(bytes[i * 4 + 3]) << 24;
    std::memcpy(&floats[i], &bits, 4);
  }
  return floats;
}

TEST(GenerationTest, EmbeddingsAreDeterministicUnitVectors) {
  Parsed<EmbeddingRequest> parsed =
      parse_embedding_request(R"({"model":"e","input":["alpha","beta","alpha"]})");
  ASSERT_FALSE(parsed.error);
  ModelProfile model = profile();
  model.embedding_dimensions = 12;
  json::object response = json::parse(render_embeddings(parsed.request, model, 42)).as_object();
  EXPECT_EQ(response["object"], "list");
  EXPECT_EQ(response["model"], "e");
  json::array data = response["data"].as_array();
  ASSERT_EQ(data.size(), 3u);
  for (std::size_t i = 0; i < data.size(); ++i) {
    EXPECT_EQ(data[i].at("object"), "embedding");
    EXPECT_EQ(data[i].at("index"), i);
    json::array vector = data[i].at("embedding").as_array();
    ASSERT_EQ(vector.size(), 12u);
    double norm = 0;
    for (auto& x : vector) norm += x.to_number<double>() * x.to_number<double>();
    EXPECT_NEAR(norm, 1.0, 1e-5);
  }
  EXPECT_EQ(data[0].at("embedding"), data[2].at("embedding"));
  EXPECT_NE(data[0].at("embedding"), data[1].at("embedding"));
  EXPECT_EQ(response["usage"].at("prompt_tokens"), 3);

  Parsed<EmbeddingRequest> base64 = parse_embedding_request(
      R"({"model":"e","input":"alpha","encoding_format":"base64","dimensions":5})");
  ASSERT_FALSE(base64.error);
  json::object encoded = json::parse(render_embeddings(base64.request, model, 42)).as_object();
  std::vector<float> decoded =
      decode_base64_floats(encoded["data"].as_array()[0].at("embedding").as_string());
  EXPECT_EQ(decoded, embedding_vector(base64.request.input_hashes[0], 5, 42));
  EXPECT_NE(embedding_vector(base64.request.input_hashes[0], 5, 43), decoded);

  EXPECT_TRUE(parse_embedding_request(R"({"model":"e","input":""})").error);
  EXPECT_TRUE(
      parse_embedding_request(R"({"model":"e","input":"x","encoding_format":"hex"})").error);
  Parsed<EmbeddingRequest> tokens =
      parse_embedding_request(R"({"model":"e","input":[[1,2],[3,4,5]]})");
  ASSERT_FALSE(tokens.error);
  EXPECT_EQ(tokens.request.input_hashes.size(), 2u);
  EXPECT_EQ(tokens.request.prompt_tokens, 5);
}

TEST(GenerationTest, ModelsListSkipsTheDefaultProfile) {
  SimConfig config;
  config.models = {profile(), ModelProfile{.name = "a"}, ModelProfile{.name = "b"}};
  json::object models = json::parse(render_models(config)).as_object();
  json::array data = models["data"].as_array();
  ASSERT_EQ(data.size(), 2u);
  EXPECT_EQ(data[0].at("id"), "a");
  EXPECT_EQ(data[1].at("object"), "model");
}

TEST(SimRandomTest, FailuresAtTheirRates) {
  FailureRates rates{
      .error_5xx = 0.1, .rate_limit_429 = 0.2, .timeout = 0.05, .disconnect_mid_stream = 0.15};
  Prng prng(1);
  int counts[5] = {};
  constexpr int kDraws = 100000;
  for (int i = 0; i < kDraws; ++i) ++counts[static_cast<int>(draw_failure(rates, prng))];
  EXPECT_NEAR(counts[static_cast<int>(Failure::kNone)] / double(kDraws), 0.5, 0.01);
  EXPECT_NEAR(counts[static_cast<int>(Failure::kServerError)] / double(kDraws), 0.1, 0.01);
  EXPECT_NEAR(counts[static_cast<int>(Failure::kRateLimited)] / double(kDraws), 0.2, 0.01);
  EXPECT_NEAR(counts[static_cast<int>(Failure::kTimeout)] / double(kDraws), 0.05, 0.01);
  EXPECT_NEAR(counts[static_cast<int>(Failure::kDisconnect)] / double(kDraws), 0.15, 0.01);
  EXPECT_EQ(draw_failure(FailureRates{}, prng), Failure::kNone);
  EXPECT_EQ(parse_forced_failure("429"), Failure::kRateLimited);
  EXPECT_EQ(parse_forced_failure("disconnect"), Failure::kDisconnect);
  EXPECT_EQ(parse_forced_failure("nope"), std::nullopt);
}

TEST(SimRandomTest, LatencyHasConfiguredMeanAndStddev) {
  Prng prng(3);
  constexpr int kSamples = 200000;
  double sum = 0;
  double squares = 0;
  for (int i = 0; i < kSamples; ++i) {
    double x = sample_latency_ms({40, 10}, prng);
    ASSERT_GT(x, 0);
    sum += x;
    squares += x * x;
  }
  double mean = sum / kSamples;
  EXPECT_NEAR(mean, 40, 0.5);
  EXPECT_NEAR(std::sqrt(squares / kSamples - mean * mean), 10, 0.5);
  EXPECT_EQ(sample_latency_ms({25, 0}, prng), 25);
  EXPECT_EQ(sample_latency_ms({0, 0}, prng), 0);
}

}  // namespace
}  // namespace redline::sim
