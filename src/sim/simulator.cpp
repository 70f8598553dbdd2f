#include "sim/simulator.h"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <charconv>
#include <chrono>
#include <ctime>
#include <optional>

#include "common/json_text.h"
#include "common/openai_error.h"
#include "sim/generation.h"
#include "sim/sim_random.h"

namespace redline::sim {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

namespace {

net::HttpResponse json_response(int status, std::string body) {
  net::HttpResponse response;
  response.status = status;
  response.headers.push_back({"Content-Type", "application/json"});
  response.body = std::move(body);
  return response;
}

net::HttpResponse error_response(const ApiError& error) {
  return json_response(error.status, error_body(error));
}

net::HttpResponse rate_limited(int retry_after_s, std::string message) {
  net::HttpResponse response = error_response(make_error(429, std::move(message)));
  response.headers.push_back({"Retry-After", std::to_string(retry_after_s)});
  return response;
}

// Waiting state of one request, in its coroutine frame. The timer exists only once the
// request has to wait, so the fast path never creates one.
struct Pause {
  std::optional<asio::steady_timer> timer;
  bool client_gone = false;
  std::shared_ptr<ConcurrencyLimiter::Waiter> queued;
  net::ResponseWriter* watched = nullptr;

  Pause() = default;
  Pause(const Pause&) = delete;
  Pause& operator=(const Pause&) = delete;
  ~Pause() {
    if (watched != nullptr) watched->watch_disconnect({});
  }

  // Before the first wait: wakes every wait of this request when the client leaves.
  void watch(net::ResponseWriter& writer, const asio::any_io_executor& executor) {
    if (watched != nullptr) return;
    timer.emplace(executor);
    watched = &writer;
    writer.watch_disconnect([this] {
      client_gone = true;
      timer->cancel();
      if (queued) queued->timer.cancel();
    });
  }

  // False when the client left before the deadline.
  asio::awaitable<bool> sleep_until(Clock::time_point deadline) {
    if (client_gone) co_return false;
    timer->expires_at(deadline);
    boost::system::error_code ignored;
    co_await timer->async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    co_return !client_gone;
  }
};

Clock::duration milliseconds(double ms) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double, std::milli>(ms));
}

std::string request_id(std::string_view prefix, std::uint64_t value) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string id(prefix);
  for (int shift = 60; shift >= 0; shift -= 4) id += kDigits[(value >> shift) & 0xf];
  return id;
}

// Decrements a counter when the request ends, however it ends.
class InFlight {
 public:
  explicit InFlight(std::atomic<std::uint64_t>& counter) : counter_(counter) { ++counter_; }
  ~InFlight() { --counter_; }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;

 private:
  std::atomic<std::uint64_t>& counter_;
};

void append_counts(std::string& out, const std::map<std::string, std::uint64_t, std::less<>>& map) {
  out += '{';
  bool first = true;
  for (const auto& [key, count] : map) {
    if (!first) out += ',';
    first = false;
    append_json_string(out, key);
    out += ':';
    out += std::to_string(count);
  }
  out += '}';
}

}  // namespace

Simulator::Simulator(SimConfig config) : config_(std::move(config)) {
  recent_.resize(kRecentRequests);
  profiles_.reserve(config_.models.size());
  for (const ModelProfile& model : config_.models) {
    ConcurrencyLimiter* limiter = nullptr;
    if (model.max_concurrency > 0) {
      limiters_.push_back(
          std::make_unique<ConcurrencyLimiter>(model.max_concurrency, model.queue_size));
      limiter = limiters_.back().get();
    }
    PrefixCache* prefix_cache = nullptr;
    if (model.prefix_cache_entries > 0) {
      prefix_caches_.push_back(
          std::make_unique<PrefixCache>(static_cast<std::size_t>(model.prefix_cache_entries)));
      prefix_cache = prefix_caches_.back().get();
    }
    profiles_.push_back(Profile{&model, limiter, prefix_cache});
  }
  for (const Profile& profile : profiles_) {
    if (profile.model->name == "*") default_profile_ = &profile;
  }
}

net::Handler Simulator::handler() {
  return [this](net::HttpRequest& request, net::ResponseWriter& writer) {
    return handle(request, writer);
  };
}

const Simulator::Profile* Simulator::find_profile(std::string_view model) const {
  for (const Profile& profile : profiles_) {
    if (profile.model->name == model) return &profile;
  }
  return default_profile_;
}

