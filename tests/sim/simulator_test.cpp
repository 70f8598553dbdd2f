#include "sim/simulator.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <memory>

#include "fake_response_writer.h"

namespace redline::sim {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using testing::FakeResponseWriter;
using ::testing::HasSubstr;
using ::testing::Not;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kChat =
    R"({"model":"m","messages":[{"role":"user","content":"Hello"}]})";
constexpr std::string_view kStreamChat =
    R"({"model":"m","stream":true,"messages":[{"role":"user","content":"Hello"}]})";

SimConfig config_with(ModelProfile profile) {
  SimConfig config;
  config.name = "test";
  profile.name = "*";
  config.models.push_back(profile);
  return config;
}

// One request and what the handler did with it.
struct Exchange {
  net::HttpRequest request;
  FakeResponseWriter writer;
  bool finished = false;
  Clock::time_point finished_at;
};

std::unique_ptr<Exchange> make_exchange(std::string method, std::string target,
                                        std::string_view body = {}, net::Headers headers = {}) {
  auto exchange = std::make_unique<Exchange>();
  exchange->request.method = std::move(method);
  exchange->request.target = std::move(target);
  exchange->request.body = std::string(body);
  exchange->request.headers = std::move(headers);
  return exchange;
}

void spawn(asio::io_context& io, Simulator& simulator, Exchange& exchange) {
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        co_await simulator.handle(exchange.request, exchange.writer);
        exchange.finished = true;
        exchange.finished_at = Clock::now();
      },
      [](std::exception_ptr error) {
        if (error) std::rethrow_exception(error);
      });
}

std::unique_ptr<Exchange> run(Simulator& simulator, std::string method, std::string target,
                              std::string_view body = {}, net::Headers headers = {}) {
  asio::io_context io;
  auto exchange = make_exchange(std::move(method), std::move(target), body, std::move(headers));
  spawn(io, simulator, *exchange);
  io.run();
  EXPECT_TRUE(exchange->finished);
  return exchange;
}

json::value response_json(const Exchange& exchange) {
  EXPECT_TRUE(exchange.writer.response.has_value());
  return json::parse(exchange.writer.response->body);
}

TEST(SimulatorTest, FastPathAnswersWithoutWaiting) {
  Simulator simulator(config_with({}));
  asio::io_context io;
  auto exchange = make_exchange("POST", "/v1/chat/completions", kChat);
  spawn(io, simulator, *exchange);
  // Everything runs from ready handlers: no timer, nothing to wait for.
  io.poll();
  ASSERT_TRUE(exchange->finished);
  ASSERT_TRUE(exchange->writer.response);
  EXPECT_EQ(exchange->writer.response->status, 200);
  EXPECT_EQ(net::find_header(exchange->writer.response->headers, "content-type"),
            "application/json");
  json::value body = response_json(*exchange);
  EXPECT_EQ(body.at("object"), "chat.completion");
  EXPECT_EQ(body.at("model"), "m");
  EXPECT_THAT(std::string(body.at("id").as_string()), ::testing::StartsWith("chatcmpl-"));
  EXPECT_EQ(exchange->writer.on_disconnect, nullptr);
}

TEST(SimulatorTest, SameRequestSameContentDifferentIds) {
  Simulator simulator(config_with({}));
  json::value first = response_json(*run(simulator, "POST", "/v1/chat/completions", kChat));
  json::value second = response_json(*run(simulator, "POST", "/v1/chat/completions", kChat));
  EXPECT_EQ(first.at("choices"), second.at("choices"));
  EXPECT_NE(first.at("id"), second.at("id"));
}

