#pragma once
// Tunables of the per-backend failure handling and latency model. Plain values: the config
// module maps its [routing] section onto this struct; BackendRegistry::set_policy applies a
// reloaded policy to every live backend.
#include <chrono>

namespace redline::routing {

struct RoutingPolicy {
  // Circuit breaker: opens after this many consecutive failures of any kind except 429.
  int breaker_failure_threshold = 5;
  std::chrono::milliseconds breaker_open_duration{10'000};

  // Passive outlier ejection: after this many consecutive connect failures or 5xx responses the
  // backend leaves rotation for ejection_duration, then returns at full weight (no trial).
  int ejection_consecutive_failures = 5;
  std::chrono::milliseconds ejection_duration{30'000};

  // How long a 429 takes the backend out of rotation when the response carried no Retry-After.
  std::chrono::milliseconds throttle_on_429{1'000};

  // Weight of the newest sample in the latency EWMAs (0 < alpha <= 1).
  double latency_ewma_alpha = 0.3;
};

}  // namespace redline::routing
