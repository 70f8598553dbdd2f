// KeyStore on SQLite. One connection per store, serialised by a mutex: the key service caches
// records, so the store sees a trickle of look-ups rather than one per request, and a single
// connection keeps prepared statements simple to reuse.
#include <mutex>

#include "store/key_store.h"
#include "store/sqlite_statement.h"

namespace redline::store {
namespace {

// The "keys" module's schema; append-only (see sqlite_database.h).
const std::vector<std::string_view> kKeysSchema = {
    R"sql(
CREATE TABLE tenants (
  name TEXT PRIMARY KEY,
  created_at INTEGER NOT NULL
);
CREATE TABLE api_keys (
  id TEXT PRIMARY KEY,
  tenant TEXT NOT NULL REFERENCES tenants(name),
  secret_hash TEXT NOT NULL,
  default_label TEXT NOT NULL,
  max_label TEXT NOT NULL,
  expires_at INTEGER,
  revoked_at INTEGER,
  created_at INTEGER NOT NULL,
  description TEXT NOT NULL
);
CREATE INDEX api_keys_by_tenant ON api_keys(tenant, created_at);
CREATE TABLE api_key_models (
  key_id TEXT NOT NULL REFERENCES api_keys(id) ON DELETE CASCADE,
  position INTEGER NOT NULL,
  model TEXT NOT NULL,
  PRIMARY KEY (key_id, position)
);
)sql",
};

constexpr const char* kKeyColumns =
    "id, tenant, secret_hash, default_label, max_label, expires_at, revoked_at, created_at, "
    "description";

ApiKeyRecord key_from_row(const StatementUse& row) {
  ApiKeyRecord key;
  key.id = row.text(0);
  key.tenant = row.text(1);
  key.secret_hash = row.text(2);
  key.default_label = row.text(3);
  key.max_label = row.text(4);
  key.expires_at = row.optional_integer(5);
  key.revoked_at = row.optional_integer(6);
  key.created_at = row.integer(7);
  key.description = row.text(8);
  return key;
}

class SqliteKeyStore final : public KeyStore {
 public:
  explicit SqliteKeyStore(SqliteConnection db) : db_(std::move(db)) {}

  // Prepares every statement once; false and `*error` set when the schema doesn't match.
  bool prepare(std::string* error) {
    const std::string columns = kKeyColumns;
    const CachedStatement statements[] = {
        {&insert_tenant_,
         "INSERT INTO tenants(name, created_at) VALUES(?, unixepoch()) "
         "ON CONFLICT(name) DO NOTHING"},
        {&select_tenants_, "SELECT name, created_at FROM tenants ORDER BY name"},
        {&insert_key_, "INSERT INTO api_keys(" + columns + ") VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)"},
        {&insert_model_, "INSERT INTO api_key_models(key_id, position, model) VALUES(?, ?, ?)"},
        {&select_key_, "SELECT " + columns + " FROM api_keys WHERE id = ?"},
        {&select_models_, "SELECT model FROM api_key_models WHERE key_id = ? ORDER BY position"},
        {&select_all_keys_, "SELECT " + columns + " FROM api_keys ORDER BY created_at, id"},
        {&select_tenant_keys_,
         "SELECT " + columns + " FROM api_keys WHERE tenant = ? ORDER BY created_at, id"},
        {&revoke_key_, "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?"},
    };
    return prepare_statements(db_.get(), statements, error) &&
           transactions_.prepare(db_.get(), error);
  }

  Status ensure_tenant(std::string_view name) override {
    std::lock_guard lock(mutex_);
    StatementUse insert(insert_tenant_.get());
    insert.bind(1, name);
    if (insert.step() != SQLITE_DONE) return failure("cannot create tenant");
    return Status::success();
  }

  Result<std::vector<TenantRecord>> list_tenants() override {
    std::lock_guard lock(mutex_);
    StatementUse select(select_tenants_.get());
    std::vector<TenantRecord> tenants;
    int rc;
    while ((rc = select.step()) == SQLITE_ROW) {
      tenants.push_back({select.text(0), select.integer(1)});
    }
    if (rc != SQLITE_DONE) return failure("cannot list tenants");
    return tenants;
  }