TEST(SimulatorTest, StatsCountRequestsByModelAndPath) {
  Simulator simulator(config_with({}));
  run(simulator, "POST", "/v1/chat/completions", kChat);
  run(simulator, "POST", "/v1/chat/completions",
      R"({"model":"other","messages":[{"role":"user","content":"x"}]})");
  run(simulator, "POST", "/v1/embeddings", R"({"model":"m","input":"x"})");
  run(simulator, "POST", "/v1/chat/completions", R"({"model":"m"})");
  run(simulator, "GET", "/healthz");

  json::value stats = response_json(*run(simulator, "GET", "/sim/stats"));
  EXPECT_EQ(stats.at("name"), "test");
  EXPECT_EQ(stats.at("requests"), 4);
  EXPECT_EQ(stats.at("completed"), 3);
  EXPECT_EQ(stats.at("invalid"), 1);
  EXPECT_EQ(stats.at("in_flight"), 0);
  EXPECT_EQ(stats.at("by_model").at("m"), 2);
  EXPECT_EQ(stats.at("by_model").at("other"), 1);
  EXPECT_EQ(stats.at("by_path").at("/v1/chat/completions"), 3);
  EXPECT_EQ(stats.at("by_path").at("/healthz"), 1);
  EXPECT_FALSE(stats.at("by_path").as_object().contains("/sim/stats"));

  json::array recent = response_json(*run(simulator, "GET", "/sim/requests")).as_array();
  ASSERT_EQ(recent.size(), 4u);
  EXPECT_EQ(recent[0].at("path"), "/v1/chat/completions");
  EXPECT_EQ(recent[0].at("model"), "m");
  EXPECT_EQ(recent[0].at("body"), json::parse(kChat));
  EXPECT_EQ(recent[2].at("body").at("input"), "x");

  EXPECT_EQ(run(simulator, "POST", "/sim/reset")->writer.response->status, 200);
  SimStats after = simulator.stats();
  EXPECT_EQ(after.requests, 0u);
  EXPECT_TRUE(after.by_model.empty());
  EXPECT_TRUE(simulator.recent_requests().empty());
}

TEST(SimulatorTest, PrefixCacheReportsCachedTokensAndCountsThem) {
  ModelProfile profile;
  profile.prefix_cache_entries = 100;
  Simulator simulator(config_with(profile));
  // 16 + 24 characters: 4 + 6 tokens.
  const std::string first =
      R"({"model":"m","messages":[{"role":"system","content":"You are a careful agent."},{"role":"user","content":"Read the first document."}]})";
  const std::string longer =
      R"({"model":"m","messages":[{"role":"system","content":"You are a careful agent."},{"role":"user","content":"Read the first document."},{"role":"assistant","content":"Done."}]})";
  const std::string other_model =
      R"({"model":"n","messages":[{"role":"system","content":"You are a careful agent."}]})";

  json::value cold = response_json(*run(simulator, "POST", "/v1/chat/completions", first));
  EXPECT_EQ(cold.at("usage").at("prompt_tokens"), 12);
  EXPECT_EQ(cold.at("usage").at("prompt_tokens_details").at("cached_tokens"), 0);
  json::value warm = response_json(*run(simulator, "POST", "/v1/chat/completions", longer));
  EXPECT_EQ(warm.at("usage").at("prompt_tokens"), 13);
  EXPECT_EQ(warm.at("usage").at("prompt_tokens_details").at("cached_tokens"), 12);
  // Another model name has its own cache entries, though the profile is shared.
  json::value other = response_json(*run(simulator, "POST", "/v1/chat/completions", other_model));
  EXPECT_EQ(other.at("usage").at("prompt_tokens_details").at("cached_tokens"), 0);
  // The final usage chunk of a stream says it too.
  std::string stream = longer;
  stream.insert(1, R"("stream":true,"stream_options":{"include_usage":true},)");
  auto streamed = run(simulator, "POST", "/v1/chat/completions", stream);
  EXPECT_THAT(streamed->writer.stream_text(),
              HasSubstr(R"("prompt_tokens_details":{"cached_tokens":13})"));

  SimStats stats = simulator.stats();
  EXPECT_EQ(stats.prompt_tokens, 12u + 13u + 6u + 13u);
  EXPECT_EQ(stats.cached_tokens, 12u + 13u);
  EXPECT_EQ(stats.completion_tokens, 4 * 16u);
  json::value json_stats = response_json(*run(simulator, "GET", "/sim/stats"));
  EXPECT_EQ(json_stats.at("cached_tokens"), 25);
  EXPECT_EQ(json_stats.at("prompt_tokens"), 44);

  // A reset forgets the cached prefixes as well as the counts.
  run(simulator, "POST", "/sim/reset");
  EXPECT_EQ(simulator.stats().cached_tokens, 0u);
  json::value again = response_json(*run(simulator, "POST", "/v1/chat/completions", first));
  EXPECT_EQ(again.at("usage").at("prompt_tokens_details").at("cached_tokens"), 0);
}

