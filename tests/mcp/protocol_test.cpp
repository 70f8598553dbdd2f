#include "mcp/protocol.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

namespace redline::mcp {
namespace {

namespace json = boost::json;

std::string header(const net::Headers& headers, std::string_view name) {
  return std::string(net::find_header(headers, name));
}

Dialect modern_dialect() {
  Dialect dialect;
  dialect.revision = McpRevision::k20260728;
  dialect.client = {"redline", "1.2.3"};
  return dialect;
}

TEST(DialectTest, ModernRequestsCarryTheEnvelopeBesideWhatMetaHeld) {
  json::object params{{"name", "search"}, {"_meta", {{kIdempotencyKeyMeta, "k1"}}}};
  modern_dialect().dress(params);
  EXPECT_EQ(params.at("_meta"), json::parse(R"({
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientInfo": {"name": "redline", "version": "1.2.3"},
    "io.modelcontextprotocol/clientCapabilities": {},
    "dev.redline/idempotency-key": "k1"})"));
}

TEST(DialectTest, HandshakeRevisionAddsNothing) {
  Dialect dialect;
  dialect.protocol_version = "2025-11-25";
  json::object params{{"name", "search"}};
  dialect.dress(params);
  EXPECT_EQ(params, json::object({{"name", "search"}}));
}

TEST(DialectTest, HttpHeadersPerRevision) {
  Dialect before_initialize;
  EXPECT_TRUE(before_initialize.http_headers("initialize", {}, true).empty());

  Dialect legacy;
  legacy.protocol_version = "2025-06-18";
  auto headers = legacy.http_headers("tools/call", {{"name", "search"}}, true);
  EXPECT_EQ(header(headers, "MCP-Protocol-Version"), "2025-06-18");
  EXPECT_EQ(header(headers, "Mcp-Method"), "");  // 2026-07-28 only

  auto call = modern_dialect().http_headers("tools/call", {{"name", "search"}}, true);
  EXPECT_EQ(header(call, "MCP-Protocol-Version"), "2026-07-28");
  EXPECT_EQ(header(call, "Mcp-Method"), "tools/call");
  EXPECT_EQ(header(call, "Mcp-Name"), "search");

  auto list = modern_dialect().http_headers("tools/list", {}, true);
  EXPECT_EQ(header(list, "Mcp-Method"), "tools/list");
  EXPECT_EQ(header(list, "Mcp-Name"), "");

  auto read = modern_dialect().http_headers("resources/read", {{"uri", "file:///a"}}, true);
  EXPECT_EQ(header(read, "Mcp-Name"), "file:///a");

  auto notification = modern_dialect().http_headers("notifications/cancelled", {}, false);
  EXPECT_EQ(header(notification, "MCP-Protocol-Version"), "2026-07-28");
  EXPECT_EQ(header(notification, "Mcp-Method"), "");
}

TEST(EncodeHeaderValueTest, PlainAsciiPassesOthersAreBase64) {
  EXPECT_EQ(encode_header_value("get_weather"), "get_weather");
  EXPECT_EQ(encode_header_value("a\tb c"), "a\tb c");
  EXPECT_EQ(encode_header_value(""),
            "=?base64?"
            "?=");  // (split: "??=" is a trigraph)
  EXPECT_EQ(encode_header_value(" lead"), "=?base64?IGxlYWQ=?=");
  EXPECT_EQ(encode_header_value("trail "), "=?base64?dHJhaWwg?=");
  EXPECT_EQ(encode_header_value("caf\xc3\xa9"), "=?base64?Y2Fmw6k=?=");  // UTF-8 "café"
  EXPECT_EQ(encode_header_value("line\nbreak"), "=?base64?bGluZQpicmVhaw==?=");
  // A plain value that looks encoded is encoded, so it cannot be mistaken for one.
  EXPECT_EQ(encode_header_value("=?base64?eA==?="), "=?base64?PT9iYXNlNjQ/ZUE9PT89?=");
}

TEST(InitializeTest, ParamsNameTheClientAndTheNewestHandshakeRevision) {
  EXPECT_EQ(initialize_params({"redline", "1.0"}), json::parse(R"({
    "protocolVersion": "2025-11-25", "capabilities": {},
    "clientInfo": {"name": "redline", "version": "1.0"}})"));
}

TEST(InitializeTest, AcceptsTheHandshakeRevisionsThatShareTheToolsShape) {
  for (const char* version : {"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"}) {
    auto agreed = read_initialize_result(json::object{{"protocolVersion", version}});
    ASSERT_TRUE(agreed) << version;
    EXPECT_EQ(*agreed, version);
  }
}

TEST(InitializeTest, RejectsWhatItCannotSpeak) {
  auto unknown = read_initialize_result(json::object{{"protocolVersion", "2024-10-07"}});
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().kind, McpErrorKind::kProtocol);
  EXPECT_NE(unknown.error().message.find("2024-10-07"), std::string::npos);
  EXPECT_FALSE(read_initialize_result(json::object{}));
  EXPECT_FALSE(read_initialize_result(json::value("2025-11-25")));
}

TEST(ClassifyProbeTest, ModernOnlyWhenTheServerOffersTheRevision) {
  EXPECT_EQ(classify_probe(json::parse(R"({"supportedVersions":["2026-07-28"]})")),
            ProbeVerdict::kModern);
  EXPECT_EQ(classify_probe(json::parse(R"({"supportedVersions":["2027-01-01"]})")),
            ProbeVerdict::kLegacy);
  EXPECT_EQ(classify_probe(json::parse(R"({"capabilities":{}})")), ProbeVerdict::kLegacy);
  EXPECT_EQ(classify_probe(json::value(nullptr)), ProbeVerdict::kLegacy);
}

TEST(ClassifyProbeTest, OlderServersFallBackBrokenOnesFail) {
  auto verdict = [](McpErrorKind kind, int status = 0) {
    return classify_probe(Result<json::value>(McpError{kind, "x", -32601, status}));
  };
  EXPECT_EQ(verdict(McpErrorKind::kServer), ProbeVerdict::kLegacy);   // method not found
  EXPECT_EQ(verdict(McpErrorKind::kCrashed), ProbeVerdict::kLegacy);  // exits before initialize
  EXPECT_EQ(verdict(McpErrorKind::kTimeout), ProbeVerdict::kLegacy);
  EXPECT_EQ(verdict(McpErrorKind::kTransport, 400), ProbeVerdict::kLegacy);  // no session
  EXPECT_EQ(verdict(McpErrorKind::kTransport, 404), ProbeVerdict::kLegacy);
  EXPECT_EQ(verdict(McpErrorKind::kTransport, 405), ProbeVerdict::kLegacy);
  EXPECT_EQ(verdict(McpErrorKind::kTransport, 401), ProbeVerdict::kFailed);  // not allowed in
  EXPECT_EQ(verdict(McpErrorKind::kTransport, 403), ProbeVerdict::kFailed);
  EXPECT_EQ(verdict(McpErrorKind::kTransport, 503), ProbeVerdict::kFailed);
  EXPECT_EQ(verdict(McpErrorKind::kTransport), ProbeVerdict::kFailed);  // unreachable
  EXPECT_EQ(verdict(McpErrorKind::kProtocol), ProbeVerdict::kFailed);
}

TEST(ToolsPageTest, ReadsToolsAndTheCursor) {
  auto page = read_tools_page(json::parse(R"({
    "tools": [
      {"name": "search", "title": "Search", "description": "Finds",
       "inputSchema": {"type": "object", "properties": {"q": {"type": "string"}}},
       "outputSchema": {"type": "object"},
       "annotations": {"readOnlyHint": true}},
      {"name": "bare"}
    ],
    "nextCursor": "page-2", "resultType": "complete", "ttlMs": 0})"));
  ASSERT_TRUE(page) << page.error().message;
  ASSERT_EQ(page->tools.size(), 2u);
  const McpTool& search = page->tools[0];
  EXPECT_EQ(search.name, "search");
  EXPECT_EQ(search.title, "Search");
  EXPECT_EQ(search.description, "Finds");
  EXPECT_TRUE(search.input_schema.contains("properties"));
  EXPECT_EQ(search.output_schema, json::object({{"type", "object"}}));
  EXPECT_EQ(search.annotations.at("readOnlyHint"), json::value(true));
  const McpTool& bare = page->tools[1];
  EXPECT_EQ(bare.input_schema, json::object({{"type", "object"}}));
  EXPECT_TRUE(bare.description.empty());
  EXPECT_TRUE(bare.annotations.empty());
  EXPECT_EQ(page->next_cursor, "page-2");
}

TEST(ToolsPageTest, LastPageHasNoCursor) {
  auto page = read_tools_page(json::parse(R"({"tools": [], "nextCursor": null})"));
  ASSERT_TRUE(page);
  EXPECT_TRUE(page->next_cursor.empty());
}

TEST(ToolsPageTest, RejectsMalformedTools) {
  for (const char* text : {
           R"([])",
           R"({})",
           R"({"tools": {}})",
           R"({"tools": [7]})",
           R"({"tools": [{"name": ""}]})",
           R"({"tools": [{"name": 7}]})",
           R"({"tools": [{"name": "a", "description": 1}]})",
           R"({"tools": [{"name": "a", "inputSchema": "object"}]})",
           R"({"tools": [{"name": "a", "annotations": []}]})",
           R"({"tools": [], "nextCursor": 2})",
           R"({"tools": [], "resultType": "input_required"})",
       }) {
    auto page = read_tools_page(json::parse(text));
    EXPECT_FALSE(page) << text;
  }
  auto bad = read_tools_page(json::parse(R"({"tools": [{"name": "a"}, {"name": 1}]})"));
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("tools[1]"), std::string::npos);
}

