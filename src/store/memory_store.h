// Long-lived agent memory at rest: pinned blocks (named, size-limited texts kept in the prompt)
// and archival records (facts with source, time and label, found by full-text search). The
// storage sits behind MemoryStore so the embedded SQLite store and a shared one are
// interchangeable; agents/ is the only intended caller.
//
// Namespaces nest tenant → user → agent. A namespace is (tenant, user, agent) where "" means
// "not narrowed": ("acme", "", "") is tenant-wide, ("acme", "u1", "") belongs to user u1 and
// ("acme", "u1", "planner") to u1's planner agent. Callers say which namespaces a query may see.
//
// Records are never edited in place. A record that updates or contradicts an earlier one
// supersedes it: the old one gets `valid_until` and `superseded_by` and stays readable (and
// auditable) by id and in history queries, but is no longer current. Erasure (delete) is the
// only way a record disappears before it expires and is purged.
//
// Everything is owned by a tenant: another tenant's object is reported exactly like a missing one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "store/status.h"

namespace redline::store {

struct MemoryNamespace {
  std::string user;   // "" = tenant-wide
  std::string agent;  // "" = the whole user (or tenant)
  friend bool operator==(const MemoryNamespace&, const MemoryNamespace&) = default;
};

struct MemoryBlock {
  std::string id;  // "blk_…"
  std::string tenant;
  MemoryNamespace scope;
  std::string name;   // unique within its namespace, e.g. "persona", "preferences"
  std::string value;  // at most max_chars characters (the caller checks)
  std::string label;  // classification text as given; "" = the lattice bottom
  std::int64_t max_chars = 0;
  std::int64_t created_at = 0;  // unix seconds
  std::int64_t updated_at = 0;
  friend bool operator==(const MemoryBlock&, const MemoryBlock&) = default;
};

struct MemoryRecord {
  std::string id;  // "mem_…"
  std::string tenant;
  MemoryNamespace scope;
  std::string text;             // the fact
  std::string subject;          // optional key ("user.city"): a newer current record with the same
                                // non-empty subject in the same namespace supersedes this one
  std::string source;           // where it came from: "api", "resp_…", "extraction:resp_…", ...
  std::string label;            // classification text as given; "" = the lattice bottom
  std::int64_t created_at = 0;  // unix seconds
  std::int64_t valid_from = 0;  // when it became current (= created_at)
  std::optional<std::int64_t> valid_until;  // set when superseded
  std::string superseded_by;                // the record that replaced it; "" while current
  std::optional<std::int64_t> expires_at;   // after this it is never returned by search
  friend bool operator==(const MemoryRecord&, const MemoryRecord&) = default;
};

struct RecordQuery {
  std::string tenant;
  // The namespaces the query sees; empty = every namespace of the tenant.
  std::vector<MemoryNamespace> namespaces;
  // Full-text query in plain words (any text; it is never passed to FTS5 as syntax). Records
  // matching any word are returned, best BM25 match first. "" = no text condition, newest first.
  std::string text;
  std::size_t limit = 20;
  std::int64_t now = 0;  // records whose expires_at <= now are left out
  // nullopt: current records only. A time: the records that were current then
  // (valid_from <= t, and t < valid_until unless still current), as a history query.
  std::optional<std::int64_t> as_of;
  bool include_superseded = false;  // every version, current or not (as_of is then ignored)
  std::string subject;              // "" = any; else only records with this subject
};

struct ScoredRecord {
  MemoryRecord record;
  double score = 0;  // higher is more relevant; 0 when the query had no text
};

struct AddedRecord {
  MemoryRecord record;                  // as stored (or the existing duplicate)
  std::vector<std::string> superseded;  // ids of the records it replaced
  bool duplicate = false;               // an identical current record existed; nothing added
};

// Thread-safe: every method may be called from any thread. Errors come back as values.
class MemoryStore {
 public:
  virtual ~MemoryStore() = default;

  // ---- pinned blocks
  // Inserts the block, or, when its namespace already has a block of that name, replaces that
  // block's value, label and max_chars (keeping its id and created_at). Returns it as stored.
  virtual Result<MemoryBlock> put_block(const MemoryBlock& block) = 0;
  virtual Result<std::optional<MemoryBlock>> find_block(std::string_view tenant,
                                                        std::string_view id) = 0;
  // Blocks of the given namespaces (every namespace of the tenant when empty), ordered by
  // namespace (tenant-wide first, then user, then agent) and name.
  virtual Result<std::vector<MemoryBlock>> list_blocks(
      std::string_view tenant, const std::vector<MemoryNamespace>& namespaces) = 0;
  virtual Result<bool> delete_block(std::string_view tenant, std::string_view id) = 0;

  // ---- archival records
  // Adds `record` (id, timestamps and namespace set by the caller; valid_until and
  // superseded_by ignored) in one transaction that also supersedes, in the same namespace:
  //  - the current record with the same non-empty subject, and
  //  - the record named by `supersedes` ("" = none), which must be a current record of the
  //    tenant in that namespace (else an error and nothing changes).
  // A superseded record gets valid_until = record.valid_from.
  // When a current record of the same namespace has the same text (compared after trimming,
  // collapsing whitespace and lower-casing ASCII) and the same subject, and has not expired by
  // record.created_at, nothing is added: that record comes back with duplicate = true, and
  // `supersedes` is not looked at (so a retried call is not an error).
  virtual Result<AddedRecord> add_record(const MemoryRecord& record,
                                         std::string_view supersedes) = 0;
  virtual Result<std::optional<MemoryRecord>> find_record(std::string_view tenant,
                                                          std::string_view id) = 0;
  virtual Result<std::vector<ScoredRecord>> search_records(const RecordQuery& query) = 0;
  // Erases the record (its text leaves the full-text index too); false when there was none.
  // Records it had superseded keep pointing at its id.
  virtual Result<bool> delete_record(std::string_view tenant, std::string_view id) = 0;
  // Erases records whose expires_at <= now; returns how many.
  virtual Result<std::int64_t> purge_expired_records(std::int64_t now) = 0;
};

// Opens (creating when missing) the SQLite database at `path` and brings the "memory" schema
// (with its FTS5 index) up to date. The file may be shared with the other modules' tables.
// ":memory:" gives a private in-memory database. Null and `*error` set on failure.
std::unique_ptr<MemoryStore> open_sqlite_memory_store(const std::string& path, std::string* error);

}  // namespace redline::store
