#include "sim/sim_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

namespace redline::sim {
namespace {

using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

constexpr std::string_view kFull = R"(
[sim]
name = "edge"
listen = "0.0.0.0:9200"
threads = 2
seed = 7

[[models]]
name = "*"
ttft_ms = { mean = 40, stddev = 10 }
tokens_per_second = 400
max_concurrency = 32
queue_size = 256
output_tokens = 24
embedding_dimensions = 16
tool_rounds = 4
cite_tool_results = true
prefix_cache_entries = 4096
[models.failures]
error_5xx = 0.01
rate_limit_429 = 0.02
retry_after_s = 3
timeout = 0.03
disconnect_mid_stream = 0.04

[[models]]
name = "small"
ttft_ms = 5
)";

TEST(SimConfigTest, ReadsEveryField) {
  SimConfigResult result = load_sim_config_string(kFull, "edge.toml");
  ASSERT_TRUE(result.errors.empty()) << result.errors[0];
  const SimConfig& config = *result.config;
  EXPECT_EQ(config.name, "edge");
  EXPECT_EQ(config.host, "0.0.0.0");
  EXPECT_EQ(config.port, 9200);
  EXPECT_EQ(config.threads, 2u);
  EXPECT_EQ(config.seed, 7u);
  ASSERT_EQ(config.models.size(), 2u);
  const ModelProfile& any = config.models[0];
  EXPECT_EQ(any.name, "*");
  EXPECT_DOUBLE_EQ(any.ttft.mean_ms, 40);
  EXPECT_DOUBLE_EQ(any.ttft.stddev_ms, 10);
  EXPECT_DOUBLE_EQ(any.tokens_per_second, 400);
  EXPECT_EQ(any.max_concurrency, 32);
  EXPECT_EQ(any.queue_size, 256);
  EXPECT_EQ(any.output_tokens, 24);
  EXPECT_EQ(any.embedding_dimensions, 16);
  EXPECT_EQ(any.tool_rounds, 4);
  EXPECT_TRUE(any.cite_tool_results);
  EXPECT_EQ(any.prefix_cache_entries, 4096);
  EXPECT_DOUBLE_EQ(any.failures.error_5xx, 0.01);
  EXPECT_DOUBLE_EQ(any.failures.rate_limit_429, 0.02);
  EXPECT_EQ(any.failures.retry_after_s, 3);
  EXPECT_DOUBLE_EQ(any.failures.timeout, 0.03);
  EXPECT_DOUBLE_EQ(any.failures.disconnect_mid_stream, 0.04);
  const ModelProfile& small = config.models[1];
  EXPECT_DOUBLE_EQ(small.ttft.mean_ms, 5);
  EXPECT_DOUBLE_EQ(small.ttft.stddev_ms, 0);
  EXPECT_EQ(small.output_tokens, 16);
  EXPECT_EQ(small.max_concurrency, 0);
  EXPECT_EQ(small.tool_rounds, 1);
  EXPECT_FALSE(small.cite_tool_results);
  EXPECT_EQ(small.prefix_cache_entries, 0);
}

TEST(SimConfigTest, DefaultsWithoutSimTable) {
  SimConfigResult result = load_sim_config_string("[[models]]\nname = \"m\"\n", "x.toml");
  ASSERT_TRUE(result.config);
  EXPECT_EQ(result.config->host, "127.0.0.1");
  EXPECT_EQ(result.config->port, 9101);
  EXPECT_EQ(result.config->seed, 42u);
}

TEST(SimConfigTest, ReportsEveryErrorWithPositionAndKey) {
  SimConfigResult result = load_sim_config_string(R"([sim]
listen = "nowhere"
thread = 2
[[models]]
name = "a"
tokens_per_second = "fast"
[models.failures]
error_5xx = 0.7
timeout = 0.6
[[models]]
name = "a"
output_tokens = 0
prefix_cache_entries = -1
)",
                                                  "bad.toml");
  EXPECT_FALSE(result.config);
  EXPECT_THAT(
      result.errors,
      UnorderedElementsAre("bad.toml:2:10: sim.listen: must be \"host:port\"",
                           "bad.toml:3:10: sim.thread: unknown key",
                           "bad.toml:6:21: models[0].tokens_per_second: must be a number",
                           "bad.toml:7:1: models[0].failures: failure rates add up to more than 1",
                           "bad.toml:12:17: models[1].output_tokens: must be between 1 and 1000000",
                           "bad.toml:13:24: models[1].prefix_cache_entries: must be between 0 and "
                           "10000000"));
}

TEST(SimConfigTest, RejectsDuplicateNamesAndMissingModels) {
  SimConfigResult duplicate =
      load_sim_config_string("[[models]]\nname = \"a\"\n[[models]]\nname = \"a\"\n", "d.toml");
  ASSERT_EQ(duplicate.errors.size(), 1u);
  EXPECT_THAT(duplicate.errors[0], HasSubstr("duplicate model \"a\""));

  SimConfigResult none = load_sim_config_string("[sim]\nname = \"x\"\n", "n.toml");
  ASSERT_EQ(none.errors.size(), 1u);
  EXPECT_THAT(none.errors[0], HasSubstr("models: at least one [[models]] is required"));

  SimConfigResult nameless = load_sim_config_string("[[models]]\nttft_ms = 3\n", "m.toml");
  ASSERT_EQ(nameless.errors.size(), 1u);
  EXPECT_THAT(nameless.errors[0], HasSubstr("models[0].name: is required"));
}

TEST(SimConfigTest, TomlSyntaxErrorHasPosition) {
  SimConfigResult result = load_sim_config_string("[sim\nname = 1\n", "syntax.toml");
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_THAT(result.errors[0], HasSubstr("syntax.toml:1:"));
}

TEST(SimConfigTest, MissingFile) {
  SimConfigResult result = load_sim_config_file("/nonexistent/sim.toml");
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_THAT(result.errors[0], HasSubstr("/nonexistent/sim.toml"));
}

TEST(SimConfigTest, ExamplesLoad) {
  std::filesystem::path examples =
      std::filesystem::path(__FILE__).parent_path().parent_path().parent_path() / "examples";
  for (const char* name : {"sim-edge.toml", "sim-cloud.toml"}) {
    SimConfigResult result = load_sim_config_file((examples / name).string());
    EXPECT_TRUE(result.errors.empty()) << name << ": " << result.errors[0];
    ASSERT_TRUE(result.config) << name;
    EXPECT_FALSE(result.config->models.empty());
  }
}

}  // namespace
}  // namespace redline::sim
