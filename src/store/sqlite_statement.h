// What every SQLite-backed store implementation shares: prepared statements that are kept for
// the store's lifetime and reused call after call, transactions that cannot be left open on an
// early return, and the open → migrate → prepare sequence of an open_sqlite_*_store function.
//
// The stores keep one connection each, serialised by the store's own mutex, so nothing here
// locks: callers hold their mutex around every use.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "store/sqlite_database.h"
#include "store/status.h"

namespace redline::store {

struct StatementFinalizer {
  void operator()(sqlite3_stmt* statement) const { sqlite3_finalize(statement); }
};
using Statement = std::unique_ptr<sqlite3_stmt, StatementFinalizer>;

// "what: <SQLite's message for the last failure on db>".
inline Status sqlite_error(sqlite3* db, std::string_view what) {
  return Status::error(std::string(what) + ": " + sqlite3_errmsg(db));
}

// The failure of an INSERT of a `what` whose key is `id`: a taken id is reported as such (the
// caller may choose ids), anything else with SQLite's message.
inline Status insert_error(sqlite3* db, std::string_view what, std::string_view id) {
  const int code = sqlite3_extended_errcode(db);
  if (code == SQLITE_CONSTRAINT_PRIMARYKEY || code == SQLITE_CONSTRAINT_UNIQUE) {
    return Status::error(std::string(what) + " id " + std::string(id) + " is taken");
  }
  return sqlite_error(db, "cannot insert " + std::string(what));
}

// Prepares `sql`. `persistent` tells SQLite the statement lives long (the cached ones), so it
// does not draw on the lookaside memory meant for short-lived statements. Null and `*error` set
// on failure.
inline Statement prepare_statement(sqlite3* db, std::string_view sql, bool persistent,
                                   std::string* error) {
  sqlite3_stmt* raw = nullptr;
  const unsigned flags = persistent ? SQLITE_PREPARE_PERSISTENT : 0;
  if (sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()), flags, &raw, nullptr) !=
      SQLITE_OK) {
    if (error) *error = "cannot prepare \"" + std::string(sql) + "\": " + sqlite3_errmsg(db);
    return nullptr;
  }
  return Statement(raw);
}

// Concatenates SQL fragments: statements built from the table they work on, or shaped by a
// query's options. Values are never spliced in; they are bound.
inline std::string sql_of(std::initializer_list<std::string_view> fragments) {
  std::string sql;
  for (auto fragment : fragments) sql += fragment;
  return sql;
}

// A statement a store caches, and its SQL.
struct CachedStatement {
  Statement* statement;
  std::string sql;
};

// Prepares every statement of a store once, when it opens; false and `*error` set when one does
// not compile (a schema that doesn't match the code).
inline bool prepare_statements(sqlite3* db, std::span<const CachedStatement> statements,
                               std::string* error) {
  for (const auto& entry : statements) {
    *entry.statement = prepare_statement(db, entry.sql, /*persistent=*/true, error);
    if (!*entry.statement) return false;
  }
  return true;
}

// One execution of a statement: binds parameters, steps, reads columns, and resets the statement
// (clearing its bindings) when the use ends, however it ends, so a cached statement is always
// ready for the next caller and never holds a read snapshot open.
class StatementUse {
 public:
  explicit StatementUse(sqlite3_stmt* statement) : statement_(statement) {}
  ~StatementUse() {
    sqlite3_reset(statement_);
    sqlite3_clear_bindings(statement_);
  }
  StatementUse(const StatementUse&) = delete;
  StatementUse& operator=(const StatementUse&) = delete;

  void bind(int index, std::string_view text) {
    sqlite3_bind_text(statement_, index, text.data(), static_cast<int>(text.size()),
                      SQLITE_TRANSIENT);
  }
  void bind(int index, std::int64_t value) { sqlite3_bind_int64(statement_, index, value); }
  void bind(int index, std::optional<std::int64_t> value) {
    if (value) {
      bind(index, *value);
    } else {
      sqlite3_bind_null(statement_, index);
    }
  }
  void bind_null(int index) { sqlite3_bind_null(statement_, index); }

  // Returns SQLITE_ROW, SQLITE_DONE or an error code.
  int step() { return sqlite3_step(statement_); }

  // Runs a statement that returns no rows.
  Status execute(std::string_view what) {
    if (step() != SQLITE_DONE) return sqlite_error(db(), what);
    return Status::success();
  }
  // Runs an INSERT, UPDATE or DELETE; the number of rows it changed itself (not counting those
  // its triggers or foreign-key actions changed).
  Result<std::int64_t> execute_counting(std::string_view what) {
    if (step() != SQLITE_DONE) return sqlite_error(db(), what);
    return static_cast<std::int64_t>(sqlite3_changes64(db()));
  }
  // Runs an UPDATE or DELETE; whether it changed a row.
  Result<bool> execute_changing(std::string_view what) {
    auto changed = execute_counting(what);
    if (!changed) return Status::error(changed.error());
    return *changed > 0;
  }

