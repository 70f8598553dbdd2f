#include "agents/task_graph.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace redline::agents {
namespace {

namespace json = boost::json;
using Indices = std::vector<std::size_t>;

// {"id": ..., "depends_on": [...]} with the members every task needs.
struct TaskLine {
  std::string id;
  std::vector<std::string> depends_on;
};

std::string graph_body(std::initializer_list<TaskLine> tasks, std::string_view extra = "") {
  json::array list;
  for (const TaskLine& task : tasks) {
    json::array depends_on;
    for (const std::string& dependency : task.depends_on) depends_on.emplace_back(dependency);
    list.emplace_back(json::object{{"id", task.id},
                                   {"instructions", "do " + task.id},
                                   {"model", "chat"},
                                   {"depends_on", std::move(depends_on)}});
  }
  std::string body = json::serialize(json::object{{"tasks", std::move(list)}});
  if (!extra.empty()) body.insert(body.size() - 1, std::string(",") + std::string(extra));
  return body;
}

GraphSpec graph_from(std::string_view body, const GraphLimits& limits = {}) {
  GraphParse parsed = parse_graph_spec(body, limits);
  EXPECT_TRUE(parsed.graph) << parsed.error.param << ": " << parsed.error.message;
  return parsed.graph.value_or(GraphSpec{});
}

ApiError error_of(std::string_view body, const GraphLimits& limits = {}) {
  GraphParse parsed = parse_graph_spec(body, limits);
  EXPECT_FALSE(parsed.graph) << body;
  EXPECT_EQ(parsed.error.status, 400);
  EXPECT_EQ(parsed.error.type, "invalid_request_error");
  return parsed.error;
}

// One task's body with `members` spliced in after the required ones.
std::string one_task(std::string_view members) {
  return std::string(R"({"tasks":[{"id":"a","instructions":"i","model":"m",)") +
         std::string(members) + "}]}";
}

#define EXPECT_REJECTED(body, expected_param, expected_message) \
  do {                                                          \
    ApiError error_ = error_of(body);                           \
    EXPECT_EQ(error_.param, expected_param) << (body);          \
    EXPECT_EQ(error_.message, expected_message) << (body);      \
  } while (false)

// ---- parse_graph_spec: what is accepted

TEST(ParseGraphSpec, ReadsEveryMember) {
  GraphSpec graph = graph_from(R"({"tasks":[
      {"id":"plan","instructions":"Plan it.","model":"chat"},
      {"id":"fetch","instructions":"Fetch.","model":"fast",
       "tools":[{"type":"function","name":"get"}],"depends_on":["plan"],
       "limits":{"max_steps":20,"max_tokens":50000,"max_cost_usd":0.5,"max_wall_ms":600000},
       "retry":{"max_attempts":2,"backoff_ms":1000}}],
    "max_concurrency":8,"memory":{"user":"u1","agent":"researcher"},"metadata":{"k":"v"}})");
  ASSERT_EQ(graph.tasks.size(), 2u);
  const TaskSpec& plan = graph.tasks[0];
  EXPECT_EQ(plan.id, "plan");
  EXPECT_EQ(plan.instructions, "Plan it.");
  EXPECT_EQ(plan.model, "chat");
  EXPECT_TRUE(plan.tools.empty());
  EXPECT_TRUE(plan.depends_on.empty());
  EXPECT_FALSE(plan.limits.max_steps);
  EXPECT_FALSE(plan.limits.max_tokens);
  EXPECT_FALSE(plan.limits.max_cost_usd);
  EXPECT_FALSE(plan.limits.max_wall_ms);
  EXPECT_EQ(plan.retry.max_attempts, 1);
  EXPECT_EQ(plan.retry.backoff_ms, 1000);
  const TaskSpec& fetch = graph.tasks[1];
  EXPECT_EQ(fetch.model, "fast");
  EXPECT_EQ(json::value(fetch.tools), json::parse(R"([{"type":"function","name":"get"}])"));
  EXPECT_EQ(fetch.depends_on, std::vector<std::string>{"plan"});
  EXPECT_EQ(fetch.limits.max_steps, 20);
  EXPECT_EQ(fetch.limits.max_tokens, 50000);
  EXPECT_EQ(fetch.limits.max_cost_usd, 0.5);
  EXPECT_EQ(fetch.limits.max_wall_ms, 600000);
  EXPECT_EQ(fetch.retry.max_attempts, 2);
  EXPECT_EQ(fetch.retry.backoff_ms, 1000);
  EXPECT_EQ(graph.max_concurrency, 8u);
  EXPECT_EQ(graph.memory_user, "u1");
  EXPECT_EQ(graph.memory_agent, "researcher");
  EXPECT_EQ(json::value(graph.metadata), json::parse(R"({"k":"v"})"));
}

TEST(ParseGraphSpec, DefaultsAndNullsReadAsAbsent) {
  GraphSpec graph = graph_from(R"({"tasks":[{"id":"a","instructions":"i","model":"m",
      "tools":null,"depends_on":null,"limits":{"max_steps":null},"retry":{}}],
      "max_concurrency":null,"memory":null,"metadata":null,"unknown":1})");
  ASSERT_EQ(graph.tasks.size(), 1u);
  EXPECT_FALSE(graph.tasks[0].limits.max_steps);
  EXPECT_EQ(graph.tasks[0].retry.max_attempts, 1);
  EXPECT_EQ(graph.max_concurrency, 4u);
  EXPECT_EQ(graph.memory_user, "");
  EXPECT_EQ(graph.memory_agent, "");
  EXPECT_TRUE(graph.metadata.empty());
}

TEST(ParseGraphSpec, DefaultConcurrencyNeverExceedsTheLimit) {
  GraphLimits limits;
  limits.max_concurrency = 2;
  EXPECT_EQ(graph_from(graph_body({{"a", {}}}), limits).max_concurrency, 2u);
  EXPECT_EQ(graph_from(graph_body({{"a", {}}}, R"("max_concurrency":2)"), limits).max_concurrency,
            2u);
}

