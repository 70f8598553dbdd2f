#include "audit/verify.h"

#include <openssl/sha.h>
#include <sqlite3.h>

#include <array>
#include <boost/json.hpp>
#include <cstring>
#include <fstream>
#include <istream>
#include <map>
#include <ostream>

#include "audit/audit_record.h"
#include "audit/signing_key.h"

namespace redline::audit {
namespace {

using Digest = std::array<char, 64>;

constexpr std::string_view kHashSuffix = ",\"hash\":\"";  // then 64 hex and "}
constexpr std::size_t kExportSuffixSize = kHashSuffix.size() + 64 + 2;
constexpr std::string_view kCheckpointPrefix = "{\"checkpoint\":";

Digest digest_of(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  unsigned char raw[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), raw);
  Digest hex;
  for (int i = 0; i < SHA256_DIGEST_LENGTH; ++i) {
    hex[2 * i] = kHex[raw[i] >> 4];
    hex[2 * i + 1] = kHex[raw[i] & 0xf];
  }
  return hex;
}

Digest to_digest(std::string_view hex) {
  Digest digest{};
  std::memcpy(digest.data(), hex.data(), std::min(hex.size(), digest.size()));
  return digest;
}

std::string_view view(const Digest& digest) { return {digest.data(), digest.size()}; }

struct Checkpoint {
  std::int64_t seq = 0;
  std::string hash, key_id, signature;
  std::int64_t time_ms = 0;
};

// What the walk keeps of one record: enough to judge it and the link to its successor.
struct RecordEntry {
  std::int64_t seq = 0;  // from the text; the position's seq when malformed
  bool malformed = false;
  bool hash_matches = false;  // SHA-256 of the text equals the stored hash
  Digest prev{}, hash{};
};

RecordEntry make_entry(std::string_view text, std::string_view stored_hash,
                       std::int64_t fallback_seq) {
  RecordEntry entry;
  const auto head = parse_record_head(text);
  if (!head || !is_lower_hex_digest(stored_hash)) {
    entry.malformed = true;
    entry.seq = head ? head->seq : fallback_seq;
    return entry;
  }
  entry.seq = head->seq;
  entry.prev = to_digest(head->prev);
  entry.hash = to_digest(stored_hash);
  entry.hash_matches = digest_of(text) == entry.hash;
  return entry;
}

// Judges records one behind the last one added, so that a broken link can be told apart
// (inserted, reordered, deleted) by looking at the record after it.
class ChainVerifier {
 public:
  ChainVerifier(EVP_PKEY* key, bool starts_at_first_record)
      : key_(key), key_id_(key_id_of(key)), starts_at_first_record_(starts_at_first_record) {}

  bool done() const { return chain_broken_; }

  void add_checkpoint(Checkpoint checkpoint) {
    ++report_.checkpoints_checked;
    const std::string where = "checkpoint at record " + std::to_string(checkpoint.seq);
    if (checkpoint.key_id != key_id_) {
      note(checkpoint.seq, ProblemKind::kBadSignature,
           where + ": signed by key " + checkpoint.key_id + ", not by key " + key_id_);
    } else if (!verify_signature(key_, checkpoint_message(checkpoint.seq, checkpoint.hash),
                                 checkpoint.signature)) {
      note(checkpoint.seq, ProblemKind::kBadSignature, where + ": the signature does not verify");
    }
    report_.last_checkpoint_seq = std::max(report_.last_checkpoint_seq, checkpoint.seq);
    if (judged_any_ && checkpoint.seq <= last_judged_seq_ && checkpoint.seq >= report_.first_seq) {
      if (checkpoint.seq == last_judged_seq_) {
        compare_checkpoint(checkpoint, view(prev_hash_));
      } else {
        note(checkpoint.seq, ProblemKind::kReordered,
             where + ": appears after record " + std::to_string(last_judged_seq_));
      }
      return;
    }
    pending_.emplace(checkpoint.seq, std::move(checkpoint));
  }

  void add_record(const RecordEntry& entry) {
    if (chain_broken_) return;
    if (window_) judge(*window_, &entry);
    window_ = entry;
  }

