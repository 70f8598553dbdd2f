#include "config/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

namespace redline::config {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

EnvLookup fake_env(std::map<std::string, std::string> vars = {}) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

LoadResult load(std::string_view text, const EnvLookup& env = fake_env()) {
  return load_config_string(text, "test.toml", env);
}

std::string describe(const LoadResult& result) { return format_errors(result.errors); }

// The only error reported for `key`; fails the test when there is none or more than one.
const ConfigError* error_for(const LoadResult& result, std::string_view key) {
  const ConfigError* match = nullptr;
  for (const ConfigError& error : result.errors) {
    if (error.key != key) continue;
    EXPECT_EQ(match, nullptr) << "more than one error for " << key << ":\n" << describe(result);
    match = &error;
  }
  EXPECT_NE(match, nullptr) << "no error for " << key << "; got:\n" << describe(result);
  return match;
}

// Asserts that loading fails with exactly one error, for `key` at `line`, whose message contains
// `message`.
void expect_single_error(const LoadResult& result, std::string_view key, int line,
                         std::string_view message) {
  EXPECT_FALSE(result.config.has_value());
  ASSERT_EQ(result.errors.size(), 1u) << describe(result);
  const ConfigError& error = result.errors.front();
  EXPECT_EQ(error.key, key) << describe(result);
  EXPECT_EQ(error.line, line) << describe(result);
  EXPECT_GT(error.column, 0) << describe(result);
  EXPECT_THAT(error.message, HasSubstr(message)) << describe(result);
  EXPECT_EQ(error.source, "test.toml");
}

// Lines 1-8: one backend, one alias; tests append further tables after it.
constexpr std::string_view kMinimal = R"([[backends]]
name = "edge"
base_url = "http://127.0.0.1:9101/v1"
models = ["llama"]

[[models]]
name = "chat"
targets = [{ backend = "edge", model = "llama" }]
)";

std::string minimal_plus(std::string_view extra) {
  return std::string(kMinimal) + "\n" + std::string(extra);
}

TEST(ConfigLoad, FullConfigLoadsEveryField) {
  const std::string text = R"(
[server]
listen = ["0.0.0.0:9000", "[::1]:9001"]
threads = 4
max_body_bytes = 1000
max_header_bytes = 2000
max_connections = 300
header_timeout_ms = 11
body_timeout_ms = 12
idle_timeout_ms = 13
write_timeout_ms = 14
drain_timeout_ms = 15
access_log = "off"
log_level = "debug"

[routing]
max_attempts = 4
retry_budget_ratio = 0.5
retry_budget_min_per_second = 7
max_retry_after_ms = 0
breaker_failure_threshold = 6
breaker_open_duration_ms = 21
outlier_consecutive_5xx = 8
outlier_ejection_ms = 22
latency_exploration = 0
prefix_affinity_bytes = 512

[[backends]]
name = "cloud"
base_url = "https://api.example.com/v1/"
api_key_env = "CLOUD_KEY"
tier = "onprem"
region = "eu-west-1"
price_input_per_mtok = 0.15
price_output_per_mtok = 2
max_concurrency = 9
weight = 2.5
connect_timeout_ms = 31
first_byte_timeout_ms = 32
idle_timeout_ms = 33
request_timeout_ms = 34
health_path = ""
health_interval_ms = 35
models = [{ name = "gpt", upstream_name = "gpt-4o-mini" }, "embed"]

[[backends]]
name = "edge"
base_url = "http://[::1]:9101"
models = ["llama"]

[[models]]
name = "cheap"
strategy = "cost"
targets = [{ backend = "cloud", model = "gpt" }, { backend = "edge", model = "llama" }]
fallbacks = ["other"]
max_latency_ms = 2000
owned_by = "acme"

[[models]]
name = "other"
strategy = "prefix_affinity"
targets = [{ backend = "edge", model = "llama" }]
)";
  const LoadResult result = load(text, fake_env({{"CLOUD_KEY", "sk-secret"}}));
  ASSERT_TRUE(result.errors.empty()) << describe(result);
  ASSERT_TRUE(result.config.has_value());
  const Config& config = *result.config;
  EXPECT_EQ(config.source, "test.toml");

  const ServerSettings& server = config.server;
  ASSERT_EQ(server.listeners.size(), 2u);
  EXPECT_EQ(server.listeners[0], (Endpoint{"0.0.0.0", 9000}));
  EXPECT_EQ(server.listeners[1], (Endpoint{"::1", 9001}));
  EXPECT_EQ(server.threads, 4u);
  EXPECT_EQ(server.max_body_bytes, 1000u);
  EXPECT_EQ(server.max_header_bytes, 2000u);
  EXPECT_EQ(server.max_connections, 300u);
  EXPECT_EQ(server.header_timeout, 11ms);
  EXPECT_EQ(server.body_timeout, 12ms);
  EXPECT_EQ(server.idle_timeout, 13ms);
  EXPECT_EQ(server.write_timeout, 14ms);
  EXPECT_EQ(server.drain_timeout, 15ms);
  EXPECT_EQ(server.access_log, "off");
  EXPECT_EQ(server.log_level, "debug");

  const RoutingSettings& routing = config.routing;
  EXPECT_EQ(routing.max_attempts, 4);
  EXPECT_DOUBLE_EQ(routing.retry_budget_ratio, 0.5);
  EXPECT_EQ(routing.retry_budget_min_per_second, 7);
  EXPECT_EQ(routing.max_retry_after, 0ms);
  EXPECT_EQ(routing.breaker_failure_threshold, 6);
  EXPECT_EQ(routing.breaker_open_duration, 21ms);
  EXPECT_EQ(routing.outlier_consecutive_5xx, 8);
  EXPECT_EQ(routing.outlier_ejection, 22ms);
  EXPECT_DOUBLE_EQ(routing.latency_exploration, 0.0);
  EXPECT_EQ(routing.prefix_affinity_bytes, 512u);

  ASSERT_EQ(config.backends.size(), 2u);
  const Backend& cloud = config.backends[0];
  EXPECT_EQ(cloud.name, "cloud");
  EXPECT_EQ(cloud.base_url, "https://api.example.com/v1/");
  EXPECT_TRUE(cloud.tls);
  EXPECT_EQ(cloud.host, "api.example.com");
  EXPECT_EQ(cloud.port, 443);
  EXPECT_EQ(cloud.base_path, "/v1");
  EXPECT_EQ(cloud.api_key_env, "CLOUD_KEY");
  EXPECT_EQ(cloud.api_key, "sk-secret");
  EXPECT_EQ(cloud.tier, Tier::kOnprem);
  EXPECT_EQ(cloud.region, "eu-west-1");
  EXPECT_DOUBLE_EQ(cloud.price_input_per_mtok, 0.15);
  EXPECT_DOUBLE_EQ(cloud.price_output_per_mtok, 2.0);
  EXPECT_EQ(cloud.max_concurrency, 9);
  EXPECT_DOUBLE_EQ(cloud.weight, 2.5);
  EXPECT_EQ(cloud.connect_timeout, 31ms);
  EXPECT_EQ(cloud.first_byte_timeout, 32ms);
  EXPECT_EQ(cloud.idle_timeout, 33ms);
  EXPECT_EQ(cloud.request_timeout, 34ms);
  EXPECT_EQ(cloud.ca_file, "");
  EXPECT_EQ(cloud.health_path, "");
  EXPECT_EQ(cloud.health_interval, 35ms);
  ASSERT_EQ(cloud.models.size(), 2u);
  EXPECT_EQ(cloud.models[0].name, "gpt");
  EXPECT_EQ(cloud.models[0].upstream_name, "gpt-4o-mini");
  EXPECT_EQ(cloud.models[1].name, "embed");
  EXPECT_EQ(cloud.models[1].upstream_name, "embed");
  EXPECT_EQ(cloud.find_model("embed"), &cloud.models[1]);
  EXPECT_EQ(cloud.find_model("gpt-4o-mini"), nullptr);

  const Backend& edge = config.backends[1];
  EXPECT_FALSE(edge.tls);
  EXPECT_EQ(edge.host, "::1");
  EXPECT_EQ(edge.port, 9101);
  EXPECT_EQ(edge.base_path, "");
  EXPECT_EQ(edge.api_key, "");
  EXPECT_EQ(edge.tier, Tier::kCloud);

  ASSERT_EQ(config.models.size(), 2u);
  const ModelAlias& cheap = config.models[0];
  EXPECT_EQ(cheap.name, "cheap");
  EXPECT_EQ(cheap.strategy, Strategy::kCost);
  ASSERT_EQ(cheap.targets.size(), 2u);
  EXPECT_EQ(cheap.targets[0].backend, "cloud");
  EXPECT_EQ(cheap.targets[0].model, "gpt");
  EXPECT_EQ(cheap.targets[1].backend, "edge");
  EXPECT_EQ(cheap.targets[1].model, "llama");
  EXPECT_EQ(cheap.fallbacks, std::vector<std::string>{"other"});
  EXPECT_EQ(cheap.max_latency, 2000ms);
  EXPECT_EQ(cheap.owned_by, "acme");
  EXPECT_EQ(config.models[1].strategy, Strategy::kPrefixAffinity);
  EXPECT_EQ(config.models[1].owned_by, "redline");

  EXPECT_EQ(config.find_backend("edge"), &edge);
  EXPECT_EQ(config.find_backend("nope"), nullptr);
  EXPECT_EQ(config.find_alias("other"), &config.models[1]);
  EXPECT_EQ(config.find_alias("chat"), nullptr);
}

