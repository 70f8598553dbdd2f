#include "sim/sim_random.h"

namespace redline::sim {

double sample_latency_ms(const LatencyDistribution& latency, Prng& prng) {
  if (latency.mean_ms <= 0) return 0;
  if (latency.stddev_ms <= 0) return latency.mean_ms;
  // Log-normal parameters that give the configured mean and standard deviation.
  double ratio = latency.stddev_ms / latency.mean_ms;
  double sigma2 = std::log1p(ratio * ratio);
  double mu = std::log(latency.mean_ms) - sigma2 / 2;
  return std::exp(mu + std::sqrt(sigma2) * prng.normal());
}

Failure draw_failure(const FailureRates& rates, Prng& prng) {
  double total =
      rates.error_5xx + rates.rate_limit_429 + rates.timeout + rates.disconnect_mid_stream;
  if (total <= 0) return Failure::kNone;
  double u = prng.uniform();
  if ((u -= rates.error_5xx) < 0) return Failure::kServerError;
  if ((u -= rates.rate_limit_429) < 0) return Failure::kRateLimited;
  if ((u -= rates.timeout) < 0) return Failure::kTimeout;
  if ((u -= rates.disconnect_mid_stream) < 0) return Failure::kDisconnect;
  return Failure::kNone;
}

std::optional<Failure> parse_forced_failure(std::string_view value) {
  if (value == "500") return Failure::kServerError;
  if (value == "429") return Failure::kRateLimited;
  if (value == "timeout") return Failure::kTimeout;
  if (value == "disconnect") return Failure::kDisconnect;
  return std::nullopt;
}

}  // namespace redline::sim
