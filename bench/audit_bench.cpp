// Audit log throughput: appends with durable group commit (batched, and before_response with
// many callers each waiting for its record), then verification of the store and of an export.
// Usage: redline_audit_bench [records=1000000] [directory=/tmp]
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "audit/audit_log.h"
#include "audit/audit_record.h"
#include "audit/verify.h"

namespace {

using redline::audit::AuditEvent;
using redline::audit::AuditLog;
using redline::audit::AuditOptions;
using redline::audit::Durability;
using SteadyClock = std::chrono::steady_clock;

AuditEvent realistic_event(int n) {
  AuditEvent event;
  event.request_id = "req_01HZX4" + std::to_string(100000000 + n);
  event.tenant = n % 3 ? "acme-retail" : "globex-health";
  event.key_id = "k_7f3a9c2e1b" + std::to_string(n % 16);
  event.model = n % 5 ? "chat-fast" : "chat-large";
  event.backend = n % 2 ? "edge-vllm-1" : "azure-eu-west";
  event.label = "INTERNAL";
  event.decision = n % 50 ? "allow" : "redact";
  if (n % 50 == 0) event.detectors = "email=2,iban=1";
  event.rules = "pii-edge-only";
  event.status = 200;
  event.tokens_in = 350 + n % 200;
  event.tokens_out = 120 + n % 400;
  event.cost_usd = 0.00042;
  event.latency_us = 180000 + n % 5000;
  event.ttft_us = 35000;
  event.request_sha256 = redline::audit::sha256_hex(event.request_id);
  event.response_sha256 = redline::audit::sha256_hex(event.key_id);
  return event;
}

double seconds_since(SteadyClock::time_point start) {
  return std::chrono::duration<double>(SteadyClock::now() - start).count();
}

AuditOptions options_in(const std::filesystem::path& dir, Durability durability) {
  AuditOptions options;
  options.sqlite_path = (dir / "audit.db").string();
  options.signing_key_path = (dir / "audit.key").string();
  options.durability = durability;
  return options;
}

void bench_batched(const std::filesystem::path& dir, int records) {
  std::string error;
  auto log = AuditLog::open(options_in(dir, Durability::kBatched), &error);
  if (!log) std::exit((std::fprintf(stderr, "%s\n", error.c_str()), 1));
  const auto start = SteadyClock::now();
  for (int n = 0; n < records; ++n) log->append(realistic_event(n));
  log->flush();
  const double elapsed = seconds_since(start);
  std::printf("append batched (synchronous=NORMAL, group commit): %d records in %.2f s = %.0f/s\n",
              records, elapsed, records / elapsed);
}

void bench_before_response(const std::filesystem::path& dir, int records, int in_flight) {
  std::string error;
  auto log = AuditLog::open(options_in(dir, Durability::kBeforeResponse), &error);
  if (!log) std::exit((std::fprintf(stderr, "%s\n", error.c_str()), 1));
  // `in_flight` callers, each appending and waiting for its callback before the next record,
  // like requests that may not answer before their record is durable.
  std::atomic<int> next{0};
  std::vector<std::thread> callers;
  const auto start = SteadyClock::now();
  for (int c = 0; c < in_flight; ++c) {
    callers.emplace_back([&] {
      std::mutex mutex;
      std::condition_variable durable;
      for (int n = next++; n < records; n = next++) {
        bool done = false;
        log->append(realistic_event(n), [&](bool) {
          std::lock_guard lock(mutex);
          done = true;
          durable.notify_one();
        });
        std::unique_lock lock(mutex);
        durable.wait(lock, [&] { return done; });
      }
    });
  }
  for (auto& caller : callers) caller.join();
  const double elapsed = seconds_since(start);
  std::printf(
      "append before_response (synchronous=FULL, %d callers waiting): %d records in %.2f s = "
      "%.0f/s\n",
      in_flight, records, elapsed, records / elapsed);
}

}  // namespace

int main(int argc, char** argv) {
  const int records = argc > 1 ? std::stoi(argv[1]) : 1'000'000;
  const std::filesystem::path base = argc > 2 ? argv[2] : "/tmp";
  const auto dir = base / ("redline-audit-bench-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);

  bench_batched(dir, records);
  std::string key;
  {
    std::string error;
    key = AuditLog::open(options_in(dir, Durability::kBatched), &error)->public_key_pem();
  }
  const auto start = SteadyClock::now();
  auto report = redline::audit::verify_store((dir / "audit.db").string(), key);
  double elapsed = seconds_since(start);
  if (!report || !report->ok()) {
    std::fprintf(stderr, "verify failed: %s\n",
                 report ? report->summary().c_str() : report.error().c_str());
    return 1;
  }
  std::printf("verify store: %lld records in %.2f s = %.0f/s\n",
              static_cast<long long>(report->records_checked), elapsed,
              report->records_checked / elapsed);

  const auto export_path = (dir / "audit.jsonl").string();
  {
    std::ofstream out(export_path, std::ios::binary);
    if (!redline::audit::export_records((dir / "audit.db").string(), {}, out)) return 1;
  }
  const auto export_start = SteadyClock::now();
  report = redline::audit::verify_export_file(export_path, key);
  elapsed = seconds_since(export_start);
  if (!report || !report->ok()) return 1;
  std::printf("verify export: %lld records in %.2f s = %.0f/s\n",
              static_cast<long long>(report->records_checked), elapsed,
              report->records_checked / elapsed);

  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  bench_before_response(dir, records, 256);
  std::filesystem::remove_all(dir);
  return 0;
}