TEST(ConfigLoad, OmittedKeysKeepTheirDefaults) {
  const LoadResult result = load(kMinimal);
  ASSERT_TRUE(result.config.has_value()) << describe(result);
  const Config& config = *result.config;
  const ServerSettings defaults;
  EXPECT_EQ(config.server.listeners, (std::vector<Endpoint>{{"127.0.0.1", 8080}}));
  EXPECT_EQ(config.server.max_body_bytes, 10u * 1024 * 1024);
  EXPECT_EQ(config.server.idle_timeout, defaults.idle_timeout);
  EXPECT_EQ(config.routing.max_attempts, 3);
  const Backend& backend = config.backends.at(0);
  EXPECT_EQ(backend.port, 9101);
  EXPECT_EQ(backend.base_path, "/v1");
  EXPECT_EQ(backend.tier, Tier::kCloud);
  EXPECT_EQ(backend.max_concurrency, 64);
  EXPECT_EQ(backend.health_path, "/models");
  EXPECT_EQ(config.models.at(0).strategy, Strategy::kLeastLoad);
  EXPECT_EQ(config.models.at(0).max_latency, 0ms);
}

TEST(ConfigLoad, EnumNamesRoundTrip) {
  EXPECT_EQ(to_string(Tier::kEdge), "edge");
  EXPECT_EQ(to_string(Tier::kOnprem), "onprem");
  EXPECT_EQ(to_string(Tier::kCloud), "cloud");
  EXPECT_EQ(to_string(Strategy::kLeastLoad), "least_load");
  EXPECT_EQ(to_string(Strategy::kLatency), "latency");
  EXPECT_EQ(to_string(Strategy::kCost), "cost");
  EXPECT_EQ(to_string(Strategy::kWeighted), "weighted");
  EXPECT_EQ(to_string(Strategy::kPrefixAffinity), "prefix_affinity");
}

TEST(Endpoint, ParsesHostPortForms) {
  EXPECT_EQ(parse_endpoint("127.0.0.1:8080"), (Endpoint{"127.0.0.1", 8080}));
  EXPECT_EQ(parse_endpoint("[::1]:8080"), (Endpoint{"::1", 8080}));
  EXPECT_EQ(parse_endpoint("localhost:80"), (Endpoint{"localhost", 80}));
  EXPECT_EQ(parse_endpoint("0.0.0.0:0"), (Endpoint{"0.0.0.0", 0}));
  EXPECT_EQ(parse_endpoint("localhost"), std::nullopt);
  EXPECT_EQ(parse_endpoint("localhost:"), std::nullopt);
  EXPECT_EQ(parse_endpoint(":80"), std::nullopt);
  EXPECT_EQ(parse_endpoint("localhost:65536"), std::nullopt);
  EXPECT_EQ(parse_endpoint("localhost:8o"), std::nullopt);
  EXPECT_EQ(parse_endpoint("::1:80"), std::nullopt);
  EXPECT_EQ(parse_endpoint("[::1]"), std::nullopt);
  EXPECT_EQ(parse_endpoint("[localhost]:80"), std::nullopt);
  EXPECT_EQ(parse_endpoint("a b:80"), std::nullopt);
  EXPECT_EQ(to_string(Endpoint{"::1", 8080}), "[::1]:8080");
  EXPECT_EQ(to_string(Endpoint{"localhost", 80}), "localhost:80");
}

TEST(ConfigErrors, SyntaxErrorHasPosition) {
  const LoadResult result = load("[server]\nthreads = = 4\n");
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].line, 2);
  EXPECT_GT(result.errors[0].column, 0);
  EXPECT_EQ(result.errors[0].key, "");
  EXPECT_FALSE(result.errors[0].message.empty());
  EXPECT_FALSE(result.config.has_value());
}