  VerifyReport finish() {
    if (window_ && !chain_broken_) judge(*window_, nullptr);
    window_.reset();
    if (!chain_broken_) {
      // Checkpoints beyond the last record: the records they signed are gone.
      for (const auto& [seq, checkpoint] : pending_) {
        if (seq > last_judged_seq_) {
          note(last_judged_seq_ + 1, ProblemKind::kTruncated,
               "the chain ends at record " + std::to_string(last_judged_seq_) +
                   ", but a checkpoint names record " + std::to_string(seq));
          break;
        }
      }
    }
    const std::int64_t signed_up_to = std::min(report_.last_checkpoint_seq, report_.last_seq);
    report_.unsigned_tail = report_.records_checked == 0
                                ? 0
                                : report_.last_seq - std::max(signed_up_to, report_.first_seq - 1);
    return report_;
  }

 private:
  void note(std::int64_t seq, ProblemKind kind, std::string message) {
    if (report_.problem && report_.problem->seq <= seq) return;
    message += " (";
    message += problem_kind_name(kind);
    message += ")";
    report_.problem = VerifyProblem{seq, kind, std::move(message)};
  }

  void broken(std::int64_t seq, ProblemKind kind, std::string message) {
    note(seq, kind, std::move(message));
    chain_broken_ = true;
  }

  void compare_checkpoint(const Checkpoint& checkpoint, std::string_view chain_hash) {
    if (checkpoint.hash != chain_hash) {
      broken(checkpoint.seq, ProblemKind::kModified,
             "record " + std::to_string(checkpoint.seq) +
                 ": the chain's hash differs from the one its checkpoint signed; records up to " +
                 "it were rewritten");
    }
  }

  void judge(const RecordEntry& entry, const RecordEntry* next) {
    // Built only on the error paths: judging runs once per record.
    const auto record_name = [&] { return "record " + std::to_string(entry.seq); };
    if (report_.problem && entry.seq > report_.problem->seq) {
      chain_broken_ = true;  // an earlier problem (a signature) is the report already
      return;
    }
    if (entry.malformed) {
      return broken(judged_any_ ? last_judged_seq_ + 1 : entry.seq, ProblemKind::kMalformed,
                    record_name() + ": not a canonical audit record");
    }
    if (!entry.hash_matches) {
      return broken(entry.seq, ProblemKind::kModified,
                    record_name() + ": hash does not match its contents");
    }
    if (!judged_any_) {
      if (starts_at_first_record_ && entry.seq != 1) {
        return broken(1, ProblemKind::kDeleted,
                      "records 1.." + std::to_string(entry.seq - 1) + " are missing");
      }
      if (entry.seq == 1 && view(entry.prev) != kZeroHash) {
        return broken(1, ProblemKind::kModified, "record 1: prev is not the zero hash");
      }
      report_.first_seq = entry.seq;
    } else {
      const std::int64_t expected = last_judged_seq_ + 1;
      if (entry.seq == expected && entry.prev != prev_hash_) {
        if (next && next->prev == prev_hash_) {
          return broken(entry.seq, ProblemKind::kInserted,
                        record_name() +
                            " is not part of the chain: the record after it links to record " +
                            std::to_string(last_judged_seq_));
        }
        return broken(last_judged_seq_, ProblemKind::kModified,
                      "record " + std::to_string(last_judged_seq_) +
                          ": its hash is not the prev of " + record_name() +
                          "; one of them was rewritten");
      }
      if (entry.seq < expected) {
        if (entry.seq == last_judged_seq_) {
          return broken(entry.seq, ProblemKind::kInserted, "a second " + record_name());
        }
        return broken(entry.seq, ProblemKind::kReordered,
                      record_name() + " appears after record " + std::to_string(last_judged_seq_));
      }
      if (entry.seq > expected) {
        if (next && next->seq == expected) {
          return broken(expected, ProblemKind::kReordered,
                        "record " + std::to_string(expected) + " comes after " + record_name());
        }
        return broken(expected, ProblemKind::kDeleted,
                      entry.seq == expected + 1
                          ? "record " + std::to_string(expected) + " is missing"
                          : "records " + std::to_string(expected) + ".." +
                                std::to_string(entry.seq - 1) + " are missing");
      }
    }
    judged_any_ = true;
    last_judged_seq_ = entry.seq;
    prev_hash_ = entry.hash;
    ++report_.records_checked;
    report_.last_seq = entry.seq;
    if (auto it = pending_.find(entry.seq); it != pending_.end()) {
      compare_checkpoint(it->second, view(entry.hash));
      pending_.erase(it);
    }
  }