TEST(ParseGraphSpec, AcceptsForwardReferencesAndEdgeValues) {
  std::string long_id(64, 'x');
  GraphSpec graph = graph_from(
      graph_body({{"b", {"a_1.-Z"}}, {"a_1.-Z", {}}, {long_id, {"b"}}}, R"("max_concurrency":32)"));
  EXPECT_EQ(graph.tasks[0].depends_on, std::vector<std::string>{"a_1.-Z"});
  EXPECT_EQ(graph.max_concurrency, 32u);
  GraphSpec edges = graph_from(one_task(
      R"("limits":{"max_steps":9223372036854775807,"max_cost_usd":1e-9,"max_tokens":2.0},
         "retry":{"max_attempts":10,"backoff_ms":86400000})"));
  EXPECT_EQ(edges.tasks[0].limits.max_steps, INT64_MAX);
  EXPECT_EQ(edges.tasks[0].limits.max_tokens, 2);
  EXPECT_EQ(edges.tasks[0].retry.max_attempts, 10);
  EXPECT_EQ(edges.tasks[0].retry.backoff_ms, 86400000);
}

TEST(ParseGraphSpec, InstructionsAreCountedInCharacters) {
  GraphLimits limits;
  limits.max_instructions_chars = 5;
  EXPECT_TRUE(
      parse_graph_spec(R"({"tasks":[{"id":"a","instructions":"h\u00e9llo","model":"m"}]})", limits)
          .graph);
  ApiError error =
      error_of(R"({"tasks":[{"id":"a","instructions":"h\u00e9llo!","model":"m"}]})", limits);
  EXPECT_EQ(error.param, "tasks[0].instructions");
  EXPECT_EQ(error.message,
            "Invalid 'tasks[0].instructions': string too long. Expected a string with maximum "
            "length 5, but got a string with length 6 instead.");
  EXPECT_EQ(error.code, "string_above_max_length");
}

// ---- parse_graph_spec: every 400

TEST(ParseGraphSpecErrors, BodyNotAnObject) {
  for (std::string_view body : {"", "nope", "[1]", "\"x\"", "{\"tasks\":", "{\"a\":\"\xff\"}"}) {
    ApiError error = error_of(body);
    EXPECT_EQ(error.param, "");
    EXPECT_EQ(error.code, "invalid_json");
    EXPECT_EQ(error.message,
              "We could not parse the JSON body of your request. The body must be a JSON object "
              "(Content-Type: application/json).");
  }
}

TEST(ParseGraphSpecErrors, Tasks) {
  EXPECT_REJECTED("{}", "tasks", "Missing required parameter: 'tasks'.");
  EXPECT_REJECTED(R"({"tasks":null})", "tasks", "Missing required parameter: 'tasks'.");
  EXPECT_REJECTED(R"({"tasks":{}})", "tasks",
                  "Invalid type for 'tasks': expected an array, but got an object instead.");
  EXPECT_REJECTED(R"({"tasks":[]})", "tasks",
                  "Invalid 'tasks': empty array. Expected an array with minimum length 1, but got "
                  "an empty array instead.");
  EXPECT_EQ(error_of(R"({"tasks":[]})").code, "empty_array");
  GraphLimits limits;
  limits.max_tasks = 2;
  ApiError error = error_of(graph_body({{"a", {}}, {"b", {}}, {"c", {}}}), limits);
  EXPECT_EQ(error.param, "tasks");
  EXPECT_EQ(error.message,
            "Invalid 'tasks': array too long. Expected an array with maximum length 2, but got an "
            "array with length 3 instead.");
  EXPECT_EQ(error.code, "array_above_max_length");
  EXPECT_REJECTED(R"({"tasks":[{"id":"a","instructions":"i","model":"m"},"b"]})", "tasks[1]",
                  "Invalid type for 'tasks[1]': expected an object, but got a string instead.");
}

TEST(ParseGraphSpecErrors, RequiredTaskMembers) {
  EXPECT_REJECTED(R"({"tasks":[{"instructions":"i","model":"m"}]})", "tasks[0].id",
                  "Missing required parameter: 'tasks[0].id'.");
  EXPECT_REJECTED(R"({"tasks":[{"id":7,"instructions":"i","model":"m"}]})", "tasks[0].id",
                  "Invalid type for 'tasks[0].id': expected a string, but got a number instead.");
  EXPECT_REJECTED(R"({"tasks":[{"id":"a","model":"m"}]})", "tasks[0].instructions",
                  "Missing required parameter: 'tasks[0].instructions'.");
  EXPECT_REJECTED(R"({"tasks":[{"id":"a","instructions":"","model":"m"}]})",
                  "tasks[0].instructions",
                  "Invalid 'tasks[0].instructions': empty string. Expected a string with minimum "
                  "length 1, but got an empty string instead.");
  EXPECT_REJECTED(R"({"tasks":[{"id":"a","instructions":"i","model":"m"},
                              {"id":"b","instructions":"i"}]})",
                  "tasks[1].model", "Missing required parameter: 'tasks[1].model'.");
  EXPECT_REJECTED(R"({"tasks":[{"id":"a","instructions":"i","model":false}]})", "tasks[0].model",
                  "Invalid type for 'tasks[0].model': expected a string, but got a boolean "
                  "instead.");
  EXPECT_REJECTED(one_task(R"("tools":{})"), "tasks[0].tools",
                  "Invalid type for 'tasks[0].tools': expected an array, but got an object "
                  "instead.");
  EXPECT_REJECTED(one_task(R"("depends_on":"b")"), "tasks[0].depends_on",
                  "Invalid type for 'tasks[0].depends_on': expected an array, but got a string "
                  "instead.");
}

