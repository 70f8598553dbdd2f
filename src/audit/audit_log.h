// The audit log: one hash-chained record per request and per admin action, in the same SQLite
// file as the key store, with the head signed (Ed25519) at regular intervals.
//
// Appends are queued and written by one writer thread per AuditLog in group-commit
// transactions. Each transaction starts with BEGIN IMMEDIATE and reads the chain head inside
// it, so several AuditLog instances (in one process or several, e.g. the gateway and a
// `redline keys` command) appending to one file still form a single chain.
//
// Bodies are never part of the chain, only their digests; they are kept (AES-256-GCM) only when
// the retention policy says so, and purged after `body_retention` without affecting
// verification.
#pragma once

#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "store/status.h"

namespace redline::audit {

// What the caller supplies; the log adds seq, time (if 0), prev hash and hash.
struct AuditEvent {
  std::string kind = "request";  // "request" | "admin" | "tool"
  std::int64_t time_ms = 0;      // unix ms; 0 = now at append
  std::string request_id, tenant, key_id, model, backend, label, decision;
  std::string detectors;       // "email=2,iban=1"
  std::string rules;           // "rule-a,rule-b(shadow)"
  std::string action, target;  // admin: e.g. "keys.create", "k_7f3a9c"
  std::string error;           // why it failed, if it did
  int status = 0;
  std::int64_t tokens_in = 0, tokens_out = 0;
  double cost_usd = 0;  // stored as integer micro-USD (cost_micro_usd)
  std::int64_t latency_us = 0, ttft_us = 0;
  std::string request_sha256, response_sha256;             // lowercase hex, "" = none
  std::optional<std::string> request_body, response_body;  // kept only if options say so
};

enum class Durability {
  kBatched,        // group commit every flush_interval, synchronous=NORMAL
  kBeforeResponse  // commit as soon as the writer is free, synchronous=FULL; callers wait
};
enum class BodyRetention {
  kNone,
  kFlagged,  // decision != "allow" or detectors non-empty
  kAll
};

struct AuditOptions {
  std::string sqlite_path;       // a file (not ":memory:"); usually the key store's file
  std::string signing_key_path;  // Ed25519 private key (PEM, mode 0600), created when missing
  Durability durability = Durability::kBatched;
  std::chrono::milliseconds flush_interval{5};  // batched: group commit at least this often
  std::chrono::milliseconds checkpoint_interval{
      1000};  // sign the head at most this long after a record
  BodyRetention bodies = BodyRetention::kNone;
  std::string body_key;                        // 32 raw bytes when bodies != kNone
  std::chrono::hours body_retention{24 * 30};  // encrypted bodies older than this are purged
};

struct UsageQuery {
  std::optional<std::string> tenant, key_id, model, backend;
  std::int64_t since_ms = 0;                                         // inclusive
  std::int64_t until_ms = std::numeric_limits<std::int64_t>::max();  // exclusive
  // Any of "tenant", "key_id", "model", "backend", "day" (UTC YYYY-MM-DD), "hour" (UTC
  // YYYY-MM-DDTHH), in the order the groups should be listed.
  std::vector<std::string> group_by;
};

struct UsageRow {
  std::vector<std::pair<std::string, std::string>> group;  // (group_by name, value), in order
  std::int64_t requests = 0, tokens_in = 0, tokens_out = 0;
  double cost_usd = 0;
};

// Usage accounting read from the chain's records (kind "request" only), on any connection to
// the audit file, read-only ones included. Rows are ordered by their group values. An unknown
// group_by name is an error.
store::Result<std::vector<UsageRow>> query_usage(sqlite3* db, const UsageQuery& query);

// Thread-safe.
class AuditLog {
 public:
  // Opens (creating tables and the signing key when missing) and starts the writer. Null and
  // `*error` set on failure.
  static std::unique_ptr<AuditLog> open(const AuditOptions& options, std::string* error);
  // Flushes, signs the head when it is not yet signed, and joins the writer.
  ~AuditLog();

  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Never blocks on I/O: queues the event. `on_durable(ok)` (may be empty) runs on the writer
  // thread after the record's transaction committed (true) or failed (false).
  void append(AuditEvent event, std::function<void(bool ok)> on_durable = {});
  // Blocks until everything appended before the call is committed (or failed).
  void flush();

  std::string public_key_pem() const;
  // Records whose transaction failed since open (each also got on_durable(false)).
  std::int64_t failed_records() const;

  // Usage from the chain, on a read connection of its own (never waits for the writer).
  store::Result<std::vector<UsageRow>> usage(const UsageQuery& query);

  class Impl;

 private:
  explicit AuditLog(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The module's tables, for apply_migrations(db, "audit", audit_migrations()).
const std::vector<std::string_view>& audit_migrations();

// Decrypted bodies of record `seq`; nullopt members when none is kept (never stored, purged)
// or when it does not decrypt with `body_key` (wrong key, tampered). An error only when the
// store could not answer.
struct StoredBodies {
  std::optional<std::string> request, response;
};
store::Result<StoredBodies> read_bodies(sqlite3* db, std::int64_t seq, std::string_view body_key);

}  // namespace redline::audit