TEST(SimulatorTest, WithoutPrefixCacheNoCachedTokens) {
  Simulator simulator(config_with({}));
  run(simulator, "POST", "/v1/chat/completions", kChat);
  json::value again = response_json(*run(simulator, "POST", "/v1/chat/completions", kChat));
  EXPECT_FALSE(again.at("usage").as_object().contains("prompt_tokens_details"));
  SimStats stats = simulator.stats();
  EXPECT_EQ(stats.cached_tokens, 0u);
  EXPECT_EQ(stats.prompt_tokens, 2u);  // "Hello": 1 token each
  EXPECT_EQ(stats.completion_tokens, 32u);
}

TEST(SimulatorTest, RecentRequestsKeepTheLastHundred) {
  Simulator simulator(config_with({}));
  for (int i = 0; i < 105; ++i) {
    run(simulator, "POST", "/v1/embeddings",
        R"({"model":"m","input":")" + std::to_string(i) + "\"}");
  }
  std::vector<RecordedRequest> recent = simulator.recent_requests();
  ASSERT_EQ(recent.size(), 100u);
  EXPECT_THAT(recent.front().body, HasSubstr("\"5\""));
  EXPECT_THAT(recent.back().body, HasSubstr("\"104\""));
}

TEST(SimulatorTest, ModelsHealthAndUnknownPaths) {
  SimConfig config = config_with({});
  config.models.push_back(ModelProfile{.name = "named"});
  Simulator simulator(config);
  json::value models = response_json(*run(simulator, "GET", "/v1/models"));
  ASSERT_EQ(models.at("data").as_array().size(), 1u);
  EXPECT_EQ(models.at("data").as_array()[0].at("id"), "named");
  EXPECT_EQ(run(simulator, "GET", "/healthz")->writer.response->status, 200);
  EXPECT_EQ(run(simulator, "GET", "/nope")->writer.response->status, 404);
  EXPECT_EQ(run(simulator, "GET", "/v1/chat/completions")->writer.response->status, 405);
}

TEST(SimulatorTest, UnknownModelWithoutDefaultProfileIs404) {
  SimConfig config;
  config.models.push_back(ModelProfile{.name = "only"});
  Simulator simulator(config);
  auto exchange = run(simulator, "POST", "/v1/chat/completions", kChat);
  EXPECT_EQ(exchange->writer.response->status, 404);
  EXPECT_EQ(response_json(*exchange).at("error").at("code"), "model_not_found");
}

TEST(SimulatorTest, BadRequestIsOpenAiError) {
  Simulator simulator(config_with({}));
  auto exchange =
      run(simulator, "POST", "/v1/chat/completions", R"({"model":"m","messages":"hi"})");
  EXPECT_EQ(exchange->writer.response->status, 400);
  json::value error = response_json(*exchange).at("error");
  EXPECT_EQ(error.at("type"), "invalid_request_error");
  EXPECT_EQ(error.at("param"), "messages");
}

