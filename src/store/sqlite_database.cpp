#include "store/sqlite_database.h"

#include <string>

namespace redline::store {
namespace {

std::string message_of(sqlite3* db, std::string_view what) {
  return std::string(what) + ": " + sqlite3_errmsg(db);
}

struct StatementFinalizer {
  void operator()(sqlite3_stmt* statement) const { sqlite3_finalize(statement); }
};
using Statement = std::unique_ptr<sqlite3_stmt, StatementFinalizer>;

Status exec(sqlite3* db, const std::string& sql, std::string_view what) {
  char* raw_error = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &raw_error) == SQLITE_OK) {
    return Status::success();
  }
  std::string message = std::string(what) + ": " + (raw_error ? raw_error : sqlite3_errmsg(db));
  sqlite3_free(raw_error);
  return Status::error(std::move(message));
}

// Leaves a transaction that a failed step abandoned; the original error is what matters.
void rollback(sqlite3* db) { sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr); }

}  // namespace

SqliteConnection open_sqlite_database(const std::string& path, std::string* error) {
  auto fail = [&](std::string message) {
    if (error) *error = std::move(message);
    return SqliteConnection();
  };
  sqlite3* raw = nullptr;
  const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX;
  const int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  SqliteConnection db(raw);
  if (rc != SQLITE_OK) {
    return fail("cannot open " + path + ": " + (raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc)));
  }
  sqlite3_extended_result_codes(db.get(), 1);
  sqlite3_busy_timeout(db.get(), 5000);
  // journal_mode answers with the mode it ended up in; anything but "wal" (or "memory" for an
  // in-memory database) means another process can't read while we write, so refuse it.
  sqlite3_stmt* raw_statement = nullptr;
  if (sqlite3_prepare_v2(db.get(), "PRAGMA journal_mode=WAL", -1, &raw_statement, nullptr) !=
      SQLITE_OK) {
    return fail(message_of(db.get(), "cannot set the journal mode of " + path));
  }
  Statement journal(raw_statement);
  if (sqlite3_step(journal.get()) != SQLITE_ROW) {
    return fail(message_of(db.get(), "cannot set the journal mode of " + path));
  }
  const std::string mode = reinterpret_cast<const char*>(sqlite3_column_text(journal.get(), 0));
  journal.reset();
  if (mode != "wal" && mode != "memory") {
    return fail(path + ": journal mode is \"" + mode + "\", WAL is required");
  }
  // NORMAL is durable in WAL mode except for the last commits before a power loss.
  if (auto status = exec(db.get(), "PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL;",
                         "cannot configure " + path);
      !status) {
    return fail(status.message);
  }
  return db;
}

Result<int> schema_version(sqlite3* db, std::string_view module) {
  sqlite3_stmt* raw = nullptr;
  // The table may not exist yet: that is version 0, not an error.
  if (sqlite3_prepare_v2(db,
                         "SELECT 1 FROM sqlite_master WHERE type='table' AND "
                         "name='schema_migrations'",
                         -1, &raw, nullptr) != SQLITE_OK) {
    return Status::error(message_of(db, "cannot read the schema version"));
  }
  Statement exists(raw);
  const int exists_rc = sqlite3_step(exists.get());
  if (exists_rc == SQLITE_DONE) return 0;
  if (exists_rc != SQLITE_ROW) return Status::error(message_of(db, "cannot read the schema"));

  if (sqlite3_prepare_v2(db, "SELECT version FROM schema_migrations WHERE module = ?", -1, &raw,
                         nullptr) != SQLITE_OK) {
    return Status::error(message_of(db, "cannot read the schema version"));
  }
  Statement select(raw);
  sqlite3_bind_text(select.get(), 1, module.data(), static_cast<int>(module.size()),
                    SQLITE_TRANSIENT);
  const int rc = sqlite3_step(select.get());
  if (rc == SQLITE_DONE) return 0;
  if (rc != SQLITE_ROW) return Status::error(message_of(db, "cannot read the schema version"));
  return sqlite3_column_int(select.get(), 0);
}

