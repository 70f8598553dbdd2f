// Verification of the chain, on the store or on an export, and the export itself.
//
// A verifier walks the records in stored (or exported) order and checks that each one hashes
// to its stored hash, carries the next seq, and names its predecessor's hash as `prev`; every
// checkpoint must carry a valid Ed25519 signature by the given key over the chain's hash at
// its seq. It reports the first problem (lowest seq) and stops there.
//
// What cannot be detected: records appended or removed after the last checkpoint (the report
// counts them as `unsigned_tail`), and, in an export that does not start at seq 1, a forged
// first record (its `prev` is taken as given).
#pragma once

#include <cstdint>
#include <iosfwd>
#include <limits>
#include <optional>
#include <string>

#include "store/status.h"

namespace redline::audit {

enum class ProblemKind {
  kModified,      // a record's contents no longer match its hash, or the chain link breaks
  kDeleted,       // seqs are missing
  kInserted,      // a record that is not part of the chain sits in it
  kReordered,     // records (or a checkpoint) are out of order
  kBadSignature,  // a checkpoint's signature does not verify with the key
  kTruncated,     // a checkpoint names a seq after the last record
  kMalformed,     // a record or line that does not have the canonical structure
};
std::string_view problem_kind_name(ProblemKind kind);  // "modified", "deleted", ...

struct VerifyProblem {
  std::int64_t seq = 0;
  ProblemKind kind = ProblemKind::kMalformed;
  std::string message;  // one line, e.g. "record 1042: hash does not match its contents (modified)"
};

struct VerifyReport {
  std::int64_t records_checked = 0;
  std::int64_t checkpoints_checked = 0;
  std::int64_t first_seq = 0, last_seq = 0;  // 0 when there are no records
  std::int64_t last_checkpoint_seq = 0;      // highest signed seq, 0 when none
  std::int64_t unsigned_tail = 0;            // records after the last checkpoint
  std::optional<VerifyProblem> problem;
  bool ok() const { return !problem.has_value(); }
  // Several lines for an operator: counts, then OK or the problem.
  std::string summary() const;
};

// Verifies the audit tables of the SQLite file at `sqlite_path` (opened read-only) with the
// public key in PEM. An error only when the file or key cannot be read.
store::Result<VerifyReport> verify_store(const std::string& sqlite_path,
                                         const std::string& public_key_pem);
// Verifies an export (JSONL written by export_records) on its own.
store::Result<VerifyReport> verify_export(std::istream& jsonl, const std::string& public_key_pem);
store::Result<VerifyReport> verify_export_file(const std::string& path,
                                               const std::string& public_key_pem);

struct ExportRange {
  std::int64_t since_ms = 0;                                         // inclusive
  std::int64_t until_ms = std::numeric_limits<std::int64_t>::max();  // exclusive
};
struct ExportSummary {
  std::int64_t records = 0, checkpoints = 0;
  std::int64_t first_seq = 0, last_seq = 0;
};

// Writes the records from the first one timed at or after `since_ms` to the last one timed
// before `until_ms` as JSONL: every record in between by seq (records are contiguous even when
// clocks disagree), extended to the next checkpoint so the whole export is covered by a
// signature, each checkpoint as a `{"checkpoint":{...}}` line right after its record.
store::Result<ExportSummary> export_records(const std::string& sqlite_path,
                                            const ExportRange& range, std::ostream& out);

}  // namespace redline::audit