TEST(ConfigErrors, UnknownKeysAreReportedWithSuggestion) {
  expect_single_error(load(minimal_plus("[server]\nthread = 2\n")), "server.thread", 11,
                      "unknown key 'thread'; did you mean 'threads'?");
  expect_single_error(load(minimal_plus("[routing]\nbogus = 1\n")), "routing.bogus", 11,
                      "unknown key 'bogus'");
  expect_single_error(load(minimal_plus("[logging]\nlevel = 1\n")), "logging", 10,
                      "unknown key 'logging'");
  const std::string backend = R"([[backends]]
name = "b"
base_url = "http://h"
max_concurency = 3
models = [{ name = "m", upstream = "x" }]
)";
  const LoadResult result = load(minimal_plus(backend));
  ASSERT_EQ(result.errors.size(), 2u) << describe(result);
  const ConfigError* typo = error_for(result, "backends[1].max_concurency");
  ASSERT_NE(typo, nullptr);
  EXPECT_EQ(typo->line, 13);
  EXPECT_EQ(typo->message, "unknown key 'max_concurency'; did you mean 'max_concurrency'?");
  const ConfigError* nested = error_for(result, "backends[1].models[0].upstream");
  ASSERT_NE(nested, nullptr);
  EXPECT_EQ(nested->line, 14);

  expect_single_error(load(R"([[backends]]
name = "edge"
base_url = "http://h"
models = ["llama"]
[[models]]
name = "chat"
targets = [{ backend = "edge", model = "llama", weight = 2 }]
)"),
                      "models[0].targets[0].weight", 7, "unknown key 'weight'");
}

TEST(ConfigErrors, WrongTypesNameTheExpectedType) {
  expect_single_error(load(minimal_plus("[server]\nthreads = \"4\"\n")), "server.threads", 11,
                      "must be a non-negative integer (found a string)");
  expect_single_error(load(minimal_plus("[server]\nheader_timeout_ms = 1.5\n")),
                      "server.header_timeout_ms", 11,
                      "must be a positive integer number of milliseconds (found a float)");
  expect_single_error(load(minimal_plus("[server]\naccess_log = false\n")), "server.access_log", 11,
                      "must be a string (found a boolean)");
  expect_single_error(load("server = 3\n" + std::string(kMinimal)), "server", 1,
                      "must be a table (found an integer)");
  expect_single_error(load(minimal_plus("[routing]\nretry_budget_ratio = \"x\"\n")),
                      "routing.retry_budget_ratio", 11, "must be a number between 0 and 1");
  expect_single_error(load(R"([[backends]]
name = "edge"
base_url = "http://h"
models = "llama"
[[models]]
name = "chat"
targets = [{ backend = "edge", model = "llama" }]
)"),
                      "backends[0].models", 4, "must be an array (found a string)");
  expect_single_error(load(minimal_plus("[[models]]\nname = \"x\"\ntargets = [\"edge\"]\n")),
                      "models[1].targets[0]", 12, "must be a table");
}

TEST(ConfigErrors, RequiredKeysAreReportedAtTheirTable) {
  const LoadResult result = load(minimal_plus("[[backends]]\nregion = \"x\"\n"));
  ASSERT_EQ(result.errors.size(), 3u) << describe(result);
  for (const char* key : {"backends[1].name", "backends[1].base_url", "backends[1].models"}) {
    const ConfigError* error = error_for(result, key);
    ASSERT_NE(error, nullptr);
    EXPECT_EQ(error->line, 10);
    EXPECT_EQ(error->message, "is required");
  }

  const LoadResult alias = load(minimal_plus("[[models]]\nowned_by = \"x\"\n"));
  ASSERT_EQ(alias.errors.size(), 2u) << describe(alias);
  EXPECT_EQ(error_for(alias, "models[1].name")->line, 10);
  EXPECT_EQ(error_for(alias, "models[1].targets")->line, 10);

  expect_single_error(
      load(minimal_plus("[[models]]\nname = \"x\"\ntargets = [{ backend = \"edge\" }]\n")),
      "models[1].targets[0].model", 12, "is required");
}

TEST(ConfigErrors, EmptyNamesAndListsAreRejected) {
  expect_single_error(load(minimal_plus("[[backends]]\nname = \"\"\nbase_url = \"http://h\"\n"
                                        "models = [\"m\"]\n")),
                      "backends[1].name", 11, "must not be empty");
  expect_single_error(
      load(minimal_plus("[[backends]]\nname = \"b\"\nbase_url = \"http://h\"\nmodels = []\n")),
      "backends[1].models", 13, "must list at least one model");
  expect_single_error(load(minimal_plus("[[models]]\nname = \"x\"\ntargets = []\n")),
                      "models[1].targets", 12, "must list at least one target");
}

TEST(ConfigErrors, NoBackendsOrNoAliasesIsAnError) {
  const LoadResult empty = load("");
  ASSERT_EQ(empty.errors.size(), 2u) << describe(empty);
  EXPECT_THAT(error_for(empty, "backends")->message, HasSubstr("at least one [[backends]]"));
  EXPECT_THAT(error_for(empty, "models")->message, HasSubstr("at least one [[models]]"));

  expect_single_error(load("backends = []\n[[models]]\nname = \"x\"\n"
                           "targets = [{ backend = \"edge\", model = \"m\" }]\n"),
                      "backends", 1, "at least one [[backends]]");
}

TEST(ConfigErrors, DuplicateNames) {
  const LoadResult backends =
      load(minimal_plus("[[backends]]\nname = \"edge\"\nbase_url = \"http://h\"\nmodels = [\"m\", "
                        "{ name = \"m\" }]\n"));
  ASSERT_EQ(backends.errors.size(), 2u) << describe(backends);
  const ConfigError* backend = error_for(backends, "backends[1].name");
  ASSERT_NE(backend, nullptr);
  EXPECT_EQ(backend->line, 11);
  EXPECT_EQ(backend->message, "duplicate backend name 'edge' (first defined at line 2)");
  const ConfigError* model = error_for(backends, "backends[1].models[1].name");
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(model->line, 13);
  EXPECT_THAT(model->message, HasSubstr("duplicate model 'm'"));

  expect_single_error(load(minimal_plus("[[models]]\nname = \"chat\"\n"
                                        "targets = [{ backend = \"edge\", model = \"llama\" }]\n")),
                      "models[1].name", 11,
                      "duplicate alias name 'chat' (first defined at line 7)");
  expect_single_error(
      load(minimal_plus("[[models]]\nname = \"twice\"\ntargets = [{ backend = \"edge\", model = "
                        "\"llama\" }, { backend = \"edge\", model = \"llama\" }]\n")),
      "models[1].targets[1]", 12, "duplicate target 'edge/llama'");
}