void Simulator::count_path(std::string_view path) {
  std::lock_guard lock(mutex_);
  auto it = by_path_.find(path);
  if (it == by_path_.end()) it = by_path_.emplace(std::string(path), 0).first;
  ++it->second;
}

void Simulator::record_request(std::string_view path, std::string_view model, std::string_view body,
                               bool body_is_json) {
  std::lock_guard lock(mutex_);
  auto path_it = by_path_.find(path);
  if (path_it == by_path_.end()) path_it = by_path_.emplace(std::string(path), 0).first;
  ++path_it->second;
  if (body_is_json) {
    auto model_it = by_model_.find(model);
    if (model_it == by_model_.end()) model_it = by_model_.emplace(std::string(model), 0).first;
    ++model_it->second;
  }
  // assign() reuses each entry's buffers, so a warm ring does not allocate.
  RecordedRequest& entry = recent_[recent_next_];
  entry.path.assign(path);
  entry.model.assign(model);
  entry.body.assign(body);
  entry.body_is_json = body_is_json;
  recent_next_ = (recent_next_ + 1) % kRecentRequests;
  recent_count_ = std::min(recent_count_ + 1, kRecentRequests);
}

asio::awaitable<void> Simulator::handle(net::HttpRequest& request, net::ResponseWriter& writer) {
  std::string_view path = request.path();
  if (path.starts_with("/sim/")) {
    co_await serve_admin(path, request, writer);
    co_return;
  }
  std::optional<Endpoint> endpoint;
  if (path == "/v1/chat/completions") {
    endpoint = Endpoint::kChat;
  } else if (path == "/v1/completions") {
    endpoint = Endpoint::kCompletions;
  } else if (path == "/v1/embeddings") {
    endpoint = Endpoint::kEmbeddings;
  }
  if (endpoint && request.method == "POST") {
    co_await serve_model(*endpoint, request, writer);
    co_return;
  }
  count_path(path);
  if (path == "/healthz" && (request.method == "GET" || request.method == "HEAD")) {
    co_await writer.send(json_response(200, R"({"status":"ok"})"));
  } else if (path == "/v1/models" && request.method == "GET") {
    co_await writer.send(json_response(200, render_models(config_)));
  } else if (endpoint || path == "/healthz" || path == "/v1/models") {
    co_await writer.send(error_response(
        make_error(405, "method " + request.method + " is not allowed on " + std::string(path))));
  } else {
    co_await writer.send(
        error_response(make_error(404, "unknown path " + std::string(path), {}, "unknown_url")));
  }
}

