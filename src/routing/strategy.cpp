#include "routing/strategy.h"

#include <algorithm>
#include <array>
#include <vector>

#include "routing/hash.h"

namespace redline::routing {

// Candidate indexes, stored inline for the usual small alias so a pick does not allocate.
class Picker::IndexList {
 public:
  void push_back(std::size_t index) {
    if (size_ < inline_.size()) {
      inline_[size_++] = index;
      return;
    }
    if (overflow_.empty()) overflow_.assign(inline_.begin(), inline_.end());
    overflow_.push_back(index);
    ++size_;
  }
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  std::size_t operator[](std::size_t k) const {
    return overflow_.empty() ? inline_[k] : overflow_[k];
  }

 private:
  std::array<std::size_t, 32> inline_;
  std::vector<std::size_t> overflow_;
  std::size_t size_ = 0;
};

namespace {

constexpr std::uint64_t kGoldenGamma = 0x9e3779b97f4a7c15ULL;

bool is_excluded(const PickRequest& request, std::size_t index) {
  return std::find(request.excluded.begin(), request.excluded.end(), index) !=
         request.excluded.end();
}

// Splits eligible candidates (except `skip`) into all and unsaturated ones in one pass, so each
// backend's atomics are read once per pick and both lists agree.
void collect(const PickRequest& request, std::optional<std::size_t> skip, auto& all,
             auto& unsaturated) {
  for (std::size_t i = 0; i < request.candidates.size(); ++i) {
    if (skip == i || is_excluded(request, i)) continue;
    const BackendState* backend = request.candidates[i].backend;
    if (backend == nullptr || !backend->available(request.now)) continue;
    all.push_back(i);
    if (!backend->saturated()) unsaturated.push_back(i);
  }
}

double expected_price(const PickRequest& request, const Candidate& candidate) {
  return candidate.price_input_per_mtok * std::max(0, request.expected_input_tokens) +
         candidate.price_output_per_mtok * std::max(0, request.expected_output_tokens);
}

}  // namespace

Picker::Picker(double latency_exploration, std::uint64_t seed)
    : latency_exploration_(std::clamp(latency_exploration, 0.0, 1.0)), rng_state_(seed) {}

std::uint64_t Picker::next_random() {
  std::uint64_t z = rng_state_.fetch_add(kGoldenGamma, std::memory_order_relaxed) + kGoldenGamma;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::size_t Picker::uniform(std::size_t n) {
  // Lemire's multiply-shift; the bias for n far below 2^64 is negligible here.
  return static_cast<std::size_t>((static_cast<unsigned __int128>(next_random()) * n) >> 64);
}

double Picker::uniform01() { return static_cast<double>(next_random() >> 11) * 0x1.0p-53; }

std::optional<std::size_t> Picker::pick(const PickRequest& request) {
  if (request.strategy == Strategy::kPrefixAffinity && request.affinity_hash != 0) {
    return by_affinity(request);
  }
  IndexList all;
  IndexList unsaturated;
  collect(request, std::nullopt, all, unsaturated);
  const IndexList& eligible = unsaturated.empty() ? all : unsaturated;
  if (eligible.empty()) return std::nullopt;
  switch (request.strategy) {
    case Strategy::kLatency:
      return by_latency(request, eligible);
    case Strategy::kCost:
      return by_cost(request, eligible);
    case Strategy::kWeighted:
      return by_weight(request, eligible);
    case Strategy::kLeastLoad:
    case Strategy::kPrefixAffinity:
      break;
  }
  return least_load(request, eligible);
}

std::optional<std::size_t> Picker::least_load(const PickRequest& request,
                                              const IndexList& eligible) {
  std::optional<std::size_t> chosen;
  double best_load = 0;
  std::size_t ties = 0;
  for (std::size_t k = 0; k < eligible.size(); ++k) {
    const std::size_t i = eligible[k];
    const double load = request.candidates[i].backend->load();
    if (!chosen || load < best_load) {
      chosen = i;
      best_load = load;
      ties = 1;
    } else if (load == best_load && uniform(++ties) == 0) {
      chosen = i;  // reservoir sampling: each of the tied candidates wins with 1/ties
    }
  }
  return chosen;
}

std::optional<std::size_t> Picker::lowest_latency(const PickRequest& request,
                                                  const IndexList& eligible) {
  std::optional<std::size_t> chosen;
  double best = 0;
  std::size_t ties = 0;
  for (std::size_t k = 0; k < eligible.size(); ++k) {
    const std::size_t i = eligible[k];
    const double latency =
        request.candidates[i].backend->expected_latency_ms(request.expected_output_tokens);
    if (!chosen || latency < best) {
      chosen = i;
      best = latency;
      ties = 1;
    } else if (latency == best && uniform(++ties) == 0) {
      chosen = i;
    }
  }
  return chosen;
}

std::optional<std::size_t> Picker::by_latency(const PickRequest& request,
                                              const IndexList& eligible) {
  std::optional<std::size_t> unmeasured;
  std::size_t unmeasured_count = 0;
  for (std::size_t k = 0; k < eligible.size(); ++k) {
    const std::size_t i = eligible[k];
    if (!request.candidates[i].backend->has_latency_sample() && uniform(++unmeasured_count) == 0) {
      unmeasured = i;
    }
  }
  if (unmeasured) return unmeasured;

  const std::optional<std::size_t> fastest = lowest_latency(request, eligible);
  if (eligible.size() < 2 || latency_exploration_ == 0 || uniform01() >= latency_exploration_) {
    return fastest;
  }
  // Explore: uniformly among the others.
  std::size_t k = uniform(eligible.size() - 1);
  if (eligible[k] == *fastest) k = eligible.size() - 1;
  return eligible[k];
}

std::optional<std::size_t> Picker::by_cost(const PickRequest& request, const IndexList& eligible) {
  std::optional<std::size_t> chosen;
  double best_price = 0;
  std::size_t ties = 0;
  for (std::size_t k = 0; k < eligible.size(); ++k) {
    const std::size_t i = eligible[k];
    const Candidate& candidate = request.candidates[i];
    const BackendState& backend = *candidate.backend;
    const bool within_bound =
        request.max_latency_ms <= 0 || !backend.has_latency_sample() ||
        backend.expected_latency_ms(request.expected_output_tokens) <= request.max_latency_ms;
    if (!within_bound) continue;
    const double price = expected_price(request, candidate);
    if (!chosen || price < best_price) {
      chosen = i;
      best_price = price;
      ties = 1;
    } else if (price == best_price && uniform(++ties) == 0) {
      chosen = i;
    }
  }
  if (chosen) return chosen;
  return lowest_latency(request, eligible);
}

std::optional<std::size_t> Picker::by_weight(const PickRequest& request,
                                             const IndexList& eligible) {
  auto weight_of = [&](std::size_t i) {
    const Candidate& candidate = request.candidates[i];
    return std::max(0.0, candidate.weight) * candidate.backend->weight();
  };
  double total = 0;
  for (std::size_t k = 0; k < eligible.size(); ++k) total += weight_of(eligible[k]);
  if (!(total > 0)) return eligible[uniform(eligible.size())];
  double point = uniform01() * total;
  for (std::size_t k = 0; k < eligible.size(); ++k) {
    const double weight = weight_of(eligible[k]);
    if (point < weight) return eligible[k];
    point -= weight;
  }
  // Rounding (or a concurrent weight change) left `point` past the end: the last positive one.
  for (std::size_t k = eligible.size(); k-- > 0;) {
    if (weight_of(eligible[k]) > 0) return eligible[k];
  }
  return eligible[eligible.size() - 1];
}

std::optional<std::size_t> Picker::by_affinity(const PickRequest& request) {
  std::optional<std::size_t> owner;
  std::uint64_t best_score = 0;
  for (std::size_t i = 0; i < request.candidates.size(); ++i) {
    const BackendState* backend = request.candidates[i].backend;
    if (backend == nullptr) continue;
    const std::uint64_t score = mix64(request.affinity_hash ^ backend->name_hash());
    if (!owner || score > best_score) {
      owner = i;
      best_score = score;
    }
  }
  if (!owner) return std::nullopt;
  const BackendState& owner_backend = *request.candidates[*owner].backend;
  const bool owner_eligible = !is_excluded(request, *owner) && owner_backend.available(request.now);
  if (owner_eligible && !owner_backend.saturated()) return owner;

  IndexList all;
  IndexList unsaturated;
  collect(request, owner, all, unsaturated);
  const IndexList& rest = unsaturated.empty() ? all : unsaturated;
  if (!rest.empty()) return least_load(request, rest);
  if (owner_eligible) return owner;
  return std::nullopt;
}

std::uint64_t prefix_hash(std::string_view text, std::size_t max_bytes) {
  if (text.empty() || max_bytes == 0) return 0;
  const std::uint64_t hash = hash_bytes(text.substr(0, max_bytes));
  return hash == 0 ? 1 : hash;
}

std::string_view stable_conversation_prefix(std::string_view messages_json) {
  // A raw `"assistant"` can only be a JSON string token (inside strings quotes are escaped), and
  // in a messages array it is a role. Cut before the object that holds it: at the last '}'
  // before it, or, with no assistant message yet, at the last '}' of the array, so that the
  // first call and the later ones are cut at the same place.
  const std::size_t assistant = messages_json.find("\"assistant\"");
  const std::string_view before = messages_json.substr(0, assistant);
  const std::size_t end = before.rfind('}');
  if (end == std::string_view::npos) return messages_json;
  return messages_json.substr(0, end + 1);
}

}  // namespace redline::routing