  EVP_PKEY* key_;
  std::string key_id_;
  bool starts_at_first_record_;
  VerifyReport report_;
  std::map<std::int64_t, Checkpoint> pending_;  // signed seqs not yet reached
  std::optional<RecordEntry> window_;
  bool judged_any_ = false;
  bool chain_broken_ = false;
  std::int64_t last_judged_seq_ = 0;
  Digest prev_hash_{};
};

struct StatementFinalizer {
  void operator()(sqlite3_stmt* statement) const { sqlite3_finalize(statement); }
};
using Statement = std::unique_ptr<sqlite3_stmt, StatementFinalizer>;

struct CloseDb {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using ReadConnection = std::unique_ptr<sqlite3, CloseDb>;

store::Result<ReadConnection> open_read_only(const std::string& path) {
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr);
  ReadConnection db(raw);
  if (rc != SQLITE_OK) {
    return store::Status::error("cannot open " + path + ": " +
                                (raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc)));
  }
  sqlite3_busy_timeout(db.get(), 5000);
  // Verification and export read the whole table once: mapping the file saves a read call
  // per page, which dominates on virtualised hosts.
  sqlite3_exec(db.get(), "PRAGMA mmap_size=1073741824", nullptr, nullptr, nullptr);
  return db;
}

store::Result<Statement> prepare(sqlite3* db, const char* sql) {
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &raw, nullptr) != SQLITE_OK) {
    return store::Status::error(std::string("cannot read the audit log: ") + sqlite3_errmsg(db));
  }
  return Statement(raw);
}

std::string_view column_text(sqlite3_stmt* statement, int index) {
  const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(statement, index));
  return text ? std::string_view(text,
                                 static_cast<std::size_t>(sqlite3_column_bytes(statement, index)))
              : std::string_view();
}

Checkpoint checkpoint_from_row(sqlite3_stmt* statement) {
  Checkpoint checkpoint;
  checkpoint.seq = sqlite3_column_int64(statement, 0);
  checkpoint.hash = column_text(statement, 1);
  checkpoint.time_ms = sqlite3_column_int64(statement, 2);
  checkpoint.key_id = column_text(statement, 3);
  checkpoint.signature = column_text(statement, 4);
  return checkpoint;
}

std::string checkpoint_line(const Checkpoint& checkpoint) {
  boost::json::object fields;
  fields["seq"] = checkpoint.seq;
  fields["hash"] = checkpoint.hash;
  fields["time_ms"] = checkpoint.time_ms;
  fields["key_id"] = checkpoint.key_id;
  fields["signature"] = checkpoint.signature;
  boost::json::object line;
  line["checkpoint"] = std::move(fields);
  return boost::json::serialize(line);
}

std::optional<Checkpoint> parse_checkpoint_line(std::string_view line) {
  boost::system::error_code error;
  const boost::json::value value = boost::json::parse(line, error);
  if (error || !value.is_object()) return std::nullopt;
  const auto* fields = value.as_object().if_contains("checkpoint");
  if (!fields || !fields->is_object()) return std::nullopt;
  const auto& object = fields->as_object();
  const auto* seq = object.if_contains("seq");
  const auto* hash = object.if_contains("hash");
  const auto* time_ms = object.if_contains("time_ms");
  const auto* key_id = object.if_contains("key_id");
  const auto* signature = object.if_contains("signature");
  if (!seq || !seq->is_int64() || !hash || !hash->is_string() || !time_ms || !time_ms->is_int64() ||
      !key_id || !key_id->is_string() || !signature || !signature->is_string()) {
    return std::nullopt;
  }
  return Checkpoint{seq->as_int64(), std::string(hash->as_string()),
                    std::string(key_id->as_string()), std::string(signature->as_string()),
                    time_ms->as_int64()};
}

}  // namespace