TEST(ParseGraphSpecErrors, BadIds) {
  auto message = [](std::string_view id) {
    return "Invalid 'tasks[1].id': '" + std::string(id) +
           "' is not a task id. Expected 1 to 64 characters, each a letter, a digit, '_', '.' or "
           "'-'.";
  };
  std::string too_long(65, 'x');
  for (std::string id : {std::string(), std::string("a b"), std::string("a/b"),
                         std::string("caf\u00e9"), too_long}) {
    std::string body = graph_body({{"ok", {}}, {id, {}}});
    ApiError error = error_of(body);
    EXPECT_EQ(error.param, "tasks[1].id");
    EXPECT_EQ(error.message, message(id));
    EXPECT_EQ(error.code, "invalid_value");
  }
  // A long id is quoted cut short.
  std::string huge(1000, 'y');
  ApiError error = error_of(graph_body({{"ok", {}}, {huge, {}}}));
  EXPECT_EQ(error.message, message(std::string(80, 'y') + "..."));
}

TEST(ParseGraphSpecErrors, DuplicateIds) {
  ApiError error = error_of(graph_body({{"a", {}}, {"b", {}}, {"a", {}}}));
  EXPECT_EQ(error.param, "tasks[2].id");
  EXPECT_EQ(error.message, "duplicate task id 'a'");
  EXPECT_EQ(error.code, "invalid_value");
}

TEST(ParseGraphSpecErrors, Dependencies) {
  EXPECT_REJECTED(graph_body({{"a", {}}, {"b", {"a"}}, {"c", {"a", "x"}}}),
                  "tasks[2].depends_on[1]", "task 'c' depends on unknown task 'x'");
  EXPECT_REJECTED(graph_body({{"a", {}}, {"b", {"a", "b"}}}), "tasks[1].depends_on[1]",
                  "task 'b' depends on itself");
  EXPECT_REJECTED(graph_body({{"a", {}}, {"b", {"a", "a"}}}), "tasks[1].depends_on[1]",
                  "task 'b' lists 'a' in depends_on more than once");
  EXPECT_REJECTED(R"({"tasks":[{"id":"a","instructions":"i","model":"m"},
                              {"id":"b","instructions":"i","model":"m","depends_on":["a",1]}]})",
                  "tasks[1].depends_on[1]",
                  "Invalid type for 'tasks[1].depends_on[1]': expected a string, but got a number "
                  "instead.");
  // Every task is read before references are checked, so a malformed later task wins.
  EXPECT_REJECTED(R"({"tasks":[{"id":"a","instructions":"i","model":"m","depends_on":["x"]},
                              {"id":"b","instructions":"i"}]})",
                  "tasks[1].model", "Missing required parameter: 'tasks[1].model'.");
}

TEST(ParseGraphSpecErrors, Cycles) {
  ApiError three = error_of(graph_body({{"a", {"b"}}, {"b", {"c"}}, {"c", {"a"}}}));
  EXPECT_EQ(three.param, "tasks");
  EXPECT_EQ(three.message, "tasks form a cycle: a -> b -> c -> a");
  EXPECT_EQ(three.code, "invalid_value");
  EXPECT_REJECTED(graph_body({{"a", {}}, {"b", {"a", "c"}}, {"c", {"b"}}}), "tasks",
                  "tasks form a cycle: b -> c -> b");
  // Named from the cycle's task first in spec order, whatever task the walk started from.
  EXPECT_REJECTED(graph_body({{"x", {"c"}}, {"b", {"c"}}, {"c", {"b"}}}), "tasks",
                  "tasks form a cycle: b -> c -> b");
  EXPECT_REJECTED(graph_body({{"c", {"a"}}, {"a", {"b"}}, {"b", {"c"}}}), "tasks",
                  "tasks form a cycle: c -> a -> b -> c");
  // A tail into a cycle is not part of it; of two cycles, the walk in spec order meets one first.
  EXPECT_REJECTED(
      graph_body({{"t", {"p"}}, {"p", {"q"}}, {"q", {"p"}}, {"r", {"s"}}, {"s", {"r"}}}), "tasks",
      "tasks form a cycle: p -> q -> p");
  EXPECT_REJECTED(graph_body({{"r", {"s"}}, {"s", {"r"}}, {"p", {"q"}}, {"q", {"p"}}}), "tasks",
                  "tasks form a cycle: r -> s -> r");
  // A diamond shares dependencies without a cycle.
  EXPECT_TRUE(
      parse_graph_spec(graph_body({{"a", {}}, {"b", {"a"}}, {"c", {"a"}}, {"d", {"b", "c"}}}), {})
          .graph);
}

TEST(ParseGraphSpecErrors, LongChainWithCycleDoesNotRecurse) {
  // 5000 tasks each depending on the next, the last on the first: the walk keeps its path on the
  // heap, so a long chain cannot exhaust the stack.
  std::string body = R"({"tasks":[)";
  constexpr int kCount = 5000;
  for (int i = 0; i < kCount; ++i) {
    if (i > 0) body += ",";
    body += R"({"id":"t)" + std::to_string(i) +
            R"(","instructions":"i","model":"m","depends_on":["t)" +
            std::to_string((i + 1) % kCount) + R"("]})";
  }
  body += "]}";
  GraphLimits limits;
  limits.max_tasks = kCount;
  ApiError error = error_of(body, limits);
  EXPECT_EQ(error.param, "tasks");
  std::string_view message = error.message;
  EXPECT_EQ(message.substr(0, 34), "tasks form a cycle: t0 -> t1 -> t2");
  std::string_view end = "t4998 -> t4999 -> t0";
  ASSERT_GT(message.size(), end.size());
  EXPECT_EQ(message.substr(message.size() - end.size()), end);
}

