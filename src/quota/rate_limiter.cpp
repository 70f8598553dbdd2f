#include "quota/rate_limiter.h"

#include <algorithm>
#include <array>
#include <cassert>
#include <functional>
#include <mutex>
#include <unordered_map>

namespace redline::quota {
namespace {

using std::chrono::milliseconds;
using Clock_t = std::chrono::steady_clock;

// Bucket levels are kept in units of "one unit × one millisecond per minute": a bucket limited
// to L per minute refills exactly L of these per millisecond, so refill, charge and the wait
// until a charge fits are exact integer arithmetic, and waiting exactly retry_after always
// suffices.
constexpr std::int64_t kScale = 60'000;
// Inputs are clamped so that scaled values stay far from overflow.
constexpr std::int64_t kMaxUnits = 1'000'000'000'000;
constexpr milliseconds kConcurrencyRetryHint{1000};

std::int64_t clamp_units(std::int64_t units) {
  return std::clamp<std::int64_t>(units, 0, kMaxUnits);
}

std::int64_t ceil_div(std::int64_t numerator, std::int64_t denominator) {
  assert(numerator >= 0 && denominator > 0);
  return (numerator + denominator - 1) / denominator;
}

// One per-minute bucket; `limit` <= 0 means the dimension is unlimited and the level unused.
struct Bucket {
  std::int64_t limit = 0;
  std::int64_t level = 0;  // scaled; may be negative after a charge above the estimate

  bool limited() const { return limit > 0; }
  std::int64_t capacity() const { return clamp_units(limit) * kScale; }

  void set_limit(std::int64_t new_limit) {
    if (new_limit == limit) return;
    const bool was_limited = limited();
    limit = new_limit;
    if (!limited()) return;
    level = was_limited ? std::min(level, capacity()) : capacity();
  }

  void refill(std::int64_t elapsed_ms) {
    if (!limited() || level >= capacity()) return;
    const std::int64_t until_full = ceil_div(capacity() - level, clamp_units(limit));
    level = elapsed_ms >= until_full ? capacity() : level + elapsed_ms * clamp_units(limit);
  }

  // Milliseconds until `units` fit; 0 when they fit now.
  std::int64_t wait_for(std::int64_t units) const {
    const std::int64_t deficit = units * kScale - level;
    return deficit <= 0 ? 0 : ceil_div(deficit, clamp_units(limit));
  }

  RateLimitWindow window() const {
    RateLimitWindow result;
    result.limited = true;
    result.limit = limit;
    result.remaining = std::max<std::int64_t>(level, 0) / kScale;
    result.reset =
        milliseconds(ceil_div(capacity() - std::min(level, capacity()), clamp_units(limit)));
    return result;
  }
};

// Of two reports on one dimension, the one with fewer units remaining (then the smaller limit).
void keep_most_constrained(RateLimitWindow& current, const RateLimitWindow& candidate) {
  if (!current.limited || candidate.remaining < current.remaining ||
      (candidate.remaining == current.remaining && candidate.limit < current.limit)) {
    current = candidate;
  }
}

struct TransparentHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view text) const {
    return std::hash<std::string_view>{}(text);
  }
};

}  // namespace

struct RateLimitLease::ScopeState {
  std::mutex mutex;
  std::string id;
  Bucket requests;
  Bucket tokens;
  std::int64_t max_concurrent = 0;
  std::int64_t concurrent = 0;
  Clock_t::time_point refilled_at;

  ScopeState(std::string scope_id, const RateLimitSpec& spec, Clock_t::time_point now)
      : id(std::move(scope_id)), refilled_at(now) {
    apply(spec);
  }

  // Callers hold `mutex` for the rest of these.
  void apply(const RateLimitSpec& spec) {
    requests.set_limit(spec.requests_per_minute);
    tokens.set_limit(spec.tokens_per_minute);
    max_concurrent = spec.max_concurrent;
  }

  void refill(Clock_t::time_point now) {
    // Clock readings taken before the lock may arrive out of order: never move time back.
    if (now <= refilled_at) return;
    const std::int64_t elapsed_ms =
        std::chrono::duration_cast<milliseconds>(now - refilled_at).count();
    if (elapsed_ms == 0) return;
    requests.refill(elapsed_ms);
    tokens.refill(elapsed_ms);
    // Advance by whole milliseconds so sub-millisecond remainders are not lost.
    refilled_at += milliseconds(elapsed_ms);
  }

  void correct_tokens(std::int64_t refund_units) {
    if (!tokens.limited()) return;
    tokens.level = std::min(tokens.level + refund_units * kScale, tokens.capacity());
  }
};

// Scope id → state, sharded so concurrent requests of different keys rarely meet on one mutex.
class RateLimiter::Scopes {
 public:
  using State = RateLimitLease::ScopeState;

