#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "store/key_store.h"
#include "store/sqlite_database.h"
#include "temp_dir.h"

namespace redline::store {
namespace {

namespace fs = std::filesystem;

using testing::TempDir;

ApiKeyRecord sample_key(std::string id, std::string tenant = "acme") {
  ApiKeyRecord key;
  key.id = std::move(id);
  key.tenant = std::move(tenant);
  key.secret_hash = std::string(64, 'a');
  key.default_label = "INTERNAL";
  key.max_label = "SECRET//NOFORN";
  key.models = {"gpt-4o", "llama-70b", "claude"};
  key.expires_at = 1'900'000'000;
  key.created_at = 1'700'000'000;
  key.description = "ci runner";
  return key;
}

std::unique_ptr<KeyStore> open_or_fail(const std::string& path) {
  std::string error;
  auto store = open_sqlite_store(path, &error);
  EXPECT_NE(store, nullptr) << error;
  return store;
}

TEST(SqliteKeyStore, InMemoryRoundTrip) {
  auto store = open_or_fail(":memory:");
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->ensure_tenant("acme").ok);
  const auto key = sample_key("k_000000000001");
  ASSERT_TRUE(store->insert_key(key).ok);

  auto found = store->find_key("k_000000000001");
  ASSERT_TRUE(found.ok()) << found.error();
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ(**found, key);  // every field, models in order

  auto missing = store->find_key("k_ffffffffffff");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());
}

TEST(SqliteKeyStore, EnsureTenantIsIdempotentAndStampsCreation) {
  auto store = open_or_fail(":memory:");
  ASSERT_TRUE(store);
  const auto before = std::time(nullptr);
  ASSERT_TRUE(store->ensure_tenant("beta").ok);
  ASSERT_TRUE(store->ensure_tenant("acme").ok);
  auto first = store->list_tenants();
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(store->ensure_tenant("acme").ok);
  auto second = store->list_tenants();
  ASSERT_TRUE(second.ok());
  ASSERT_EQ(second->size(), 2u);
  EXPECT_EQ(*first, *second);  // the second ensure changed nothing
  EXPECT_EQ((*second)[0].name, "acme");
  EXPECT_EQ((*second)[1].name, "beta");
  EXPECT_GE((*second)[0].created_at, before);
  EXPECT_LE((*second)[0].created_at, std::time(nullptr));
}

TEST(SqliteKeyStore, InsertRequiresTenantAndUniqueId) {
  auto store = open_or_fail(":memory:");
  ASSERT_TRUE(store);
  auto no_tenant = store->insert_key(sample_key("k_000000000001", "ghost"));
  EXPECT_FALSE(no_tenant.ok);
  EXPECT_NE(no_tenant.message.find("ghost"), std::string::npos) << no_tenant.message;

  ASSERT_TRUE(store->ensure_tenant("acme").ok);
  ASSERT_TRUE(store->insert_key(sample_key("k_000000000001")).ok);
  auto duplicate = store->insert_key(sample_key("k_000000000001"));
  EXPECT_FALSE(duplicate.ok);
  // The failed insert rolled back whole: the original keeps exactly its own models.
  auto found = store->find_key("k_000000000001");
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ((*found)->models.size(), 3u);
}

TEST(SqliteKeyStore, ListFiltersByTenantOldestFirst) {
  auto store = open_or_fail(":memory:");
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->ensure_tenant("acme").ok);
  ASSERT_TRUE(store->ensure_tenant("beta").ok);
  auto newer = sample_key("k_00000000000a");
  newer.created_at = 1'700'000'100;
  newer.models.clear();
  ASSERT_TRUE(store->insert_key(newer).ok);
  ASSERT_TRUE(store->insert_key(sample_key("k_00000000000b")).ok);
  ASSERT_TRUE(store->insert_key(sample_key("k_00000000000c", "beta")).ok);

  auto all = store->list_keys(std::nullopt);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 3u);

  auto acme = store->list_keys("acme");
  ASSERT_TRUE(acme.ok());
  ASSERT_EQ(acme->size(), 2u);
  EXPECT_EQ((*acme)[0].id, "k_00000000000b");
  EXPECT_EQ((*acme)[0].models.size(), 3u);
  EXPECT_EQ((*acme)[1].id, "k_00000000000a");
  EXPECT_TRUE((*acme)[1].models.empty());

  auto nobody = store->list_keys("nobody");
  ASSERT_TRUE(nobody.ok());
  EXPECT_TRUE(nobody->empty());
}