asio::awaitable<void> Simulator::serve_model(Endpoint endpoint, net::HttpRequest& request,
                                             net::ResponseWriter& writer) {
  ++requests_;
  InFlight in_flight(in_flight_);
  std::string_view path = request.path();

  // Parse and generate at once: the parser's buffers are the thread's, and must not be held
  // across a suspension.
  std::optional<ApiError> error;
  std::string model;
  bool stream = false;
  bool include_usage = false;
  Generation generation;
  EmbeddingRequest embedding;
  std::vector<ChatRequest::Prefix> prefixes;  // for the prefix cache
  std::uint64_t tools_hash = 0;
  if (endpoint == Endpoint::kChat) {
    Parsed<ChatRequest> parsed = parse_chat_request(request.body);
    error = std::move(parsed.error);
    model = std::move(parsed.request.model);
    stream = parsed.request.stream;
    include_usage = parsed.request.include_usage;
    prefixes = std::move(parsed.request.prefixes);
    tools_hash = parsed.request.tools_hash;
    record_request(path, model, request.body, !error.has_value());
    if (const Profile* profile = error ? nullptr : find_profile(model)) {
      Parsed<Generation> generated = generate_chat(parsed.request, *profile->model, config_.seed);
      error = std::move(generated.error);
      generation = std::move(generated.request);
    }
  } else if (endpoint == Endpoint::kCompletions) {
    Parsed<CompletionRequest> parsed = parse_completion_request(request.body);
    error = std::move(parsed.error);
    model = std::move(parsed.request.model);
    stream = parsed.request.stream;
    include_usage = parsed.request.include_usage;
    record_request(path, model, request.body, !error.has_value());
    if (const Profile* profile = error ? nullptr : find_profile(model)) {
      generation = generate_completion(parsed.request, *profile->model, config_.seed);
    }
  } else {
    Parsed<EmbeddingRequest> parsed = parse_embedding_request(request.body);
    error = std::move(parsed.error);
    embedding = std::move(parsed.request);
    model = embedding.model;
    record_request(path, model, request.body, !error.has_value());
  }
  if (error) {
    ++invalid_;
    co_await writer.send(error_response(*error));
    co_return;
  }
  const Profile* profile = find_profile(model);
  if (profile == nullptr) {
    ++invalid_;
    co_await writer.send(error_response(
        make_error(404, "The model `" + model + "` does not exist", "model", "model_not_found")));
    co_return;
  }
  const ModelProfile& behaviour = *profile->model;

  std::uint64_t sequence = sequence_.fetch_add(1, std::memory_order_relaxed);
  Prng prng(mix64(config_.seed ^ mix64(sequence)));
  Failure failure = draw_failure(behaviour.failures, prng);
  if (auto forced = parse_forced_failure(request.header("x-sim-fail"))) failure = *forced;
  double ttft_ms = sample_latency_ms(behaviour.ttft, prng);
  if (std::string_view value = request.header("x-sim-ttft-ms"); !value.empty()) {
    double forced = 0;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), forced);
    if (ec == std::errc() && end == value.data() + value.size() && forced >= 0) ttft_ms = forced;
  }

  if (failure == Failure::kServerError) {
    ++failures_500_;
    co_await writer.send(
        error_response(make_error(500,
                                  "The server had an error while processing your request "
                                  "(simulated failure).")));
    co_return;
  }
  if (failure == Failure::kRateLimited) {
    ++failures_429_;
    co_await writer.send(rate_limited(behaviour.failures.retry_after_s,
                                      "Rate limit reached for " + model + " (simulated failure)."));
    co_return;
  }

  Pause pause;
  // A hung backend: hold the request, answer nothing, until the client gives up.
  if (failure == Failure::kTimeout) {
    ++failures_timeout_;
    pause.watch(writer, co_await asio::this_coro::executor);
    co_await pause.sleep_until(Clock::time_point::max());
    co_return;
  }

  std::optional<ConcurrencySlot> slot;
  if (profile->limiter != nullptr) {
    auto executor = co_await asio::this_coro::executor;
    std::shared_ptr<ConcurrencyLimiter::Waiter> waiter;
    switch (profile->limiter->try_acquire(executor, waiter)) {
      case ConcurrencyLimiter::Outcome::kAdmitted:
        slot.emplace(profile->limiter);
        break;
      case ConcurrencyLimiter::Outcome::kRejected:
        ++queue_full_;
        ++failures_429_;
        co_await writer.send(
            rate_limited(behaviour.failures.retry_after_s,
                         "The model " + model + " is overloaded: its queue is full. Retry later."));
        co_return;
      case ConcurrencyLimiter::Outcome::kQueued: {
        pause.watch(writer, executor);
        pause.queued = waiter;
        bool granted = co_await profile->limiter->wait(std::move(waiter));
        pause.queued.reset();
        if (granted) slot.emplace(profile->limiter);
        if (!granted || pause.client_gone) {
          ++cancelled_;
          co_return;
        }
        break;
      }
    }
  }

  // The prompt reaches the model: its prefixes seen before count as cached. Keys are per model
  // name and tool set, as a provider's cache is.
  if (profile->prefix_cache != nullptr && endpoint == Endpoint::kChat) {
    const std::uint64_t scope = mix64(hash_bytes(model) ^ tools_hash);
    std::vector<std::uint64_t> keys;
    keys.reserve(prefixes.size());
    for (const ChatRequest::Prefix& prefix : prefixes) keys.push_back(mix64(prefix.hash ^ scope));
    const std::size_t matched = profile->prefix_cache->match_and_insert(keys);
    generation.cached_tokens = matched == 0 ? 0
                                            : std::min(generation.prompt_tokens,
                                                       prefix_tokens(prefixes[matched - 1].chars));
  }
  const int prompt_tokens =
      endpoint == Endpoint::kEmbeddings ? embedding.prompt_tokens : generation.prompt_tokens;

  // Tokens come at `interval` apart from the first one on; 0 = all at once.
  Clock::duration interval{};
  if (behaviour.tokens_per_second > 0)
    interval = milliseconds(1000.0 / behaviour.tokens_per_second);
  Clock::time_point first_token = Clock::now();
  if (ttft_ms > 0) {
    pause.watch(writer, co_await asio::this_coro::executor);
    first_token += milliseconds(ttft_ms);
    if (!co_await pause.sleep_until(first_token)) {
      ++cancelled_;
      co_return;
    }
  }

  std::uint64_t id_bits = mix64(config_.seed ^ ~sequence);
  std::string id;
  if (endpoint == Endpoint::kChat) {
    id = request_id("chatcmpl-", id_bits);
  } else if (endpoint == Endpoint::kCompletions) {
    id = request_id("cmpl-", id_bits);
  }
  ResponseMeta meta{id, static_cast<std::int64_t>(std::time(nullptr)), model};

  if (!stream || endpoint == Endpoint::kEmbeddings) {
    if (interval > Clock::duration::zero() && generation.completion_tokens > 1) {
      pause.watch(writer, co_await asio::this_coro::executor);
      if (!co_await pause.sleep_until(first_token +
                                      interval * (generation.completion_tokens - 1))) {
        ++cancelled_;
        co_return;
      }
    }
    if (failure == Failure::kDisconnect) {
      // The server answers a handler that returns without starting a response with a 500, so
      // start a body and abandon it: the server then drops the connection, and the client
      // sees the connection break before a complete answer.
      ++failures_disconnect_;
      net::Headers headers;
      headers.push_back({"Content-Type", "application/json"});
      co_await writer.begin_stream(200, std::move(headers));
      co_return;
    }
    std::string body;
    if (endpoint == Endpoint::kChat) {
      body = render_chat_response(meta, generation);
    } else if (endpoint == Endpoint::kCompletions) {
      body = render_completion_response(meta, generation);
    } else {
      body = render_embeddings(embedding, behaviour, config_.seed);
    }
    if (co_await writer.send(json_response(200, std::move(body)))) {
      ++completed_;
      count_usage(prompt_tokens, generation.completion_tokens,
                  generation.cached_tokens.value_or(0));
    } else {
      ++cancelled_;
    }
    co_return;
  }

  StreamEvents events = endpoint == Endpoint::kChat
                            ? render_chat_stream(meta, generation, include_usage)
                            : render_completion_stream(meta, generation, include_usage);
  std::size_t piece_count = events.pieces.size();
  if (failure == Failure::kDisconnect) piece_count /= 2;
  // Built before the co_await: GCC 12 cannot keep a braced list alive in a coroutine frame.
  net::Headers stream_headers;
  stream_headers.push_back({"Content-Type", "text/event-stream"});
  stream_headers.push_back({"Cache-Control", "no-cache"});
  bool sent = co_await writer.begin_stream(200, std::move(stream_headers));
  if (interval == Clock::duration::zero() && failure != Failure::kDisconnect) {
    // Nothing to pace: one write for the whole stream.
    std::string all;
    for (const auto& event : events.head) all += event;
    for (const auto& event : events.pieces) all += event;
    for (const auto& event : events.tail) all += event;
    sent = sent && co_await writer.write_chunk(all) && co_await writer.end_stream();
    if (sent) {
      ++completed_;
      count_usage(prompt_tokens, generation.completion_tokens,
                  generation.cached_tokens.value_or(0));
    } else {
      ++cancelled_;
    }
    co_return;
  }
  for (const auto& event : events.head) sent = sent && co_await writer.write_chunk(event);
  for (std::size_t i = 0; sent && i < piece_count; ++i) {
    if (i > 0 && interval > Clock::duration::zero()) {
      pause.watch(writer, co_await asio::this_coro::executor);
      sent = co_await pause.sleep_until(first_token + interval * static_cast<int>(i));
    }
    sent = sent && co_await writer.write_chunk(events.pieces[i]);
  }
  if (!sent) {
    ++cancelled_;
    co_return;
  }
  if (failure == Failure::kDisconnect) {
    // No final chunk, no [DONE]: the server drops the connection of an unfinished stream.
    ++failures_disconnect_;
    co_return;
  }
  for (const auto& event : events.tail) sent = sent && co_await writer.write_chunk(event);
  sent = sent && co_await writer.end_stream();
  if (sent) {
    ++completed_;
    count_usage(prompt_tokens, generation.completion_tokens, generation.cached_tokens.value_or(0));
  } else {
    ++cancelled_;
  }
}