TEST(ToolResultTest, ReadsContentErrorFlagAndStructuredContent) {
  auto result = read_tool_result(json::parse(R"({
    "content": [{"type": "text", "text": "hi"}], "isError": true,
    "structuredContent": {"n": 1}, "resultType": "complete"})"));
  ASSERT_TRUE(result);
  EXPECT_EQ(result->content.size(), 1u);
  EXPECT_TRUE(result->is_error);
  ASSERT_TRUE(result->structured_content);
  EXPECT_EQ(*result->structured_content, json::parse(R"({"n": 1})"));
  EXPECT_EQ(result->to_json(), json::parse(R"({"content": [{"type": "text", "text": "hi"}],
    "isError": true, "structuredContent": {"n": 1}})"));

  auto plain = read_tool_result(json::parse(R"({"content": []})"));
  ASSERT_TRUE(plain);
  EXPECT_FALSE(plain->is_error);
  EXPECT_FALSE(plain->structured_content);
  EXPECT_EQ(plain->to_json(), json::parse(R"({"content": [], "isError": false})"));
}

TEST(ToolResultTest, RejectsMalformedResults) {
  for (const char* text : {
           R"("text")",
           R"({})",
           R"({"content": "hi"})",
           R"({"content": [], "isError": "yes"})",
           R"({"content": [], "resultType": "input_required", "inputRequests": {}})",
       }) {
    EXPECT_FALSE(read_tool_result(json::parse(text))) << text;
  }
}

}  // namespace
}  // namespace redline::mcp