  std::shared_ptr<State> find_or_create(const RateLimitScope& scope, Clock_t::time_point now) {
    Shard& shard = shards_[std::hash<std::string_view>{}(scope.id) % kShards];
    std::lock_guard lock(shard.mutex);
    auto found = shard.states.find(std::string_view(scope.id));
    if (found != shard.states.end()) return found->second;
    auto state = std::make_shared<State>(scope.id, scope.spec, now);
    shard.states.emplace(scope.id, state);
    return state;
  }

 private:
  static constexpr std::size_t kShards = 16;
  struct Shard {
    std::mutex mutex;
    std::unordered_map<std::string, std::shared_ptr<State>, TransparentHash, std::equal_to<>>
        states;
  };
  std::array<Shard, kShards> shards_;
};

std::string_view to_string(RateLimitDimension dimension) {
  switch (dimension) {
    case RateLimitDimension::kRequests:
      return "requests";
    case RateLimitDimension::kTokens:
      return "tokens";
    case RateLimitDimension::kConcurrent:
      return "concurrent";
  }
  return "unknown";
}

std::string format_reset(milliseconds duration) {
  const std::int64_t total = duration.count();
  if (total <= 0) return "0s";
  if (total < 1000) return std::to_string(total) + "ms";
  const std::int64_t hours = total / 3'600'000;
  const std::int64_t minutes = total / 60'000 % 60;
  const std::int64_t seconds = total / 1000 % 60;
  const std::int64_t fraction = total % 1000;
  std::string text;
  if (hours > 0) text += std::to_string(hours) + "h";
  if (hours > 0 || minutes > 0) text += std::to_string(minutes) + "m";
  text += std::to_string(seconds);
  if (fraction > 0) {
    std::string digits = std::to_string(1000 + fraction).substr(1);  // zero-padded to 3
    while (digits.back() == '0') digits.pop_back();
    text += "." + digits;
  }
  text += "s";
  return text;
}

std::vector<std::pair<std::string_view, std::string>> RateLimitStatus::header_fields() const {
  std::vector<std::pair<std::string_view, std::string>> fields;
  if (requests.limited) {
    fields.emplace_back("x-ratelimit-limit-requests", std::to_string(requests.limit));
    fields.emplace_back("x-ratelimit-remaining-requests", std::to_string(requests.remaining));
    fields.emplace_back("x-ratelimit-reset-requests", format_reset(requests.reset));
  }
  if (tokens.limited) {
    fields.emplace_back("x-ratelimit-limit-tokens", std::to_string(tokens.limit));
    fields.emplace_back("x-ratelimit-remaining-tokens", std::to_string(tokens.remaining));
    fields.emplace_back("x-ratelimit-reset-tokens", format_reset(tokens.reset));
  }
  return fields;
}

std::string RateLimitDenial::message() const {
  const std::string limits =
      "Limit " + std::to_string(limit) + ", Requested " + std::to_string(requested) + ".";
  switch (dimension) {
    case RateLimitDimension::kConcurrent:
      return "Too many concurrent requests for " + scope + ": Limit " + std::to_string(limit) +
             ". Please try again in " + format_reset(retry_after) + ".";
    case RateLimitDimension::kRequests:
      return "Rate limit reached for " + scope + " on requests per min (RPM): " + limits +
             " Please try again in " + format_reset(retry_after) + ".";
    case RateLimitDimension::kTokens:
      if (exceeds_limit) {
        return "Request too large for " + scope + " on tokens per min (TPM): " + limits +
               " The input or output tokens must be reduced in order to run successfully.";
      }
      return "Rate limit reached for " + scope + " on tokens per min (TPM): " + limits +
             " Please try again in " + format_reset(retry_after) + ".";
  }
  return "Rate limit reached for " + scope + ".";
}

std::vector<std::pair<std::string_view, std::string>> RateLimitDenial::retry_header_fields() const {
  if (exceeds_limit) return {};
  const std::int64_t ms = retry_after.count();
  return {{"Retry-After", std::to_string((ms + 999) / 1000)},
          {"retry-after-ms", std::to_string(ms)}};
}

RateLimitLease::RateLimitLease(RateLimitLease&& other) noexcept
    : holdings_(std::move(other.holdings_)),
      clock_(std::move(other.clock_)),
      estimated_tokens_(other.estimated_tokens_),
      settled_(other.settled_) {
  other.holdings_.clear();
}

RateLimitLease& RateLimitLease::operator=(RateLimitLease&& other) noexcept {
  if (this != &other) {
    release();
    holdings_ = std::move(other.holdings_);
    other.holdings_.clear();
    clock_ = std::move(other.clock_);
    estimated_tokens_ = other.estimated_tokens_;
    settled_ = other.settled_;
  }
  return *this;
}

RateLimitLease::~RateLimitLease() { release(); }

