#include "agents/responses_format.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace redline::agents {
namespace {

namespace json = boost::json;

// "msg_1", "fc_2", ...: one counter for every prefix, so outputs are exact.
IdSource counting_ids() {
  auto counter = std::make_shared<int>(0);
  return [counter](std::string_view prefix) {
    return std::string(prefix) + "_" + std::to_string(++*counter);
  };
}

json::value parse(std::string_view text) { return json::parse(text); }

ResponsesRequest request_from(std::string_view body) {
  ResponsesParse parsed = parse_responses_request(body, counting_ids());
  EXPECT_TRUE(parsed.request) << parsed.error.message;
  return parsed.request.value_or(ResponsesRequest{});
}

// ---- parse_responses_request and normalize_items

TEST(ParseResponsesRequest, StringInputIsOneUserMessage) {
  ResponsesRequest request = request_from(R"({"model":"m","input":"hi"})");
  EXPECT_EQ(request.model, "m");
  EXPECT_EQ(json::value(request.input), parse(R"([{"type":"message","id":"msg_1",
      "status":"completed","role":"user","content":[{"type":"input_text","text":"hi"}]}])"));
  EXPECT_FALSE(request.instructions);
  EXPECT_TRUE(request.tools.empty());
  EXPECT_TRUE(request.tool_choice.is_null());
  EXPECT_TRUE(request.store);
  EXPECT_FALSE(request.stream);
  EXPECT_FALSE(request.background);
  EXPECT_FALSE(request.max_output_tokens);
  EXPECT_FALSE(request.temperature);
  EXPECT_FALSE(request.top_p);
  EXPECT_FALSE(request.parallel_tool_calls);
  EXPECT_TRUE(request.metadata.empty());
  EXPECT_TRUE(request.text.is_null());
  EXPECT_EQ(request.user, "");
  EXPECT_EQ(request.previous_response_id, "");
  EXPECT_EQ(request.conversation_id, "");
}

TEST(ParseResponsesRequest, InputMayBeAbsent) {
  ResponsesRequest request = request_from(R"({"model":"m","previous_response_id":"resp_1"})");
  EXPECT_TRUE(request.input.empty());
  EXPECT_EQ(request.previous_response_id, "resp_1");
}

TEST(ParseResponsesRequest, NormalisesEveryAcceptedItemShape) {
  ResponsesRequest request = request_from(R"({"model":"m","input":[
    {"role":"user","content":"plain"},
    {"type":"message","role":"user","content":[{"type":"input_text","text":"look"},
      {"type":"input_image","image_url":"https://x/cat.png"},
      {"type":"input_image","image_url":"data:image/png;base64,AA==","detail":"low"}]},
    {"role":"system","content":"be brief"},
    {"role":"developer","content":[{"type":"input_text","text":"dev"}]},
    {"role":"assistant","content":"said"},
    {"type":"message","id":"msg_kept","role":"assistant","status":"in_progress","content":[
      {"type":"output_text","text":"a","annotations":[]},{"type":"refusal","refusal":"no"},
      {"type":"output_text","text":"b"}]},
    {"type":"reasoning","id":"rs_1","summary":[]},
    {"type":"function_call","id":"fc_kept","call_id":"call_a","name":"f","arguments":"{}"},
    {"type":"function_call","call_id":"call_b","name":"g","arguments":""},
    {"type":"function_call_output","call_id":"call_a","output":"42"},
    {"type":"function_call_output","call_id":"call_b","output":[{"type":"input_text","text":"x"}]},
    {"type":"item_reference","id":"msg_old"}
  ]})");
  EXPECT_EQ(json::value(request.input), parse(R"([
    {"type":"message","id":"msg_1","status":"completed","role":"user",
     "content":[{"type":"input_text","text":"plain"}]},
    {"type":"message","id":"msg_2","status":"completed","role":"user","content":[
      {"type":"input_text","text":"look"},
      {"type":"input_image","image_url":"https://x/cat.png","detail":"auto"},
      {"type":"input_image","image_url":"data:image/png;base64,AA==","detail":"low"}]},
    {"type":"message","id":"msg_3","status":"completed","role":"system",
     "content":[{"type":"input_text","text":"be brief"}]},
    {"type":"message","id":"msg_4","status":"completed","role":"developer",
     "content":[{"type":"input_text","text":"dev"}]},
    {"type":"message","id":"msg_5","status":"completed","role":"assistant",
     "content":[{"type":"output_text","text":"said","annotations":[]}]},
    {"type":"message","id":"msg_kept","status":"completed","role":"assistant","content":[
      {"type":"output_text","text":"a","annotations":[]},{"type":"refusal","refusal":"no"},
      {"type":"output_text","text":"b","annotations":[]}]},
    {"type":"function_call","id":"fc_kept","call_id":"call_a","name":"f","arguments":"{}",
     "status":"completed"},
    {"type":"function_call","id":"fc_6","call_id":"call_b","name":"g","arguments":"",
     "status":"completed"},
    {"type":"function_call_output","id":"fco_7","call_id":"call_a","output":"42",
     "status":"completed"},
    {"type":"function_call_output","id":"fco_8","call_id":"call_b",
     "output":[{"type":"input_text","text":"x"}],"status":"completed"}
  ])"));
}

TEST(ParseResponsesRequest, ReadsEveryParameter) {
  ResponsesRequest request = request_from(R"({
    "model":"m","input":[],"instructions":"be kind",
    "tools":[{"type":"function","name":"get_weather","description":"d",
              "parameters":{"type":"object"},"strict":true}],
    "tool_choice":{"type":"function","name":"get_weather"},
    "conversation":{"id":"conv_1"},"store":true,"stream":true,"background":true,
    "max_output_tokens":64,"temperature":0.5,"top_p":1,"parallel_tool_calls":false,
    "metadata":{"team":"blue"},"text":{"format":{"type":"json_schema","name":"s",
    "schema":{"type":"object"},"strict":true}},"user":"u-1","redline":{"label":"secret"},
    "include":["x"],"reasoning":{"effort":"low"},"some_future_member":{}})");
  EXPECT_EQ(request.instructions, "be kind");
  EXPECT_EQ(json::value(request.tools), parse(R"([{"type":"function","name":"get_weather",
      "description":"d","parameters":{"type":"object"},"strict":true}])"));
  EXPECT_EQ(request.tool_choice, parse(R"({"type":"function","name":"get_weather"})"));
  EXPECT_EQ(request.conversation_id, "conv_1");
  EXPECT_TRUE(request.store);
  EXPECT_TRUE(request.stream);
  EXPECT_TRUE(request.background);
  EXPECT_EQ(request.max_output_tokens, 64);
  EXPECT_EQ(request.temperature, 0.5);
  EXPECT_EQ(request.top_p, 1.0);
  EXPECT_EQ(request.parallel_tool_calls, false);
  EXPECT_EQ(json::value(request.metadata), parse(R"({"team":"blue"})"));
  EXPECT_EQ(request.text, parse(R"({"format":{"type":"json_schema","name":"s",
      "schema":{"type":"object"},"strict":true}})"));
  EXPECT_EQ(request.user, "u-1");
  EXPECT_EQ(json::value(request.redline), parse(R"({"label":"secret"})"));
}

TEST(ParseResponsesRequest, ConversationMayBeAString) {
  EXPECT_EQ(request_from(R"({"model":"m","conversation":"conv_9"})").conversation_id, "conv_9");
}