TEST(ParseGraphSpecErrors, Limits) {
  EXPECT_REJECTED(one_task(R"("limits":[])"), "tasks[0].limits",
                  "Invalid type for 'tasks[0].limits': expected an object, but got an array "
                  "instead.");
  EXPECT_REJECTED(one_task(R"("limits":{"max_steps":0})"), "tasks[0].limits.max_steps",
                  "Invalid 'tasks[0].limits.max_steps': integer below minimum value. Expected a "
                  "value >= 1, but got 0 instead.");
  EXPECT_EQ(error_of(one_task(R"("limits":{"max_steps":0})")).code, "integer_below_min_value");
  EXPECT_REJECTED(one_task(R"("limits":{"max_tokens":-5})"), "tasks[0].limits.max_tokens",
                  "Invalid 'tasks[0].limits.max_tokens': integer below minimum value. Expected a "
                  "value >= 1, but got -5 instead.");
  EXPECT_REJECTED(one_task(R"("limits":{"max_tokens":1.5})"), "tasks[0].limits.max_tokens",
                  "Invalid type for 'tasks[0].limits.max_tokens': expected an integer, but got a "
                  "number instead.");
  EXPECT_REJECTED(one_task(R"("limits":{"max_wall_ms":"60000"})"), "tasks[0].limits.max_wall_ms",
                  "Invalid type for 'tasks[0].limits.max_wall_ms': expected an integer, but got a "
                  "string instead.");
  EXPECT_REJECTED(one_task(R"("limits":{"max_wall_ms":18446744073709551615})"),
                  "tasks[0].limits.max_wall_ms",
                  "Invalid 'tasks[0].limits.max_wall_ms': integer above maximum value. Expected a "
                  "value <= 9223372036854775807, but got 18446744073709551615 instead.");
  EXPECT_REJECTED(one_task(R"("limits":{"max_cost_usd":0})"), "tasks[0].limits.max_cost_usd",
                  "Invalid 'tasks[0].limits.max_cost_usd': decimal below minimum value. Expected "
                  "a value > 0, but got 0 instead.");
  EXPECT_EQ(error_of(one_task(R"("limits":{"max_cost_usd":0})")).code, "decimal_below_min_value");
  EXPECT_REJECTED(one_task(R"("limits":{"max_cost_usd":-0.25})"), "tasks[0].limits.max_cost_usd",
                  "Invalid 'tasks[0].limits.max_cost_usd': decimal below minimum value. Expected "
                  "a value > 0, but got -0.25 instead.");
  EXPECT_REJECTED(one_task(R"("limits":{"max_cost_usd":"1"})"), "tasks[0].limits.max_cost_usd",
                  "Invalid type for 'tasks[0].limits.max_cost_usd': expected a number, but got a "
                  "string instead.");
}

TEST(ParseGraphSpecErrors, Retry) {
  EXPECT_REJECTED(one_task(R"("retry":1)"), "tasks[0].retry",
                  "Invalid type for 'tasks[0].retry': expected an object, but got a number "
                  "instead.");
  EXPECT_REJECTED(one_task(R"("retry":{"max_attempts":0})"), "tasks[0].retry.max_attempts",
                  "Invalid 'tasks[0].retry.max_attempts': integer below minimum value. Expected a "
                  "value >= 1, but got 0 instead.");
  EXPECT_REJECTED(one_task(R"("retry":{"max_attempts":11})"), "tasks[0].retry.max_attempts",
                  "Invalid 'tasks[0].retry.max_attempts': integer above maximum value. Expected a "
                  "value <= 10, but got 11 instead.");
  EXPECT_EQ(error_of(one_task(R"("retry":{"max_attempts":11})")).code, "integer_above_max_value");
  EXPECT_REJECTED(one_task(R"("retry":{"backoff_ms":0})"), "tasks[0].retry.backoff_ms",
                  "Invalid 'tasks[0].retry.backoff_ms': integer below minimum value. Expected a "
                  "value >= 1, but got 0 instead.");
  EXPECT_REJECTED(one_task(R"("retry":{"backoff_ms":86400001})"), "tasks[0].retry.backoff_ms",
                  "Invalid 'tasks[0].retry.backoff_ms': integer above maximum value. Expected a "
                  "value <= 86400000, but got 86400001 instead.");
}

TEST(ParseGraphSpecErrors, GraphMembers) {
  std::string base = graph_body({{"a", {}}});
  auto with = [](std::string_view extra) { return graph_body({{"a", {}}}, extra); };
  EXPECT_TRUE(parse_graph_spec(base, {}).graph);
  EXPECT_REJECTED(with(R"("max_concurrency":0)"), "max_concurrency",
                  "Invalid 'max_concurrency': integer below minimum value. Expected a value >= 1, "
                  "but got 0 instead.");
  EXPECT_REJECTED(with(R"("max_concurrency":33)"), "max_concurrency",
                  "Invalid 'max_concurrency': integer above maximum value. Expected a value <= 32, "
                  "but got 33 instead.");
  EXPECT_REJECTED(with(R"("max_concurrency":"4")"), "max_concurrency",
                  "Invalid type for 'max_concurrency': expected an integer, but got a string "
                  "instead.");
  GraphLimits limits;
  limits.max_concurrency = 2;
  ApiError error = error_of(with(R"("max_concurrency":3)"), limits);
  EXPECT_EQ(error.param, "max_concurrency");
  EXPECT_EQ(error.message,
            "Invalid 'max_concurrency': integer above maximum value. Expected a value <= 2, but "
            "got 3 instead.");
  EXPECT_REJECTED(with(R"("memory":"u")"), "memory",
                  "Invalid type for 'memory': expected an object, but got a string instead.");
  EXPECT_REJECTED(with(R"("memory":{"user":1})"), "memory.user",
                  "Invalid type for 'memory.user': expected a string, but got a number instead.");
  EXPECT_REJECTED(with(R"("memory":{"agent":[]})"), "memory.agent",
                  "Invalid type for 'memory.agent': expected a string, but got an array instead.");
  EXPECT_REJECTED(with(R"("metadata":[])"), "metadata",
                  "Invalid type for 'metadata': expected an object, but got an array instead.");
}

