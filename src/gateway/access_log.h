#pragma once
// One structured JSON line per request, written off the I/O threads.
#include <chrono>
#include <memory>
#include <string>
#include <string_view>

namespace spdlog {
class logger;
}

namespace redline::gateway {

struct AccessRecord {
  std::string_view request_id;
  std::string_view method;
  std::string_view path;
  std::string_view route;
  std::string_view model;
  std::string_view backend;
  std::string_view remote;
  int status = 0;
  bool stream = false;
  int attempts = 0;
  std::chrono::nanoseconds duration{0};
  std::chrono::nanoseconds time_to_first_token{0};
  long tokens_in = 0;
  long tokens_out = 0;
  std::string_view error;  // why the request failed, when it did
  std::string_view tenant;
  std::string_view key_id;
  std::string_view label;
  std::string_view decision;
  std::string_view rules;
};

class AccessLog {
 public:
  // destination: "stdout", "off" or a file path.
  explicit AccessLog(const std::string& destination);
  ~AccessLog();
  void write(const AccessRecord& record);
  bool enabled() const { return logger_ != nullptr; }

 private:
  std::shared_ptr<spdlog::logger> logger_;
};

// The JSON line for a record (exposed for tests).
std::string access_log_line(const AccessRecord& record);

}  // namespace redline::gateway
