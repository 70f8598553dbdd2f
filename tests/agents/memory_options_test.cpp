#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include "agents/memory_service.h"

namespace redline::agents {
namespace {

std::optional<MemoryOptions> read(std::string_view redline, std::optional<ApiError>& error,
                                  std::size_t max_top_k = 20) {
  return read_memory_options(boost::json::parse(redline).as_object(), max_top_k, error);
}

TEST(MemoryOptionsTest, AbsentMeansNoMemory) {
  std::optional<ApiError> error;
  EXPECT_FALSE(read(R"({})", error).has_value());
  EXPECT_FALSE(read(R"({"memory": null})", error).has_value());
  EXPECT_FALSE(error.has_value());
}

TEST(MemoryOptionsTest, ReadsEveryMember) {
  std::optional<ApiError> error;
  auto options = read(
      R"({"memory": {"user": "u1", "agent": "planner", "blocks": false, "search": "trip to Rome",
                     "top_k": 3, "extract": true}})",
      error);
  ASSERT_TRUE(options.has_value()) << error->message;
  EXPECT_EQ(options->scope.user, "u1");
  EXPECT_EQ(options->scope.agent, "planner");
  EXPECT_FALSE(options->blocks);
  EXPECT_TRUE(options->search);
  EXPECT_EQ(options->query, "trip to Rome");
  EXPECT_EQ(options->top_k, 3u);
  EXPECT_TRUE(options->extract);
}

TEST(MemoryOptionsTest, DefaultsInjectBlocksOnlyAndSearchTrueUsesTheTurnsInput) {
  std::optional<ApiError> error;
  auto options = read(R"({"memory": {"user": "u1"}})", error);
  ASSERT_TRUE(options.has_value());
  EXPECT_TRUE(options->blocks);
  EXPECT_FALSE(options->search);
  EXPECT_FALSE(options->extract);
  EXPECT_EQ(options->top_k, 5u);
  options = read(R"({"memory": {"search": true, "top_k": 500}})", error, 20);
  ASSERT_TRUE(options.has_value());
  EXPECT_TRUE(options->search);
  EXPECT_EQ(options->query, "");
  EXPECT_EQ(options->top_k, 20u);  // bounded by [memory] max_injected_records
}

TEST(MemoryOptionsTest, MistakesNameTheMember) {
  const std::pair<const char*, const char*> cases[] = {
      {R"({"memory": 3})", "redline.memory"},
      {R"({"memory": {"user": 7}})", "redline.memory.user"},
      {R"({"memory": {"agent": ["a"]}})", "redline.memory.agent"},
      {R"({"memory": {"blocks": "yes"}})", "redline.memory.blocks"},
      {R"({"memory": {"search": 1}})", "redline.memory.search"},
      {R"({"memory": {"top_k": 0}})", "redline.memory.top_k"},
      {R"({"memory": {"top_k": 2.5}})", "redline.memory.top_k"},
      {R"({"memory": {"extract": null, "user": "x"}})", nullptr},
  };
  for (const auto& [body, param] : cases) {
    std::optional<ApiError> error;
    auto options = read(body, error);
    if (param == nullptr) {
      EXPECT_TRUE(options.has_value()) << body;
      continue;
    }
    EXPECT_FALSE(options.has_value()) << body;
    ASSERT_TRUE(error.has_value()) << body;
    EXPECT_EQ(error->status, 400);
    EXPECT_EQ(error->param, param) << body;
  }
  std::optional<ApiError> error;
  EXPECT_FALSE(read(R"({"memory": {"user": ")" + std::string(200, 'u') + R"("}})", error));
  EXPECT_EQ(error->param, "redline.memory.user");
}

}  // namespace
}  // namespace redline::agents