TEST(ParseResponsesRequest, SafetyIdentifierStandsInForUser) {
  EXPECT_EQ(request_from(R"({"model":"m","safety_identifier":"s"})").user, "s");
  EXPECT_EQ(request_from(R"({"model":"m","safety_identifier":"s","user":"u"})").user, "u");
}

TEST(ParseResponsesRequest, NullMembersCountAsNotGiven) {
  ResponsesRequest request = request_from(R"({"model":"m","input":null,"instructions":null,
      "tools":null,"tool_choice":null,"previous_response_id":null,"conversation":null,
      "store":null,"stream":null,"background":null,"max_output_tokens":null,
      "temperature":null,"top_p":null,"parallel_tool_calls":null,"metadata":null,"text":null,
      "user":null,"redline":null})");
  EXPECT_TRUE(request.input.empty());
  EXPECT_FALSE(request.instructions);
  EXPECT_TRUE(request.store);
  EXPECT_TRUE(request.tool_choice.is_null());
  EXPECT_TRUE(request.text.is_null());
}

TEST(ParseResponsesRequest, MetadataLimitsCountCharacters) {
  std::string key;
  for (int i = 0; i < 64; ++i) key += "\xC3\xA9";  // é: 64 characters, 128 bytes
  request_from(R"({"model":"m","metadata":{")" + key + R"(":"v"}})");
}

struct InvalidCase {
  std::string body;
  std::string param;
  std::string code;
};

std::string with_input(std::string_view input) {
  return R"({"model":"m","input":)" + std::string(input) + "}";
}

std::string metadata_with(int entries) {
  json::object metadata;
  for (int i = 0; i < entries; ++i) metadata["k" + std::to_string(i)] = "v";
  return json::serialize(json::object{{"model", "m"}, {"metadata", std::move(metadata)}});
}

TEST(ParseResponsesRequest, InvalidRequestsAre400sNamingTheMember) {
  const std::string tools = R"("tools":[{"type":"function","name":"get_weather"}])";
  const std::vector<InvalidCase> cases = {
      {"not json", "", "invalid_json"},
      {"[1]", "", "invalid_json"},
      {R"({"model":"m","input":"\xFF"})", "", "invalid_json"},
      {"{}", "model", "missing_required_parameter"},
      {R"({"model":""})", "model", "empty_string"},
      {R"({"model":3})", "model", "invalid_type"},
      {with_input("5"), "input", "invalid_type"},
      {with_input(R"(["x"])"), "input[0]", "invalid_type"},
      {with_input(R"([{"content":"x"}])"), "input[0].role", "missing_required_parameter"},
      {with_input(R"([{"role":"tool","content":"x"}])"), "input[0].role", "invalid_value"},
      {with_input(R"([{"role":"user"}])"), "input[0].content", "missing_required_parameter"},
      {with_input(R"([{"role":"user","content":5}])"), "input[0].content", "invalid_type"},
      {with_input(R"([{"role":"user","content":[5]}])"), "input[0].content[0]", "invalid_type"},
      {with_input(R"([{"role":"user","content":[{"text":"x"}]}])"), "input[0].content[0].type",
       "missing_required_parameter"},
      {with_input(R"([{"role":"user","content":"a"},{"role":"user","content":"b"},
                      {"role":"user","content":[{"type":"input_text","text":7}]}])"),
       "input[2].content[0].text", "invalid_type"},
      {with_input(R"([{"role":"user","content":[{"type":"input_text"}]}])"),
       "input[0].content[0].text", "missing_required_parameter"},
      {with_input(R"([{"role":"user","content":[{"type":"output_text","text":"x"}]}])"),
       "input[0].content[0].type", "invalid_value"},
      {with_input(R"([{"role":"assistant","content":[{"type":"input_text","text":"x"}]}])"),
       "input[0].content[0].type", "invalid_value"},
      {with_input(R"([{"role":"user","content":[{"type":"input_file","file_id":"f"}]}])"),
       "input[0].content[0].type", "invalid_value"},
      {with_input(R"([{"role":"user","content":[{"type":"input_image","file_id":"f"}]}])"),
       "input[0].content[0].image_url", "missing_required_parameter"},
      {with_input(R"([{"role":"assistant","content":[{"type":"refusal"}]}])"),
       "input[0].content[0].refusal", "missing_required_parameter"},
      {with_input(R"([{"type":"message","id":5,"role":"user","content":"x"}])"), "input[0].id",
       "invalid_type"},
      {with_input(R"([{"type":"function_call","name":"f","arguments":"{}"}])"), "input[0].call_id",
       "missing_required_parameter"},
      {with_input(R"([{"type":"function_call","call_id":"","name":"f","arguments":"{}"}])"),
       "input[0].call_id", "empty_string"},
      {with_input(R"([{"type":"function_call","call_id":"c","arguments":"{}"}])"), "input[0].name",
       "missing_required_parameter"},
      {with_input(R"([{"type":"function_call","call_id":"c","name":"f","arguments":{}}])"),
       "input[0].arguments", "invalid_type"},
      {with_input(R"([{"type":"function_call_output","output":"x"}])"), "input[0].call_id",
       "missing_required_parameter"},
      {with_input(R"([{"type":"function_call_output","call_id":"c"}])"), "input[0].output",
       "missing_required_parameter"},
      {with_input(R"([{"type":"function_call_output","call_id":"c","output":5}])"),
       "input[0].output", "invalid_type"},
      {with_input(R"([{"type":"function_call_output","call_id":"c",
                       "output":[{"type":"input_image","image_url":"u"}]}])"),
       "input[0].output[0].type", "invalid_value"},
      {with_input(R"([{"type":"web_search_call","id":"ws_1"}])"), "input[0].type", "invalid_value"},
      {with_input(R"([{"type":7}])"), "input[0].type", "invalid_type"},
      {R"({"model":"m","tools":{}})", "tools", "invalid_type"},
      {R"({"model":"m","tools":[5]})", "tools[0]", "invalid_type"},
      {R"({"model":"m","tools":[{"name":"f"}]})", "tools[0].type", "missing_required_parameter"},
      {R"({"model":"m","tools":[{"type":"function"}]})", "tools[0].name",
       "missing_required_parameter"},
      {R"({"model":"m","tools":[{"type":"function","name":"f","parameters":[]}]})",
       "tools[0].parameters", "invalid_type"},
      {R"({"model":"m","tools":[{"type":"function","name":"f","strict":"yes"}]})",
       "tools[0].strict", "invalid_type"},
      {R"({"model":"m","tool_choice":"sometimes"})", "tool_choice", "invalid_value"},
      {R"({"model":"m","tool_choice":5})", "tool_choice", "invalid_type"},
      {R"({"model":"m",)" + tools + R"(,"tool_choice":{"type":"web_search"}})", "tool_choice.type",
       "invalid_value"},
      {R"({"model":"m",)" + tools + R"(,"tool_choice":{"type":"function","name":"nope"}})",
       "tool_choice.name", "invalid_value"},
      {R"({"model":"m","tool_choice":{"type":"function","name":"get_weather"}})",
       "tool_choice.name", "invalid_value"},
      {R"({"model":"m","conversation":"conv_1","previous_response_id":"resp_1"})", "conversation",
       "mutually_exclusive_parameters"},
      {R"({"model":"m","conversation":5})", "conversation", "invalid_type"},
      {R"({"model":"m","conversation":{}})", "conversation.id", "missing_required_parameter"},
      {R"({"model":"m","previous_response_id":5})", "previous_response_id", "invalid_type"},
      {R"({"model":"m","background":true,"store":false})", "background", "invalid_value"},
      {R"({"model":"m","stream":"yes"})", "stream", "invalid_type"},
      {R"({"model":"m","store":1})", "store", "invalid_type"},
      {R"({"model":"m","instructions":["x"]})", "instructions", "invalid_type"},
      {R"({"model":"m","max_output_tokens":0})", "max_output_tokens", "integer_below_min_value"},
      {R"({"model":"m","max_output_tokens":1.5})", "max_output_tokens", "invalid_type"},
      {R"({"model":"m","max_output_tokens":"9"})", "max_output_tokens", "invalid_type"},
      {R"({"model":"m","temperature":2.5})", "temperature", "decimal_above_max_value"},
      {R"({"model":"m","temperature":-1})", "temperature", "decimal_below_min_value"},
      {R"({"model":"m","top_p":1.5})", "top_p", "decimal_above_max_value"},
      {R"({"model":"m","parallel_tool_calls":"no"})", "parallel_tool_calls", "invalid_type"},
      {R"({"model":"m","metadata":[]})", "metadata", "invalid_type"},
      {metadata_with(17), "metadata", "object_above_max_properties"},
      {R"({"model":"m","metadata":{"k":1}})", "metadata.k", "invalid_type"},
      {R"({"model":"m","metadata":{"k":")" + std::string(513, 'v') + R"("}})", "metadata.k",
       "string_above_max_length"},
      {R"({"model":"m","metadata":{")" + std::string(65, 'k') + R"(":"v"}})", "metadata",
       "string_above_max_length"},
      {R"({"model":"m","text":"json"})", "text", "invalid_type"},
      {R"({"model":"m","text":{"format":"json"}})", "text.format", "invalid_type"},
      {R"({"model":"m","text":{"format":{"type":"xml"}}})", "text.format.type", "invalid_value"},
      {R"({"model":"m","text":{"format":{"type":"json_schema","name":"s"}}})", "text.format.schema",
       "missing_required_parameter"},
      {R"({"model":"m","text":{"format":{"type":"json_schema","schema":{}}}})", "text.format.name",
       "missing_required_parameter"},
      {R"({"model":"m","user":5})", "user", "invalid_type"},
      {R"({"model":"m","redline":5})", "redline", "invalid_type"},
  };
  for (const InvalidCase& c : cases) {
    ResponsesParse parsed = parse_responses_request(c.body, counting_ids());
    ASSERT_FALSE(parsed.request) << c.body;
    EXPECT_EQ(parsed.error.status, 400) << c.body;
    EXPECT_EQ(parsed.error.type, "invalid_request_error") << c.body;
    EXPECT_EQ(parsed.error.param, c.param) << c.body;
    EXPECT_EQ(parsed.error.code, c.code) << c.body;
    EXPECT_FALSE(parsed.error.message.empty()) << c.body;
  }
}

