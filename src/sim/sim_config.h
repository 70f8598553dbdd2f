#pragma once
// Configuration of the model simulator (`redline sim --config FILE`): where it listens and how
// each simulated model behaves (latency, throughput, capacity, failure rates).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace redline::sim {

// Log-normal with this mean and standard deviation, in milliseconds; stddev 0 = constant.
struct LatencyDistribution {
  double mean_ms = 0;
  double stddev_ms = 0;
};

// Probabilities per request, each in [0, 1], together at most 1. One draw per request picks at
// most one failure.
struct FailureRates {
  double error_5xx = 0;              // answer 500 with an error body
  double rate_limit_429 = 0;         // answer 429 with Retry-After
  double timeout = 0;                // accept and never answer, until the client goes away
  double disconnect_mid_stream = 0;  // stream about half the tokens, then drop the connection
  int retry_after_s = 1;             // Retry-After of every 429 the profile sends
};

struct ModelProfile {
  std::string name;  // "*" = the profile of every model name not listed
  LatencyDistribution ttft;
  double tokens_per_second = 0;  // 0 = no pacing: all tokens at once after the TTFT
  int max_concurrency = 0;       // 0 = unlimited; beyond it requests wait in a FIFO queue...
  int queue_size = 0;            // ...of this many places; beyond that 429 with Retry-After
  // Completion length in tokens. A request's max_tokens / max_completion_tokens below it cuts
  // the answer to that many tokens with finish_reason "length".
  int output_tokens = 16;
  int embedding_dimensions = 8;  // a request's `dimensions` overrides it
  // With tools, the model keeps calling one until the conversation holds this many tool results
  // after its last user message (an agent's multi-step tool loop); then it answers.
  int tool_rounds = 1;
  // An answer given after tool results starts with the first line of the last one ("Found:
  // ..."), so a grader can check the answer used what the tools returned.
  bool cite_tool_results = false;
  // Prompt-prefix cache: how many message-boundary prefixes of chat requests the model
  // remembers (least recently used out first); a request whose leading messages it has seen
  // reports their tokens as usage.prompt_tokens_details.cached_tokens. 0 = no cache (and no
  // prompt_tokens_details in the answers).
  int prefix_cache_entries = 0;
  FailureRates failures;
};

struct SimConfig {
  std::string name;
  std::string host = "127.0.0.1";
  std::uint16_t port = 9101;
  std::size_t threads = 1;
  std::uint64_t seed = 42;
  std::vector<ModelProfile> models;
};

struct SimConfigResult {
  std::optional<SimConfig> config;  // set exactly when errors is empty
  std::vector<std::string> errors;  // "file:line:col: key: message"
};

SimConfigResult load_sim_config_file(const std::string& path);
// `source` names the text in error messages (a file name, "<string>").
SimConfigResult load_sim_config_string(std::string_view text, std::string source);

}  // namespace redline::sim