// ---- to_json and graph_from_json

void expect_same(const GraphSpec& a, const GraphSpec& b) {
  ASSERT_EQ(a.tasks.size(), b.tasks.size());
  for (std::size_t i = 0; i < a.tasks.size(); ++i) {
    SCOPED_TRACE(a.tasks[i].id);
    const TaskSpec& x = a.tasks[i];
    const TaskSpec& y = b.tasks[i];
    EXPECT_EQ(x.id, y.id);
    EXPECT_EQ(x.instructions, y.instructions);
    EXPECT_EQ(x.model, y.model);
    EXPECT_EQ(x.tools, y.tools);
    EXPECT_EQ(x.depends_on, y.depends_on);
    EXPECT_EQ(x.limits.max_steps, y.limits.max_steps);
    EXPECT_EQ(x.limits.max_tokens, y.limits.max_tokens);
    EXPECT_EQ(x.limits.max_cost_usd, y.limits.max_cost_usd);
    EXPECT_EQ(x.limits.max_wall_ms, y.limits.max_wall_ms);
    EXPECT_EQ(x.retry.max_attempts, y.retry.max_attempts);
    EXPECT_EQ(x.retry.backoff_ms, y.retry.backoff_ms);
  }
  EXPECT_EQ(a.max_concurrency, b.max_concurrency);
  EXPECT_EQ(a.memory_user, b.memory_user);
  EXPECT_EQ(a.memory_agent, b.memory_agent);
  EXPECT_EQ(a.metadata, b.metadata);
}

constexpr std::string_view kFullGraph = R"({"tasks":[
    {"id":"plan","instructions":"Plan \u00e9.","model":"chat"},
    {"id":"fetch","instructions":"Fetch.","model":"fast",
     "tools":[{"type":"function","name":"get","parameters":{"type":"object"}}],
     "depends_on":["plan"],"limits":{"max_tokens":50000,"max_cost_usd":0.1},
     "retry":{"max_attempts":3,"backoff_ms":250}},
    {"id":"write","instructions":"Write.","model":"chat","depends_on":["fetch","plan"],
     "limits":{"max_steps":7,"max_cost_usd":1.2345678901234567,"max_wall_ms":600000}}],
  "max_concurrency":3,"memory":{"user":"u1"},"metadata":{"team":"x","n":[1,2]}})";

TEST(GraphJson, RoundTripsEveryField) {
  GraphSpec graph = graph_from(kFullGraph);
  json::object stored = to_json(graph);
  std::optional<GraphSpec> read = graph_from_json(stored);
  ASSERT_TRUE(read);
  expect_same(graph, *read);
  // And through text, as the store keeps it.
  std::optional<GraphSpec> from_text = graph_from_json(json::parse(json::serialize(stored)));
  ASSERT_TRUE(from_text);
  expect_same(graph, *from_text);
  // Serialising again gives the same JSON.
  EXPECT_EQ(json::value(to_json(*from_text)), json::value(stored));
}

TEST(GraphJson, AbsentLimitsStayAbsent) {
  GraphSpec graph = graph_from(kFullGraph);
  json::object stored = to_json(graph);
  const json::array& tasks = stored.at("tasks").as_array();
  EXPECT_EQ(tasks[0].at("limits"), json::value(json::object()));
  EXPECT_EQ(tasks[1].at("limits"), json::parse(R"({"max_tokens":50000,"max_cost_usd":0.1})"));
  EXPECT_EQ(tasks[0].at("retry"), json::parse(R"({"max_attempts":1,"backoff_ms":1000})"));
  EXPECT_EQ(tasks[0].at("depends_on"), json::value(json::array()));
  EXPECT_EQ(stored.at("memory"), json::parse(R"({"user":"u1","agent":""})"));
  EXPECT_EQ(stored.at("max_concurrency"), json::value(3));
  std::optional<GraphSpec> read = graph_from_json(stored);
  ASSERT_TRUE(read);
  EXPECT_FALSE(read->tasks[0].limits.max_steps);
  EXPECT_FALSE(read->tasks[1].limits.max_steps);
  EXPECT_FALSE(read->tasks[1].limits.max_wall_ms);
}

TEST(GraphJson, RejectsWhatIsNotASpec) {
  EXPECT_FALSE(graph_from_json(nullptr));
  EXPECT_FALSE(graph_from_json(json::array{1, 2}));
  EXPECT_FALSE(graph_from_json(json::object{{"tasks", json::array()}}));
  EXPECT_FALSE(graph_from_json(json::parse(graph_body({{"a", {"b"}}, {"b", {"a"}}}))));
  EXPECT_FALSE(graph_from_json(json::parse(graph_body({{"a", {"x"}}}))));
}

TEST(GraphJson, ReadsSpecsBeyondTodaysLimits) {
  // Stored when more was allowed: 300 tasks, long instructions and a concurrency of 64 read back.
  json::array tasks;
  for (int i = 0; i < 300; ++i) {
    std::string id = "t";
    id += std::to_string(i);
    tasks.emplace_back(json::object{
        {"id", id}, {"instructions", std::string(i == 0 ? 40000 : 1, 'x')}, {"model", "m"}});
  }
  std::optional<GraphSpec> read =
      graph_from_json(json::object{{"tasks", std::move(tasks)}, {"max_concurrency", 64}});
  ASSERT_TRUE(read);
  EXPECT_EQ(read->tasks.size(), 300u);
  EXPECT_EQ(read->max_concurrency, 64u);
}

// ---- TaskState names