std::string error_message(std::string_view body) {
  return parse_responses_request(body, counting_ids()).error.message;
}

TEST(ParseResponsesRequest, ErrorMessagesReadLikeOpenAIs) {
  EXPECT_EQ(error_message(with_input(R"([{"role":"user","content":[{"type":"input_text",
      "text":7}]}])")),
            "Invalid type for 'input[0].content[0].text': expected a string, but got a number "
            "instead.");
  EXPECT_EQ(error_message(with_input(R"([{"role":"tool","content":"x"}])")),
            "Invalid value: 'tool'. Supported values are: 'user', 'assistant', 'system', and "
            "'developer'.");
  EXPECT_EQ(error_message(with_input(R"([{"role":"assistant","content":[{"type":"input_text",
      "text":"x"}]}])")),
            "Invalid value: 'input_text'. Supported values are: 'output_text' and 'refusal'.");
  EXPECT_EQ(error_message("{}"), "Missing required parameter: 'model'.");
  EXPECT_EQ(error_message(R"({"model":"m","tools":[{"type":"web_search"}]})"),
            "Redline supports function and mcp tools; 'web_search' is not supported.");
  EXPECT_EQ(error_message(R"({"model":"m","temperature":3})"),
            "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got "
            "3 instead.");
  EXPECT_EQ(error_message(R"({"model":"m","max_output_tokens":0})"),
            "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 1, but "
            "got 0 instead.");
}

TEST(NormalizeItems, ErrorsUseTheGivenPrefix) {
  ApiError error;
  json::value items = parse(R"([{"role":"user","content":"ok"},{"content":"x"}])");
  EXPECT_FALSE(normalize_items(items, "items", counting_ids(), error));
  EXPECT_EQ(error.status, 400);
  EXPECT_EQ(error.param, "items[1].role");
}

TEST(NormalizeItems, AcceptsAStringAndKeepsGivenIds) {
  ApiError error;
  auto items = normalize_items(json::value("hello"), "items", counting_ids(), error);
  ASSERT_TRUE(items);
  EXPECT_EQ(json::value(*items), parse(R"([{"type":"message","id":"msg_1","status":"completed",
      "role":"user","content":[{"type":"input_text","text":"hello"}]}])"));
}

// ---- build_chat_body

TEST(BuildChatBody, TranslatesAMultiTurnHistory) {
  ResponsesRequest request = request_from(R"({"model":"gpt","instructions":"Be brief.",
    "tools":[{"type":"function","name":"get_weather","description":"Weather",
              "parameters":{"type":"object","properties":{"city":{"type":"string"}}},
              "strict":true},
             {"type":"function","name":"get_time","parameters":null}],
    "tool_choice":{"type":"function","name":"get_weather"},"parallel_tool_calls":true,
    "max_output_tokens":100,"temperature":0.5,"top_p":0.9,"user":"u-1",
    "text":{"format":{"type":"json_schema","name":"answer","schema":{"type":"object"},
            "strict":true,"description":"An answer"}},
    "input":[
      {"role":"developer","content":"Use metric units."},
      {"role":"user","content":[{"type":"input_text","text":"Weather in "},
                                {"type":"input_text","text":"Paris?"}]},
      {"role":"assistant","content":"Let me check."},
      {"type":"function_call","call_id":"call_a","name":"get_weather",
       "arguments":"{\"city\":\"Paris\"}"},
      {"type":"function_call","call_id":"call_b","name":"get_time","arguments":"{}"},
      {"type":"function_call_output","call_id":"call_a","output":"18C"},
      {"type":"function_call_output","call_id":"call_b",
       "output":[{"type":"input_text","text":"12:"},{"type":"input_text","text":"00"}]},
      {"role":"user","content":[{"type":"input_text","text":"And this?"},
        {"type":"input_image","image_url":"https://x/cat.png","detail":"high"}]}
    ]})");
  std::string body = build_chat_body(request, request.input, "User likes cats.", true);
  EXPECT_EQ(parse(body), parse(R"({
    "model":"gpt",
    "messages":[
      {"role":"system","content":"Be brief."},
      {"role":"system","content":"User likes cats."},
      {"role":"system","content":"Use metric units."},
      {"role":"user","content":"Weather in Paris?"},
      {"role":"assistant","content":"Let me check.","tool_calls":[
        {"id":"call_a","type":"function",
         "function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
        {"id":"call_b","type":"function","function":{"name":"get_time","arguments":"{}"}}]},
      {"role":"tool","tool_call_id":"call_a","content":"18C"},
      {"role":"tool","tool_call_id":"call_b","content":"12:00"},
      {"role":"user","content":[{"type":"text","text":"And this?"},
        {"type":"image_url","image_url":{"url":"https://x/cat.png","detail":"high"}}]}
    ],
    "tools":[
      {"type":"function","function":{"name":"get_weather","description":"Weather",
        "parameters":{"type":"object","properties":{"city":{"type":"string"}}},"strict":true}},
      {"type":"function","function":{"name":"get_time"}}],
    "tool_choice":{"type":"function","function":{"name":"get_weather"}},
    "parallel_tool_calls":true,
    "max_completion_tokens":100,"temperature":0.5,"top_p":0.9,"user":"u-1",
    "response_format":{"type":"json_schema","json_schema":{"name":"answer",
      "schema":{"type":"object"},"strict":true,"description":"An answer"}},
    "stream":true,"stream_options":{"include_usage":true}
  })"));
}

