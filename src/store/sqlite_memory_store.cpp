// MemoryStore on SQLite, with an FTS5 index over record texts. One connection per store,
// serialised by a mutex, like the other SQLite stores.
#include <mutex>
#include <string>
#include <variant>

#include "store/memory_store.h"
#include "store/sqlite_statement.h"

namespace redline::store {
namespace {

// The "memory" module's schema; append-only (see sqlite_database.h).
//
// memory_records_fts indexes the text and the namespace of memory_records (an external-content
// table: the text is stored once) under the record's seq. The triggers keep the two in step; the
// text and namespace of a record never change, so there is no UPDATE trigger. Erasing a record
// runs FTS5's 'delete' command, which takes the record's terms out of the index.
const std::vector<std::string_view> kMemorySchema = {
    R"sql(
CREATE TABLE memory_blocks (
  tenant TEXT NOT NULL,
  id TEXT NOT NULL,
  scope_user TEXT NOT NULL,
  scope_agent TEXT NOT NULL,
  name TEXT NOT NULL,
  value TEXT NOT NULL,
  label TEXT NOT NULL,
  max_chars INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (tenant, id),
  UNIQUE (tenant, scope_user, scope_agent, name)
);
CREATE TABLE memory_records (
  seq INTEGER PRIMARY KEY,
  tenant TEXT NOT NULL,
  id TEXT NOT NULL,
  scope_user TEXT NOT NULL,
  scope_agent TEXT NOT NULL,
  text TEXT NOT NULL,
  normalized_text TEXT NOT NULL,
  subject TEXT NOT NULL,
  source TEXT NOT NULL,
  label TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  valid_from INTEGER NOT NULL,
  valid_until INTEGER,
  superseded_by TEXT NOT NULL,
  expires_at INTEGER
);
CREATE UNIQUE INDEX memory_records_by_id ON memory_records(tenant, id);
CREATE INDEX memory_records_current
  ON memory_records(tenant, scope_user, scope_agent, subject, normalized_text)
  WHERE superseded_by = '';
CREATE INDEX memory_records_by_subject ON memory_records(tenant, subject, created_at);
CREATE INDEX memory_records_by_age ON memory_records(tenant, created_at);
CREATE INDEX memory_records_by_expiry ON memory_records(expires_at)
  WHERE expires_at IS NOT NULL;
CREATE VIRTUAL TABLE memory_records_fts USING fts5(
  text, content = 'memory_records', content_rowid = 'seq'
);
CREATE TRIGGER memory_records_fts_insert AFTER INSERT ON memory_records BEGIN
  INSERT INTO memory_records_fts(rowid, text) VALUES (new.seq, new.text);
END;
CREATE TRIGGER memory_records_fts_delete AFTER DELETE ON memory_records BEGIN
  INSERT INTO memory_records_fts(memory_records_fts, rowid, text)
    VALUES ('delete', old.seq, old.text);
END;
)sql",
    // Version 2: the index also holds each record's namespace as one token (the hex of tenant,
    // user and agent, joined by 'x', which no hex contains), so a search matches within the
    // caller's namespaces inside FTS5 instead of ranking every match in the database and
    // filtering afterwards. The token is computed in one place, the source view, which the
    // triggers and FTS5's 'rebuild' read.
    R"sql(
DROP TRIGGER memory_records_fts_insert;
DROP TRIGGER memory_records_fts_delete;
DROP TABLE memory_records_fts;
CREATE VIEW memory_records_fts_source AS
  SELECT seq, text, hex(tenant) || 'x' || hex(scope_user) || 'x' || hex(scope_agent) AS scope
  FROM memory_records;
CREATE VIRTUAL TABLE memory_records_fts USING fts5(
  text, scope, content = 'memory_records_fts_source', content_rowid = 'seq'
);
CREATE TRIGGER memory_records_fts_insert AFTER INSERT ON memory_records BEGIN
  INSERT INTO memory_records_fts(rowid, text, scope)
    SELECT seq, text, scope FROM memory_records_fts_source WHERE seq = new.seq;
END;
CREATE TRIGGER memory_records_fts_delete BEFORE DELETE ON memory_records BEGIN
  INSERT INTO memory_records_fts(memory_records_fts, rowid, text, scope)
    SELECT 'delete', seq, text, scope FROM memory_records_fts_source WHERE seq = old.seq;
END;
INSERT INTO memory_records_fts(memory_records_fts) VALUES ('rebuild');
)sql",
};

