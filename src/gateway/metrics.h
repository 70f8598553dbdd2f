#pragma once
// Prometheus metrics of the data plane. Label sets are looked up once per thread and cached, so
// recording a request costs a few atomic adds, not a registry lookup under a lock.
#include <chrono>
#include <memory>
#include <string>
#include <string_view>

namespace redline::routing {
class BackendRegistry;
}

namespace redline::gateway {

struct RequestRecord {
  std::string_view route;    // "chat.completions", "models", ...
  std::string_view model;    // alias; "" when unknown
  std::string_view backend;  // "" when none was reached
  int status = 0;
  bool stream = false;
  std::chrono::nanoseconds duration{0};
  std::chrono::nanoseconds time_to_first_token{0};  // 0 when not measured
  long tokens_in = 0;
  long tokens_out = 0;
};

class Metrics {
 public:
  Metrics();
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  void record_request(const RequestRecord& record);
  void record_upstream_error(std::string_view backend, std::string_view kind);
  void record_retry(std::string_view model);
  // Every classified request, by its label and what the red lines decided.
  void record_decision(std::string_view label, std::string_view decision);
  void record_rule(std::string_view rule, std::string_view action, bool enforced);
  // Settled usage of a model call, by tenant and alias: tokens each way and US dollars.
  void record_usage(std::string_view tenant, std::string_view model, long tokens_in,
                    long tokens_out, double cost_usd);
  void stream_started();
  void stream_ended();

  // Prometheus text exposition; backend gauges (breaker, health, load) are read at scrape time.
  std::string scrape(const routing::BackendRegistry& backends);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace redline::gateway