TEST(TaskState, NamesRoundTrip) {
  for (TaskState state : {TaskState::kPending, TaskState::kRunning, TaskState::kCompleted,
                          TaskState::kFailed, TaskState::kBlocked, TaskState::kCancelled}) {
    EXPECT_EQ(task_state_from(to_string(state)), state);
  }
  EXPECT_EQ(to_string(TaskState::kCancelled), "cancelled");
  EXPECT_EQ(to_string(TaskState::kBlocked), "blocked");
  EXPECT_FALSE(task_state_from("done"));
  EXPECT_FALSE(task_state_from(""));
}

// ---- GraphSchedule

// Starts every index in `tasks`.
void start(GraphSchedule& schedule, const Indices& tasks) {
  for (std::size_t task : tasks) schedule.apply(task, TaskEvent::kStarted);
}

TEST(GraphSchedule, FreshScheduleIsAllPending) {
  GraphSpec graph = graph_from(graph_body({{"a", {}}, {"b", {"a"}}}));
  GraphSchedule schedule(graph);
  EXPECT_EQ(schedule.state(0), TaskState::kPending);
  EXPECT_EQ(schedule.state(1), TaskState::kPending);
  EXPECT_EQ(schedule.attempts(0), 0);
  EXPECT_EQ(schedule.running(), 0u);
  EXPECT_FALSE(schedule.finished());
  EXPECT_EQ(schedule.outcome(), "");
  EXPECT_EQ(schedule.index_of("b"), 1u);
  EXPECT_FALSE(schedule.index_of("c"));
}

TEST(GraphSchedule, DiamondRunsInDependencyOrder) {
  GraphSpec graph =
      graph_from(graph_body({{"a", {}}, {"b", {"a"}}, {"c", {"a"}}, {"d", {"b", "c"}}}));
  GraphSchedule schedule(graph);
  EXPECT_EQ(schedule.ready(10), (Indices{0}));
  schedule.apply(0, TaskEvent::kStarted);
  EXPECT_EQ(schedule.state(0), TaskState::kRunning);
  EXPECT_EQ(schedule.attempts(0), 1);
  EXPECT_EQ(schedule.ready(10), Indices{});
  schedule.apply(0, TaskEvent::kCompleted);
  EXPECT_EQ(schedule.ready(10), (Indices{1, 2}));
  EXPECT_EQ(schedule.ready(1), (Indices{1}));  // free slots
  EXPECT_EQ(schedule.ready(0), Indices{});
  start(schedule, {1, 2});
  EXPECT_EQ(schedule.running(), 2u);
  schedule.apply(2, TaskEvent::kCompleted);
  EXPECT_EQ(schedule.ready(10), Indices{});  // d still waits for b
  schedule.apply(1, TaskEvent::kCompleted);
  EXPECT_EQ(schedule.ready(10), (Indices{3}));
  schedule.apply(3, TaskEvent::kStarted);
  EXPECT_FALSE(schedule.finished());
  schedule.apply(3, TaskEvent::kCompleted);
  EXPECT_TRUE(schedule.finished());
  EXPECT_EQ(schedule.outcome(), "completed");
}

TEST(GraphSchedule, DiamondUnderConcurrencyOne) {
  GraphSpec graph = graph_from(graph_body(
      {{"a", {}}, {"b", {"a"}}, {"c", {"a"}}, {"d", {"b", "c"}}}, R"("max_concurrency":1)"));
  GraphSchedule schedule(graph);
  std::vector<std::size_t> order;
  while (!schedule.finished()) {
    Indices ready = schedule.ready(10);
    ASSERT_EQ(ready.size(), 1u);
    start(schedule, ready);
    EXPECT_EQ(schedule.ready(10), Indices{});  // the one slot is taken
    schedule.apply(ready[0], TaskEvent::kCompleted);
    order.push_back(ready[0]);
  }
  EXPECT_EQ(order, (Indices{0, 1, 2, 3}));
  EXPECT_EQ(schedule.outcome(), "completed");
}

TEST(GraphSchedule, WideGraphHonoursConcurrencyAndFreeSlots) {
  GraphSpec graph = graph_from(graph_body({{"t0", {}},
                                           {"t1", {}},
                                           {"t2", {}},
                                           {"t3", {}},
                                           {"t4", {}},
                                           {"t5", {}},
                                           {"t6", {}},
                                           {"t7", {}}},
                                          R"("max_concurrency":3)"));
  GraphSchedule schedule(graph);
  EXPECT_EQ(schedule.ready(100), (Indices{0, 1, 2}));
  EXPECT_EQ(schedule.ready(2), (Indices{0, 1}));
  start(schedule, {0, 1});
  EXPECT_EQ(schedule.ready(100), (Indices{2}));  // running tasks count against the limit
  EXPECT_EQ(schedule.ready(0), Indices{});
  start(schedule, {2});
  EXPECT_EQ(schedule.ready(100), Indices{});
  schedule.apply(1, TaskEvent::kCompleted);
  EXPECT_EQ(schedule.ready(100), (Indices{3}));
  schedule.apply(0, TaskEvent::kCompleted);
  schedule.apply(2, TaskEvent::kCompleted);
  EXPECT_EQ(schedule.ready(100), (Indices{3, 4, 5}));
  EXPECT_EQ(schedule.ready(1), (Indices{3}));
  std::size_t peak = 0;
  while (!schedule.finished()) {
    Indices ready = schedule.ready(2);
    start(schedule, ready);
    peak = std::max(peak, schedule.running());
    for (std::size_t task : ready) schedule.apply(task, TaskEvent::kCompleted);
  }
  EXPECT_LE(peak, 2u);
  EXPECT_EQ(schedule.outcome(), "completed");
}