constexpr std::string_view kBlockColumns =
    "tenant, id, scope_user, scope_agent, name, value, label, max_chars, created_at, updated_at";
constexpr std::string_view kRecordColumns =
    "tenant, id, scope_user, scope_agent, text, subject, source, label, created_at, valid_from, "
    "valid_until, superseded_by, expires_at";
// Bounds the work one query can ask of the index.
constexpr std::size_t kMaxQueryWords = 32;

MemoryBlock block_from_row(const StatementUse& row) {
  MemoryBlock block;
  block.tenant = row.text(0);
  block.id = row.text(1);
  block.scope = {row.text(2), row.text(3)};
  block.name = row.text(4);
  block.value = row.text(5);
  block.label = row.text(6);
  block.max_chars = row.integer(7);
  block.created_at = row.integer(8);
  block.updated_at = row.integer(9);
  return block;
}

MemoryRecord record_from_row(const StatementUse& row) {
  MemoryRecord record;
  record.tenant = row.text(0);
  record.id = row.text(1);
  record.scope = {row.text(2), row.text(3)};
  record.text = row.text(4);
  record.subject = row.text(5);
  record.source = row.text(6);
  record.label = row.text(7);
  record.created_at = row.integer(8);
  record.valid_from = row.integer(9);
  record.valid_until = row.optional_integer(10);
  record.superseded_by = row.text(11);
  record.expires_at = row.optional_integer(12);
  return record;
}

ScoredRecord scored_record_from_row(const StatementUse& row) {
  return {record_from_row(row), row.real(13)};
}

bool is_ascii_space(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

// What duplicate detection compares: trimmed, runs of whitespace as one space, ASCII lower-cased.
std::string normalized_text(std::string_view text) {
  std::string normalized;
  bool space_pending = false;
  for (const unsigned char c : text) {
    if (is_ascii_space(c)) {
      space_pending = !normalized.empty();
      continue;
    }
    if (space_pending) normalized += ' ';
    space_pending = false;
    normalized += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  }
  return normalized;
}

// Bytes >= 0x80 are parts of non-ASCII UTF-8 characters: left to FTS5's tokenizer, which knows
// which of them are letters.
bool is_word_byte(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80;
}

// FTS5's string syntax: "…" with a '"' written twice.
void append_fts5_string(std::string& expression, std::string_view text) {
  expression += '"';
  for (const char c : text) {
    if (c == '"') expression += '"';
    expression += c;
  }
  expression += '"';
}

// An FTS5 expression matching any word of `text`, in which nothing the user typed can act as
// FTS5 syntax (NEAR, AND, *, -, ^, column filters, parentheses): every word is a quoted string.
// "" when `text` has no word.
std::string match_any_word(std::string_view text) {
  std::string expression;
  std::size_t words = 0;
  std::size_t position = 0;
  while (words < kMaxQueryWords) {
    while (position < text.size() && !is_word_byte(text[position])) ++position;
    const std::size_t start = position;
    while (position < text.size() && is_word_byte(text[position])) ++position;
    if (position == start) break;
    if (words++ > 0) expression += " OR ";
    append_fts5_string(expression, text.substr(start, position - start));
  }
  return expression;
}

// SQLite's hex(): the bytes of the UTF-8 text, upper-case.
void append_hex(std::string& out, std::string_view text) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  for (const unsigned char c : text) {
    out += kDigits[c >> 4];
    out += kDigits[c & 0xF];
  }
}