TEST(SimulatorTest, ForcedFailuresByHeader) {
  ModelProfile profile;
  profile.failures.retry_after_s = 7;
  Simulator simulator(config_with(profile));
  auto server_error =
      run(simulator, "POST", "/v1/chat/completions", kChat, {{"X-Sim-Fail", "500"}});
  EXPECT_EQ(server_error->writer.response->status, 500);
  EXPECT_EQ(response_json(*server_error).at("error").at("type"), "server_error");

  auto limited = run(simulator, "POST", "/v1/chat/completions", kChat, {{"x-sim-fail", "429"}});
  EXPECT_EQ(limited->writer.response->status, 429);
  EXPECT_EQ(net::find_header(limited->writer.response->headers, "retry-after"), "7");
  EXPECT_EQ(response_json(*limited).at("error").at("type"), "rate_limit_error");

  auto dropped =
      run(simulator, "POST", "/v1/chat/completions", kChat, {{"x-sim-fail", "disconnect"}});
  // Started and abandoned: the server breaks the connection of an unfinished body.
  EXPECT_EQ(dropped->writer.stream_status, 200);
  EXPECT_TRUE(dropped->writer.chunks.empty());
  EXPECT_FALSE(dropped->writer.ended);
  EXPECT_FALSE(dropped->writer.response);

  SimStats stats = simulator.stats();
  EXPECT_EQ(stats.failures_500, 1u);
  EXPECT_EQ(stats.failures_429, 1u);
  EXPECT_EQ(stats.failures_disconnect, 1u);
  EXPECT_EQ(stats.completed, 0u);
}

TEST(SimulatorTest, ConfiguredFailureRatesAreDrawnPerRequest) {
  ModelProfile profile;
  profile.failures.error_5xx = 0.2;
  profile.failures.rate_limit_429 = 0.1;
  Simulator simulator(config_with(profile));
  int statuses[600] = {};
  constexpr int kRequests = 2000;
  for (int i = 0; i < kRequests; ++i) {
    ++statuses[run(simulator, "POST", "/v1/chat/completions", kChat)->writer.response->status];
  }
  EXPECT_NEAR(statuses[500] / double(kRequests), 0.2, 0.04);
  EXPECT_NEAR(statuses[429] / double(kRequests), 0.1, 0.03);
  EXPECT_EQ(statuses[200] + statuses[500] + statuses[429], kRequests);
  EXPECT_EQ(simulator.stats().failures_500, static_cast<std::uint64_t>(statuses[500]));
}

TEST(SimulatorTest, TimeoutHoldsTheRequestUntilTheClientLeaves) {
  ModelProfile profile;
  profile.failures.timeout = 1.0;
  Simulator simulator(config_with(profile));
  asio::io_context io;
  auto exchange = make_exchange("POST", "/v1/chat/completions", kChat);
  spawn(io, simulator, *exchange);
  io.run_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(exchange->finished);
  EXPECT_EQ(exchange->writer.calls, 0);
  EXPECT_EQ(simulator.stats().in_flight, 1u);
  exchange->writer.disconnect();
  io.run();
  EXPECT_TRUE(exchange->finished);
  EXPECT_EQ(exchange->writer.calls, 0);
  EXPECT_EQ(simulator.stats().failures_timeout, 1u);
  EXPECT_EQ(simulator.stats().in_flight, 0u);
  // The handler stopped watching before it returned.
  EXPECT_EQ(exchange->writer.on_disconnect, nullptr);
}