std::string_view problem_kind_name(ProblemKind kind) {
  switch (kind) {
    case ProblemKind::kModified:
      return "modified";
    case ProblemKind::kDeleted:
      return "deleted";
    case ProblemKind::kInserted:
      return "inserted";
    case ProblemKind::kReordered:
      return "reordered";
    case ProblemKind::kBadSignature:
      return "bad_signature";
    case ProblemKind::kTruncated:
      return "truncated";
    case ProblemKind::kMalformed:
      return "malformed";
  }
  return "malformed";
}

std::string VerifyReport::summary() const {
  std::string text = "records checked: " + std::to_string(records_checked);
  if (records_checked > 0) {
    text += " (" + std::to_string(first_seq) + ".." + std::to_string(last_seq) + ")";
  }
  text += "\ncheckpoints checked: " + std::to_string(checkpoints_checked);
  text += "\nlast signed record: " + std::to_string(last_checkpoint_seq);
  text += "\nrecords after the last checkpoint (not yet signed): " + std::to_string(unsigned_tail);
  text += problem ? "\nFAILED: " + problem->message : std::string("\nOK");
  return text + "\n";
}

store::Result<VerifyReport> verify_store(const std::string& sqlite_path,
                                         const std::string& public_key_pem) {
  std::string error;
  auto key = public_key_from_pem(public_key_pem, &error);
  if (!key) return store::Status::error(error);
  auto db = open_read_only(sqlite_path);
  if (!db) return store::Status::error(db.error());
  ChainVerifier verifier(key.get(), /*starts_at_first_record=*/true);

  // One read transaction, so checkpoints and records are a consistent snapshot while a
  // gateway keeps appending.
  sqlite3_exec(db->get(), "BEGIN", nullptr, nullptr, nullptr);
  auto checkpoints = prepare(db->get(),
                             "SELECT seq, hash, time_ms, key_id, signature FROM audit_checkpoints "
                             "ORDER BY seq");
  if (!checkpoints) return store::Status::error(checkpoints.error());
  int rc;
  while ((rc = sqlite3_step(checkpoints->get())) == SQLITE_ROW) {
    verifier.add_checkpoint(checkpoint_from_row(checkpoints->get()));
  }
  if (rc != SQLITE_DONE) {
    return store::Status::error(std::string("cannot read the checkpoints: ") +
                                sqlite3_errmsg(db->get()));
  }
  auto records = prepare(db->get(), "SELECT seq, record, hash FROM audit_records ORDER BY seq");
  if (!records) return store::Status::error(records.error());
  sqlite3_stmt* statement = records->get();
  while (!verifier.done() && (rc = sqlite3_step(statement)) == SQLITE_ROW) {
    verifier.add_record(make_entry(column_text(statement, 1), column_text(statement, 2),
                                   sqlite3_column_int64(statement, 0)));
  }
  if (!verifier.done() && rc != SQLITE_DONE) {
    return store::Status::error(std::string("cannot read the records: ") +
                                sqlite3_errmsg(db->get()));
  }
  return verifier.finish();
}

store::Result<VerifyReport> verify_export(std::istream& jsonl, const std::string& public_key_pem) {
  std::string error;
  auto key = public_key_from_pem(public_key_pem, &error);
  if (!key) return store::Status::error(error);
  ChainVerifier verifier(key.get(), /*starts_at_first_record=*/false);
  std::string line;
  std::int64_t line_number = 0;
  std::int64_t last_seq = 0;
  while (!verifier.done() && std::getline(jsonl, line)) {
    ++line_number;
    if (line.empty()) continue;
    if (line.starts_with(kCheckpointPrefix)) {
      auto checkpoint = parse_checkpoint_line(line);
      if (!checkpoint) {
        verifier.add_record(RecordEntry{last_seq + 1, true});
        continue;
      }
      verifier.add_checkpoint(std::move(*checkpoint));
      continue;
    }
    // The record's canonical text is the line with its hash field cut off and `}` restored.
    const bool shaped = line.size() > kExportSuffixSize && line.ends_with("\"}") &&
                        std::string_view(line).substr(line.size() - kExportSuffixSize,
                                                      kHashSuffix.size()) == kHashSuffix;
    if (!shaped) {
      verifier.add_record(RecordEntry{last_seq + 1, true});
      continue;
    }
    const std::string hash = line.substr(line.size() - 66, 64);
    line.resize(line.size() - kExportSuffixSize);
    line += '}';
    RecordEntry entry = make_entry(line, hash, last_seq + 1);
    last_seq = entry.seq;
    verifier.add_record(entry);
  }
  return verifier.finish();
}