  Status insert_key(const ApiKeyRecord& key) override {
    std::lock_guard lock(mutex_);
    Transaction transaction(db_.get(), transactions_);
    if (auto status = transaction.begin(Transaction::Kind::kWrite); !status) return status;
    if (auto status = insert_key_rows(key); !status) return status;
    return transaction.commit();
  }

  Result<std::optional<ApiKeyRecord>> find_key(std::string_view id) override {
    std::lock_guard lock(mutex_);
    std::optional<ApiKeyRecord> key;
    {
      StatementUse select(select_key_.get());
      select.bind(1, id);
      const int rc = select.step();
      if (rc == SQLITE_DONE) return key;
      if (rc != SQLITE_ROW) return failure("cannot look up key");
      key = key_from_row(select);
    }
    if (auto status = load_models(*key); !status) return status;
    return key;
  }

  Result<std::vector<ApiKeyRecord>> list_keys(std::optional<std::string_view> tenant) override {
    std::lock_guard lock(mutex_);
    std::vector<ApiKeyRecord> keys;
    {
      StatementUse select(tenant ? select_tenant_keys_.get() : select_all_keys_.get());
      if (tenant) select.bind(1, *tenant);
      int rc;
      while ((rc = select.step()) == SQLITE_ROW) keys.push_back(key_from_row(select));
      if (rc != SQLITE_DONE) return failure("cannot list keys");
    }
    for (auto& key : keys) {
      if (auto status = load_models(key); !status) return status;
    }
    return keys;
  }

  Status revoke_key(std::string_view id, std::int64_t at) override {
    std::lock_guard lock(mutex_);
    StatementUse update(revoke_key_.get());
    update.bind(1, at);
    update.bind(2, id);
    if (update.step() != SQLITE_DONE) return failure("cannot revoke key");
    if (sqlite3_changes(db_.get()) == 0) {
      return Status::error("no key with id " + std::string(id));
    }
    return Status::success();
  }

 private:
  // Call with mutex_ held, inside a transaction.
  Status insert_key_rows(const ApiKeyRecord& key) {
    {
      StatementUse insert(insert_key_.get());
      insert.bind(1, key.id);
      insert.bind(2, key.tenant);
      insert.bind(3, key.secret_hash);
      insert.bind(4, key.default_label);
      insert.bind(5, key.max_label);
      insert.bind(6, key.expires_at);
      insert.bind(7, key.revoked_at);
      insert.bind(8, key.created_at);
      insert.bind(9, key.description);
      if (insert.step() != SQLITE_DONE) {
        if (sqlite3_extended_errcode(db_.get()) == SQLITE_CONSTRAINT_FOREIGNKEY) {
          return Status::error("no tenant named " + key.tenant);
        }
        if (sqlite3_extended_errcode(db_.get()) == SQLITE_CONSTRAINT_PRIMARYKEY) {
          return Status::error("a key with id " + key.id + " exists already");
        }
        return failure("cannot insert key");
      }
    }
    for (std::size_t position = 0; position < key.models.size(); ++position) {
      StatementUse insert(insert_model_.get());
      insert.bind(1, key.id);
      insert.bind(2, static_cast<std::int64_t>(position));
      insert.bind(3, key.models[position]);
      if (insert.step() != SQLITE_DONE) return failure("cannot insert key models");
    }
    return Status::success();
  }

  // Call with mutex_ held.
  Status load_models(ApiKeyRecord& key) {
    StatementUse select(select_models_.get());
    select.bind(1, key.id);
    int rc;
    while ((rc = select.step()) == SQLITE_ROW) key.models.push_back(select.text(0));
    if (rc != SQLITE_DONE) return failure("cannot read key models");
    return Status::success();
  }

  Status failure(std::string_view what) const {
    return Status::error(std::string(what) + ": " + sqlite3_errmsg(db_.get()));
  }

  std::mutex mutex_;
  SqliteConnection db_;  // declared before the statements: they must be finalized first
  Statement insert_tenant_, select_tenants_, insert_key_, insert_model_, select_key_,
      select_models_, select_all_keys_, select_tenant_keys_, revoke_key_;
  TransactionStatements transactions_;
};

}  // namespace

std::unique_ptr<KeyStore> open_sqlite_store(const std::string& path, std::string* error) {
  return open_prepared_store<SqliteKeyStore>(path, "keys", kKeysSchema, error);
}

}  // namespace redline::store