TEST(SimulatorTest, StreamsTheChunkSequence) {
  Simulator simulator(config_with({}));
  auto exchange = run(
      simulator, "POST", "/v1/chat/completions",
      R"({"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Hello"}]})");
  FakeResponseWriter& writer = exchange->writer;
  EXPECT_EQ(writer.stream_status, 200);
  EXPECT_EQ(net::find_header(writer.stream_headers, "content-type"), "text/event-stream");
  EXPECT_EQ(net::find_header(writer.stream_headers, "cache-control"), "no-cache");
  EXPECT_TRUE(writer.ended);
  std::string text = writer.stream_text();
  EXPECT_THAT(text, ::testing::StartsWith(R"(data: {"id":"chatcmpl-)"));
  EXPECT_THAT(text, ::testing::EndsWith("data: [DONE]\n\n"));
  EXPECT_THAT(text, HasSubstr(R"("choices":[],"usage":{)"));
  EXPECT_THAT(text, HasSubstr(R"("finish_reason":"stop")"));
  EXPECT_EQ(simulator.stats().completed, 1u);
}

TEST(SimulatorTest, PacesTokensAfterTheFirstTokenDelay) {
  ModelProfile profile;
  profile.ttft = {30, 0};
  profile.tokens_per_second = 200;  // 5 ms apart
  profile.output_tokens = 11;
  Simulator simulator(config_with(profile));
  Clock::time_point start = Clock::now();
  auto exchange = run(simulator, "POST", "/v1/chat/completions", kStreamChat);
  auto elapsed = exchange->finished_at - start;
  EXPECT_GE(elapsed, std::chrono::milliseconds(30 + 50));
  EXPECT_LT(elapsed, std::chrono::milliseconds(1000));
  // head, 11 tokens, finish, [DONE]: one write each.
  EXPECT_EQ(exchange->writer.chunks.size(), 1 + 11 + 1 + 1u);
  EXPECT_TRUE(exchange->writer.ended);

  // Non-streaming answers take as long.
  start = Clock::now();
  auto whole = run(simulator, "POST", "/v1/chat/completions", kChat);
  EXPECT_GE(whole->finished_at - start, std::chrono::milliseconds(30 + 50));
  EXPECT_EQ(whole->writer.response->status, 200);
}

TEST(SimulatorTest, TtftHeaderOverridesTheProfile) {
  Simulator simulator(config_with({}));
  Clock::time_point start = Clock::now();
  auto exchange = run(simulator, "POST", "/v1/chat/completions", kChat, {{"x-sim-ttft-ms", "40"}});
  EXPECT_GE(exchange->finished_at - start, std::chrono::milliseconds(40));
  EXPECT_EQ(exchange->writer.response->status, 200);
}

TEST(SimulatorTest, DisconnectMidStreamSendsAboutHalfAndNoEnd) {
  ModelProfile profile;
  profile.output_tokens = 20;
  profile.failures.disconnect_mid_stream = 1.0;
  Simulator simulator(config_with(profile));
  auto exchange = run(simulator, "POST", "/v1/chat/completions", kStreamChat);
  FakeResponseWriter& writer = exchange->writer;
  EXPECT_EQ(writer.stream_status, 200);
  EXPECT_FALSE(writer.ended);
  EXPECT_EQ(writer.chunks.size(), 1 + 10u);  // role chunk and half the tokens
  std::string text = writer.stream_text();
  EXPECT_THAT(text, Not(HasSubstr("[DONE]")));
  EXPECT_THAT(text, Not(HasSubstr(R"("finish_reason":"stop")")));
  EXPECT_EQ(simulator.stats().failures_disconnect, 1u);
}

TEST(SimulatorTest, ClientLeavingMidStreamStopsGeneration) {
  ModelProfile profile;
  profile.tokens_per_second = 1000;
  profile.output_tokens = 50;
  Simulator simulator(config_with(profile));
  asio::io_context io;
  auto exchange = make_exchange("POST", "/v1/chat/completions", kStreamChat);
  exchange->writer.chunks_before_client_leaves = 5;
  spawn(io, simulator, *exchange);
  io.run();
  EXPECT_TRUE(exchange->finished);
  EXPECT_EQ(exchange->writer.chunks.size(), 5u);
  // One failed write, nothing after it.
  EXPECT_EQ(exchange->writer.calls, 1 + 6);
  EXPECT_EQ(simulator.stats().cancelled, 1u);
  EXPECT_EQ(simulator.stats().completed, 0u);
}

TEST(SimulatorTest, ClientLeavingDuringTheFirstTokenDelayCancels) {
  ModelProfile profile;
  profile.ttft = {10000, 0};
  Simulator simulator(config_with(profile));
  asio::io_context io;
  auto exchange = make_exchange("POST", "/v1/chat/completions", kChat);
  spawn(io, simulator, *exchange);
  io.run_for(std::chrono::milliseconds(20));
  ASSERT_FALSE(exchange->finished);
  Clock::time_point left = Clock::now();
  exchange->writer.disconnect();
  io.run();
  EXPECT_TRUE(exchange->finished);
  EXPECT_LT(exchange->finished_at - left, std::chrono::milliseconds(500));
  EXPECT_EQ(exchange->writer.calls, 0);
  EXPECT_EQ(simulator.stats().cancelled, 1u);
}

TEST(SimulatorTest, QueueOverflowIs429AndTheQueueIsFifo) {
  ModelProfile profile;
  profile.ttft = {30, 0};
  profile.max_concurrency = 1;
  profile.queue_size = 1;
  profile.failures.retry_after_s = 2;
  Simulator simulator(config_with(profile));
  asio::io_context io;
  std::vector<std::unique_ptr<Exchange>> exchanges;
  for (int i = 0; i < 3; ++i) {
    exchanges.push_back(make_exchange("POST", "/v1/chat/completions", kChat));
    spawn(io, simulator, *exchanges.back());
  }
  io.run();
  // The first runs, the second waits for it, the third finds the queue full.
  EXPECT_EQ(exchanges[0]->writer.response->status, 200);
  EXPECT_EQ(exchanges[1]->writer.response->status, 200);
  ASSERT_EQ(exchanges[2]->writer.response->status, 429);
  EXPECT_EQ(net::find_header(exchanges[2]->writer.response->headers, "Retry-After"), "2");
  EXPECT_LT(exchanges[2]->finished_at, exchanges[0]->finished_at);
  EXPECT_GE(exchanges[1]->finished_at - exchanges[0]->finished_at, std::chrono::milliseconds(25));
  SimStats stats = simulator.stats();
  EXPECT_EQ(stats.queue_full, 1u);
  EXPECT_EQ(stats.failures_429, 1u);
  EXPECT_EQ(stats.completed, 2u);
}

TEST(SimulatorTest, QueuedClientThatLeavesGivesUpItsPlace) {
  ModelProfile profile;
  profile.ttft = {50, 0};
  profile.max_concurrency = 1;
  profile.queue_size = 1;
  Simulator simulator(config_with(profile));
  asio::io_context io;
  auto running = make_exchange("POST", "/v1/chat/completions", kChat);
  auto queued = make_exchange("POST", "/v1/chat/completions", kChat);
  spawn(io, simulator, *running);
  spawn(io, simulator, *queued);
  io.run_for(std::chrono::milliseconds(10));
  queued->writer.disconnect();
  io.run_for(std::chrono::milliseconds(5));
  EXPECT_TRUE(queued->finished);
  // Its place is free again.
  auto next = make_exchange("POST", "/v1/chat/completions", kChat);
  spawn(io, simulator, *next);
  io.run();
  EXPECT_EQ(running->writer.response->status, 200);
  EXPECT_EQ(next->writer.response->status, 200);
  EXPECT_EQ(queued->writer.calls, 0);
  EXPECT_EQ(simulator.stats().cancelled, 1u);
}

TEST(SimulatorTest, LegacyCompletionAndEmbeddingEndpoints) {
  Simulator simulator(config_with({}));
  json::value completion =
      response_json(*run(simulator, "POST", "/v1/completions", R"({"model":"m","prompt":"Once"})"));
  EXPECT_EQ(completion.at("object"), "text_completion");
  EXPECT_THAT(std::string(completion.at("id").as_string()), ::testing::StartsWith("cmpl-"));

  auto stream =
      run(simulator, "POST", "/v1/completions", R"({"model":"m","prompt":"Once","stream":true})");
  EXPECT_THAT(stream->writer.stream_text(), HasSubstr(R"("object":"text_completion")"));
  EXPECT_THAT(stream->writer.stream_text(), ::testing::EndsWith("data: [DONE]\n\n"));

  json::value embeddings = response_json(
      *run(simulator, "POST", "/v1/embeddings", R"({"model":"m","input":["a","b"]})"));
  EXPECT_EQ(embeddings.at("data").as_array().size(), 2u);
  EXPECT_EQ(embeddings.at("data").as_array()[0].at("embedding").as_array().size(), 8u);
}

}  // namespace
}  // namespace redline::sim