asio::awaitable<void> Simulator::serve_admin(std::string_view path, net::HttpRequest& request,
                                             net::ResponseWriter& writer) {
  if (path == "/sim/stats" && request.method == "GET") {
    co_await writer.send(json_response(200, stats_json()));
  } else if (path == "/sim/reset" && request.method == "POST") {
    reset_stats();
    co_await writer.send(json_response(200, R"({"reset":true})"));
  } else if (path == "/sim/requests" && request.method == "GET") {
    co_await writer.send(json_response(200, recent_requests_json()));
  } else {
    co_await writer.send(
        error_response(make_error(404, "unknown path " + std::string(path), {}, "unknown_url")));
  }
}

void Simulator::count_usage(int prompt_tokens, int completion_tokens, int cached_tokens) {
  prompt_tokens_.fetch_add(static_cast<std::uint64_t>(prompt_tokens), std::memory_order_relaxed);
  completion_tokens_.fetch_add(static_cast<std::uint64_t>(completion_tokens),
                               std::memory_order_relaxed);
  cached_tokens_.fetch_add(static_cast<std::uint64_t>(cached_tokens), std::memory_order_relaxed);
}

SimStats Simulator::stats() const {
  SimStats stats;
  stats.requests = requests_;
  stats.completed = completed_;
  stats.cancelled = cancelled_;
  stats.in_flight = in_flight_;
  stats.invalid = invalid_;
  stats.failures_500 = failures_500_;
  stats.failures_429 = failures_429_;
  stats.failures_timeout = failures_timeout_;
  stats.failures_disconnect = failures_disconnect_;
  stats.queue_full = queue_full_;
  stats.prompt_tokens = prompt_tokens_;
  stats.completion_tokens = completion_tokens_;
  stats.cached_tokens = cached_tokens_;
  std::lock_guard lock(mutex_);
  stats.by_model = by_model_;
  stats.by_path = by_path_;
  return stats;
}