store::Result<VerifyReport> verify_export_file(const std::string& path,
                                               const std::string& public_key_pem) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return store::Status::error("cannot read " + path + ": " + std::strerror(errno));
  return verify_export(file, public_key_pem);
}

store::Result<ExportSummary> export_records(const std::string& sqlite_path,
                                            const ExportRange& range, std::ostream& out) {
  auto db = open_read_only(sqlite_path);
  if (!db) return store::Status::error(db.error());
  sqlite3* raw = db->get();
  sqlite3_exec(raw, "BEGIN", nullptr, nullptr, nullptr);
  auto scalar = [&](const char* sql, std::int64_t parameter) -> store::Result<std::int64_t> {
    auto statement = prepare(raw, sql);
    if (!statement) return store::Status::error(statement.error());
    sqlite3_bind_int64(statement->get(), 1, parameter);
    if (sqlite3_step(statement->get()) != SQLITE_ROW) {
      return store::Status::error(std::string("cannot read the audit log: ") + sqlite3_errmsg(raw));
    }
    // NULL (no such record) reads as 0; seqs start at 1.
    return sqlite3_column_int64(statement->get(), 0);
  };
  auto first = scalar("SELECT MIN(seq) FROM audit_records WHERE time_ms >= ?", range.since_ms);
  if (!first) return store::Status::error(first.error());
  auto last = scalar("SELECT MAX(seq) FROM audit_records WHERE time_ms < ?", range.until_ms);
  if (!last) return store::Status::error(last.error());
  ExportSummary summary;
  if (*first == 0 || *last == 0 || *first > *last) return summary;
  auto signed_end = scalar("SELECT MIN(seq) FROM audit_checkpoints WHERE seq >= ?", *last);
  if (!signed_end) return store::Status::error(signed_end.error());
  const std::int64_t end = *signed_end == 0 ? *last : *signed_end;

  auto checkpoints = prepare(raw,
                             "SELECT seq, hash, time_ms, key_id, signature FROM audit_checkpoints "
                             "WHERE seq BETWEEN ? AND ? ORDER BY seq");
  auto records = prepare(raw,
                         "SELECT seq, record, hash FROM audit_records WHERE seq BETWEEN ? AND ? "
                         "ORDER BY seq");
  if (!checkpoints) return store::Status::error(checkpoints.error());
  if (!records) return store::Status::error(records.error());
  for (auto* statement : {checkpoints->get(), records->get()}) {
    sqlite3_bind_int64(statement, 1, *first);
    sqlite3_bind_int64(statement, 2, end);
  }
  std::optional<Checkpoint> next_checkpoint;
  auto advance_checkpoint = [&] {
    next_checkpoint.reset();
    if (sqlite3_step(checkpoints->get()) == SQLITE_ROW) {
      next_checkpoint = checkpoint_from_row(checkpoints->get());
    }
  };
  advance_checkpoint();
  std::string line;
  int rc;
  while ((rc = sqlite3_step(records->get())) == SQLITE_ROW) {
    const std::int64_t seq = sqlite3_column_int64(records->get(), 0);
    const std::string_view text = column_text(records->get(), 1);
    if (text.empty()) return store::Status::error("record " + std::to_string(seq) + " is empty");
    line.assign(text.substr(0, text.size() - 1));
    line += kHashSuffix;
    line += column_text(records->get(), 2);
    line += "\"}\n";
    out << line;
    if (summary.records == 0) summary.first_seq = seq;
    summary.last_seq = seq;
    ++summary.records;
    while (next_checkpoint && next_checkpoint->seq <= seq) {
      out << checkpoint_line(*next_checkpoint) << '\n';
      ++summary.checkpoints;
      advance_checkpoint();
    }
  }
  if (rc != SQLITE_DONE) {
    return store::Status::error(std::string("cannot read the records: ") + sqlite3_errmsg(raw));
  }
  out.flush();
  if (!out) return store::Status::error("cannot write the export");
  return summary;
}

}  // namespace redline::audit