// The FTS5 condition on the index's scope column (see the version 2 schema): the record is in
// one of `namespaces` of the tenant, or anywhere in the tenant when there are none (a prefix
// query on the tenant's part of the token).
std::string match_scope(std::string_view tenant, const std::vector<MemoryNamespace>& namespaces) {
  std::string expression = "scope : (";
  if (namespaces.empty()) {
    expression += '"';
    append_hex(expression, tenant);
    expression += "x\" *";
  }
  for (std::size_t index = 0; index < namespaces.size(); ++index) {
    if (index > 0) expression += " OR ";
    expression += '"';
    append_hex(expression, tenant);
    expression += 'x';
    append_hex(expression, namespaces[index].user);
    expression += 'x';
    append_hex(expression, namespaces[index].agent);
    expression += '"';
  }
  expression += ')';
  return expression;
}

// SQL whose shape depends on the query (how many namespaces, which filters), built together with
// the values of its placeholders so the two can't drift apart.
class DynamicQuery {
 public:
  using Value = std::variant<std::string_view, std::int64_t>;

  DynamicQuery& add(std::string_view sql, std::initializer_list<Value> values = {}) {
    sql_ += sql;
    values_.insert(values_.end(), values.begin(), values.end());
    return *this;
  }
  // " AND ((scope_user = ? AND scope_agent = ?) OR …)"; nothing when `namespaces` is empty,
  // which means every namespace.
  DynamicQuery& add_namespace_filter(const std::vector<MemoryNamespace>& namespaces) {
    for (std::size_t index = 0; index < namespaces.size(); ++index) {
      add(index == 0 ? " AND (" : " OR ");
      add("(scope_user = ? AND scope_agent = ?)",
          {namespaces[index].user, namespaces[index].agent});
    }
    if (!namespaces.empty()) add(")");
    return *this;
  }

  // Prepares the statement (not cached: see the callers); null and `*error` set on failure.
  Statement prepare(sqlite3* db, std::string* error) const {
    return prepare_statement(db, sql_, /*persistent=*/false, error);
  }
  void bind_to(StatementUse& use) const {
    int index = 1;
    for (const auto& value : values_) {
      std::visit([&](const auto& bound) { use.bind(index++, bound); }, value);
    }
  }

 private:
  std::string sql_;
  std::vector<Value> values_;
};

class SqliteMemoryStore final : public MemoryStore {
 public:
  explicit SqliteMemoryStore(SqliteConnection db) : db_(std::move(db)) {}

  // Takes the write-ahead log's checkpoints off this store's write path (see WalCheckpointer).
  bool attach_checkpointer(const std::string& path, std::string* error) {
    checkpointer_ = WalCheckpointer::attach(db_.get(), path, error);
    return checkpointer_ != nullptr || path == ":memory:";
  }