TEST(BuildChatBody, ToolCallsWithoutTextStartAnAssistantMessage) {
  ResponsesRequest request = request_from(R"({"model":"m","input":[
      {"role":"user","content":"hi"},
      {"type":"function_call","call_id":"c1","name":"f","arguments":"{}"},
      {"type":"function_call_output","call_id":"c1","output":"ok"},
      {"type":"function_call","call_id":"c2","name":"f","arguments":"{}"}]})");
  EXPECT_EQ(parse(build_chat_body(request, request.input, "", false)), parse(R"({"model":"m",
    "messages":[
      {"role":"user","content":"hi"},
      {"role":"assistant","content":null,"tool_calls":[
        {"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},
      {"role":"tool","tool_call_id":"c1","content":"ok"},
      {"role":"assistant","content":null,"tool_calls":[
        {"id":"c2","type":"function","function":{"name":"f","arguments":"{}"}}]}]})"));
}

TEST(BuildChatBody, RefusalsAreReplayedAsText) {
  ResponsesRequest request = request_from(R"({"model":"m","input":[{"role":"assistant",
      "content":[{"type":"output_text","text":"I "},{"type":"refusal","refusal":"can't."}]}]})");
  EXPECT_EQ(parse(build_chat_body(request, request.input, "", false)),
            parse(R"({"model":"m","messages":[{"role":"assistant","content":"I can't."}]})"));
}

TEST(BuildChatBody, ToolOptionsNeedToolsAndPlainTextIsNotSent) {
  ResponsesRequest request = request_from(
      R"({"model":"m","input":"hi","tool_choice":"none","parallel_tool_calls":false,
          "instructions":"","text":{"format":{"type":"text"}}})");
  EXPECT_EQ(parse(build_chat_body(request, request.input, "", false)),
            parse(R"({"model":"m","messages":[{"role":"user","content":"hi"}]})"));
}

TEST(BuildChatBody, ModeToolChoiceAndJsonObject) {
  ResponsesRequest request = request_from(R"({"model":"m","input":"hi",
      "tools":[{"type":"function","name":"f"}],"tool_choice":"required",
      "text":{"format":{"type":"json_object"}}})");
  EXPECT_EQ(parse(build_chat_body(request, {}, "", false)), parse(R"({"model":"m","messages":[],
      "tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"required",
      "response_format":{"type":"json_object"}})"));
}

TEST(BuildChatBody, SkipsItemsItCannotUse) {
  ResponsesRequest request = request_from(R"({"model":"m"})");
  json::array context = parse(R"([5,{"type":"mystery"},{"role":"user","content":"x"},
      {"type":"message","role":"user","content":[{"type":"input_text","text":"ok"}]}])")
                            .as_array();
  EXPECT_EQ(parse(build_chat_body(request, context, "", false)),
            parse(R"({"model":"m","messages":[{"role":"user","content":"ok"}]})"));
}

// ---- output_from_chat_completion

std::string completion(std::string_view message, std::string_view finish_reason = "stop") {
  return R"({"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m",
    "choices":[{"index":0,"message":)" +
         std::string(message) + R"(,"finish_reason":")" + std::string(finish_reason) +
         R"("}],"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}})";
}

TEST(OutputFromChatCompletion, Text) {
  auto turn = output_from_chat_completion(completion(R"({"role":"assistant","content":"Hello"})"),
                                          counting_ids());
  ASSERT_TRUE(turn);
  EXPECT_EQ(json::value(turn->output), parse(R"([{"type":"message","id":"msg_1",
      "status":"completed","role":"assistant",
      "content":[{"type":"output_text","text":"Hello","annotations":[]}]}])"));
  EXPECT_EQ(turn->input_tokens, 11);
  EXPECT_EQ(turn->output_tokens, 7);
  EXPECT_EQ(turn->status, "completed");
  EXPECT_EQ(turn->incomplete_reason, "");
}

TEST(OutputFromChatCompletion, ParallelToolCallsAfterText) {
  auto turn = output_from_chat_completion(completion(R"({"role":"assistant","content":"Checking.",
      "tool_calls":[
        {"id":"call_a","type":"function","function":{"name":"get_weather","arguments":"{}"}},
        {"id":"call_b","type":"function","function":{"name":"get_time","arguments":"{\"tz\":1}"}}
      ]})",
                                                     "tool_calls"),
                                          counting_ids());
  ASSERT_TRUE(turn);
  EXPECT_EQ(json::value(turn->output), parse(R"([
    {"type":"message","id":"msg_1","status":"completed","role":"assistant",
     "content":[{"type":"output_text","text":"Checking.","annotations":[]}]},
    {"type":"function_call","id":"fc_2","status":"completed","call_id":"call_a",
     "name":"get_weather","arguments":"{}"},
    {"type":"function_call","id":"fc_3","status":"completed","call_id":"call_b",
     "name":"get_time","arguments":"{\"tz\":1}"}])"));
}

TEST(OutputFromChatCompletion, MissingOrRepeatedCallIdsAreReplaced) {
  auto turn = output_from_chat_completion(completion(R"({"role":"assistant","content":null,
      "tool_calls":[{"id":"c","function":{"name":"f","arguments":"{}"}},
                    {"id":"c","function":{"name":"g","arguments":"{}"}},
                    {"function":{"name":"h"}},
                    {"id":"x","function":{"arguments":"{}"}},
                    7]})",
                                                     "tool_calls"),
                                          counting_ids());
  ASSERT_TRUE(turn);
  ASSERT_EQ(turn->output.size(), 3u);
  EXPECT_EQ(turn->output[0].at("call_id"), "c");
  EXPECT_EQ(turn->output[1].at("call_id"), "call_2");
  EXPECT_EQ(turn->output[2].at("call_id"), "call_4");
  EXPECT_EQ(turn->output[2].at("arguments"), "");
}

TEST(OutputFromChatCompletion, LengthIsIncomplete) {
  auto turn = output_from_chat_completion(
      completion(R"({"role":"assistant","content":"Once upon"})", "length"), counting_ids());
  ASSERT_TRUE(turn);
  EXPECT_EQ(turn->status, "incomplete");
  EXPECT_EQ(turn->incomplete_reason, "max_output_tokens");
  EXPECT_EQ(turn->output[0].at("status"), "incomplete");
}

