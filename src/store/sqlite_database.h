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

#include <memory>
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

}  // namespace redline::store
