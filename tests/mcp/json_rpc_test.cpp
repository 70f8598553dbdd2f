#include "mcp/json_rpc.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <string>

namespace redline::mcp {
namespace {

namespace json = boost::json;

TEST(JsonRpcWriteTest, RequestCarriesVersionIdMethodAndParams) {
  EXPECT_EQ(json::parse(json_rpc_request(7, "tools/list", {{"cursor", "c2"}})),
            json::parse(R"({"jsonrpc":"2.0","id":7,"method":"tools/list",)"
                        R"("params":{"cursor":"c2"}})"));
}

TEST(JsonRpcWriteTest, EmptyParamsAreLeftOut) {
  EXPECT_EQ(json::parse(json_rpc_request(1, "ping", {})),
            json::parse(R"({"jsonrpc":"2.0","id":1,"method":"ping"})"));
  EXPECT_EQ(json::parse(json_rpc_notification("notifications/initialized", {})),
            json::parse(R"({"jsonrpc":"2.0","method":"notifications/initialized"})"));
}

TEST(JsonRpcWriteTest, AnswersEchoTheServersIdAsSent) {
  EXPECT_EQ(json::parse(json_rpc_result("srv-1", {})),
            json::parse(R"({"jsonrpc":"2.0","id":"srv-1","result":{}})"));
  EXPECT_EQ(json::parse(json_rpc_error(9, kMethodNotFound, "no")),
            json::parse(R"({"jsonrpc":"2.0","id":9,"error":{"code":-32601,"message":"no"}})"));
}

TEST(JsonRpcParseTest, ResultWithOurId) {
  auto message = parse_json_rpc(R"({"jsonrpc":"2.0","id":42,"result":{"tools":[]}})");
  ASSERT_TRUE(message) << message.error().message;
  EXPECT_EQ(message->kind, JsonRpcMessage::Kind::kResult);
  EXPECT_TRUE(message->is_response());
  EXPECT_EQ(message->request_id(), 42);
  EXPECT_TRUE(message->result.as_object().contains("tools"));
}

TEST(JsonRpcParseTest, ErrorResponseKeepsCodeMessageAndData) {
  auto message = parse_json_rpc(
      R"({"jsonrpc":"2.0","id":3,"error":{"code":-32602,"message":"bad","data":{"x":1}}})");
  ASSERT_TRUE(message);
  EXPECT_EQ(message->kind, JsonRpcMessage::Kind::kError);
  EXPECT_EQ(message->error.code, -32602);
  EXPECT_EQ(message->error.message, "bad");
  EXPECT_EQ(message->error.data, json::parse(R"({"x":1})"));
}

TEST(JsonRpcParseTest, ErrorWithoutIdIsAResponseNoRequestOwns) {
  auto message = parse_json_rpc(
      R"({"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"Bad Request"}})");
  ASSERT_TRUE(message);
  EXPECT_EQ(message->kind, JsonRpcMessage::Kind::kError);
  EXPECT_FALSE(message->request_id());
}

TEST(JsonRpcParseTest, ServerRequestsAndNotifications) {
  auto ping = parse_json_rpc(R"({"jsonrpc":"2.0","id":"p1","method":"ping"})");
  ASSERT_TRUE(ping);
  EXPECT_EQ(ping->kind, JsonRpcMessage::Kind::kRequest);
  EXPECT_EQ(ping->method, "ping");
  EXPECT_EQ(ping->id, json::value("p1"));
  EXPECT_FALSE(ping->request_id());  // a string id is never one of ours

  auto progress = parse_json_rpc(
      R"({"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}})");
  ASSERT_TRUE(progress);
  EXPECT_EQ(progress->kind, JsonRpcMessage::Kind::kNotification);
  EXPECT_FALSE(progress->is_response());
}

TEST(JsonRpcParseTest, RejectsWhatIsNotOneJsonRpcMessage) {
  for (const char* text : {
           "", "not json",
           R"([{"jsonrpc":"2.0","id":1,"result":{}}])",  // a batch
           R"({"jsonrpc":"1.0","id":1,"result":{}})",    // wrong version
           R"({"id":1,"result":{}})",                    // no version
           R"({"jsonrpc":"2.0","id":1})",                // neither result nor error
           R"({"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":"x"}})",
           R"({"jsonrpc":"2.0","result":{}})",              // a result without id
           R"({"jsonrpc":"2.0","id":1.5,"result":{}})",     // fractional id
           R"({"jsonrpc":"2.0","id":true,"result":{}})",    // boolean id
           R"({"jsonrpc":"2.0","id":1,"error":"broken"})",  // error not an object
           R"({"jsonrpc":"2.0","id":1,"error":{"code":"x","message":"m"}})",
           R"({"jsonrpc":"2.0","id":1,"error":{"code":1}})",      // no message
           R"({"jsonrpc":"2.0","id":null,"method":"ping"})",      // a request with null id
           R"({"jsonrpc":"2.0","method":7})",                     // method not a string
           R"({"jsonrpc":"2.0","method":"x","params":"p"})",      // params not structured
           "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"\xff\"}",  // invalid UTF-8
       }) {
    auto message = parse_json_rpc(text);
    EXPECT_FALSE(message) << text;
    if (!message) {
      EXPECT_EQ(message.error().kind, McpErrorKind::kProtocol) << text;
    }
  }
}

TEST(JsonRpcParseTest, BoundsNesting) {
  std::string deep = R"({"jsonrpc":"2.0","id":1,"result":)";
  for (int i = 0; i < 100; ++i) deep += "[";
  for (int i = 0; i < 100; ++i) deep += "]";
  deep += "}";
  EXPECT_FALSE(parse_json_rpc(deep));

  std::string schema_deep = R"({"jsonrpc":"2.0","id":1,"result":)";
  for (int i = 0; i < 40; ++i) schema_deep += R"({"a":)";
  schema_deep += "1";
  for (int i = 0; i < 40; ++i) schema_deep += "}";
  schema_deep += "}";
  EXPECT_TRUE(parse_json_rpc(schema_deep));  // deeper than Boost.JSON's default of 32
}

TEST(JsonRpcParseTest, LargeUnsignedIdsAreNotOurs) {
  auto message = parse_json_rpc(R"({"jsonrpc":"2.0","id":18446744073709551615,"result":{}})");
  EXPECT_FALSE(message);  // above int64: not an id we could have sent
}

}  // namespace
}  // namespace redline::mcp