TEST(OutputFromChatCompletion, ContentFilterIsIncomplete) {
  auto turn = output_from_chat_completion(
      completion(R"({"role":"assistant","content":null})", "content_filter"), counting_ids());
  ASSERT_TRUE(turn);
  EXPECT_EQ(turn->status, "incomplete");
  EXPECT_EQ(turn->incomplete_reason, "content_filter");
  EXPECT_TRUE(turn->output.empty());
}

TEST(OutputFromChatCompletion, Refusal) {
  auto turn = output_from_chat_completion(
      completion(R"({"role":"assistant","content":null,"refusal":"I can't help with that."})"),
      counting_ids());
  ASSERT_TRUE(turn);
  EXPECT_EQ(json::value(turn->output), parse(R"([{"type":"message","id":"msg_1",
      "status":"completed","role":"assistant",
      "content":[{"type":"refusal","refusal":"I can't help with that."}]}])"));
}

TEST(OutputFromChatCompletion, NoUsageIsZero) {
  auto turn = output_from_chat_completion(
      R"({"choices":[{"index":0,"message":{"content":"x"},"finish_reason":"stop"}]})",
      counting_ids());
  ASSERT_TRUE(turn);
  EXPECT_EQ(turn->input_tokens, 0);
  EXPECT_EQ(turn->output_tokens, 0);
}

TEST(OutputFromChatCompletion, UntrustedTokenCountsAreBounded) {
  auto turn = output_from_chat_completion(R"({"choices":[{"index":0,"message":{"content":"x"}}],
      "usage":{"prompt_tokens":9223372036854775807,"completion_tokens":-5}})",
                                          counting_ids());
  ASSERT_TRUE(turn);
  EXPECT_GT(turn->input_tokens, 1'000'000'000);
  EXPECT_EQ(turn->output_tokens, 0);
  ResponseState state;
  state.usage_from = turn;
  json::object response = response_object(request_from(R"({"model":"m"})"), state);
  EXPECT_EQ(response.at("usage").at("total_tokens"), turn->input_tokens);
}

TEST(OutputFromChatCompletion, GarbageIsNullopt) {
  for (std::string_view garbage :
       {"", "not json", "[]", "{}", R"({"choices":[]})", R"({"choices":{}})", R"({"choices":[5]})",
        R"({"choices":[{"index":0}]})", R"({"choices":[{"index":0,"message":"hi"}]})",
        R"({"choices":[{"index":1,"message":{}}]})", R"({"error":{"message":"boom"}})"}) {
    EXPECT_FALSE(output_from_chat_completion(garbage, counting_ids())) << garbage;
  }
}

// ---- response_object

TEST(ResponseObject, Defaults) {
  ResponsesRequest request = request_from(R"({"model":"m","input":"hi"})");
  ResponseState state;
  state.id = "resp_1";
  state.created_at = 1700000000;
  state.status = "queued";
  EXPECT_EQ(json::value(response_object(request, state)), parse(R"({
    "id":"resp_1","object":"response","created_at":1700000000,"status":"queued",
    "background":false,"error":null,"incomplete_details":null,"instructions":null,
    "max_output_tokens":null,"model":"m","output":[],"parallel_tool_calls":true,
    "previous_response_id":null,"conversation":null,
    "reasoning":{"effort":null,"summary":null},"store":true,"temperature":1.0,
    "text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[],"top_p":1.0,
    "truncation":"disabled","usage":null,"user":null,"metadata":{}})"));
}

TEST(ResponseObject, CarriesRequestAndState) {
  ResponsesRequest request = request_from(R"({"model":"m","instructions":"be kind",
      "previous_response_id":"resp_0","store":false,"max_output_tokens":5,"temperature":0.25,
      "top_p":0.5,"parallel_tool_calls":false,"tools":[{"type":"function","name":"f"}],
      "tool_choice":"required","text":{"verbosity":"low"},"user":"u","metadata":{"a":"b"}})");
  ResponseState state;
  state.id = "resp_1";
  state.created_at = 7;
  state.status = "incomplete";
  state.output = parse(R"([{"type":"message","id":"msg_1","status":"incomplete",
      "role":"assistant","content":[]}])")
                     .as_array();
  state.usage_from.emplace();
  state.usage_from->input_tokens = 11;
  state.usage_from->output_tokens = 7;
  state.incomplete_reason = "max_output_tokens";
  state.conversation_id = "conv_1";
  state.error = parse(R"({"code":"server_error","message":"x"})");
  EXPECT_EQ(json::value(response_object(request, state)), parse(R"({
    "id":"resp_1","object":"response","created_at":7,"status":"incomplete",
    "background":false,"error":{"code":"server_error","message":"x"},
    "incomplete_details":{"reason":"max_output_tokens"},"instructions":"be kind",
    "max_output_tokens":5,"model":"m",
    "output":[{"type":"message","id":"msg_1","status":"incomplete","role":"assistant",
               "content":[]}],
    "parallel_tool_calls":false,"previous_response_id":"resp_0",
    "conversation":{"id":"conv_1"},"reasoning":{"effort":null,"summary":null},"store":false,
    "temperature":0.25,"text":{"verbosity":"low","format":{"type":"text"}},
    "tool_choice":"required","tools":[{"type":"function","name":"f"}],"top_p":0.5,
    "truncation":"disabled",
    "usage":{"input_tokens":11,"input_tokens_details":{"cached_tokens":0},"output_tokens":7,
             "output_tokens_details":{"reasoning_tokens":0},"total_tokens":18},
    "user":"u","metadata":{"a":"b"}})"));
}

// ---- ResponsesStreamTranslator

struct StreamEvent {
  std::string type;
  json::object data;
};

// Splits SSE text into events, checking the framing and that each "type" matches its event line.
std::vector<StreamEvent> split_events(std::string_view sse) {
  std::vector<StreamEvent> events;
  while (!sse.empty()) {
    std::size_t end = sse.find("\n\n");
    if (end == std::string_view::npos) {
      ADD_FAILURE() << "unterminated event: " << sse;
      break;
    }
    std::string_view block = sse.substr(0, end);
    sse.remove_prefix(end + 2);
    std::size_t newline = block.find('\n');
    std::string_view event_line = block.substr(0, newline);
    std::string_view data_line = block.substr(newline + 1);
    EXPECT_EQ(event_line.substr(0, 7), "event: ");
    EXPECT_EQ(data_line.substr(0, 6), "data: ");
    EXPECT_EQ(data_line.find('\n'), std::string_view::npos);
    boost::system::error_code ec;
    json::value data = json::parse(data_line.substr(6), ec);
    EXPECT_FALSE(ec) << data_line;
    EXPECT_TRUE(data.is_object()) << data_line;
    if (ec || !data.is_object()) continue;
    StreamEvent event{std::string(event_line.substr(7)), data.as_object()};
    EXPECT_EQ(event.data["type"], json::value(event.type));
    events.push_back(std::move(event));
  }
  return events;
}

std::vector<std::string> types_of(const std::vector<StreamEvent>& events) {
  std::vector<std::string> types;
  for (const StreamEvent& event : events) types.push_back(event.type);
  return types;
}

bool is_lifecycle(std::string_view type) {
  return type == "response.created" || type == "response.in_progress" ||
         type == "response.completed" || type == "response.incomplete" || type == "response.failed";
}