TEST(SqliteKeyStore, RevokeKeepsFirstTimeAndRejectsUnknownId) {
  auto store = open_or_fail(":memory:");
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->ensure_tenant("acme").ok);
  ASSERT_TRUE(store->insert_key(sample_key("k_000000000001")).ok);

  auto unknown = store->revoke_key("k_ffffffffffff", 5);
  EXPECT_FALSE(unknown.ok);
  EXPECT_NE(unknown.message.find("k_ffffffffffff"), std::string::npos);

  ASSERT_TRUE(store->revoke_key("k_000000000001", 1'800'000'000).ok);
  ASSERT_TRUE(store->revoke_key("k_000000000001", 1'800'000'999).ok);
  auto found = store->find_key("k_000000000001");
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ((*found)->revoked_at, 1'800'000'000);
}

TEST(SqliteKeyStore, ReopenKeepsDataAndMigrationsAreIdempotent) {
  TempDir dir;
  const auto path = dir.file("redline.db");
  {
    auto store = open_or_fail(path);
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->ensure_tenant("acme").ok);
    ASSERT_TRUE(store->insert_key(sample_key("k_000000000001")).ok);
  }
  auto store = open_or_fail(path);
  ASSERT_TRUE(store);
  auto found = store->find_key("k_000000000001");
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ(**found, sample_key("k_000000000001"));

  std::string error;
  auto db = open_sqlite_database(path, &error);
  ASSERT_TRUE(db) << error;
  auto version = schema_version(db.get(), "keys");
  ASSERT_TRUE(version.ok());
  EXPECT_EQ(*version, 1);
}

TEST(SqliteKeyStore, TwoStoresOnOneFileSeeEachOthersWrites) {
  TempDir dir;
  const auto path = dir.file("shared.db");
  auto gateway = open_or_fail(path);
  auto cli = open_or_fail(path);
  ASSERT_TRUE(gateway && cli);
  ASSERT_TRUE(cli->ensure_tenant("acme").ok);
  ASSERT_TRUE(cli->insert_key(sample_key("k_000000000001")).ok);
  auto seen = gateway->find_key("k_000000000001");
  ASSERT_TRUE(seen.ok() && seen->has_value());
  EXPECT_FALSE((*seen)->revoked_at);
  ASSERT_TRUE(cli->revoke_key("k_000000000001", 1'800'000'000).ok);
  seen = gateway->find_key("k_000000000001");
  ASSERT_TRUE(seen.ok() && seen->has_value());
  EXPECT_EQ((*seen)->revoked_at, 1'800'000'000);
}

TEST(SqliteKeyStore, UsesWalOnFiles) {
  TempDir dir;
  const auto path = dir.file("wal.db");
  std::string error;
  auto db = open_sqlite_database(path, &error);
  ASSERT_TRUE(db) << error;
  sqlite3_stmt* raw = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db.get(), "PRAGMA journal_mode", -1, &raw, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(raw), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(raw, 0)), "wal");
  sqlite3_finalize(raw);
  ASSERT_EQ(sqlite3_prepare_v2(db.get(), "PRAGMA foreign_keys", -1, &raw, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(raw), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(raw, 0), 1);
  sqlite3_finalize(raw);
}

TEST(SqliteKeyStore, MissingParentDirectoryFails) {
  TempDir dir;
  std::string error;
  auto store = open_sqlite_store(dir.file("no/such/dir/redline.db"), &error);
  EXPECT_EQ(store, nullptr);
  EXPECT_FALSE(error.empty());
}

TEST(SqliteMigrations, RunOnlyNewScriptsPerModule) {
  std::string error;
  auto db = open_sqlite_database(":memory:", &error);
  ASSERT_TRUE(db) << error;
  std::vector<std::string_view> audit = {"CREATE TABLE audit_a(x INTEGER)"};
  ASSERT_TRUE(apply_migrations(db.get(), "audit", audit).ok);
  ASSERT_TRUE(apply_migrations(db.get(), "audit", audit).ok);  // would fail if re-run
  audit.push_back("CREATE TABLE audit_b(y INTEGER)");
  ASSERT_TRUE(apply_migrations(db.get(), "audit", audit).ok);
  EXPECT_EQ(*schema_version(db.get(), "audit"), 2);
  EXPECT_EQ(*schema_version(db.get(), "usage"), 0);  // modules are versioned independently

  std::vector<std::string_view> usage = {"CREATE TABLE usage(x INTEGER)"};
  ASSERT_TRUE(apply_migrations(db.get(), "usage", usage).ok);
  EXPECT_EQ(*schema_version(db.get(), "usage"), 1);
  EXPECT_EQ(*schema_version(db.get(), "audit"), 2);
}

TEST(SqliteMigrations, FailedScriptChangesNothing) {
  std::string error;
  auto db = open_sqlite_database(":memory:", &error);
  ASSERT_TRUE(db) << error;
  const std::vector<std::string_view> broken = {"CREATE TABLE good(x INTEGER)",
                                                "CREATE TABLE oops(x INTEGER"};
  auto status = apply_migrations(db.get(), "sessions", broken);
  EXPECT_FALSE(status.ok);
  EXPECT_NE(status.message.find("sessions migration 2"), std::string::npos) << status.message;
  EXPECT_EQ(*schema_version(db.get(), "sessions"), 0);
  // Script 1 was rolled back with the rest, so it can run again.
  EXPECT_TRUE(apply_migrations(db.get(), "sessions", {broken[0]}).ok);
}

TEST(SqliteMigrations, NewerDatabaseIsRefused) {
  std::string error;
  auto db = open_sqlite_database(":memory:", &error);
  ASSERT_TRUE(db) << error;
  ASSERT_TRUE(apply_migrations(db.get(), "keys", {"SELECT 1", "SELECT 2"}).ok);
  auto status = apply_migrations(db.get(), "keys", {"SELECT 1"});
  EXPECT_FALSE(status.ok);
  EXPECT_NE(status.message.find("newer"), std::string::npos) << status.message;
}

}  // namespace
}  // namespace redline::store
