#include "agents/run_spec.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <string>

namespace redline::agents {
namespace {

namespace json = boost::json;

ApiError error_of(std::string_view body) {
  RunSpecParse parsed = parse_run_spec(body);
  EXPECT_FALSE(parsed.spec.has_value()) << body;
  EXPECT_EQ(parsed.error.status, 400) << body;
  return parsed.error;
}

TEST(RunSpecTest, ReadsAFullRun) {
  RunSpecParse parsed = parse_run_spec(R"({
    "model": "chat", "instructions": "Be brief.", "input": "find the dates",
    "tools": [{"type": "mcp", "server_label": "research", "allowed_tools": ["search"],
               "require_approval": "always"},
              {"type": "mcp", "server_label": "files",
               "allowed_tools": {"tool_names": ["read", "list"]}}],
    "limits": {"max_steps": 12, "max_cost_usd": 0.5},
    "memory": {"user": "u-1", "agent": "planner"}, "metadata": {"ticket": "T-9"}})");
  ASSERT_TRUE(parsed.spec) << parsed.error.message;
  const RunSpec& spec = *parsed.spec;
  EXPECT_EQ(spec.model, "chat");
  EXPECT_EQ(spec.instructions, "Be brief.");
  ASSERT_EQ(spec.input.size(), 1u);
  EXPECT_EQ(spec.input[0].at("role"), "user");
  ASSERT_EQ(spec.tools.size(), 2u);
  EXPECT_EQ(spec.tools[0].server, "research");
  EXPECT_EQ(spec.tools[0].allowed_tools, std::vector<std::string>{"search"});
  EXPECT_TRUE(spec.tools[0].always_approve);
  EXPECT_EQ(spec.tools[1].allowed_tools, (std::vector<std::string>{"read", "list"}));
  EXPECT_FALSE(spec.tools[1].always_approve);
  EXPECT_EQ(spec.limits.max_steps, 12);
  EXPECT_EQ(spec.limits.max_cost_usd, 0.5);
  EXPECT_FALSE(spec.limits.max_tokens);
  EXPECT_EQ(spec.memory_user, "u-1");
  EXPECT_EQ(spec.memory_agent, "planner");
  EXPECT_EQ(spec.metadata.at("ticket"), "T-9");
}

TEST(RunSpecTest, ReadsBackWhatItStores) {
  RunSpecParse parsed = parse_run_spec(
      R"({"model":"chat","input":[{"role":"user","content":"hi"}],
          "tools":[{"type":"mcp","server_label":"research"}],"limits":{"max_tokens":900}})");
  ASSERT_TRUE(parsed.spec);
  parsed.spec->response_id = "resp_1";
  const json::object stored = to_json(*parsed.spec);
  const std::optional<RunSpec> read = run_spec_from_json(json::parse(json::serialize(stored)));
  ASSERT_TRUE(read);
  EXPECT_EQ(json::value(to_json(*read)), json::value(stored));
  EXPECT_EQ(read->response_id, "resp_1");
  EXPECT_FALSE(run_spec_from_json(json::parse(R"({"input":[]})")));
}

TEST(RunSpecTest, NamesTheMemberAtFault) {
  const std::pair<std::string, std::string> cases[] = {
      {R"({"input":"x"})", "model"},
      {R"({"model":"","input":"x"})", "model"},
      {R"({"model":"chat"})", "input"},
      {R"({"model":"chat","input":[]})", "input"},
      {R"({"model":"chat","input":[{"type":"bogus"}]})", "input[0].type"},
      {R"({"model":"chat","input":"x","instructions":7})", "instructions"},
      {R"({"model":"chat","input":"x","tools":{}})", "tools"},
      {R"({"model":"chat","input":"x","tools":[7]})", "tools[0]"},
      {R"({"model":"chat","input":"x","tools":[{"type":"function","name":"f"}]})", "tools[0].type"},
      {R"({"model":"chat","input":"x","tools":[{"type":"mcp"}]})", "tools[0].server_label"},
      {R"({"model":"chat","input":"x","tools":[{"type":"mcp","server_label":"a","server_url":"http://169.254.169.254/"}]})",
       "tools[0].server_url"},
      {R"({"model":"chat","input":"x","tools":[{"type":"mcp","server_label":"a","allowed_tools":"search"}]})",
       "tools[0].allowed_tools"},
      {R"({"model":"chat","input":"x","tools":[{"type":"mcp","server_label":"a","allowed_tools":[1]}]})",
       "tools[0].allowed_tools[0]"},
      {R"({"model":"chat","input":"x","tools":[{"type":"mcp","server_label":"a","allowed_tools":{}}]})",
       "tools[0].allowed_tools.tool_names"},
      {R"({"model":"chat","input":"x","tools":[{"type":"mcp","server_label":"a","require_approval":"sometimes"}]})",
       "tools[0].require_approval"},
      {R"({"model":"chat","input":"x","limits":{"max_steps":0}})", "limits.max_steps"},
      {R"({"model":"chat","input":"x","limits":{"max_cost_usd":-1}})", "limits.max_cost_usd"},
      {R"({"model":"chat","input":"x","memory":"u-1"})", "memory"},
      {R"({"model":"chat","input":"x","memory":{"user":5}})", "memory.user"},
      {R"({"model":"chat","input":"x","metadata":[]})", "metadata"},
  };
  for (const auto& [body, param] : cases) {
    const ApiError error = error_of(body);
    EXPECT_EQ(error.param, param) << body << " → " << error.message;
    EXPECT_FALSE(error.message.empty());
  }
}

TEST(RunSpecTest, SaysWhyInOpenAiWords) {
  EXPECT_EQ(error_of(R"({"model":"chat","input":"x","tools":[{"type":"web_search"}]})").message,
            "Agent runs call MCP tools on the gateway's side; a 'web_search' tool needs a client "
            "to run it (use /v1/responses).");
  EXPECT_EQ(error_of(R"({"input":"x"})").message, "Missing required parameter: 'model'.");
  EXPECT_EQ(error_of("[1, 2]").code, "invalid_json");
  EXPECT_EQ(error_of("{\"model\":").code, "invalid_json");
}

TEST(RunSpecTest, ReadsMcpGrantsOfAResponsesRequestAndSkipsFunctions) {
  std::optional<ApiError> error;
  const auto grants = read_mcp_grants(
      json::parse(R"([{"type":"function","name":"f"},{"type":"mcp","server_label":"files"}])")
          .as_array(),
      "tools", error);
  ASSERT_FALSE(error) << error->message;
  ASSERT_EQ(grants.size(), 1u);
  EXPECT_EQ(grants[0].server, "files");
  EXPECT_TRUE(grants[0].allowed_tools.empty());

  read_mcp_grants(
      json::parse(R"([{"type":"mcp","server_label":"a","connector_id":"x"}])").as_array(), "tools",
      error);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->param, "tools[0].connector_id");
}

}  // namespace
}  // namespace redline::agents