// Accumulates events as the OpenAI SDK's ResponseStream does and fails the test on anything it
// rejects: lifecycle events without a response, items appended out of order, events naming an
// item, part or id that was not announced, and a final response whose output differs from what
// the events built. Returns the last response snapshot.
class SdkAccumulator {
 public:
  void apply(const StreamEvent& event) {
    EXPECT_EQ(event.data.at("sequence_number").as_int64(), next_sequence_++) << event.type;
    if (is_lifecycle(event.type)) return apply_lifecycle(event);
    ASSERT_TRUE(started_) << event.type << " before response.created";
    std::size_t index = event.data.at("output_index").as_int64();
    if (event.type == "response.output_item.added") {
      ASSERT_EQ(index, output_.size());
      const json::object& item = event.data.at("item").as_object();
      EXPECT_TRUE(ids_.insert(std::string(item.at("id").as_string())).second);
      if (item.at("type") == "function_call") {
        EXPECT_TRUE(call_ids_.insert(std::string(item.at("call_id").as_string())).second);
      }
      EXPECT_EQ(item.at("status"), "in_progress");
      output_.push_back(item);
      return;
    }
    ASSERT_LT(index, output_.size()) << event.type;
    json::object& item = output_[index].as_object();
    if (event.type == "response.output_item.done") {
      const json::object& done = event.data.at("item").as_object();
      EXPECT_EQ(done.at("id"), item.at("id"));
      EXPECT_EQ(done.at("type"), item.at("type"));
      EXPECT_TRUE(done_.insert(index).second) << "item done twice";
      item = done;
      return;
    }
    EXPECT_EQ(event.data.at("item_id"), item.at("id")) << event.type;
    EXPECT_FALSE(done_.count(index)) << event.type << " after output_item.done";
    if (event.type.starts_with("response.function_call_arguments.")) {
      return apply_arguments(event, item);
    }
    apply_content(event, item);
  }

  const json::object& snapshot() const { return snapshot_; }

 private:
  void apply_lifecycle(const StreamEvent& event) {
    ASSERT_TRUE(event.data.contains("response")) << event.type;
    const json::object& response = event.data.at("response").as_object();
    EXPECT_EQ(started_, event.type != "response.created");
    if (started_) {
      EXPECT_EQ(response.at("id"), snapshot_.at("id"));
    }
    started_ = true;
    if (event.type == "response.completed" || event.type == "response.incomplete") {
      EXPECT_EQ(done_.size(), output_.size()) << "items left open";
    }
    if (event.type != "response.created" && event.type != "response.in_progress") {
      EXPECT_EQ(response.at("output"), json::value(output_)) << event.type;
    }
    snapshot_ = response;
  }

  void apply_arguments(const StreamEvent& event, json::object& item) {
    ASSERT_EQ(item.at("type"), "function_call");
    std::string arguments(item.at("arguments").as_string());
    if (event.type.ends_with(".delta")) {
      item["arguments"] = arguments + std::string(event.data.at("delta").as_string());
    } else {
      EXPECT_EQ(event.data.at("arguments"), item.at("arguments"));
    }
  }

  void apply_content(const StreamEvent& event, json::object& item) {
    ASSERT_EQ(item.at("type"), "message") << event.type;
    json::array& content = item.at("content").as_array();
    std::size_t content_index = event.data.at("content_index").as_int64();
    if (event.type == "response.content_part.added") {
      ASSERT_EQ(content_index, content.size());
      content.push_back(event.data.at("part"));
      return;
    }
    ASSERT_LT(content_index, content.size()) << event.type;
    json::object& part = content[content_index].as_object();
    bool refusal = event.type.starts_with("response.refusal.");
    std::string_view field = part.at("type") == "refusal" ? "refusal" : "text";
    if (event.type == "response.content_part.done") {
      EXPECT_EQ(event.data.at("part").as_object().at(field), part.at(field));
      return;
    }
    ASSERT_EQ(part.at("type"), refusal ? "refusal" : "output_text") << event.type;
    if (event.type.ends_with(".delta")) {
      if (!refusal) {
        EXPECT_TRUE(event.data.at("logprobs").is_array());
      }
      part[field] =
          std::string(part.at(field).as_string()) + std::string(event.data.at("delta").as_string());
    } else {
      EXPECT_EQ(event.data.at(field), part.at(field)) << event.type;
    }
  }

  std::int64_t next_sequence_ = 0;
  bool started_ = false;
  json::object snapshot_;
  json::array output_;
  std::set<std::size_t> done_;
  std::set<std::string> ids_;
  std::set<std::string> call_ids_;
};

std::string chunk(std::string_view delta, std::string_view finish_reason = "null") {
  return R"({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m",
      "choices":[{"index":0,"delta":)" +
         std::string(delta) + R"(,"finish_reason":)" + std::string(finish_reason) + "}]}";
}

std::string text_chunk(std::string_view text) {
  return chunk(R"({"content":")" + std::string(text) + R"("})");
}

std::string tool_chunk(std::string_view entries) {
  return chunk(R"({"tool_calls":)" + std::string(entries) + "}");
}

constexpr std::string_view kUsageChunk =
    R"({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],
        "usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}})";

class StreamTest : public ::testing::Test {
 protected:
  StreamTest() : request_(request_from(R"({"model":"m","input":"hi","stream":true})")) {}

  ResponsesStreamTranslator& translator() {
    if (!translator_) {
      ResponseState state;
      state.id = "resp_1";
      state.created_at = 42;
      translator_.emplace(request_, std::move(state), counting_ids());
    }
    return *translator_;
  }

  // Runs the whole stream through the translator and the SDK's rules; returns its events.
  std::vector<StreamEvent> run(const std::vector<std::string>& chunks, bool finish = true) {
    translator().begin(sse_);
    for (const std::string& payload : chunks) EXPECT_TRUE(translator().on_chunk(payload, sse_));
    if (finish) translator().finish(sse_);
    return replay();
  }

  std::vector<StreamEvent> replay() {
    std::vector<StreamEvent> events = split_events(sse_);
    SdkAccumulator accumulator;
    for (const StreamEvent& event : events) accumulator.apply(event);
    final_ = accumulator.snapshot();
    return events;
  }

  ResponsesRequest request_;
  std::optional<ResponsesStreamTranslator> translator_;
  std::string sse_;
  json::object final_;
};

TEST_F(StreamTest, Text) {
  auto events = run({chunk(R"({"role":"assistant","content":""})"), text_chunk("Hel"),
                     text_chunk("lo"), chunk("{}", R"("stop")"), std::string(kUsageChunk)});
  EXPECT_EQ(types_of(events),
            (std::vector<std::string>{"response.created", "response.in_progress",
                                      "response.output_item.added", "response.content_part.added",
                                      "response.output_text.delta", "response.output_text.delta",
                                      "response.output_text.done", "response.content_part.done",
                                      "response.output_item.done", "response.completed"}));
  EXPECT_EQ(events[0].data.at("response").at("status"), "in_progress");
  EXPECT_EQ(events[0].data.at("response").at("output"), json::array());
  EXPECT_EQ(json::value(events[2].data), parse(R"({"type":"response.output_item.added",
      "sequence_number":2,"output_index":0,"item":{"type":"message","id":"msg_1",
      "status":"in_progress","role":"assistant","content":[]}})"));
  EXPECT_EQ(json::value(events[3].data), parse(R"({"type":"response.content_part.added",
      "sequence_number":3,"item_id":"msg_1","output_index":0,"content_index":0,
      "part":{"type":"output_text","text":"","annotations":[]}})"));
  EXPECT_EQ(json::value(events[4].data), parse(R"({"type":"response.output_text.delta",
      "sequence_number":4,"item_id":"msg_1","output_index":0,"content_index":0,
      "delta":"Hel","logprobs":[]})"));
  EXPECT_EQ(json::value(events[6].data), parse(R"({"type":"response.output_text.done",
      "sequence_number":6,"item_id":"msg_1","output_index":0,"content_index":0,
      "text":"Hello","logprobs":[]})"));
  EXPECT_EQ(final_.at("status"), "completed");
  EXPECT_EQ(final_.at("id"), "resp_1");
  EXPECT_EQ(final_.at("created_at"), 42);
  EXPECT_EQ(final_.at("output"), parse(R"([{"type":"message","id":"msg_1","status":"completed",
      "role":"assistant","content":[{"type":"output_text","text":"Hello","annotations":[]}]}])"));
  EXPECT_EQ(final_.at("usage"), parse(R"({"input_tokens":5,"input_tokens_details":
      {"cached_tokens":0},"output_tokens":3,"output_tokens_details":{"reasoning_tokens":0},
      "total_tokens":8})"));
  EXPECT_EQ(translator().state().status, "completed");
  EXPECT_EQ(json::value(translator().state().output), final_.at("output"));
  EXPECT_EQ(json::value(translator().response()), json::value(final_));
}

