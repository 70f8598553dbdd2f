#pragma once
// The simulated OpenAI-compatible model server's request handler. It serves
//   POST /v1/chat/completions, /v1/completions, /v1/embeddings; GET /v1/models, /healthz;
//   GET /sim/stats, POST /sim/reset, GET /sim/requests (observability for tests).
// Each model profile shapes its answers: time to first token, token pacing, concurrency with a
// FIFO queue, and injected failures (500, 429, timeout, mid-stream disconnect). Request headers
// `x-sim-fail: 500|429|timeout|disconnect` and `x-sim-ttft-ms: N` override the profile for one
// request.
//
// A profile with `prefix_cache_entries` remembers the message-boundary prefixes of its chat
// requests and reports the tokens of the longest one seen before as
// usage.prompt_tokens_details.cached_tokens (see prefix_cache.h; no effect on timing).
//
// A request whose profile has no TTFT, no pacing, no concurrency limit and no failures is
// answered without any timer and with a handful of allocations.
#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "net/http_server.h"
#include "sim/concurrency_limiter.h"
#include "sim/prefix_cache.h"
#include "sim/sim_config.h"

namespace redline::sim {

struct SimStats {
  std::uint64_t requests = 0;   // requests to /v1/* model endpoints (not /v1/models)
  std::uint64_t completed = 0;  // answered in full with 200
  std::uint64_t cancelled = 0;  // the client went away before the answer was complete
  std::uint64_t in_flight = 0;  // model requests being handled now (queued ones included)
  std::uint64_t invalid = 0;    // answered 400 or 404
  std::uint64_t failures_500 = 0;
  std::uint64_t failures_429 = 0;  // injected ones and queue overflows
  std::uint64_t failures_timeout = 0;
  std::uint64_t failures_disconnect = 0;
  std::uint64_t queue_full = 0;  // the 429s a full queue caused
  // Usage of the requests answered in full (completed): prompt and completion tokens as the
  // answers reported them, and the prompt tokens among them that were cached.
  std::uint64_t prompt_tokens = 0;
  std::uint64_t completion_tokens = 0;
  std::uint64_t cached_tokens = 0;
  std::map<std::string, std::uint64_t, std::less<>> by_model;  // model requests by model name
  std::map<std::string, std::uint64_t, std::less<>> by_path;   // every request but /sim/*
};

// A request body the simulator received, for GET /sim/requests.
struct RecordedRequest {
  std::string path;
  std::string model;
  std::string body;
  bool body_is_json = false;
};

class Simulator {
 public:
  explicit Simulator(SimConfig config);
  Simulator(const Simulator&) = delete;
  Simulator& operator=(const Simulator&) = delete;

  // Thread-safe: the server calls it on all its threads at once.
  boost::asio::awaitable<void> handle(net::HttpRequest& request, net::ResponseWriter& writer);
  // A net::Handler that calls handle(); the Simulator must outlive the server.
  net::Handler handler();

  const SimConfig& config() const { return config_; }
  SimStats stats() const;
  // Zeroes the counters (but not in_flight), forgets the recorded requests and empties the
  // prefix caches.
  void reset_stats();
  // The last 100 model request bodies, oldest first.
  std::vector<RecordedRequest> recent_requests() const;

 private:
  enum class Endpoint { kChat, kCompletions, kEmbeddings };
  struct Profile {
    const ModelProfile* model;
    ConcurrencyLimiter* limiter;  // null when concurrency is unlimited
    PrefixCache* prefix_cache;    // null when the profile has none
  };

  boost::asio::awaitable<void> serve_model(Endpoint endpoint, net::HttpRequest& request,
                                           net::ResponseWriter& writer);
  boost::asio::awaitable<void> serve_admin(std::string_view path, net::HttpRequest& request,
                                           net::ResponseWriter& writer);
  const Profile* find_profile(std::string_view model) const;
  void count_path(std::string_view path);
  void record_request(std::string_view path, std::string_view model, std::string_view body,
                      bool body_is_json);
  void count_usage(int prompt_tokens, int completion_tokens, int cached_tokens);
  std::string stats_json() const;
  std::string recent_requests_json() const;

  static constexpr std::size_t kRecentRequests = 100;

  SimConfig config_;
  std::vector<std::unique_ptr<ConcurrencyLimiter>> limiters_;
  std::vector<std::unique_ptr<PrefixCache>> prefix_caches_;
  std::vector<Profile> profiles_;  // one per configured model, same order
  const Profile* default_profile_ = nullptr;

  std::atomic<std::uint64_t> sequence_{0};  // numbers requests: ids and per-request draws
  std::atomic<std::uint64_t> requests_{0}, completed_{0}, cancelled_{0}, in_flight_{0}, invalid_{0},
      failures_500_{0}, failures_429_{0}, failures_timeout_{0}, failures_disconnect_{0},
      queue_full_{0}, prompt_tokens_{0}, completion_tokens_{0}, cached_tokens_{0};

  mutable std::mutex mutex_;  // guards what follows
  std::map<std::string, std::uint64_t, std::less<>> by_model_;
  std::map<std::string, std::uint64_t, std::less<>> by_path_;
  std::vector<RecordedRequest> recent_;  // ring of kRecentRequests, entries reused
  std::size_t recent_next_ = 0;
  std::size_t recent_count_ = 0;
};

}  // namespace redline::sim