Status apply_migrations(sqlite3* db, std::string_view module,
                        const std::vector<std::string_view>& scripts) {
  const std::string name(module);
  // IMMEDIATE takes the write lock up front, so two processes starting on a fresh file
  // can't both read version 0 and both run script 1.
  if (auto status = exec(db, "BEGIN IMMEDIATE", "cannot start migrating " + name); !status) {
    return status;
  }
  auto fail = [&](Status status) {
    rollback(db);
    return status;
  };
  if (auto status = exec(db,
                         "CREATE TABLE IF NOT EXISTS schema_migrations ("
                         "module TEXT PRIMARY KEY, version INTEGER NOT NULL)",
                         "cannot create schema_migrations");
      !status) {
    return fail(std::move(status));
  }
  auto version = schema_version(db, module);
  if (!version) return fail(Status::error(version.error()));
  const int known = static_cast<int>(scripts.size());
  if (*version > known) {
    return fail(Status::error("the " + name + " schema is at version " + std::to_string(*version) +
                              ", newer than this Redline knows (" + std::to_string(known) + ")"));
  }
  if (*version == known) {
    rollback(db);  // up to date: end the transaction without writing
    return Status::success();
  }
  for (int index = *version; index < known; ++index) {
    if (auto status =
            exec(db, std::string(scripts[index]), name + " migration " + std::to_string(index + 1));
        !status) {
      return fail(std::move(status));
    }
  }
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v2(db,
                         "INSERT INTO schema_migrations(module, version) VALUES(?, ?) "
                         "ON CONFLICT(module) DO UPDATE SET version = excluded.version",
                         -1, &raw, nullptr) != SQLITE_OK) {
    return fail(Status::error(message_of(db, "cannot record the " + name + " schema version")));
  }
  Statement record(raw);
  sqlite3_bind_text(record.get(), 1, name.data(), static_cast<int>(name.size()), SQLITE_TRANSIENT);
  sqlite3_bind_int(record.get(), 2, known);
  if (sqlite3_step(record.get()) != SQLITE_DONE) {
    return fail(Status::error(message_of(db, "cannot record the " + name + " schema version")));
  }
  record.reset();
  if (auto status = exec(db, "COMMIT", "cannot commit the " + name + " migration"); !status) {
    return fail(std::move(status));
  }
  return Status::success();
}

std::unique_ptr<WalCheckpointer> WalCheckpointer::attach(sqlite3* db, const std::string& path,
                                                         std::string* error) {
  if (path == ":memory:" || path.empty()) return nullptr;
  auto connection = open_sqlite_database(path, error);
  if (!connection) return nullptr;
  return std::unique_ptr<WalCheckpointer>(new WalCheckpointer(db, std::move(connection)));
}

WalCheckpointer::WalCheckpointer(sqlite3* db, SqliteConnection connection)
    : db_(db), connection_(std::move(connection)) {
  // Replaces the connection's automatic checkpoints (SQLite implements those with this hook).
  sqlite3_wal_hook(db_, &WalCheckpointer::on_commit, this);
}

WalCheckpointer::~WalCheckpointer() { sqlite3_wal_hook(db_, nullptr, nullptr); }

int WalCheckpointer::on_commit(void* self, sqlite3*, const char*, int pages) {
  static_cast<WalCheckpointer*>(self)->log_pages_.store(pages, std::memory_order_relaxed);
  return SQLITE_OK;
}

void WalCheckpointer::checkpoint_if_due() {
  if (log_pages_.load(std::memory_order_relaxed) < kPagesPerCheckpoint) return;
  std::unique_lock lock(checkpointing_, std::try_to_lock);
  if (!lock.owns_lock()) return;
  const int pages = log_pages_.load(std::memory_order_relaxed);
  if (pages < kPagesPerCheckpoint) return;
  const int mode =
      pages >= kPagesBeforeRestart ? SQLITE_CHECKPOINT_RESTART : SQLITE_CHECKPOINT_PASSIVE;
  int log_frames = 0;
  int copied = 0;
  // A busy or partial checkpoint is fine: the next commit past the threshold tries again.
  sqlite3_wal_checkpoint_v2(connection_.get(), nullptr, mode, &log_frames, &copied);
  if (copied == log_frames) log_pages_.store(0, std::memory_order_relaxed);
}

}  // namespace redline::store