TEST_F(StreamTest, TwoInterleavedToolCalls) {
  auto events = run({
      chunk(R"({"role":"assistant","content":null})"),
      tool_chunk(R"([{"index":0,"id":"call_a","type":"function",
                      "function":{"name":"get_weather","arguments":""}}])"),
      tool_chunk(R"([{"index":1,"id":"call_b","type":"function",
                      "function":{"name":"get_time","arguments":"{\"tz\""}}])"),
      tool_chunk(R"([{"index":0,"function":{"arguments":"{\"city\""}}])"),
      tool_chunk(R"([{"index":1,"function":{"arguments":":1}"}}])"),
      tool_chunk(R"([{"index":0,"function":{"arguments":":\"Paris\"}"}}])"),
      chunk("{}", R"("tool_calls")"),
  });
  EXPECT_EQ(types_of(events),
            (std::vector<std::string>{
                "response.created", "response.in_progress", "response.output_item.added",
                "response.output_item.added", "response.function_call_arguments.delta",
                "response.function_call_arguments.delta", "response.function_call_arguments.delta",
                "response.function_call_arguments.delta", "response.function_call_arguments.done",
                "response.output_item.done", "response.function_call_arguments.done",
                "response.output_item.done", "response.completed"}));
  EXPECT_EQ(json::value(events[3].data), parse(R"({"type":"response.output_item.added",
      "sequence_number":3,"output_index":1,"item":{"type":"function_call","id":"fc_2",
      "status":"in_progress","call_id":"call_b","name":"get_time","arguments":""}})"));
  EXPECT_EQ(json::value(events[5].data), parse(R"({"type":"response.function_call_arguments.delta",
      "sequence_number":5,"item_id":"fc_1","output_index":0,"delta":"{\"city\""})"));
  EXPECT_EQ(json::value(events[8].data), parse(R"({"type":"response.function_call_arguments.done",
      "sequence_number":8,"item_id":"fc_1","output_index":0,
      "arguments":"{\"city\":\"Paris\"}"})"));
  EXPECT_EQ(final_.at("output"), parse(R"([
      {"type":"function_call","id":"fc_1","status":"completed","call_id":"call_a",
       "name":"get_weather","arguments":"{\"city\":\"Paris\"}"},
      {"type":"function_call","id":"fc_2","status":"completed","call_id":"call_b",
       "name":"get_time","arguments":"{\"tz\":1}"}])"));
  EXPECT_TRUE(final_.at("usage").is_null());
}

TEST_F(StreamTest, TextThenToolCallClosesTheMessageFirst) {
  auto events =
      run({text_chunk("Let me check."), tool_chunk(R"([{"index":0,"id":"call_a","type":"function",
                                     "function":{"name":"f","arguments":"{}"}}])"),
           chunk("{}", R"("tool_calls")")});
  EXPECT_EQ(
      types_of(events),
      (std::vector<std::string>{
          "response.created", "response.in_progress", "response.output_item.added",
          "response.content_part.added", "response.output_text.delta", "response.output_text.done",
          "response.content_part.done", "response.output_item.done", "response.output_item.added",
          "response.function_call_arguments.delta", "response.function_call_arguments.done",
          "response.output_item.done", "response.completed"}));
  EXPECT_EQ(events[8].data.at("output_index"), 1);
  EXPECT_EQ(final_.at("output"), parse(R"([
      {"type":"message","id":"msg_1","status":"completed","role":"assistant",
       "content":[{"type":"output_text","text":"Let me check.","annotations":[]}]},
      {"type":"function_call","id":"fc_2","status":"completed","call_id":"call_a","name":"f",
       "arguments":"{}"}])"));
}

TEST_F(StreamTest, TextAfterAToolCallOpensANewMessage) {
  run({text_chunk("a"), tool_chunk(R"([{"index":0,"id":"c","function":{"name":"f"}}])"),
       text_chunk("b")});
  const json::array& output = final_.at("output").as_array();
  ASSERT_EQ(output.size(), 3u);
  EXPECT_EQ(output[0].at("id"), "msg_1");
  EXPECT_EQ(output[1].at("id"), "fc_2");
  EXPECT_EQ(output[2].at("id"), "msg_3");
  EXPECT_EQ(output[2].at("content").at(0).at("text"), "b");
}

TEST_F(StreamTest, TextAndFinishReasonInOneChunk) {
  run({chunk(R"({"content":"Hi"})", R"("stop")")});
  EXPECT_EQ(final_.at("status"), "completed");
  EXPECT_EQ(final_.at("output").at(0).at("content").at(0).at("text"), "Hi");
}

TEST_F(StreamTest, LengthFinishIsIncomplete) {
  auto events = run({text_chunk("Once upon"), chunk("{}", R"("length")")});
  EXPECT_EQ(events.back().type, "response.incomplete");
  EXPECT_EQ(final_.at("status"), "incomplete");
  EXPECT_EQ(final_.at("incomplete_details"), parse(R"({"reason":"max_output_tokens"})"));
  EXPECT_EQ(final_.at("output").at(0).at("status"), "incomplete");
  EXPECT_EQ(translator().state().incomplete_reason, "max_output_tokens");
}

TEST_F(StreamTest, ContentFilterFinishIsIncomplete) {
  auto events = run({chunk("{}", R"("content_filter")")});
  EXPECT_EQ(events.back().type, "response.incomplete");
  EXPECT_EQ(final_.at("incomplete_details"), parse(R"({"reason":"content_filter"})"));
}