void Simulator::reset_stats() {
  std::atomic<std::uint64_t>* counters[] = {
      &requests_,     &completed_,     &cancelled_,         &invalid_,
      &failures_500_, &failures_429_,  &failures_timeout_,  &failures_disconnect_,
      &queue_full_,   &prompt_tokens_, &completion_tokens_, &cached_tokens_};
  for (std::atomic<std::uint64_t>* counter : counters) counter->store(0);
  for (const auto& cache : prefix_caches_) cache->clear();
  std::lock_guard lock(mutex_);
  by_model_.clear();
  by_path_.clear();
  recent_next_ = 0;
  recent_count_ = 0;
}

std::vector<RecordedRequest> Simulator::recent_requests() const {
  std::lock_guard lock(mutex_);
  std::vector<RecordedRequest> out;
  out.reserve(recent_count_);
  std::size_t start = (recent_next_ + kRecentRequests - recent_count_) % kRecentRequests;
  for (std::size_t i = 0; i < recent_count_; ++i) {
    out.push_back(recent_[(start + i) % kRecentRequests]);
  }
  return out;
}

std::string Simulator::stats_json() const {
  SimStats stats = this->stats();
  std::string out = R"({"name":)";
  append_json_string(out, config_.name);
  auto field = [&out](std::string_view name, std::uint64_t value) {
    out += ",\"";
    out += name;
    out += "\":";
    out += std::to_string(value);
  };
  field("requests", stats.requests);
  field("completed", stats.completed);
  field("cancelled", stats.cancelled);
  field("in_flight", stats.in_flight);
  field("invalid", stats.invalid);
  field("queue_full", stats.queue_full);
  field("prompt_tokens", stats.prompt_tokens);
  field("completion_tokens", stats.completion_tokens);
  field("cached_tokens", stats.cached_tokens);
  out += R"(,"failures":{"500":)";
  out += std::to_string(stats.failures_500);
  out += R"(,"429":)";
  out += std::to_string(stats.failures_429);
  out += R"(,"timeout":)";
  out += std::to_string(stats.failures_timeout);
  out += R"(,"disconnect":)";
  out += std::to_string(stats.failures_disconnect);
  out += R"(},"by_model":)";
  append_counts(out, stats.by_model);
  out += R"(,"by_path":)";
  append_counts(out, stats.by_path);
  out += '}';
  return out;
}

std::string Simulator::recent_requests_json() const {
  std::string out = "[";
  bool first = true;
  for (const RecordedRequest& entry : recent_requests()) {
    if (!first) out += ',';
    first = false;
    out += R"({"path":)";
    append_json_string(out, entry.path);
    out += R"(,"model":)";
    append_json_string(out, entry.model);
    out += R"(,"body":)";
    // A body that parsed is embedded as JSON; any other as a string.
    if (entry.body_is_json) {
      out += entry.body;
    } else {
      append_json_string(out, entry.body);
    }
    out += '}';
  }
  out += ']';
  return out;
}

}  // namespace redline::sim