void RateLimitLease::settle(std::int64_t actual_tokens) {
  if (settled_ || holdings_.empty()) return;
  settled_ = true;
  const auto now = clock_->monotonic();
  const std::int64_t refund = estimated_tokens_ - clamp_units(actual_tokens);
  for (Holding& holding : holdings_) {
    std::lock_guard lock(holding.scope->mutex);
    holding.scope->refill(now);
    if (holding.charged_tokens) holding.scope->correct_tokens(refund);
    if (holding.holds_slot) --holding.scope->concurrent;
    holding.holds_slot = false;
  }
}

void RateLimitLease::release() {
  for (Holding& holding : holdings_) {
    if (!holding.holds_slot) continue;
    std::lock_guard lock(holding.scope->mutex);
    --holding.scope->concurrent;
    holding.holds_slot = false;
  }
  holdings_.clear();
}

RateLimiter::RateLimiter(std::shared_ptr<const Clock> clock)
    : clock_(std::move(clock)), scopes_(std::make_unique<Scopes>()) {
  assert(clock_ != nullptr);
}

RateLimiter::~RateLimiter() = default;

RateLimitAdmission RateLimiter::admit(std::span<const RateLimitScope> scopes,
                                      std::int64_t estimated_tokens) {
  using State = RateLimitLease::ScopeState;
  estimated_tokens = clamp_units(estimated_tokens);
  const auto now = clock_->monotonic();

  // The limited scopes, each once, locked in address order so that two requests naming the
  // same scopes in different orders cannot deadlock.
  std::vector<std::pair<std::shared_ptr<State>, const RateLimitSpec*>> limited;
  limited.reserve(scopes.size());
  for (const RateLimitScope& scope : scopes) {
    if (scope.spec.unlimited()) continue;
    const bool repeated = std::any_of(limited.begin(), limited.end(), [&](const auto& entry) {
      return entry.first->id == scope.id;
    });
    if (repeated) continue;
    limited.emplace_back(scopes_->find_or_create(scope, now), &scope.spec);
  }
  std::sort(limited.begin(), limited.end(), [](const auto& a, const auto& b) {
    return std::less<State*>{}(a.first.get(), b.first.get());
  });
  std::vector<std::unique_lock<std::mutex>> locks;
  locks.reserve(limited.size());
  for (auto& [state, spec] : limited) locks.emplace_back(state->mutex);

  RateLimitAdmission admission;
  std::optional<RateLimitDenial> denial;
  auto refuse = [&](const State& state, RateLimitDimension dimension, std::int64_t limit,
                    std::int64_t requested, bool exceeds_limit, milliseconds retry_after) {
    // Too large wins: no wait helps. Otherwise the longest wait, since every scope must pass.
    const bool replaces = !denial || (exceeds_limit && !denial->exceeds_limit) ||
                          (!denial->exceeds_limit && retry_after > denial->retry_after);
    if (!replaces) return;
    denial = RateLimitDenial{state.id, dimension, limit, requested, exceeds_limit, retry_after};
  };

  for (auto& [state, spec] : limited) {
    state->apply(*spec);
    state->refill(now);
    if (state->max_concurrent > 0 && state->concurrent >= state->max_concurrent) {
      refuse(*state, RateLimitDimension::kConcurrent, state->max_concurrent, 1, false,
             kConcurrencyRetryHint);
    }
    if (state->requests.limited()) {
      if (const auto wait = state->requests.wait_for(1); wait > 0) {
        refuse(*state, RateLimitDimension::kRequests, state->requests.limit, 1, false,
               milliseconds(wait));
      }
    }
    if (state->tokens.limited()) {
      if (estimated_tokens > state->tokens.limit) {
        refuse(*state, RateLimitDimension::kTokens, state->tokens.limit, estimated_tokens, true,
               milliseconds(0));
      } else if (const auto wait = state->tokens.wait_for(estimated_tokens); wait > 0) {
        refuse(*state, RateLimitDimension::kTokens, state->tokens.limit, estimated_tokens, false,
               milliseconds(wait));
      }
    }
  }

  if (!denial) {
    RateLimitLease lease;
    lease.clock_ = clock_;
    lease.estimated_tokens_ = estimated_tokens;
    lease.holdings_.reserve(limited.size());
    for (auto& [state, spec] : limited) {
      RateLimitLease::Holding holding{state};
      if (state->max_concurrent > 0) {
        ++state->concurrent;
        holding.holds_slot = true;
      }
      if (state->requests.limited()) state->requests.level -= kScale;
      if (state->tokens.limited()) {
        state->tokens.level -= estimated_tokens * kScale;
        holding.charged_tokens = true;
      }
      lease.holdings_.push_back(std::move(holding));
    }
    admission.lease.emplace(std::move(lease));
  }
  admission.denial = std::move(denial);
  for (auto& [state, spec] : limited) {
    if (state->requests.limited()) {
      keep_most_constrained(admission.status.requests, state->requests.window());
    }
    if (state->tokens.limited()) {
      keep_most_constrained(admission.status.tokens, state->tokens.window());
    }
  }
  return admission;
}

}  // namespace redline::quota