TEST(GraphSchedule, RetriesAfterBackoffUntilAttemptsRunOut) {
  GraphSpec graph = graph_from(R"({"tasks":[
      {"id":"a","instructions":"i","model":"m","retry":{"max_attempts":3,"backoff_ms":250}},
      {"id":"b","instructions":"i","model":"m","depends_on":["a"]}]})");
  GraphSchedule schedule(graph);
  for (std::int64_t attempt = 1; attempt <= 2; ++attempt) {
    ASSERT_EQ(schedule.ready(10), (Indices{0}));
    schedule.apply(0, TaskEvent::kStarted);
    EXPECT_EQ(schedule.attempts(0), attempt);
    GraphSchedule::Outcome outcome = schedule.apply(0, TaskEvent::kFailed);
    EXPECT_TRUE(outcome.retry);
    EXPECT_EQ(outcome.retry_after_ms, 250);
    EXPECT_TRUE(outcome.blocked.empty());
    EXPECT_EQ(schedule.state(0), TaskState::kPending);
    EXPECT_EQ(schedule.state(1), TaskState::kPending);
  }
  schedule.apply(0, TaskEvent::kStarted);
  EXPECT_EQ(schedule.attempts(0), 3);
  GraphSchedule::Outcome outcome = schedule.apply(0, TaskEvent::kFailed);
  EXPECT_FALSE(outcome.retry);
  EXPECT_EQ(outcome.retry_after_ms, 0);
  EXPECT_EQ(outcome.blocked, (Indices{1}));
  EXPECT_EQ(schedule.state(0), TaskState::kFailed);
  EXPECT_EQ(schedule.state(1), TaskState::kBlocked);
  EXPECT_TRUE(schedule.finished());
  EXPECT_EQ(schedule.outcome(), "failed");
}

TEST(GraphSchedule, RetryThatSucceedsCompletesTheGraph) {
  GraphSpec graph = graph_from(one_task(R"("retry":{"max_attempts":2,"backoff_ms":5})"));
  GraphSchedule schedule(graph);
  schedule.apply(0, TaskEvent::kStarted);
  EXPECT_TRUE(schedule.apply(0, TaskEvent::kFailed).retry);
  EXPECT_FALSE(schedule.finished());
  schedule.apply(0, TaskEvent::kStarted);
  schedule.apply(0, TaskEvent::kCompleted);
  EXPECT_EQ(schedule.attempts(0), 2);
  EXPECT_EQ(schedule.outcome(), "completed");
}

TEST(GraphSchedule, FailureBlocksDependentsTransitivelyAndNothingElse) {
  // a <- b <- c <- d, and f needs c and e; e and g are unrelated. Listed out of order so the
  // blocked list must be sorted, not walk order.
  GraphSpec graph = graph_from(graph_body({{"d", {"c"}},
                                           {"e", {}},
                                           {"f", {"e", "c"}},
                                           {"c", {"b"}},
                                           {"a", {}},
                                           {"b", {"a"}},
                                           {"g", {}}}));
  GraphSchedule schedule(graph);
  std::size_t a = *schedule.index_of("a");
  EXPECT_EQ(schedule.ready(10), (Indices{1, 4, 6}));
  start(schedule, {1, a});
  GraphSchedule::Outcome outcome = schedule.apply(a, TaskEvent::kFailed);
  EXPECT_FALSE(outcome.retry);
  EXPECT_EQ(outcome.blocked, (Indices{0, 2, 3, 5}));  // d, f, c, b
  for (std::size_t task : {0, 2, 3, 5}) EXPECT_EQ(schedule.state(task), TaskState::kBlocked);
  EXPECT_EQ(schedule.state(1), TaskState::kRunning);
  EXPECT_EQ(schedule.state(6), TaskState::kPending);
  EXPECT_EQ(schedule.ready(10), (Indices{6}));
  schedule.apply(1, TaskEvent::kCompleted);
  EXPECT_FALSE(schedule.finished());
  start(schedule, {6});
  schedule.apply(6, TaskEvent::kCompleted);
  EXPECT_TRUE(schedule.finished());
  EXPECT_EQ(schedule.outcome(), "failed");
}

TEST(GraphSchedule, FailureInADiamondLeavesTheSiblingRunning) {
  GraphSpec graph =
      graph_from(graph_body({{"a", {}}, {"b", {"a"}}, {"c", {"a"}}, {"d", {"b", "c"}}}));
  GraphSchedule schedule(graph);
  start(schedule, {0});
  schedule.apply(0, TaskEvent::kCompleted);
  start(schedule, {1, 2});
  EXPECT_EQ(schedule.apply(1, TaskEvent::kFailed).blocked, (Indices{3}));
  // A second path to a blocked task blocks nothing new.
  EXPECT_EQ(schedule.apply(2, TaskEvent::kFailed).blocked, Indices{});
  EXPECT_EQ(schedule.outcome(), "failed");
}

TEST(GraphSchedule, CancelPendingLeavesRunningTasksToTheExecutor) {
  GraphSpec graph = graph_from(graph_body({{"a", {}}, {"b", {}}, {"c", {"a"}}, {"d", {}}}));
  GraphSchedule schedule(graph);
  start(schedule, {0, 1});
  schedule.apply(1, TaskEvent::kCompleted);
  EXPECT_EQ(schedule.cancel_pending(), (Indices{2, 3}));
  EXPECT_EQ(schedule.state(0), TaskState::kRunning);
  EXPECT_EQ(schedule.state(1), TaskState::kCompleted);
  EXPECT_EQ(schedule.state(2), TaskState::kCancelled);
  EXPECT_EQ(schedule.ready(10), Indices{});
  EXPECT_FALSE(schedule.finished());
  EXPECT_EQ(schedule.outcome(), "");
  EXPECT_EQ(schedule.cancel_pending(), Indices{});
  EXPECT_TRUE(schedule.apply(0, TaskEvent::kCancelled).blocked.empty());
  EXPECT_EQ(schedule.state(0), TaskState::kCancelled);
  EXPECT_TRUE(schedule.finished());
  EXPECT_EQ(schedule.outcome(), "cancelled");
}

