#include "gateway/access_log.h"

#include <spdlog/async.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <ctime>

#include "common/json_text.h"

namespace redline::gateway {

namespace {

std::string utc_timestamp() {
  auto now = std::chrono::system_clock::now();
  std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(millis));
  return buf;
}

void field(std::string& out, std::string_view name, std::string_view value) {
  out.push_back(',');
  append_json_string(out, name);
  out.push_back(':');
  append_json_string(out, value);
}

void field(std::string& out, std::string_view name, double value) {
  out.push_back(',');
  append_json_string(out, name);
  char buf[32];
  std::snprintf(buf, sizeof buf, ":%.3f", value);
  out += buf;
}

void field(std::string& out, std::string_view name, long value) {
  out.push_back(',');
  append_json_string(out, name);
  out.push_back(':');
  out += std::to_string(value);
}

double millis(std::chrono::nanoseconds d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

}  // namespace

std::string access_log_line(const AccessRecord& r) {
  std::string out = "{\"ts\":";
  append_json_string(out, utc_timestamp());
  field(out, "request_id", r.request_id);
  field(out, "method", r.method);
  field(out, "path", r.path);
  field(out, "route", r.route);
  field(out, "model", r.model);
  field(out, "backend", r.backend);
  field(out, "remote", r.remote);
  field(out, "status", static_cast<long>(r.status));
  out += r.stream ? ",\"stream\":true" : ",\"stream\":false";
  field(out, "attempts", static_cast<long>(r.attempts));
  field(out, "duration_ms", millis(r.duration));
  if (r.time_to_first_token.count() > 0) field(out, "ttft_ms", millis(r.time_to_first_token));
  if (r.tokens_in > 0 || r.tokens_out > 0) {
    field(out, "tokens_in", r.tokens_in);
    field(out, "tokens_out", r.tokens_out);
  }
  if (!r.error.empty()) field(out, "error", r.error);
  // Who asked and what the red lines decided; never request content or matched text.
  if (!r.tenant.empty()) field(out, "tenant", r.tenant);
  if (!r.key_id.empty()) field(out, "key_id", r.key_id);
  if (!r.label.empty()) field(out, "label", r.label);
  if (!r.decision.empty()) field(out, "decision", r.decision);
  if (!r.rules.empty()) field(out, "rules", r.rules);
  out.push_back('}');
  return out;
}

AccessLog::AccessLog(const std::string& destination) {
  if (destination == "off") return;
  spdlog::init_thread_pool(8192, 1);
  std::shared_ptr<spdlog::sinks::sink> sink;
  if (destination == "stdout") {
    sink = std::make_shared<spdlog::sinks::stdout_sink_mt>();
  } else {
    sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(destination);
  }
  // Overrun: a log that cannot keep up drops its oldest lines rather than stall requests.
  logger_ = std::make_shared<spdlog::async_logger>("access", sink, spdlog::thread_pool(),
                                                   spdlog::async_overflow_policy::overrun_oldest);
  logger_->set_pattern("%v");
}

AccessLog::~AccessLog() {
  if (logger_) logger_->flush();
}

void AccessLog::write(const AccessRecord& record) {
  if (logger_) logger_->info(access_log_line(record));
}

}  // namespace redline::gateway