std::string backend_with(std::string_view line) {
  return "[[backends]]\nname = \"b\"\nmodels = [\"m\"]\n" + std::string(line) + "\n";
}

TEST(ConfigErrors, BaseUrlMustBeHttpWithHost) {
  expect_single_error(load(minimal_plus(backend_with("base_url = \"ftp://h/v1\""))),
                      "backends[1].base_url", 13, "scheme must be http or https");
  expect_single_error(load(minimal_plus(backend_with("base_url = \"http:///v1\""))),
                      "backends[1].base_url", 13, "missing host");
  expect_single_error(load(minimal_plus(backend_with("base_url = \"api.example.com/v1\""))),
                      "backends[1].base_url", 13, "not an absolute URL");
  expect_single_error(load(minimal_plus(backend_with("base_url = \"http://h:0/v1\""))),
                      "backends[1].base_url", 13, "port must be 1-65535");
  expect_single_error(load(minimal_plus(backend_with("base_url = \"http://h:70000\""))),
                      "backends[1].base_url", 13, "port must be 1-65535");
  expect_single_error(load(minimal_plus(backend_with("base_url = \"http://u:p@h/v1\""))),
                      "backends[1].base_url", 13, "credentials");
  expect_single_error(load(minimal_plus(backend_with("base_url = \"http://h/v1?x=1\""))),
                      "backends[1].base_url", 13, "query");
}

TEST(ConfigErrors, EnumValuesListTheAllowedOnes) {
  expect_single_error(load(minimal_plus(backend_with("base_url = \"http://h\"\ntier = \"clod\""))),
                      "backends[1].tier", 14,
                      "unknown value 'clod' (allowed: edge, onprem, cloud); did you mean 'cloud'?");
  expect_single_error(
      load(minimal_plus("[[models]]\nname = \"x\"\nstrategy = \"fastest\"\n"
                        "targets = [{ backend = \"edge\", model = \"llama\" }]\n")),
      "models[1].strategy", 12,
      "unknown value 'fastest' (allowed: least_load, latency, cost, weighted, prefix_affinity)");
  expect_single_error(load(minimal_plus("[server]\nlog_level = \"verbose\"\n")), "server.log_level",
                      11, "(allowed: trace, debug, info, warn, error)");
}

TEST(ConfigErrors, NumericBounds) {
  const std::string prefix = "base_url = \"http://h\"\n";
  expect_single_error(load(minimal_plus(backend_with(prefix + "price_input_per_mtok = -0.5"))),
                      "backends[1].price_input_per_mtok", 14,
                      "must be a non-negative number (found -0.5)");
  expect_single_error(load(minimal_plus(backend_with(prefix + "price_output_per_mtok = -1"))),
                      "backends[1].price_output_per_mtok", 14, "must be a non-negative number");
  expect_single_error(load(minimal_plus(backend_with(prefix + "max_concurrency = 0"))),
                      "backends[1].max_concurrency", 14, "must be a positive integer (found 0)");
  expect_single_error(load(minimal_plus(backend_with(prefix + "max_concurrency = 3000000000"))),
                      "backends[1].max_concurrency", 14, "must be at most 2147483647");
  expect_single_error(load(minimal_plus(backend_with(prefix + "weight = 0.0"))),
                      "backends[1].weight", 14, "must be a positive number");
  expect_single_error(load(minimal_plus(backend_with(prefix + "weight = nan"))),
                      "backends[1].weight", 14, "must be a positive number");
  expect_single_error(load(minimal_plus(backend_with(prefix + "connect_timeout_ms = 0"))),
                      "backends[1].connect_timeout_ms", 14,
                      "must be a positive integer number of milliseconds (found 0)");
  expect_single_error(load(minimal_plus(backend_with(prefix + "health_path = \"models\""))),
                      "backends[1].health_path", 14, "must start with '/'");
  expect_single_error(load(minimal_plus("[routing]\nmax_attempts = 0\n")), "routing.max_attempts",
                      11, "must be a positive integer (found 0)");
  expect_single_error(load(minimal_plus("[routing]\nretry_budget_ratio = 1.5\n")),
                      "routing.retry_budget_ratio", 11, "must be a number between 0 and 1");
  expect_single_error(load(minimal_plus("[routing]\nlatency_exploration = -0.1\n")),
                      "routing.latency_exploration", 11, "must be a number between 0 and 1");
  expect_single_error(load(minimal_plus("[routing]\nmax_retry_after_ms = -1\n")),
                      "routing.max_retry_after_ms", 11, "must be a non-negative integer");
  expect_single_error(load(minimal_plus("[server]\nmax_connections = 0\n")),
                      "server.max_connections", 11, "must be a positive integer");
}

TEST(ConfigErrors, ListenAddressesMustParse) {
  expect_single_error(load(minimal_plus("[server]\nlisten = \"localhost\"\n")), "server.listen", 11,
                      "invalid listen address 'localhost'");
  const LoadResult result =
      load(minimal_plus("[server]\nlisten = [\"127.0.0.1:80\",\n  \"::1:80\",\n  8080]\n"));
  ASSERT_EQ(result.errors.size(), 2u) << describe(result);
  EXPECT_EQ(error_for(result, "server.listen[1]")->line, 12);
  EXPECT_THAT(error_for(result, "server.listen[2]")->message, HasSubstr("found an integer"));
  expect_single_error(load(minimal_plus("[server]\nlisten = []\n")), "server.listen", 11,
                      "at least one address");
  expect_single_error(load(minimal_plus("[server]\nlisten = [\"a:1\", \"a:1\"]\n")),
                      "server.listen[1]", 11, "duplicate listen address 'a:1'");
}

TEST(ConfigErrors, AliasTargetsMustResolve) {
  const std::string config = R"([[backends]]
name = "edge"
base_url = "http://h:1"
models = ["llama"]
[[backends]]
name = "cloud"
base_url = "http://h:2"
models = ["gpt"]
[[models]]
name = "chat"
targets = [{ backend = "edg", model = "llama" },
           { backend = "cloud", model = "llama" }]
)";
  const LoadResult result = load(config);
  ASSERT_EQ(result.errors.size(), 2u) << describe(result);
  const ConfigError* backend = error_for(result, "models[0].targets[0].backend");
  ASSERT_NE(backend, nullptr);
  EXPECT_EQ(backend->line, 11);
  EXPECT_EQ(backend->message, "unknown backend 'edg' (known: edge, cloud); did you mean 'edge'?");
  const ConfigError* model = error_for(result, "models[0].targets[1].model");
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(model->line, 12);
  EXPECT_EQ(model->message, "backend 'cloud' does not serve model 'llama' (serves: gpt)");
}

