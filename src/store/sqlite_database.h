// Shared plumbing for every module that keeps tables in Redline's SQLite file (keys, audit,
// usage, sessions): one way to open a connection and one migration scheme.
//
// Migrations are namespaced per module in a `schema_migrations(module TEXT PRIMARY KEY,
// version INTEGER)` table instead of PRAGMA user_version, because several modules share one
// file and each evolves its own tables independently. A module's schema is an ordered list of
// SQL scripts; version N means scripts 1..N have run. Scripts are append-only: never edit one
// that has shipped, add a new one.
#pragma once

#include <sqlite3.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "store/status.h"

namespace redline::store {

struct SqliteCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using SqliteConnection = std::unique_ptr<sqlite3, SqliteCloser>;

// Opens `path` read-write, creating the file when missing, and sets the connection up the way
// every Redline module expects: WAL journal (readers never block the writer, and another
// process such as `redline keys` may write concurrently), a 5 s busy timeout, foreign keys on.
// ":memory:" is accepted (its journal stays in memory). Null and `*error` set on failure.
SqliteConnection open_sqlite_database(const std::string& path, std::string* error);

// Runs, in one IMMEDIATE transaction, the scripts of `module` that the database has not seen
// yet, and records the new version. Idempotent; safe when several processes start at once
// (the transaction serialises them). Fails, changing nothing, when the database is at a newer
// version than `scripts` knows (an older binary on a newer file) or when a script fails.
Status apply_migrations(sqlite3* db, std::string_view module,
                        const std::vector<std::string_view>& scripts);

// The version recorded for `module`; 0 when it has none.
Result<int> schema_version(sqlite3* db, std::string_view module);

// Keeps write-ahead-log checkpoints off a store's write path. SQLite checkpoints automatically
// inside the commit that takes the log past its threshold, while the store holds its lock, so
// every other call waits for the checkpoint's fsyncs. Attached to a store's connection, this
// replaces those automatic checkpoints: each commit reports the log's size here, and the store
// calls checkpoint_if_due() once it has released its lock. One caller at a time checkpoints, on a
// connection of its own, while the store goes on committing.
class WalCheckpointer {
 public:
  // Hooks `db` (which must outlive this) and opens a second connection to `path`. Null for an
  // in-memory database, which has no log, and on failure (with `*error` set).
  static std::unique_ptr<WalCheckpointer> attach(sqlite3* db, const std::string& path,
                                                 std::string* error);
  ~WalCheckpointer();

  // Copies the log into the database when it has grown past the threshold; returns at once
  // when it has not, or when another caller is on it. The copy is PASSIVE (it never waits for
  // the store's writers), which under steady writes never catches the log's end, and the log is
  // only reused from its start once a checkpoint has: so when the log is much larger still, a
  // RESTART checkpoint holds writers back briefly (most of the log is copied already) and the
  // log starts over.
  void checkpoint_if_due();

 private:
  WalCheckpointer(sqlite3* db, SqliteConnection connection);
  static int on_commit(void* self, sqlite3* db, const char* schema, int pages);

  // SQLite's own default: about 4 MB of 4 KiB pages.
  static constexpr int kPagesPerCheckpoint = 1000;
  // About 64 MB; the log reaches about twice that under steady writes while a checkpoint runs.
  // Lower means more writer stalls: at 16 MB the sessions benchmark lost a fifth of its turns.
  static constexpr int kPagesBeforeRestart = 16000;
  sqlite3* db_;
  std::atomic<int> log_pages_{0};
  std::mutex checkpointing_;
  SqliteConnection connection_;
};

// Holds a store's mutex for one call and, once it is released, runs a checkpoint the call made
// due (when the store has a checkpointer).
class StoreLock {
 public:
  StoreLock(std::mutex& mutex, WalCheckpointer* checkpointer)
      : lock_(mutex), checkpointer_(checkpointer) {}
  ~StoreLock() {
    lock_.unlock();
    if (checkpointer_ != nullptr) checkpointer_->checkpoint_if_due();
  }
  StoreLock(const StoreLock&) = delete;
  StoreLock& operator=(const StoreLock&) = delete;

 private:
  std::unique_lock<std::mutex> lock_;
  WalCheckpointer* checkpointer_;
};

}  // namespace redline::store
