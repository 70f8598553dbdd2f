#pragma once
// Choosing the backend for one attempt of a request among the targets of a model alias.
//
// Eligibility: a candidate is eligible when it is not in PickRequest::excluded and its backend
// is available(now) (healthy, breaker not open, not ejected, not throttled; non-reserving).
// Every strategy prefers unsaturated backends (outstanding < capacity): saturated ones are
// considered only when every eligible backend is saturated, in which case the caller will queue
// or shed. pick() returns nullopt only when no candidate is eligible.
//
// After a pick, call candidates[i].backend->try_acquire(now) (reserves a half-open breaker's
// single trial); if it returns false, add i to `excluded` and pick again.
//
// Hot path: pick() does not allocate for up to 32 candidates, takes no locks and only reads
// per-backend atomics.
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "routing/backend_state.h"
#include "routing/clock.h"

namespace redline::routing {

// One (backend, upstream model) target of a model alias.
struct Candidate {
  BackendState* backend = nullptr;  // not owned; must outlive the pick
  double price_input_per_mtok = 0;  // USD per million input tokens
  double price_output_per_mtok = 0;
  double weight = 1;  // for kWeighted, multiplied by the backend's own weight
};

enum class Strategy { kLeastLoad, kLatency, kCost, kWeighted, kPrefixAffinity };

struct PickRequest {
  std::span<const Candidate> candidates;
  Strategy strategy = Strategy::kLeastLoad;
  // Hash of the prompt prefix for kPrefixAffinity (see prefix_hash); 0 = none.
  std::uint64_t affinity_hash = 0;
  // Candidate indexes already tried for this request.
  std::span<const std::size_t> excluded;
  // Latency bound for kCost in ms; 0 = unbounded.
  double max_latency_ms = 0;
  // Token estimates: kLatency and kCost use the output estimate for expected latency, kCost
  // uses both to price the request.
  int expected_input_tokens = 768;
  int expected_output_tokens = 256;
  TimePoint now;
};

// Strategies:
// - kLeastLoad: lowest outstanding/capacity; exact ties are broken uniformly at random so equal
//   backends share load evenly.
// - kLatency: backends without a latency sample first (random among them), so every backend
//   gets measured. Otherwise the lowest expected latency (EWMA ttft + EWMA tpot × expected
//   output tokens); with probability `latency_exploration` instead a random eligible backend
//   other than the fastest, so estimates of the others stay fresh.
// - kCost: the lowest expected request price, price_input × expected_input_tokens +
//   price_output × expected_output_tokens (with the defaults a 3:1 input:output blend), among
//   backends whose expected latency ≤ max_latency_ms (no sample counts as within). If none is
//   within the bound, the lowest expected latency. Ties at random.
// - kWeighted: random, proportional to Candidate::weight × BackendState::weight(); if every
//   weight is 0, uniform.
// - kPrefixAffinity: rendezvous (highest-random-weight) hashing of affinity_hash with each
//   backend's name picks a stable owner among all candidates; adding or removing a backend only
//   moves the keys it owns. If the owner is excluded, unavailable or saturated: least-load among
//   the others (the owner itself only if nothing else is eligible). affinity_hash 0: least-load.
//
// Thread-safe: one Picker may serve all threads. Randomness is a splitmix64 sequence advanced by
// one atomic add per draw, so a single-threaded sequence of picks is reproducible from `seed`.
class Picker {
 public:
  // latency_exploration is clamped to [0, 1].
  Picker(double latency_exploration, std::uint64_t seed);

  std::optional<std::size_t> pick(const PickRequest& request);

 private:
  std::uint64_t next_random();
  std::size_t uniform(std::size_t n);  // in [0, n), n > 0
  double uniform01();                  // in [0, 1)

  class IndexList;
  std::optional<std::size_t> least_load(const PickRequest& request, const IndexList& eligible);
  std::optional<std::size_t> lowest_latency(const PickRequest& request, const IndexList& eligible);
  std::optional<std::size_t> by_latency(const PickRequest& request, const IndexList& eligible);
  std::optional<std::size_t> by_cost(const PickRequest& request, const IndexList& eligible);
  std::optional<std::size_t> by_weight(const PickRequest& request, const IndexList& eligible);
  std::optional<std::size_t> by_affinity(const PickRequest& request);

  const double latency_exploration_;
  std::atomic<std::uint64_t> rng_state_;
};

// Hash of the first max_bytes bytes of `text`, for PickRequest::affinity_hash. Returns 0 ("no
// affinity") for empty input or max_bytes == 0, never 0 otherwise.
std::uint64_t prefix_hash(std::string_view text, std::size_t max_bytes);

// The part of a chat completions `messages` array (raw JSON) that stays the same as its
// conversation grows: everything up to the end of the last message before the first assistant
// message (the instructions and the task, for an agent). A conversation's turns, and an agent
// run's calls however their later context is compacted, then share one affinity key and one
// backend's prefix cache. The whole array when it has no message before an assistant one.
std::string_view stable_conversation_prefix(std::string_view messages_json);

}  // namespace redline::routing