TEST(ConfigErrors, BrokenDefinitionsDoNotCascadeIntoReferenceErrors) {
  // The backend's model list is broken, so "does not serve" would only repeat that.
  const LoadResult models = load(R"([[backends]]
name = "edge"
base_url = "http://h"
models = [{ nam = "llama" }]
[[models]]
name = "chat"
targets = [{ backend = "edge", model = "llama" }]
)");
  ASSERT_EQ(models.errors.size(), 2u) << describe(models);
  EXPECT_EQ(error_for(models, "backends[0].models[0].nam")->line, 4);
  EXPECT_EQ(error_for(models, "backends[0].models[0].name")->message, "is required");
  // A backend without a valid name may be the one a target means.
  expect_single_error(load(minimal_plus(R"([[backends]]
name = 7
base_url = "http://h"
models = ["m"]
[[models]]
name = "other"
targets = [{ backend = "mystery", model = "m" }]
)")),
                      "backends[1].name", 11, "must be a string (found an integer)");
  // Likewise an alias entry that is not a table may be the fallback someone names.
  expect_single_error(
      load(
          R"(models = [3, { name = "chat", fallbacks = ["gone"], targets = [{ backend = "edge", model = "llama" }] }]
[[backends]]
name = "edge"
base_url = "http://h"
models = ["llama"]
)"),
      "models[0]", 1, "must be a table (found an integer)");
  // A repeated backend name is listed once among the known ones.
  const LoadResult duplicate = load(minimal_plus(R"([[backends]]
name = "edge"
base_url = "http://h"
models = ["m"]
[[models]]
name = "other"
targets = [{ backend = "egde", model = "m" }]
)"));
  ASSERT_EQ(duplicate.errors.size(), 2u) << describe(duplicate);
  EXPECT_EQ(error_for(duplicate, "models[1].targets[0].backend")->message,
            "unknown backend 'egde' (known: edge); did you mean 'edge'?");
}

TEST(ConfigErrors, FallbacksMustNameOtherAliasesWithoutCycles) {
  const std::string targets = "targets = [{ backend = \"edge\", model = \"llama\" }]\n";
  auto alias = [&](std::string_view name, std::string_view fallbacks) {
    return "[[models]]\nname = \"" + std::string(name) + "\"\n" + targets +
           "fallbacks = " + std::string(fallbacks) + "\n";
  };
  expect_single_error(load(minimal_plus(alias("a", "[\"chta\"]"))), "models[1].fallbacks[0]", 13,
                      "unknown alias 'chta' (known: chat, a); did you mean 'chat'?");
  expect_single_error(load(minimal_plus(alias("a", "[\"chat\", \"a\"]"))), "models[1].fallbacks[1]",
                      13, "alias 'a' falls back to itself");
  expect_single_error(load(minimal_plus(alias("a", "[\"chat\", \"chat\"]"))),
                      "models[1].fallbacks[1]", 13, "duplicate fallback 'chat'");

  // a -> b -> a, with chat outside the loop.
  expect_single_error(load(minimal_plus(alias("a", "[\"chat\", \"b\"]") + alias("b", "[\"a\"]"))),
                      "models[2].fallbacks[0]", 17, "fallback cycle: a -> b -> a");
  // A three-alias loop is named in full, wherever the search enters it.
  const LoadResult three =
      load(minimal_plus(alias("x", "[\"y\"]") + alias("y", "[\"z\"]") + alias("z", "[\"x\"]")));
  ASSERT_EQ(three.errors.size(), 1u) << describe(three);
  EXPECT_EQ(three.errors[0].message, "fallback cycle: x -> y -> z -> x");
  EXPECT_EQ(three.errors[0].key, "models[3].fallbacks[0]");
}

TEST(ConfigErrors, CostStrategyNeedsLatencyBound) {
  const std::string cost =
      "[[models]]\nname = \"cheap\"\nstrategy = \"cost\"\n"
      "targets = [{ backend = \"edge\", model = \"llama\" }]\n";
  expect_single_error(load(minimal_plus(cost)), "models[1].max_latency_ms", 10,
                      "is required when strategy is 'cost'");
  expect_single_error(load(minimal_plus(cost + "max_latency_ms = 0\n")), "models[1].max_latency_ms",
                      14, "must be positive when strategy is 'cost'");
  expect_single_error(load(minimal_plus(cost + "max_latency_ms = -5\n")),
                      "models[1].max_latency_ms", 14, "must be a non-negative integer");
  const LoadResult ok = load(minimal_plus(cost + "max_latency_ms = 1500\n"));
  ASSERT_TRUE(ok.config.has_value()) << describe(ok);
  EXPECT_EQ(ok.config->find_alias("cheap")->max_latency, 1500ms);
}

TEST(ConfigEnv, ApiKeyComesFromTheInjectedEnvironment) {
  const std::string text =
      minimal_plus(backend_with("base_url = \"https://api.example.com\"\napi_key_env = \"KEY\""));
  const LoadResult ok = load(text, fake_env({{"KEY", "sk-1"}}));
  ASSERT_TRUE(ok.config.has_value()) << describe(ok);
  EXPECT_EQ(ok.config->find_backend("b")->api_key, "sk-1");

  expect_single_error(load(text, fake_env()), "backends[1].api_key_env", 14,
                      "environment variable 'KEY' is not set");
  expect_single_error(load(text, fake_env({{"KEY", ""}})), "backends[1].api_key_env", 14,
                      "environment variable 'KEY' is empty");
}

TEST(ConfigEnv, ProcessEnvironmentReadsRealVariables) {
  ASSERT_EQ(setenv("REDLINE_CONFIG_TEST_KEY", "from-process", 1), 0);
  const EnvLookup env = process_environment();
  EXPECT_EQ(env("REDLINE_CONFIG_TEST_KEY"), "from-process");
  unsetenv("REDLINE_CONFIG_TEST_KEY");
  EXPECT_EQ(env("REDLINE_CONFIG_TEST_KEY"), std::nullopt);
}

class TempDir : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("redline-config-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string write(const std::string& name, std::string_view contents) {
    const auto path = dir_ / name;
    std::ofstream(path) << contents;
    return path.string();
  }

  std::filesystem::path dir_;
};

TEST_F(TempDir, CaFileMustBeReadableAndResolvesAgainstTheConfigDirectory) {
  write("ca.pem", "-----BEGIN CERTIFICATE-----\n");
  const std::string path = write(
      "redline.toml", minimal_plus(backend_with("base_url = \"https://h\"\n"
                                                "ca_file = \"ca.pem\"\n"
                                                "[server]\naccess_log = \"logs/access.log\"")));
  const LoadResult ok = load_config_file(path, fake_env());
  ASSERT_TRUE(ok.config.has_value()) << describe(ok);
  EXPECT_EQ(ok.config->source, path);
  EXPECT_EQ(ok.config->find_backend("b")->ca_file, (dir_ / "ca.pem").string());
  EXPECT_EQ(ok.config->server.access_log, (dir_ / "logs/access.log").string());

  const std::string missing =
      write("missing.toml",
            minimal_plus(backend_with("base_url = \"https://h\"\nca_file = \"nope.pem\"")));
  const LoadResult bad = load_config_file(missing, fake_env());
  ASSERT_EQ(bad.errors.size(), 1u) << describe(bad);
  EXPECT_EQ(bad.errors[0].key, "backends[1].ca_file");
  EXPECT_EQ(bad.errors[0].line, 14);
  EXPECT_EQ(bad.errors[0].source, missing);
  EXPECT_THAT(bad.errors[0].message, HasSubstr("cannot read '" + (dir_ / "nope.pem").string()));
}

TEST_F(TempDir, UnreadableFileIsOneError) {
  const std::string path = (dir_ / "absent.toml").string();
  const LoadResult result = load_config_file(path, fake_env());
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].source, path);
  EXPECT_THAT(result.errors[0].message, HasSubstr("cannot read file"));
  EXPECT_FALSE(result.config.has_value());
}