TEST_F(StreamTest, Refusal) {
  auto events = run({chunk(R"({"role":"assistant","refusal":"I can't"})"),
                     chunk(R"({"refusal":" help."})", R"("stop")")});
  EXPECT_EQ(types_of(events),
            (std::vector<std::string>{"response.created", "response.in_progress",
                                      "response.output_item.added", "response.content_part.added",
                                      "response.refusal.delta", "response.refusal.delta",
                                      "response.refusal.done", "response.content_part.done",
                                      "response.output_item.done", "response.completed"}));
  EXPECT_EQ(json::value(events[6].data), parse(R"({"type":"response.refusal.done",
      "sequence_number":6,"item_id":"msg_1","output_index":0,"content_index":0,
      "refusal":"I can't help."})"));
  EXPECT_EQ(final_.at("output").at(0).at("content"),
            parse(R"([{"type":"refusal","refusal":"I can't help."}])"));
}

TEST_F(StreamTest, FailMidStream) {
  run({text_chunk("Hel"), tool_chunk(R"([{"index":0,"id":"c","function":{"name":"f",
                                          "arguments":"{\"a"}}])")},
      false);
  translator().fail(make_error(502, "upstream reset the connection"), sse_);
  std::vector<StreamEvent> events = replay();
  EXPECT_EQ(events.back().type, "response.failed");
  EXPECT_EQ(final_.at("status"), "failed");
  EXPECT_EQ(final_.at("error"),
            parse(R"({"code":"server_error","message":"upstream reset the connection"})"));
  // The message was closed when the call began; the call the failure cut short is closed as
  // incomplete, so no item is left open.
  EXPECT_EQ(final_.at("output").at(0).at("status"), "completed");
  EXPECT_EQ(final_.at("output").at(1), parse(R"({"type":"function_call","id":"fc_2",
      "status":"incomplete","call_id":"c","name":"f","arguments":"{\"a"})"));
  EXPECT_EQ(events[events.size() - 2].type, "response.output_item.done");

  // Nothing follows the end.
  std::size_t before = sse_.size();
  EXPECT_TRUE(translator().on_chunk(text_chunk("late"), sse_));
  translator().finish(sse_);
  translator().fail(make_error(500, "again"), sse_);
  EXPECT_EQ(sse_.size(), before);
  EXPECT_EQ(translator().state().status, "failed");
}

TEST_F(StreamTest, CancelClosesOpenItemsAndEndsWithACancelledResponse) {
  run({text_chunk("Once upon")}, false);
  translator().cancel(sse_);
  std::vector<StreamEvent> events = replay();
  EXPECT_EQ(events.back().type, "response.failed");
  EXPECT_EQ(final_.at("status"), "cancelled");
  EXPECT_TRUE(final_.at("error").is_null());
  EXPECT_EQ(final_.at("output").at(0).at("status"), "incomplete");
  EXPECT_EQ(final_.at("output").at(0).at("content").at(0).at("text"), "Once upon");
  EXPECT_EQ(translator().state().status, "cancelled");
}

TEST_F(StreamTest, FailUsesTheErrorCodeWhenThereIsOne) {
  translator().begin(sse_);
  translator().fail(make_error(429, "slow down", "", "rate_limit_exceeded"), sse_);
  replay();
  EXPECT_EQ(final_.at("error").at("code"), "rate_limit_exceeded");
}

TEST_F(StreamTest, FailBeforeBeginStillStartsTheResponse) {
  translator().fail(make_error(503, "no backend"), sse_);
  EXPECT_EQ(
      types_of(replay()),
      (std::vector<std::string>{"response.created", "response.in_progress", "response.failed"}));
  EXPECT_EQ(final_.at("error").at("code"), "service_unavailable");
}

TEST_F(StreamTest, RobustToSloppyUpstreams) {
  auto events = run({
      chunk("{}"),
      chunk(R"({"content":null})"),
      chunk(R"({"content":""})"),
      R"({"choices":[{"index":0}]})",
      R"({"choices":[{"index":1,"delta":{"content":"other choice"}}]})",
      R"({"object":"chat.completion.chunk"})",
      // arguments before the name, no id, no type
      tool_chunk(R"([{"index":0,"function":{"arguments":"{\"x\""}}])"),
      tool_chunk(R"([{"index":0,"function":{"name":"f","arguments":":1}"}}])"),
      // a call that is never named is never announced
      tool_chunk(R"([{"index":1,"function":{"arguments":"{}"}}])"),
      // a reused index with a new id is a new call; a repeated id gets a fresh one
      tool_chunk(R"([{"index":2,"id":"dup","function":{"name":"g","arguments":"{}"}}])"),
      tool_chunk(R"([{"index":2,"id":"other","function":{"name":"h","arguments":"{}"}}])"),
      tool_chunk(R"([{"index":3,"id":"dup","function":{"name":"k","arguments":"{}"}}])"),
      tool_chunk(R"([5, {"index":"x"}])"),
  });
  const json::array& output = final_.at("output").as_array();
  ASSERT_EQ(output.size(), 4u);
  EXPECT_EQ(output[0], parse(R"({"type":"function_call","id":"fc_1","status":"completed",
      "call_id":"call_2","name":"f","arguments":"{\"x\":1}"})"));
  EXPECT_EQ(output[1].at("call_id"), "dup");
  EXPECT_EQ(output[1].at("name"), "g");
  EXPECT_EQ(output[2].at("call_id"), "other");
  EXPECT_EQ(output[2].at("name"), "h");
  EXPECT_EQ(output[3].at("name"), "k");
  EXPECT_NE(output[3].at("call_id"), "dup");
  EXPECT_EQ(events.back().type, "response.completed");
}

TEST_F(StreamTest, NotAChunkIsFalseAndEmitsNothing) {
  translator().begin(sse_);
  std::size_t before = sse_.size();
  for (std::string_view payload : {"", "[DONE]", "[]", "\"x\"", "{", "{\"a\":\"\xFF\"}"}) {
    EXPECT_FALSE(translator().on_chunk(payload, sse_)) << payload;
  }
  EXPECT_EQ(sse_.size(), before);
}

TEST_F(StreamTest, UsageOnlyChunkSetsUsage) {
  run({text_chunk("x"), std::string(kUsageChunk)});
  ASSERT_TRUE(translator().state().usage_from);
  EXPECT_EQ(translator().state().usage_from->input_tokens, 5);
  EXPECT_EQ(translator().state().usage_from->output_tokens, 3);
  EXPECT_EQ(final_.at("usage").at("total_tokens"), 8);
}

TEST_F(StreamTest, ResponseMidStreamShowsItemsAsTheyStand) {
  translator().begin(sse_);
  translator().on_chunk(text_chunk("par"), sse_);
  json::object response = translator().response();
  EXPECT_EQ(response.at("status"), "in_progress");
  EXPECT_EQ(response.at("output"), parse(R"([{"type":"message","id":"msg_1",
      "status":"in_progress","role":"assistant",
      "content":[{"type":"output_text","text":"par","annotations":[]}]}])"));
}

TEST_F(StreamTest, BeginIsIdempotentAndImplicit) {
  translator().on_chunk(text_chunk("x"), sse_);
  translator().begin(sse_);
  translator().finish(sse_);
  std::vector<StreamEvent> events = replay();
  EXPECT_EQ(events[0].type, "response.created");
  EXPECT_EQ(events[1].type, "response.in_progress");
  EXPECT_EQ(events.back().type, "response.completed");
}

TEST_F(StreamTest, EmptyStreamCompletesWithNoOutput) {
  auto events = run({});
  EXPECT_EQ(types_of(events), (std::vector<std::string>{"response.created", "response.in_progress",
                                                        "response.completed"}));
  EXPECT_EQ(final_.at("output"), json::array());
}

}  // namespace
}  // namespace redline::agents