  // Prepares every fixed statement once; false and `*error` set when the schema doesn't match.
  bool prepare(std::string* error) {
    const CachedStatement statements[] = {
        {&upsert_block_,
         sql_of({"INSERT INTO memory_blocks(", kBlockColumns,
                 ") VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                 "ON CONFLICT(tenant, scope_user, scope_agent, name) DO UPDATE SET "
                 "value = excluded.value, label = excluded.label, max_chars = excluded.max_chars, "
                 "updated_at = excluded.updated_at RETURNING ",
                 kBlockColumns})},
        {&select_block_,
         sql_of({"SELECT ", kBlockColumns, " FROM memory_blocks WHERE tenant = ? AND id = ?"})},
        {&delete_block_, "DELETE FROM memory_blocks WHERE tenant = ? AND id = ?"},
        {&insert_record_, sql_of({"INSERT INTO memory_records(", kRecordColumns,
                                  ", normalized_text) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                                  "?, ?)"})},
        {&select_record_,
         sql_of({"SELECT ", kRecordColumns, " FROM memory_records WHERE tenant = ? AND id = ?"})},
        // A record that has expired by the time the new one is written is no duplicate: it is
        // no longer found, so the new one must not be dropped for it.
        {&select_current_duplicate_,
         sql_of({"SELECT ", kRecordColumns,
                 " FROM memory_records WHERE tenant = ?1 AND scope_user = ?2 AND "
                 "scope_agent = ?3 AND normalized_text = ?4 AND subject = ?5 AND "
                 "superseded_by = '' AND (expires_at IS NULL OR expires_at > ?6) LIMIT 1"})},
        {&supersede_by_id_,
         "UPDATE memory_records SET valid_until = ?1, superseded_by = ?2 WHERE tenant = ?3 AND "
         "scope_user = ?4 AND scope_agent = ?5 AND superseded_by = '' AND id = ?6"},
        {&supersede_by_subject_,
         "UPDATE memory_records SET valid_until = ?1, superseded_by = ?2 WHERE tenant = ?3 AND "
         "scope_user = ?4 AND scope_agent = ?5 AND superseded_by = '' AND subject = ?6 "
         "RETURNING id"},
        {&delete_record_, "DELETE FROM memory_records WHERE tenant = ? AND id = ?"},
        {&delete_expired_records_, "DELETE FROM memory_records WHERE expires_at <= ?"},
    };
    return prepare_statements(db_.get(), statements, error) &&
           transactions_.prepare(db_.get(), error);
  }

  // ---- pinned blocks

  Result<MemoryBlock> put_block(const MemoryBlock& block) override {
    StoreLock lock(mutex_, checkpointer_.get());
    StatementUse upsert(upsert_block_.get());
    upsert.bind(1, block.tenant);
    upsert.bind(2, block.id);
    upsert.bind(3, block.scope.user);
    upsert.bind(4, block.scope.agent);
    upsert.bind(5, block.name);
    upsert.bind(6, block.value);
    upsert.bind(7, block.label);
    upsert.bind(8, block.max_chars);
    upsert.bind(9, block.created_at);
    upsert.bind(10, block.updated_at);
    if (upsert.step() != SQLITE_ROW) return insert_error(db_.get(), "block", block.id);
    auto stored = block_from_row(upsert);
    // The statement commits when it finishes: step it there so a failed commit is reported.
    if (upsert.step() != SQLITE_DONE) return sqlite_error(db_.get(), "cannot store block");
    return stored;
  }

  Result<std::optional<MemoryBlock>> find_block(std::string_view tenant,
                                                std::string_view id) override {
    StoreLock lock(mutex_, checkpointer_.get());
    return find_owned(select_block_.get(), tenant, id, "cannot look up block", block_from_row);
  }

  Result<std::vector<MemoryBlock>> list_blocks(
      std::string_view tenant, const std::vector<MemoryNamespace>& namespaces) override {
    DynamicQuery query;
    query.add(sql_of({"SELECT ", kBlockColumns, " FROM memory_blocks WHERE tenant = ?"}), {tenant});
    query.add_namespace_filter(namespaces);
    query.add(
        " ORDER BY CASE WHEN scope_agent <> '' THEN 2 WHEN scope_user <> '' THEN 1 ELSE 0 END, "
        "scope_user, scope_agent, name");
    StoreLock lock(mutex_, checkpointer_.get());
    return select_rows(query, "cannot list blocks", block_from_row);
  }

  Result<bool> delete_block(std::string_view tenant, std::string_view id) override {
    StoreLock lock(mutex_, checkpointer_.get());
    return delete_owned(delete_block_.get(), tenant, id, "cannot delete block");
  }

  // ---- archival records

  Result<AddedRecord> add_record(const MemoryRecord& record, std::string_view supersedes) override {
    AddedRecord added;
    added.record = record;
    added.record.valid_until.reset();
    added.record.superseded_by.clear();
    const std::string normalized = normalized_text(record.text);

    StoreLock lock(mutex_, checkpointer_.get());
    Transaction transaction(db_.get(), transactions_);
    if (auto status = transaction.begin(Transaction::Kind::kWrite); !status) return status;
    auto duplicate = find_current_duplicate(record, normalized);
    if (!duplicate) return Status::error(duplicate.error());
    if (*duplicate) {
      // Nothing is written, so there is nothing to commit: the guard ends the transaction.
      return AddedRecord{std::move(**duplicate), {}, true};
    }
    if (!supersedes.empty()) {
      if (auto status = supersede_by_id(record, supersedes); !status) return status;
      added.superseded.emplace_back(supersedes);
    }
    if (!record.subject.empty()) {
      auto replaced = supersede_by_subject(record);
      if (!replaced) return Status::error(replaced.error());
      added.superseded.insert(added.superseded.end(), replaced->begin(), replaced->end());
    }
    if (auto status = insert_record(added.record, normalized); !status) return status;
    if (auto status = transaction.commit(); !status) return status;
    return added;
  }

  Result<std::optional<MemoryRecord>> find_record(std::string_view tenant,
                                                  std::string_view id) override {
    StoreLock lock(mutex_, checkpointer_.get());
    return find_owned(select_record_.get(), tenant, id, "cannot look up record", record_from_row);
  }

  Result<std::vector<ScoredRecord>> search_records(const RecordQuery& query) override {
    const std::string words = match_any_word(query.text);
    // Text without a single word can match nothing; it must not turn into "no text condition".
    if (!query.text.empty() && words.empty()) return std::vector<ScoredRecord>();
    const std::string match =
        words.empty() ? std::string()
                      : "text : (" + words + ") AND " + match_scope(query.tenant, query.namespaces);
    const auto sql = record_search(query, match);
    StoreLock lock(mutex_, checkpointer_.get());
    return select_rows(sql, "cannot search records", scored_record_from_row);
  }

  Result<bool> delete_record(std::string_view tenant, std::string_view id) override {
    StoreLock lock(mutex_, checkpointer_.get());
    return delete_owned(delete_record_.get(), tenant, id, "cannot delete record");
  }

  Result<std::int64_t> purge_expired_records(std::int64_t now) override {
    StoreLock lock(mutex_, checkpointer_.get());
    StatementUse erase(delete_expired_records_.get());
    erase.bind(1, now);
    return erase.execute_counting("cannot purge expired records");
  }

 private:
  // The search as SQL: the full-text match (when there are words) ranks, the record's columns
  // filter. `match` is the FTS5 expression of the query's words within its namespaces; the
  // namespace filter is repeated on the record's own columns, which stay the authority.
  static DynamicQuery record_search(const RecordQuery& query, std::string_view match) {
    DynamicQuery sql;
    if (match.empty()) {
      sql.add(sql_of({"SELECT ", kRecordColumns, ", 0.0 FROM memory_records WHERE tenant = ?"}),
              {query.tenant});
    } else {
      // bm25() is lower for better matches; the score is its negation, so higher is better. The
      // scope column weighs nothing: it filters, the words rank.
      sql.add(sql_of({"SELECT ", kRecordColumns,
                      ", -hits.rank FROM (SELECT rowid AS seq, bm25(memory_records_fts, 1.0, 0.0) "
                      "AS rank FROM memory_records_fts WHERE memory_records_fts MATCH ?) AS hits "
                      "JOIN memory_records USING (seq) WHERE tenant = ?"}),
              {match, query.tenant});
    }
    sql.add(" AND (expires_at IS NULL OR expires_at > ?)", {query.now});
    if (!query.include_superseded && query.as_of) {
      sql.add(" AND valid_from <= ? AND (valid_until IS NULL OR valid_until > ?)",
              {*query.as_of, *query.as_of});
    } else if (!query.include_superseded) {
      sql.add(" AND superseded_by = ''");
    }
    if (!query.subject.empty()) sql.add(" AND subject = ?", {query.subject});
    sql.add_namespace_filter(query.namespaces);
    sql.add(match.empty() ? " ORDER BY created_at DESC, seq DESC"
                          : " ORDER BY hits.rank, seq DESC");
    sql.add(" LIMIT ?", {static_cast<std::int64_t>(query.limit)});
    return sql;
  }

  // Helpers: call with mutex_ held.

  // Dynamic queries are prepared per call: their shape varies with the caller's namespaces and
  // filters, and preparing costs little next to the search itself.
  template <typename Read>
  auto select_rows(const DynamicQuery& query, std::string_view what, Read&& read)
      -> Result<std::vector<std::invoke_result_t<Read&, const StatementUse&>>> {
    std::string error;
    const Statement statement = query.prepare(db_.get(), &error);
    if (!statement) return Status::error(error);
    StatementUse use(statement.get());
    query.bind_to(use);
    return use.all_rows(what, read);
  }

  // Inside the add_record transaction.
  Result<std::optional<MemoryRecord>> find_current_duplicate(const MemoryRecord& record,
                                                             std::string_view normalized) {
    StatementUse select(select_current_duplicate_.get());
    select.bind(1, record.tenant);
    select.bind(2, record.scope.user);
    select.bind(3, record.scope.agent);
    select.bind(4, normalized);
    select.bind(5, record.subject);
    select.bind(6, record.created_at);
    return select.first_row("cannot look for a duplicate record", record_from_row);
  }

  // Binds what both supersede statements share: ?1 valid_until, ?2 superseded_by and the
  // namespace ?3-?5.
  static void bind_supersession(StatementUse& update, const MemoryRecord& by) {
    update.bind(1, by.valid_from);
    update.bind(2, by.id);
    update.bind(3, by.tenant);
    update.bind(4, by.scope.user);
    update.bind(5, by.scope.agent);
  }

  Status supersede_by_id(const MemoryRecord& by, std::string_view id) {
    StatementUse update(supersede_by_id_.get());
    bind_supersession(update, by);
    update.bind(6, id);
    auto updated = update.execute_changing("cannot supersede record");
    if (!updated) return Status::error(updated.error());
    if (!*updated) {
      return Status::error("no current record with id " + std::string(id) + " in the namespace");
    }
    return Status::success();
  }

  Result<std::vector<std::string>> supersede_by_subject(const MemoryRecord& by) {
    StatementUse update(supersede_by_subject_.get());
    bind_supersession(update, by);
    update.bind(6, by.subject);
    return update.all_rows("cannot supersede records",
                           [](const StatementUse& row) { return row.text(0); });
  }

  Status insert_record(const MemoryRecord& record, std::string_view normalized) {
    StatementUse insert(insert_record_.get());
    insert.bind(1, record.tenant);
    insert.bind(2, record.id);
    insert.bind(3, record.scope.user);
    insert.bind(4, record.scope.agent);
    insert.bind(5, record.text);
    insert.bind(6, record.subject);
    insert.bind(7, record.source);
    insert.bind(8, record.label);
    insert.bind(9, record.created_at);
    insert.bind(10, record.valid_from);
    insert.bind(11, record.valid_until);
    insert.bind(12, record.superseded_by);
    insert.bind(13, record.expires_at);
    insert.bind(14, normalized);
    if (insert.step() != SQLITE_DONE) return insert_error(db_.get(), "record", record.id);
    return Status::success();
  }

  std::mutex mutex_;
  SqliteConnection db_;  // declared before the statements: they must be finalized first
  std::unique_ptr<WalCheckpointer> checkpointer_;  // unhooks db_, so destroyed before it
  Statement upsert_block_, select_block_, delete_block_, insert_record_, select_record_,
      select_current_duplicate_, supersede_by_id_, supersede_by_subject_, delete_record_,
      delete_expired_records_;
  TransactionStatements transactions_;
};

}  // namespace

std::unique_ptr<MemoryStore> open_sqlite_memory_store(const std::string& path, std::string* error) {
  return open_prepared_store<SqliteMemoryStore>(path, "memory", kMemorySchema, error);
}

}  // namespace redline::store