TEST(ConfigErrors, EveryErrorIsReportedInFileOrder) {
  const std::string text = R"([server]
threads = -1
listen = "nowhere"

[[backends]]
name = "edge"
base_url = "gopher://h"
max_concurency = 4
tier = "space"
models = ["llama"]

[[models]]
name = "chat"
strategy = "cost"
targets = [{ backend = "edge", model = "gpt" }]
fallbacks = ["missing"]
)";
  const LoadResult result = load(text);
  EXPECT_FALSE(result.config.has_value());
  std::vector<std::string> keys;
  for (const ConfigError& error : result.errors) keys.push_back(error.key);
  EXPECT_EQ(keys, (std::vector<std::string>{
                      "server.threads", "server.listen", "backends[0].base_url",
                      "backends[0].max_concurency", "backends[0].tier", "models[0].max_latency_ms",
                      "models[0].targets[0].model", "models[0].fallbacks[0]"}))
      << describe(result);
  std::vector<int> lines;
  for (const ConfigError& error : result.errors) lines.push_back(error.line);
  EXPECT_EQ(lines, (std::vector<int>{2, 3, 7, 8, 9, 12, 15, 16}));
}

TEST(ConfigErrors, FormatsAsFileLineColumnKeyMessage) {
  const ConfigError error{"quickstart.toml", 12, 3, "backends[1].max_concurrency",
                          "must be a positive integer"};
  EXPECT_EQ(error.to_string(),
            "quickstart.toml:12:3: backends[1].max_concurrency: must be a positive integer");
  const ConfigError no_position{"q.toml", 0, 0, "models", "at least one"};
  EXPECT_EQ(no_position.to_string(), "q.toml: models: at least one");
  const ConfigError syntax{"q.toml", 2, 9, "", "expected a value"};
  EXPECT_EQ(syntax.to_string(), "q.toml:2:9: expected a value");
  EXPECT_EQ(format_errors({error, no_position}),
            "quickstart.toml:12:3: backends[1].max_concurrency: must be a positive integer\n"
            "q.toml: models: at least one\n");
  EXPECT_EQ(format_errors({}), "");
}

std::filesystem::path examples_dir() {
  if (const char* source = std::getenv("REDLINE_SOURCE_DIR")) {
    return std::filesystem::path(source) / "examples";
  }
  return std::filesystem::path(__FILE__).parent_path() / "../../examples";
}

TEST(Examples, QuickstartLoads) {
  const LoadResult result =
      load_config_file((examples_dir() / "quickstart.toml").string(), fake_env());
  ASSERT_TRUE(result.config.has_value()) << describe(result);
  const Config& config = *result.config;
  EXPECT_EQ(config.server.listeners, (std::vector<Endpoint>{{"127.0.0.1", 8080}}));
  ASSERT_NE(config.find_backend("edge"), nullptr);
  EXPECT_EQ(config.find_backend("edge")->tier, Tier::kEdge);
  EXPECT_EQ(config.find_backend("edge")->port, 9101);
  EXPECT_EQ(config.find_backend("cloud")->port, 9102);
  for (const char* alias :
       {"chat", "chat-fast", "chat-cheap", "chat-sticky", "chat-edge", "chat-cloud", "embed"}) {
    EXPECT_NE(config.find_alias(alias), nullptr) << alias;
  }
  EXPECT_EQ(config.find_alias("chat-cheap")->strategy, Strategy::kCost);
  EXPECT_EQ(config.find_alias("chat-cheap")->max_latency, 2000ms);
  EXPECT_EQ(config.find_alias("chat-edge")->fallbacks, std::vector<std::string>{"chat-cloud"});
  EXPECT_EQ(config.find_alias("embed")->strategy, Strategy::kWeighted);
}