  // `read(*this)` of the first row; nullopt when there is none.
  template <typename Read>
  auto first_row(std::string_view what, Read&& read)
      -> Result<std::optional<std::invoke_result_t<Read&, const StatementUse&>>> {
    using Row = std::invoke_result_t<Read&, const StatementUse&>;
    const int rc = step();
    if (rc == SQLITE_DONE) return std::optional<Row>();
    if (rc != SQLITE_ROW) return sqlite_error(db(), what);
    return std::optional<Row>(read(*this));
  }
  // `read(*this)` of every row, in order.
  template <typename Read>
  auto all_rows(std::string_view what, Read&& read)
      -> Result<std::vector<std::invoke_result_t<Read&, const StatementUse&>>> {
    std::vector<std::invoke_result_t<Read&, const StatementUse&>> rows;
    int rc;
    while ((rc = step()) == SQLITE_ROW) rows.push_back(read(*this));
    if (rc != SQLITE_DONE) return sqlite_error(db(), what);
    return rows;
  }

  std::string text(int column) const {
    const auto* bytes = sqlite3_column_text(statement_, column);
    return bytes ? std::string(reinterpret_cast<const char*>(bytes),
                               static_cast<std::size_t>(sqlite3_column_bytes(statement_, column)))
                 : std::string();
  }
  std::int64_t integer(int column) const { return sqlite3_column_int64(statement_, column); }
  std::optional<std::int64_t> optional_integer(int column) const {
    if (sqlite3_column_type(statement_, column) == SQLITE_NULL) return std::nullopt;
    return integer(column);
  }
  double real(int column) const { return sqlite3_column_double(statement_, column); }

 private:
  sqlite3* db() const { return sqlite3_db_handle(statement_); }

  sqlite3_stmt* statement_;
};

// Most methods of a tenant-scoped store look up or remove one object by its tenant and id, with
// a statement taking ?1 = tenant and ?2 = id.
template <typename Read>
auto find_owned(sqlite3_stmt* select, std::string_view tenant, std::string_view id,
                std::string_view what, Read&& read) {
  StatementUse use(select);
  use.bind(1, tenant);
  use.bind(2, id);
  return use.first_row(what, read);
}
// Whether the DELETE removed the object.
inline Result<bool> delete_owned(sqlite3_stmt* erase, std::string_view tenant, std::string_view id,
                                 std::string_view what) {
  StatementUse use(erase);
  use.bind(1, tenant);
  use.bind(2, id);
  return use.execute_changing(what);
}

// The statements a store needs for transactions, prepared with its others.
struct TransactionStatements {
  Statement begin_read;   // BEGIN: a consistent snapshot for multi-statement reads
  Statement begin_write;  // BEGIN IMMEDIATE: see Transaction
  Statement commit;
  Statement rollback;

  bool prepare(sqlite3* db, std::string* error) {
    const CachedStatement statements[] = {{&begin_read, "BEGIN"},
                                          {&begin_write, "BEGIN IMMEDIATE"},
                                          {&commit, "COMMIT"},
                                          {&rollback, "ROLLBACK"}};
    return prepare_statements(db, statements, error);
  }
};

// A transaction that rolls back unless committed, so an early `return status;` can't leave the
// connection inside it. Writes take the write lock up front (IMMEDIATE): a deferred transaction
// that reads first and then writes fails with SQLITE_BUSY, without waiting, when another
// connection wrote in between, whereas IMMEDIATE waits for the busy timeout.
class Transaction {
 public:
  enum class Kind { kRead, kWrite };

  Transaction(sqlite3* db, TransactionStatements& statements) : db_(db), statements_(statements) {}
  ~Transaction() {
    if (open_) StatementUse(statements_.rollback.get()).step();
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  Status begin(Kind kind) {
    auto* statement =
        kind == Kind::kRead ? statements_.begin_read.get() : statements_.begin_write.get();
    if (StatementUse(statement).step() != SQLITE_DONE) {
      return sqlite_error(db_, "cannot start a transaction");
    }
    open_ = true;
    return Status::success();
  }
  // Every statement used inside must have been reset (its StatementUse ended) by now.
  Status commit() {
    if (StatementUse(statements_.commit.get()).step() != SQLITE_DONE) {
      return sqlite_error(db_, "cannot commit");
    }
    open_ = false;
    return Status::success();
  }

 private:
  sqlite3* db_;
  TransactionStatements& statements_;
  bool open_ = false;
};

// The body of every open_sqlite_*_store: opens `path`, brings `module`'s schema up to date and
// prepares the store's statements. `Store` is constructed from the connection and has
// `bool prepare(std::string* error)`, and `bool attach_checkpointer(path, error)` when it is
// written on the request path. Null and `*error` set on failure.
template <typename Store>
std::unique_ptr<Store> open_prepared_store(const std::string& path, std::string_view module,
                                           const std::vector<std::string_view>& schema,
                                           std::string* error) {
  auto db = open_sqlite_database(path, error);
  if (!db) return nullptr;
  if (auto status = apply_migrations(db.get(), module, schema); !status) {
    if (error) *error = path + ": " + status.message;
    return nullptr;
  }
  auto store = std::make_unique<Store>(std::move(db));
  if (!store->prepare(error)) return nullptr;
  // Stores written on the request path keep checkpoints off it.
  if constexpr (requires { store->attach_checkpointer(path, error); }) {
    if (!store->attach_checkpointer(path, error)) return nullptr;
  }
  return store;
}

}  // namespace redline::store