TEST(GraphSchedule, CancellingOneTaskBlocksItsDependents) {
  GraphSpec graph = graph_from(graph_body({{"a", {}}, {"b", {"a"}}, {"c", {"b"}}, {"d", {}}}));
  GraphSchedule schedule(graph);
  start(schedule, {0});
  EXPECT_EQ(schedule.apply(0, TaskEvent::kCancelled).blocked, (Indices{1, 2}));
  EXPECT_EQ(schedule.ready(10), (Indices{3}));
  start(schedule, {3});
  schedule.apply(3, TaskEvent::kCompleted);
  EXPECT_TRUE(schedule.finished());
  EXPECT_EQ(schedule.outcome(), "cancelled");
  // A pending task may be cancelled too.
  GraphSchedule other(graph);
  EXPECT_EQ(other.apply(3, TaskEvent::kCancelled).blocked, Indices{});
  EXPECT_EQ(other.state(3), TaskState::kCancelled);
}

TEST(GraphSchedule, OutcomePrefersCancelledOverFailed) {
  GraphSpec graph = graph_from(graph_body({{"a", {}}, {"b", {}}}));
  GraphSchedule schedule(graph);
  start(schedule, {0, 1});
  schedule.apply(0, TaskEvent::kFailed);
  EXPECT_EQ(schedule.outcome(), "");
  schedule.apply(1, TaskEvent::kCancelled);
  EXPECT_EQ(schedule.outcome(), "cancelled");
}

TEST(GraphSchedule, EventsThatDoNotFitChangeNothing) {
  GraphSpec graph = graph_from(graph_body({{"a", {}}, {"b", {"a"}}}));
  GraphSchedule schedule(graph);
  EXPECT_TRUE(schedule.apply(0, TaskEvent::kCompleted).blocked.empty());  // not started
  EXPECT_EQ(schedule.state(0), TaskState::kPending);
  GraphSchedule::Outcome failed = schedule.apply(0, TaskEvent::kFailed);
  EXPECT_FALSE(failed.retry);
  EXPECT_EQ(schedule.state(0), TaskState::kPending);
  EXPECT_EQ(schedule.state(1), TaskState::kPending);
  schedule.apply(0, TaskEvent::kStarted);
  schedule.apply(0, TaskEvent::kStarted);  // a duplicate report
  EXPECT_EQ(schedule.attempts(0), 1);
  schedule.apply(0, TaskEvent::kCompleted);
  schedule.apply(0, TaskEvent::kFailed);
  schedule.apply(0, TaskEvent::kCancelled);
  EXPECT_EQ(schedule.state(0), TaskState::kCompleted);
  GraphSchedule::Outcome outside = schedule.apply(7, TaskEvent::kStarted);
  EXPECT_FALSE(outside.retry);
  EXPECT_TRUE(outside.blocked.empty());
}

TEST(GraphSchedule, RebuildsFromStoredStates) {
  GraphSpec graph = graph_from(
      graph_body({{"a", {}}, {"b", {"a"}}, {"c", {"a"}}, {"d", {}}}, R"("max_concurrency":2)"));
  GraphSchedule schedule(
      graph, {TaskState::kCompleted, TaskState::kRunning, TaskState::kPending, TaskState::kPending},
      {1, 2, 0, 0});
  EXPECT_EQ(schedule.running(), 1u);
  EXPECT_EQ(schedule.attempts(1), 2);
  EXPECT_EQ(schedule.ready(10), (Indices{2}));  // one running of two
  schedule.apply(1, TaskEvent::kCompleted);
  EXPECT_EQ(schedule.ready(10), (Indices{2, 3}));
}

TEST(GraphSchedule, RebuildFinishesAnInterruptedBlock) {
  // Stored: a failed, but the restart came before its dependents were stored as blocked.
  GraphSpec graph = graph_from(graph_body({{"a", {}}, {"b", {"a"}}, {"c", {"b"}}, {"d", {}}}));
  GraphSchedule schedule(
      graph, {TaskState::kFailed, TaskState::kPending, TaskState::kPending, TaskState::kCompleted},
      {1, 0, 0, 1});
  EXPECT_EQ(schedule.state(1), TaskState::kBlocked);
  EXPECT_EQ(schedule.state(2), TaskState::kBlocked);
  EXPECT_TRUE(schedule.finished());
  EXPECT_EQ(schedule.outcome(), "failed");
}

TEST(GraphSchedule, RebuildFromShortRowsReadsThemAsPending) {
  GraphSpec graph = graph_from(graph_body({{"a", {}}, {"b", {"a"}}}));
  GraphSchedule schedule(graph, {TaskState::kCompleted}, {});
  EXPECT_EQ(schedule.state(1), TaskState::kPending);
  EXPECT_EQ(schedule.attempts(0), 0);
  EXPECT_EQ(schedule.ready(10), (Indices{1}));
}

TEST(GraphSchedule, OutlivesTheSpecItWasBuiltFrom) {
  std::optional<GraphSchedule> schedule;
  {
    GraphSpec graph = graph_from(R"({"tasks":[
        {"id":"a","instructions":"i","model":"m","retry":{"max_attempts":2,"backoff_ms":40}}]})");
    schedule.emplace(graph);
  }
  EXPECT_EQ(schedule->index_of("a"), 0u);
  schedule->apply(0, TaskEvent::kStarted);
  EXPECT_EQ(schedule->apply(0, TaskEvent::kFailed).retry_after_ms, 40);
  GraphSchedule copy = *schedule;
  EXPECT_EQ(copy.index_of("a"), 0u);
}

}  // namespace
}  // namespace redline::agents