TEST(Examples, ReferenceLoadsWithDefaults) {
  const LoadResult result =
      load_config_file((examples_dir() / "reference.toml").string(), fake_env());
  ASSERT_TRUE(result.config.has_value()) << describe(result);
  // The reference documents the defaults, so it must agree with them.
  const Config& config = *result.config;
  const ServerSettings server;
  EXPECT_EQ(config.server.listeners, server.listeners);
  EXPECT_EQ(config.server.threads, server.threads);
  EXPECT_EQ(config.server.max_body_bytes, server.max_body_bytes);
  EXPECT_EQ(config.server.max_header_bytes, server.max_header_bytes);
  EXPECT_EQ(config.server.max_connections, server.max_connections);
  EXPECT_EQ(config.server.header_timeout, server.header_timeout);
  EXPECT_EQ(config.server.body_timeout, server.body_timeout);
  EXPECT_EQ(config.server.idle_timeout, server.idle_timeout);
  EXPECT_EQ(config.server.write_timeout, server.write_timeout);
  EXPECT_EQ(config.server.drain_timeout, server.drain_timeout);
  EXPECT_EQ(config.server.access_log, server.access_log);
  EXPECT_EQ(config.server.log_level, server.log_level);
  const RoutingSettings routing;
  EXPECT_EQ(config.routing.max_attempts, routing.max_attempts);
  EXPECT_EQ(config.routing.retry_budget_ratio, routing.retry_budget_ratio);
  EXPECT_EQ(config.routing.retry_budget_min_per_second, routing.retry_budget_min_per_second);
  EXPECT_EQ(config.routing.max_retry_after, routing.max_retry_after);
  EXPECT_EQ(config.routing.breaker_failure_threshold, routing.breaker_failure_threshold);
  EXPECT_EQ(config.routing.breaker_open_duration, routing.breaker_open_duration);
  EXPECT_EQ(config.routing.outlier_consecutive_5xx, routing.outlier_consecutive_5xx);
  EXPECT_EQ(config.routing.outlier_ejection, routing.outlier_ejection);
  EXPECT_EQ(config.routing.latency_exploration, routing.latency_exploration);
  EXPECT_EQ(config.routing.prefix_affinity_bytes, routing.prefix_affinity_bytes);
  const Backend defaults;
  const Backend& backend = config.backends.at(0);
  EXPECT_EQ(backend.tier, defaults.tier);
  EXPECT_EQ(backend.max_concurrency, defaults.max_concurrency);
  EXPECT_EQ(backend.weight, defaults.weight);
  EXPECT_EQ(backend.connect_timeout, defaults.connect_timeout);
  EXPECT_EQ(backend.first_byte_timeout, defaults.first_byte_timeout);
  EXPECT_EQ(backend.idle_timeout, defaults.idle_timeout);
  EXPECT_EQ(backend.request_timeout, defaults.request_timeout);
  EXPECT_EQ(backend.health_path, defaults.health_path);
  EXPECT_EQ(backend.health_interval, defaults.health_interval);
  ASSERT_EQ(backend.models.size(), 2u);
  EXPECT_EQ(backend.models[0].upstream_name, "meta-llama/Llama-3.1-8B-Instruct");
  EXPECT_EQ(backend.models[1].upstream_name, "nomic-embed-text");
  const ModelAlias alias_defaults;
  EXPECT_EQ(config.models.at(0).strategy, alias_defaults.strategy);
  EXPECT_EQ(config.models.at(0).max_latency, alias_defaults.max_latency);
  EXPECT_EQ(config.models.at(0).owned_by, alias_defaults.owned_by);
  const SessionSettings sessions;
  EXPECT_EQ(config.sessions.retention, sessions.retention);
  EXPECT_EQ(config.sessions.purge_interval, sessions.purge_interval);
  EXPECT_EQ(config.sessions.max_chain_depth, sessions.max_chain_depth);
  EXPECT_EQ(config.sessions.max_background, sessions.max_background);
  const MemorySettings memory;
  EXPECT_EQ(config.memory.default_block_chars, memory.default_block_chars);
  EXPECT_EQ(config.memory.max_block_chars, memory.max_block_chars);
  EXPECT_EQ(config.memory.max_record_chars, memory.max_record_chars);
  EXPECT_EQ(config.memory.max_injected_records, memory.max_injected_records);
  EXPECT_EQ(config.memory.extraction_max_output_tokens, memory.extraction_max_output_tokens);
  EXPECT_EQ(config.memory.extraction_max_input_chars, memory.extraction_max_input_chars);
}

TEST(ConfigAccountability, AuditLimitsAndBudgetsLoad) {
  const std::string text = minimal_plus(R"([audit]
durability = "before_response"
flush_interval_ms = 2
checkpoint_interval_ms = 250
store_bodies = "flagged"
body_key_env = "BODY_KEY"
body_retention_days = 7

[[limits]]
tenant = "acme"
each_key = true
requests_per_minute = 60
tokens_per_minute = 1000
max_concurrent = 4

[[limits]]
key = "k_1"
max_concurrent = 1

[[budgets]]
tenant = "acme"
period = "day"
max_cost_usd = 2.5
)");
  const LoadResult ok = load(text, fake_env({{"BODY_KEY", std::string(64, 'a')}}));
  ASSERT_TRUE(ok.config.has_value()) << describe(ok);
  const Config& config = *ok.config;
  EXPECT_EQ(config.audit.durability, AuditDurability::kBeforeResponse);
  EXPECT_EQ(config.audit.flush_interval, 2ms);
  EXPECT_EQ(config.audit.checkpoint_interval, 250ms);
  EXPECT_EQ(config.audit.store_bodies, AuditBodies::kFlagged);
  EXPECT_EQ(config.audit.body_key, std::string(32, '\xaa'));
  EXPECT_EQ(config.audit.body_retention, std::chrono::hours(24 * 7));
  ASSERT_EQ(config.limits.size(), 2u);
  EXPECT_TRUE(config.limits[0].each_key);
  EXPECT_EQ(config.limits[0].requests_per_minute, 60);
  EXPECT_EQ(config.limits[1].key, "k_1");
  ASSERT_EQ(config.budgets.size(), 1u);
  EXPECT_EQ(config.budgets[0].period, BudgetPeriod::kDay);
  EXPECT_EQ(config.budgets[0].max_cost_usd, 2.5);
  EXPECT_FALSE(config.budgets[0].max_tokens.has_value());
  EXPECT_EQ(config.find_alias("chat")->max_output_tokens, 4096);
}

TEST(ConfigAccountability, MistakesAreNamed) {
  expect_single_error(load(minimal_plus("[[budgets]]\ntenant = \"acme\"\n")), "budgets[0]", 10,
                      "needs max_tokens, max_cost_usd or both");
  expect_single_error(
      load(minimal_plus("[[limits]]\ntenant = \"acme\"\nkey = \"k\"\nmax_concurrent = 1\n")),
      "limits[0]", 10, "exactly one of `tenant` or `key`");
  expect_single_error(load(minimal_plus("[audit]\nstore_bodies = \"all\"\n")), "audit.body_key_env",
                      10, "is required");
  expect_single_error(load(minimal_plus("[audit]\nstore_bodies = \"all\"\nbody_key_env = \"K\"\n"),
                           fake_env({{"K", "abc"}})),
                      "audit.body_key_env", 12, "64 hex digits");
  expect_single_error(load(minimal_plus("[audit]\ndurability = \"sometimes\"\n")),
                      "audit.durability", 11, "unknown value");
}

