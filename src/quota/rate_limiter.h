// Rate limits per scope (a tenant, an API key): requests per minute, tokens per minute and
// concurrent requests, enforced together and atomically across every scope a request belongs to.
//
// Each per-minute limit is a token bucket whose capacity is the limit and which refills
// continuously at limit/60 per second, as OpenAI's limits behave: a client that waits the
// Retry-After it was given gets through, and a burst of up to a full minute's allowance passes
// at once.
//
// Specs travel with every call (RateLimitScope carries its spec), so a config reload takes
// effect on the next request without any call to the limiter. When a scope's spec changes, its
// buckets keep their level (clamped to the new capacity); a dimension that becomes limited
// starts full. State is kept per scope id that has at least one limit, for the life of the
// limiter; scopes without limits are never looked up and cost nothing.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "quota/clock.h"

namespace redline::quota {

struct RateLimitSpec {
  std::int64_t requests_per_minute = 0;  // 0 = unlimited
  std::int64_t tokens_per_minute = 0;    // 0 = unlimited
  std::int64_t max_concurrent = 0;       // 0 = unlimited
  bool unlimited() const {
    return requests_per_minute <= 0 && tokens_per_minute <= 0 && max_concurrent <= 0;
  }
  bool operator==(const RateLimitSpec&) const = default;
};

struct RateLimitScope {
  std::string id;  // e.g. "tenant:acme", "key:k_123"
  RateLimitSpec spec;
};

enum class RateLimitDimension { kRequests, kTokens, kConcurrent };

// "requests", "tokens", "concurrent".
std::string_view to_string(RateLimitDimension dimension);

// A duration the way OpenAI writes x-ratelimit-reset-*: "0s", "120ms", "1s", "1.5s", "6m0s",
// "1h2m3s". Negative durations read as "0s".
std::string format_reset(std::chrono::milliseconds duration);

// One per-minute dimension of the most constrained scope, for x-ratelimit-{limit,remaining,
// reset}-{requests,tokens}. `limited` is false when no scope limits the dimension: then send
// no header for it.
struct RateLimitWindow {
  bool limited = false;
  std::int64_t limit = 0;
  std::int64_t remaining = 0;          // whole units left now, never below 0
  std::chrono::milliseconds reset{0};  // until the bucket is full again
};

// What the x-ratelimit-* headers report. For each dimension, the scope with the fewest units
// remaining (after this request's charge when it was admitted) is the one reported.
struct RateLimitStatus {
  RateLimitWindow requests;
  RateLimitWindow tokens;

  // The x-ratelimit-* header fields (lower-case names) for the limited dimensions, in the order
  // limit, remaining, reset; requests before tokens.
  std::vector<std::pair<std::string_view, std::string>> header_fields() const;
};

struct RateLimitDenial {
  std::string scope;  // the id of the scope that refused
  RateLimitDimension dimension = RateLimitDimension::kRequests;
  std::int64_t limit = 0;      // the refusing scope's limit in that dimension
  std::int64_t requested = 0;  // 1 request, the estimated tokens, or 1 concurrent slot
  // The estimated tokens exceed the scope's whole tokens_per_minute: waiting never helps, the
  // request must shrink. Then retry_after is 0 and no Retry-After should be sent.
  bool exceeds_limit = false;
  // When the request could pass, if nothing else takes the room first: the longest wait over
  // every refusing scope and dimension (all must pass). A fixed 1 s hint for concurrency.
  std::chrono::milliseconds retry_after{0};

  // One line for the error body, e.g. "Rate limit reached for key:k_1 on tokens per min (TPM):
  // Limit 1000, Requested 1200. Please try again in 1.2s."
  std::string message() const;
  // "Retry-After" (whole seconds, rounded up) and "retry-after-ms"; empty when exceeds_limit.
  std::vector<std::pair<std::string_view, std::string>> retry_header_fields() const;
};

class RateLimiter;

// The room an admitted request holds: its concurrency slots and its token charge in each
// limited scope. Move-only. settle() corrects the token charge to the actual usage and frees
// the concurrency slots; destruction without settle() frees the slots and keeps the estimated
// charge (the gateway settles explicitly whenever usage is known).
class RateLimitLease {
 public:
  RateLimitLease() = default;
  RateLimitLease(RateLimitLease&& other) noexcept;
  RateLimitLease& operator=(RateLimitLease&& other) noexcept;
  RateLimitLease(const RateLimitLease&) = delete;
  RateLimitLease& operator=(const RateLimitLease&) = delete;
  ~RateLimitLease();

  // Refunds the difference when actual < estimate, charges more when actual > estimate (the
  // bucket may go negative, delaying later requests). Later calls do nothing.
  void settle(std::int64_t actual_tokens);

  std::int64_t estimated_tokens() const { return estimated_tokens_; }

 private:
  friend class RateLimiter;
  struct ScopeState;
  struct Holding {
    std::shared_ptr<ScopeState> scope;
    bool holds_slot = false;      // a concurrency slot, when the scope limits concurrency
    bool charged_tokens = false;  // the estimate was charged, when the scope limits tokens
  };

  void release();

  std::vector<Holding> holdings_;
  std::shared_ptr<const Clock> clock_;
  std::int64_t estimated_tokens_ = 0;
  bool settled_ = false;
};

struct RateLimitAdmission {
  std::optional<RateLimitLease> lease;    // set exactly when admitted
  std::optional<RateLimitDenial> denial;  // set exactly when refused
  RateLimitStatus status;                 // for the x-ratelimit-* headers either way
  bool admitted() const { return lease.has_value(); }
};

class RateLimiter {
 public:
  explicit RateLimiter(std::shared_ptr<const Clock> clock);
  ~RateLimiter();
  RateLimiter(const RateLimiter&) = delete;
  RateLimiter& operator=(const RateLimiter&) = delete;

  // Admits a request estimated at `estimated_tokens` in every scope, or in none: a refusal by
  // one scope takes nothing from the others. Thread-safe; each call locks only the scopes it
  // names (in a fixed order), for a few arithmetic operations. The same id twice counts once.
  // The lease may outlive the limiter.
  RateLimitAdmission admit(std::span<const RateLimitScope> scopes, std::int64_t estimated_tokens);

 private:
  class Scopes;
  std::shared_ptr<const Clock> clock_;
  std::unique_ptr<Scopes> scopes_;
};

}  // namespace redline::quota