TEST(ConfigSessions, SessionsMemoryAndTenantRetentionLoad) {
  const std::string text = minimal_plus(R"([sessions]
retention_ms = 86400000
purge_interval_ms = 500
max_chain_depth = 12
max_background = 3

[memory]
default_block_chars = 100
max_block_chars = 1000
max_record_chars = 300
max_injected_records = 7
extraction_model = "chat"
extraction_max_output_tokens = 64
extraction_max_input_chars = 2000

[[tenants]]
name = "acme"
retention_ms = 60000
)");
  const LoadResult ok = load(text);
  ASSERT_TRUE(ok.config.has_value()) << describe(ok);
  const Config& config = *ok.config;
  EXPECT_TRUE(config.sessions.enabled);
  EXPECT_EQ(config.sessions.retention, 86400000ms);
  EXPECT_EQ(config.sessions.purge_interval, 500ms);
  EXPECT_EQ(config.sessions.max_chain_depth, 12u);
  EXPECT_EQ(config.sessions.max_background, 3u);
  EXPECT_EQ(config.memory.default_block_chars, 100u);
  EXPECT_EQ(config.memory.max_block_chars, 1000u);
  EXPECT_EQ(config.memory.max_record_chars, 300u);
  EXPECT_EQ(config.memory.max_injected_records, 7u);
  EXPECT_EQ(config.memory.extraction_model.value, "chat");
  EXPECT_EQ(config.memory.extraction_max_output_tokens, 64);
  EXPECT_EQ(config.memory.extraction_max_input_chars, 2000u);
  ASSERT_EQ(config.tenants.size(), 1u);
  EXPECT_EQ(config.tenants[0].session_retention, 60000ms);
}

TEST(ConfigSessions, MistakesAreNamed) {
  expect_single_error(load(minimal_plus("[memory]\nextraction_model = \"chta\"\n")),
                      "memory.extraction_model", 11, "did you mean 'chat'");
  expect_single_error(
      load(minimal_plus("[memory]\ndefault_block_chars = 50\nmax_block_chars = 10\n")),
      "memory.default_block_chars", 10, "must not exceed max_block_chars");
  expect_single_error(load(minimal_plus("[sessions]\nretention_ms = 0\n")), "sessions.retention_ms",
                      11, "positive integer number of milliseconds");
  expect_single_error(load(minimal_plus("[[tenants]]\nname = \"a\"\nretention_ms = -5\n")),
                      "tenants[0].retention_ms", 12, "positive");
}

TEST(ConfigAgents, McpServersAndAgentSettingsLoad) {
  const std::string text = minimal_plus(R"([agents]
max_steps = 20
max_tokens = 1000
max_wall_ms = 60000
max_concurrent_runs_per_tenant = 3
max_graph_tasks = 50
max_graph_concurrency = 8
approval_timeout_ms = 5000
compaction_threshold = 0.5
context_window_tokens = 8192
summary_model = "chat"
keep_recent_steps = 4

[[mcp_servers]]
name = "files"
tenants = ["acme"]
command = "tools/files-server"
args = ["--root", "/srv"]
env = ["FILES_TOKEN"]
idempotent_tools = ["read"]
require_approval = ["delete"]
result_label = "INTERNAL"
timeout_ms = 2500

[[mcp_servers]]
name = "search"
transport = "http"
url = "https://search.internal/mcp"
protocol = "2026-07-28"
)");
  const LoadResult ok = load(text);
  ASSERT_TRUE(ok.config.has_value()) << describe(ok);
  const Config& config = *ok.config;
  EXPECT_EQ(config.agents.max_steps, 20);
  EXPECT_EQ(config.agents.max_tokens, 1000);
  EXPECT_EQ(config.agents.max_wall, 60000ms);
  EXPECT_EQ(config.agents.max_concurrent_runs_per_tenant, 3u);
  EXPECT_EQ(config.agents.max_graph_tasks, 50u);
  EXPECT_EQ(config.agents.max_graph_concurrency, 8u);
  EXPECT_EQ(config.agents.approval_timeout, 5000ms);
  EXPECT_DOUBLE_EQ(config.agents.compaction_threshold, 0.5);
  EXPECT_EQ(config.agents.context_window_tokens, 8192);
  EXPECT_EQ(config.agents.summary_model.value, "chat");
  EXPECT_EQ(config.agents.keep_recent_steps, 4u);
  ASSERT_EQ(config.mcp_servers.size(), 2u);
  const McpServerSettings& files = *config.find_mcp_server("files");
  EXPECT_EQ(files.transport, McpTransport::kStdio);
  EXPECT_EQ(files.tenants, std::vector<std::string>{"acme"});
  // A command with a '/' is resolved against the config file's directory.
  EXPECT_TRUE(files.command.ends_with("tools/files-server")) << files.command;
  EXPECT_EQ(files.args, (std::vector<std::string>{"--root", "/srv"}));
  EXPECT_EQ(files.env, std::vector<std::string>{"FILES_TOKEN"});
  EXPECT_EQ(files.idempotent_tools, std::vector<std::string>{"read"});
  EXPECT_EQ(files.require_approval, std::vector<std::string>{"delete"});
  EXPECT_EQ(files.result_label.value, "INTERNAL");
  EXPECT_EQ(files.timeout, 2500ms);
  EXPECT_EQ(files.protocol, McpProtocol::kAuto);
  const McpServerSettings& search = *config.find_mcp_server("search");
  EXPECT_EQ(search.transport, McpTransport::kHttp);
  EXPECT_EQ(search.url, "https://search.internal/mcp");
  EXPECT_EQ(search.protocol, McpProtocol::k20260728);
  EXPECT_EQ(config.find_mcp_server("nope"), nullptr);
}

TEST(ConfigAgents, MistakesAreNamed) {
  expect_single_error(load(minimal_plus("[[mcp_servers]]\nname = \"a\"\n")),
                      "mcp_servers[0].command", 10, "is required");
  expect_single_error(
      load(
          minimal_plus("[[mcp_servers]]\nname = \"a\"\ntransport = \"http\"\nurl = \"ftp://x\"\n")),
      "mcp_servers[0].url", 13, "http or https URL");
  expect_single_error(load(minimal_plus("[[mcp_servers]]\nname = \"a\"\ntransport = \"http\"\n"
                                        "url = \"http://x/mcp\"\ncommand = \"node\"\n")),
                      "mcp_servers[0].command", 14, "transport = \"stdio\"");
  expect_single_error(load(minimal_plus("[[mcp_servers]]\nname = \"a\"\ncommand = \"x\"\n"
                                        "[[mcp_servers]]\nname = \"a\"\ncommand = \"y\"\n")),
                      "mcp_servers[1].name", 14, "duplicate MCP server name");
  expect_single_error(load(minimal_plus("[agents]\nsummary_model = \"chta\"\n")),
                      "agents.summary_model", 11, "did you mean 'chat'");
  expect_single_error(load(minimal_plus("[agents]\ncompaction_threshold = 0\n")),
                      "agents.compaction_threshold", 11, "must be above 0");
}

}  // namespace
}  // namespace redline::config
