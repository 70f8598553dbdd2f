#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "store/memory_store.h"
#include "store/session_store.h"
#include "store/sqlite_database.h"
#include "temp_dir.h"

namespace redline::store {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

using testing::TempDir;

constexpr std::int64_t kT0 = 1'700'000'000;
const MemoryNamespace kTenantWide{"", ""};
const MemoryNamespace kUser1{"u1", ""};
const MemoryNamespace kPlanner{"u1", "planner"};
const MemoryNamespace kUser2{"u2", ""};

std::unique_ptr<MemoryStore> open_or_fail(const std::string& path) {
  std::string error;
  auto store = open_sqlite_memory_store(path, &error);
  EXPECT_NE(store, nullptr) << error;
  return store;
}

MemoryBlock block(const std::string& id, MemoryNamespace scope, const std::string& name,
                  const std::string& tenant = "acme") {
  MemoryBlock stored;
  stored.id = id;
  stored.tenant = tenant;
  stored.scope = std::move(scope);
  stored.name = name;
  stored.value = "value of " + name;
  stored.label = "INTERNAL";
  stored.max_chars = 2000;
  stored.created_at = kT0;
  stored.updated_at = kT0;
  return stored;
}

MemoryRecord record(const std::string& id, const std::string& text,
                    MemoryNamespace scope = kTenantWide, std::int64_t at = kT0,
                    const std::string& tenant = "acme") {
  MemoryRecord stored;
  stored.id = id;
  stored.tenant = tenant;
  stored.scope = std::move(scope);
  stored.text = text;
  stored.source = "api";
  stored.label = "INTERNAL";
  stored.created_at = at;
  stored.valid_from = at;
  return stored;
}

MemoryRecord with_subject(MemoryRecord stored, const std::string& subject) {
  stored.subject = subject;
  return stored;
}

RecordQuery query(const std::string& text, std::vector<MemoryNamespace> namespaces = {},
                  const std::string& tenant = "acme") {
  RecordQuery search;
  search.tenant = tenant;
  search.namespaces = std::move(namespaces);
  search.text = text;
  search.now = kT0 + 1'000;
  return search;
}

// Adds and expects success; the result as stored.
AddedRecord add(MemoryStore& store, const MemoryRecord& stored, std::string_view supersedes = "") {
  auto added = store.add_record(stored, supersedes);
  EXPECT_TRUE(added.ok()) << added.error();
  return added.ok() ? *added : AddedRecord{};
}

std::vector<std::string> ids_of(const Result<std::vector<ScoredRecord>>& found) {
  EXPECT_TRUE(found.ok()) << found.error();
  std::vector<std::string> ids;
  if (!found.ok()) return ids;
  for (const auto& scored : *found) ids.push_back(scored.record.id);
  return ids;
}

std::vector<std::string> block_ids(const Result<std::vector<MemoryBlock>>& blocks) {
  EXPECT_TRUE(blocks.ok()) << blocks.error();
  std::vector<std::string> ids;
  if (!blocks.ok()) return ids;
  for (const auto& entry : *blocks) ids.push_back(entry.id);
  return ids;
}

std::optional<MemoryRecord> find(MemoryStore& store, const std::string& id,
                                 const std::string& tenant = "acme") {
  auto found = store.find_record(tenant, id);
  EXPECT_TRUE(found.ok()) << found.error();
  return found.ok() ? *found : std::nullopt;
}

TEST(SqliteMemoryStore, PutBlockInsertsThenReplacesByName) {
  auto store = open_or_fail(":memory:");
  ASSERT_TRUE(store);
  const auto persona = block("blk_1", kUser1, "persona");
  auto put = store->put_block(persona);
  ASSERT_TRUE(put.ok()) << put.error();
  EXPECT_EQ(*put, persona);

  auto replacement = block("blk_2", kUser1, "persona");
  replacement.value = "terse";
  replacement.label = "SECRET";
  replacement.max_chars = 100;
  replacement.created_at = kT0 + 50;
  replacement.updated_at = kT0 + 50;
  put = store->put_block(replacement);
  ASSERT_TRUE(put.ok()) << put.error();
  auto expected = persona;  // its id and created_at stay
  expected.value = "terse";
  expected.label = "SECRET";
  expected.max_chars = 100;
  expected.updated_at = kT0 + 50;
  EXPECT_EQ(*put, expected);
  auto found = store->find_block("acme", "blk_1");
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ(**found, expected);
  found = store->find_block("acme", "blk_2");
  ASSERT_TRUE(found.ok());
  EXPECT_FALSE(found->has_value());

  // The same name in another namespace is another block.
  put = store->put_block(block("blk_3", kPlanner, "persona"));
  ASSERT_TRUE(put.ok());
  EXPECT_EQ(put->id, "blk_3");
  // A taken id under another name is an error.
  EXPECT_FALSE(store->put_block(block("blk_3", kPlanner, "other")).ok());
}

TEST(SqliteMemoryStore, ListBlocksTenantWideThenUserThenAgentByName) {
  auto store = open_or_fail(":memory:");
  ASSERT_TRUE(store);
  for (const auto& entry :
       {block("b_agent", kPlanner, "alpha"), block("b_user2", kUser2, "alpha"),
        block("b_user1_z", kUser1, "zeta"), block("b_user1_a", kUser1, "alpha"),
        block("b_tenant_p", kTenantWide, "policy"), block("b_tenant_a", kTenantWide, "about"),
        block("b_other", kTenantWide, "about", "beta")}) {
    ASSERT_TRUE(store->put_block(entry).ok());
  }
  EXPECT_THAT(
      block_ids(store->list_blocks("acme", {})),
      ElementsAre("b_tenant_a", "b_tenant_p", "b_user1_a", "b_user1_z", "b_user2", "b_agent"));
  EXPECT_THAT(block_ids(store->list_blocks("acme", {kPlanner, kUser1, kTenantWide})),
              ElementsAre("b_tenant_a", "b_tenant_p", "b_user1_a", "b_user1_z", "b_agent"));
  EXPECT_THAT(block_ids(store->list_blocks("acme", {kPlanner})), ElementsAre("b_agent"));
  EXPECT_THAT(block_ids(store->list_blocks("beta", {})), ElementsAre("b_other"));
  EXPECT_THAT(block_ids(store->list_blocks("gamma", {})), IsEmpty());
}

TEST(SqliteMemoryStore, BlocksOfAnotherTenantAreMissing) {
  auto store = open_or_fail(":memory:");
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->put_block(block("blk_1", kUser1, "persona")).ok());
  auto found = store->find_block("beta", "blk_1");
  ASSERT_TRUE(found.ok());
  EXPECT_FALSE(found->has_value());
  auto deleted = store->delete_block("beta", "blk_1");
  ASSERT_TRUE(deleted.ok());
  EXPECT_FALSE(*deleted);
  // beta's block of the same namespace and name is its own.
  auto put = store->put_block(block("blk_9", kUser1, "persona", "beta"));
  ASSERT_TRUE(put.ok());
  EXPECT_EQ(put->id, "blk_9");

  deleted = store->delete_block("acme", "blk_1");
  ASSERT_TRUE(deleted.ok());
  EXPECT_TRUE(*deleted);
  found = store->find_block("acme", "blk_1");
  ASSERT_TRUE(found.ok());
  EXPECT_FALSE(found->has_value());
}

TEST(SqliteMemoryStore, AddedRecordRoundTrips) {
  auto store = open_or_fail(":memory:");
  ASSERT_TRUE(store);
  auto stored = with_subject(record("mem_1", "The user lives in Paris", kPlanner), "user.city");
  stored.source = "extraction:resp_1";
  stored.expires_at = kT0 + 86'400;
  // Ignored on add: a new record is current.
  stored.valid_until = kT0 + 5;
  stored.superseded_by = "mem_0";
  auto added = add(*store, stored);
  auto expected = stored;
  expected.valid_until.reset();
  expected.superseded_by.clear();
  EXPECT_EQ(added.record, expected);
  EXPECT_FALSE(added.duplicate);
  EXPECT_THAT(added.superseded, IsEmpty());
  EXPECT_EQ(find(*store, "mem_1"), expected);
  EXPECT_EQ(find(*store, "mem_1", "beta"), std::nullopt);
  // A taken id is an error.
  EXPECT_FALSE(store->add_record(record("mem_1", "another fact"), "").ok());
}

TEST(SqliteMemoryStore, SameSubjectSupersedesTheCurrentRecord) {
  auto store = open_or_fail(":memory:");
  ASSERT_TRUE(store);
  add(*store, with_subject(record("mem_paris", "lives in Paris", kUser1, kT0), "user.city"));
  // Same subject in another namespace: untouched by what follows.
  add(*store, with_subject(record("mem_rome", "lives in Rome", kUser2, kT0), "user.city"));
  auto added = add(*store, with_subject(record("mem_berlin", "lives in Berlin", kUser1, kT0 + 100),
                                        "user.city"));
  EXPECT_THAT(added.superseded, ElementsAre("mem_paris"));

  auto old = find(*store, "mem_paris");
  ASSERT_TRUE(old);
  EXPECT_EQ(old->valid_until, kT0 + 100);
  EXPECT_EQ(old->superseded_by, "mem_berlin");
  auto rome = find(*store, "mem_rome");
  ASSERT_TRUE(rome);
  EXPECT_EQ(rome->superseded_by, "");

  EXPECT_THAT(ids_of(store->search_records(query("lives", {kUser1}))), ElementsAre("mem_berlin"));
  auto history = query("lives", {kUser1});
  history.include_superseded = true;
  EXPECT_THAT(ids_of(store->search_records(history)),
              UnorderedElementsAre("mem_paris", "mem_berlin"));
  history.include_superseded = false;
  history.as_of = kT0 + 50;
  EXPECT_THAT(ids_of(store->search_records(history)), ElementsAre("mem_paris"));
  history.as_of = kT0 + 100;
  EXPECT_THAT(ids_of(store->search_records(history)), ElementsAre("mem_berlin"));
  history.as_of = kT0 - 1;
  EXPECT_THAT(ids_of(store->search_records(history)), IsEmpty());
  // Without text too.
  history.text = "";
  history.as_of = kT0 + 50;
  EXPECT_THAT(ids_of(store->search_records(history)), ElementsAre("mem_paris"));
}

TEST(SqliteMemoryStore, ExplicitSupersessionMustNameACurrentRecordOfTheNamespace) {
  auto store = open_or_fail(":memory:");
  ASSERT_TRUE(store);
  add(*store, record("mem_1", "prefers tea", kUser1, kT0));
  add(*store, record("mem_other_ns", "prefers juice", kUser2, kT0));
  add(*store, record("mem_beta", "prefers milk", kUser1, kT0, "beta"));
  auto added = add(*store, record("mem_2", "prefers coffee", kUser1, kT0 + 10), "mem_1");
  EXPECT_THAT(added.superseded, ElementsAre("mem_1"));
  auto old = find(*store, "mem_1");
  ASSERT_TRUE(old);
  EXPECT_EQ(old->valid_until, kT0 + 10);
  EXPECT_EQ(old->superseded_by, "mem_2");

  // Each failure leaves no trace: the new record is not added.
  for (const std::string target : {"mem_1", "mem_none", "mem_other_ns", "mem_beta"}) {
    auto refused = store->add_record(record("mem_3", "prefers cocoa", kUser1, kT0 + 20), target);
    EXPECT_FALSE(refused.ok()) << target;
    EXPECT_NE(refused.error().find(target), std::string::npos) << refused.error();
    EXPECT_EQ(find(*store, "mem_3"), std::nullopt) << target;
  }
  EXPECT_EQ(find(*store, "mem_other_ns")->superseded_by, "");
  EXPECT_EQ(find(*store, "mem_beta", "beta")->superseded_by, "");
  EXPECT_EQ(find(*store, "mem_2")->superseded_by, "");

  // An explicit target and a subject match are both superseded.
  add(*store, with_subject(record("mem_city", "lives in Oslo", kUser1, kT0), "user.city"));
  added = add(
      *store,
      with_subject(record("mem_4", "lives in Bergen, drinks cocoa", kUser1, kT0 + 30), "user.city"),
      "mem_2");
  EXPECT_THAT(added.superseded, ElementsAre("mem_2", "mem_city"));
}

TEST(SqliteMemoryStore, DuplicateTextIsNotAddedTwice) {
  auto store = open_or_fail(":memory:");
  ASSERT_TRUE(store);
  const auto original =
      with_subject(record("mem_1", "The user likes green tea", kUser1, kT0), "user.drink");
  add(*store, original);
  auto again =
      add(*store,
          with_subject(record("mem_2", "  the USER\tlikes \n green   TEA ", kUser1, kT0 + 5),
                       "user.drink"),
          "mem_1");
  EXPECT_TRUE(again.duplicate);
  EXPECT_EQ(again.record, original);
  EXPECT_THAT(again.superseded, IsEmpty());
  EXPECT_EQ(find(*store, "mem_2"), std::nullopt);
  EXPECT_EQ(find(*store, "mem_1")->superseded_by, "");

  // Another subject, another namespace or other words are no duplicates.
  EXPECT_FALSE(
      add(*store, with_subject(record("mem_3", "The user likes green tea", kUser1), "user.morning"))
          .duplicate);
  EXPECT_FALSE(
      add(*store, with_subject(record("mem_4", "The user likes green tea", kUser2), "user.drink"))
          .duplicate);
  auto other_words =
      add(*store, with_subject(record("mem_5", "The user likes green tea!", kUser1), "user.drink"));
  EXPECT_FALSE(other_words.duplicate);
  EXPECT_THAT(other_words.superseded, ElementsAre("mem_1"));
}

TEST(SqliteMemoryStore, SupersededOrExpiredRecordsAreNoDuplicates) {
  auto store = open_or_fail(":memory:");
  ASSERT_TRUE(store);
  add(*store, record("mem_1", "likes tea", kUser1, kT0));
  add(*store, record("mem_2", "likes coffee", kUser1, kT0 + 1), "mem_1");
  auto back = add(*store, record("mem_3", "likes tea", kUser1, kT0 + 2), "mem_2");
  EXPECT_FALSE(back.duplicate);
  EXPECT_THAT(back.superseded, ElementsAre("mem_2"));

  auto expiring = record("mem_4", "is on holiday", kUser1, kT0);
  expiring.expires_at = kT0 + 10;
  add(*store, expiring);
  EXPECT_TRUE(add(*store, record("mem_5", "is on holiday", kUser1, kT0 + 9)).duplicate);
  EXPECT_FALSE(add(*store, record("mem_6", "is on holiday", kUser1, kT0 + 10)).duplicate);
}

TEST(SqliteMemoryStore, ExpiredRecordsAreNotFoundAndArePurged) {
  auto store = open_or_fail(":memory:");
  ASSERT_TRUE(store);
  auto expiring = record("mem_1", "parked on level three");
  expiring.expires_at = kT0 + 500;
  add(*store, expiring);
  add(*store, record("mem_2", "parked on level four"));

  auto before = query("parked");
  before.now = kT0 + 499;
  EXPECT_THAT(ids_of(store->search_records(before)), UnorderedElementsAre("mem_1", "mem_2"));
  auto at_expiry = query("parked");
  at_expiry.now = kT0 + 500;
  EXPECT_THAT(ids_of(store->search_records(at_expiry)), ElementsAre("mem_2"));
  at_expiry.text = "";
  EXPECT_THAT(ids_of(store->search_records(at_expiry)), ElementsAre("mem_2"));
  at_expiry.include_superseded = true;
  EXPECT_THAT(ids_of(store->search_records(at_expiry)), ElementsAre("mem_2"));

  auto purged = store->purge_expired_records(kT0 + 499);
  ASSERT_TRUE(purged.ok());
  EXPECT_EQ(*purged, 0);
  purged = store->purge_expired_records(kT0 + 500);
  ASSERT_TRUE(purged.ok());
  EXPECT_EQ(*purged, 1);
  EXPECT_EQ(find(*store, "mem_1"), std::nullopt);
  EXPECT_TRUE(find(*store, "mem_2"));
}

TEST(SqliteMemoryStore, MoreMatchingWordsRankFirst) {
  auto store = open_or_fail(":memory:");
  ASSERT_TRUE(store);
  // Unrelated records give BM25 a corpus in which the query's words are rare.
  for (int n = 0; n < 10; ++n) {
    add(*store, record("mem_filler" + std::to_string(n), "note " + std::to_string(n) + " on logs",
                       kTenantWide, kT0 - 100));
  }
  add(*store, record("mem_one", "Paris has good weather", kTenantWide, kT0 + 3));
  add(*store, record("mem_all", "Paris is the capital of France", kTenantWide, kT0));
  add(*store, record("mem_none", "Berlin has many museums", kTenantWide, kT0 + 2));
  add(*store, record("mem_two", "Paris is in France", kTenantWide, kT0 + 1));

  auto found = store->search_records(query("capital of France, Paris?"));
  EXPECT_THAT(ids_of(found), ElementsAre("mem_all", "mem_two", "mem_one"));
  ASSERT_TRUE(found.ok());
  ASSERT_EQ(found->size(), 3u);
  EXPECT_GT((*found)[0].score, (*found)[1].score);
  EXPECT_GT((*found)[1].score, (*found)[2].score);
  EXPECT_GT((*found)[2].score, 0);

  auto limited = query("capital France Paris");
  limited.limit = 1;
  EXPECT_THAT(ids_of(store->search_records(limited)), ElementsAre("mem_all"));

  // No text: newest first, unscored.
  auto newest = query("");
  newest.limit = 4;
  auto listed = store->search_records(newest);
  EXPECT_THAT(ids_of(listed), ElementsAre("mem_one", "mem_none", "mem_two", "mem_all"));
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ((*listed)[0].score, 0);
}

TEST(SqliteMemoryStore, QueryTextIsNeverFts5Syntax) {
  auto store = open_or_fail(":memory:");
  ASSERT_TRUE(store);
  add(*store, record("mem_1", "salt and pepper near the stove"));
  add(*store, record("mem_2", "Paris is lovely"));
  std::string long_text;
  while (long_text.size() < 10'000) long_text += "quote \" NEAR( * - AND ) paris ";
  const std::vector<std::string> hostile = {
      "\"",
      "\"\"",
      "\"unbalanced",
      "NEAR(",
      "NEAR(salt pepper",
      "NEAR(salt pepper, 1)",
      "*",
      "sal*",
      "-",
      "-paris",
      "AND",
      "paris AND",
      "OR OR",
      "NOT paris",
      "(((",
      ")",
      "text:paris",
      "{text}: paris",
      "^paris",
      "paris + lovely",
      "'; DROP TABLE memory_records; --",
      std::string("\xff\xfe\x80", 3),
      "\xe2\x80\x94",  // an em dash: non-ASCII, yet not a word to FTS5
      std::string("nul\0byte", 8),
      long_text,
  };
  for (const auto& text : hostile) {
    auto found = store->search_records(query(text));
    EXPECT_TRUE(found.ok()) << text.substr(0, 40) << ": " << found.error();
  }
  // Operators are plain words: "AND" finds the record with "and", "NEAR(" the one with "near".
  EXPECT_THAT(ids_of(store->search_records(query("AND"))), ElementsAre("mem_1"));
  EXPECT_THAT(ids_of(store->search_records(query("NEAR("))), ElementsAre("mem_1"));
  EXPECT_THAT(ids_of(store->search_records(query("-paris"))), ElementsAre("mem_2"));
  EXPECT_THAT(ids_of(store->search_records(query("\"paris\""))), ElementsAre("mem_2"));
  // A prefix star is not a wildcard.
  EXPECT_THAT(ids_of(store->search_records(query("sal*"))), IsEmpty());
  EXPECT_THAT(ids_of(store->search_records(query(long_text))),
              UnorderedElementsAre("mem_1", "mem_2"));
  // Text without a word matches nothing, unlike no text at all.
  EXPECT_THAT(ids_of(store->search_records(query("  \"*( - ) "))), IsEmpty());
  EXPECT_THAT(ids_of(store->search_records(query(""))), ElementsAre("mem_2", "mem_1"));
}

TEST(SqliteMemoryStore, OnlyTheFirst32WordsAreSearched) {
  auto store = open_or_fail(":memory:");
  ASSERT_TRUE(store);
  add(*store, record("mem_1", "zanzibar"));
  std::string text;
  for (int word = 0; word < 32; ++word) text += "filler" + std::to_string(word) + " ";
  EXPECT_THAT(ids_of(store->search_records(query(text + "zanzibar"))), IsEmpty());
  text.erase(text.rfind("filler"));
  EXPECT_THAT(ids_of(store->search_records(query(text + "zanzibar"))), ElementsAre("mem_1"));
}

// Counts the rows of the full-text index matching an FTS5 expression, past the store.
int count_index_matches(sqlite3* db, const std::string& match) {
  sqlite3_stmt* raw = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db,
                               "SELECT count(*) FROM memory_records_fts WHERE "
                               "memory_records_fts MATCH ?",
                               -1, &raw, nullptr),
            SQLITE_OK)
      << sqlite3_errmsg(db);
  sqlite3_bind_text(raw, 1, match.c_str(), -1, SQLITE_TRANSIENT);
  EXPECT_EQ(sqlite3_step(raw), SQLITE_ROW) << sqlite3_errmsg(db);
  const int count = sqlite3_column_int(raw, 0);
  sqlite3_finalize(raw);
  return count;
}

TEST(SqliteMemoryStore, ErasureRemovesTheTextFromTheIndex) {
  TempDir dir;
  const auto path = dir.file("memory.db");
  auto store = open_or_fail(path);
  ASSERT_TRUE(store);
  add(*store, record("mem_1", "the vault codeword is zanzibar", kUser1, kT0));
  add(*store, record("mem_2", "the vault is in the basement", kUser1, kT0 + 1), "mem_1");
  add(*store, record("mem_3", "an unrelated codeword: kilimanjaro"));

  auto deleted = store->delete_record("beta", "mem_1");
  ASSERT_TRUE(deleted.ok());
  EXPECT_FALSE(*deleted);
  deleted = store->delete_record("acme", "mem_1");
  ASSERT_TRUE(deleted.ok());
  EXPECT_TRUE(*deleted);
  deleted = store->delete_record("acme", "mem_1");
  ASSERT_TRUE(deleted.ok());
  EXPECT_FALSE(*deleted);

  auto history = query("zanzibar codeword");
  history.include_superseded = true;
  EXPECT_THAT(ids_of(store->search_records(history)), ElementsAre("mem_3"));
  EXPECT_EQ(find(*store, "mem_1"), std::nullopt);

  // Straight at the index, past the store: the erased terms are gone, the others are there.
  std::string error;
  auto db = open_sqlite_database(path, &error);
  ASSERT_TRUE(db) << error;
  auto count_matches = [&](const char* match) { return count_index_matches(db.get(), match); };
  EXPECT_EQ(count_matches("zanzibar"), 0);
  EXPECT_EQ(count_matches("codeword"), 1);
  EXPECT_EQ(count_matches("vault"), 1);
  EXPECT_EQ(sqlite3_exec(db.get(),
                         "INSERT INTO memory_records_fts(memory_records_fts) "
                         "VALUES('integrity-check')",
                         nullptr, nullptr, nullptr),
            SQLITE_OK)
      << sqlite3_errmsg(db.get());

  deleted = store->delete_record("acme", "mem_2");
  ASSERT_TRUE(deleted.ok() && *deleted);
  EXPECT_EQ(count_matches("vault"), 0);
}

TEST(SqliteMemoryStore, ErasedSupersederKeepsTheOldRecordSuperseded) {
  auto store = open_or_fail(":memory:");
  ASSERT_TRUE(store);
  add(*store, record("mem_1", "likes tea", kUser1, kT0));
  add(*store, record("mem_2", "likes coffee", kUser1, kT0 + 1), "mem_1");
  auto deleted = store->delete_record("acme", "mem_2");
  ASSERT_TRUE(deleted.ok() && *deleted);
  auto old = find(*store, "mem_1");
  ASSERT_TRUE(old);
  EXPECT_EQ(old->superseded_by, "mem_2");
  EXPECT_THAT(ids_of(store->search_records(query("likes"))), IsEmpty());
}

TEST(SqliteMemoryStore, QueriesSeeOnlyTheirNamespacesAndTenant) {
  auto store = open_or_fail(":memory:");
  ASSERT_TRUE(store);
  add(*store, record("mem_tenant", "office wifi password rotates monthly", kTenantWide, kT0));
  add(*store, record("mem_u1", "u1 office is on floor two", kUser1, kT0 + 1));
  add(*store, record("mem_planner", "planner drafts office plans", kPlanner, kT0 + 2));
  add(*store, record("mem_u2", "u2 office is remote", kUser2, kT0 + 3));
  add(*store, record("mem_beta", "beta office", kTenantWide, kT0 + 4, "beta"));

  EXPECT_THAT(ids_of(store->search_records(query("office", {kTenantWide, kUser1}))),
              UnorderedElementsAre("mem_tenant", "mem_u1"));
  EXPECT_THAT(ids_of(store->search_records(query("", {kPlanner, kTenantWide}))),
              ElementsAre("mem_planner", "mem_tenant"));
  EXPECT_THAT(ids_of(store->search_records(query("office"))),
              UnorderedElementsAre("mem_tenant", "mem_u1", "mem_planner", "mem_u2"));
  EXPECT_THAT(ids_of(store->search_records(query("office", {}, "beta"))), ElementsAre("mem_beta"));
  EXPECT_THAT(ids_of(store->search_records(query("office", {}, "gamma"))), IsEmpty());

  // Another tenant can neither find, erase nor supersede acme's records.
  EXPECT_EQ(find(*store, "mem_u1", "beta"), std::nullopt);
  auto deleted = store->delete_record("beta", "mem_u1");
  ASSERT_TRUE(deleted.ok());
  EXPECT_FALSE(*deleted);
  EXPECT_FALSE(
      store->add_record(record("mem_x", "hijack", kUser1, kT0 + 5, "beta"), "mem_u1").ok());
  EXPECT_EQ(find(*store, "mem_u1")->superseded_by, "");
}

TEST(SqliteMemoryStore, SubjectFiltersSearch) {
  auto store = open_or_fail(":memory:");
  ASSERT_TRUE(store);
  add(*store, with_subject(record("mem_city", "lives in Paris", kUser1, kT0), "user.city"));
  add(*store, with_subject(record("mem_job", "works in Paris", kUser1, kT0 + 1), "user.job"));
  auto by_subject = query("Paris");
  by_subject.subject = "user.city";
  EXPECT_THAT(ids_of(store->search_records(by_subject)), ElementsAre("mem_city"));
  by_subject.text = "";
  by_subject.subject = "user.job";
  EXPECT_THAT(ids_of(store->search_records(by_subject)), ElementsAre("mem_job"));
}

// However many writers race on one subject, exactly one record stays current.
TEST(SqliteMemoryStore, ConcurrentSupersessionLeavesOneCurrentRecord) {
  TempDir dir;
  const auto path = dir.file("memory.db");
  auto first = open_or_fail(path);
  auto second = open_or_fail(path);
  ASSERT_TRUE(first && second);
  constexpr int kThreads = 8;
  std::vector<std::thread> threads;
  std::vector<std::string> failures(kThreads);
  for (int thread = 0; thread < kThreads; ++thread) {
    threads.emplace_back([&, thread] {
      auto& store = thread % 2 == 0 ? *first : *second;
      const auto id = "mem_" + std::to_string(thread);
      auto added = store.add_record(
          with_subject(record(id, "city number " + id, kUser1, kT0 + thread), "user.city"), "");
      if (!added.ok()) failures[thread] = added.error();
    });
  }
  for (auto& thread : threads) thread.join();
  for (const auto& failure : failures) EXPECT_EQ(failure, "");

  auto current = query("city");
  current.subject = "user.city";
  EXPECT_EQ(ids_of(first->search_records(current)).size(), 1u);
  current.include_superseded = true;
  EXPECT_EQ(ids_of(first->search_records(current)).size(), static_cast<std::size_t>(kThreads));
}

TEST(SqliteMemoryStore, ReopenKeepsBlocksRecordsAndIndex) {
  TempDir dir;
  const auto path = dir.file("redline.db");
  const auto persona = block("blk_1", kTenantWide, "persona");
  {
    auto store = open_or_fail(path);
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->put_block(persona).ok());
    add(*store, record("mem_1", "the deploy window is Tuesday"));
  }
  // The sessions module shares the file.
  std::string error;
  auto sessions = open_sqlite_session_store(path, &error);
  ASSERT_TRUE(sessions) << error;

  auto store = open_or_fail(path);
  ASSERT_TRUE(store);
  auto found = store->find_block("acme", "blk_1");
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ(**found, persona);
  EXPECT_THAT(ids_of(store->search_records(query("deploy tuesday"))), ElementsAre("mem_1"));
  EXPECT_TRUE(add(*store, record("mem_2", "The deploy window is  Tuesday")).duplicate);

  auto db = open_sqlite_database(path, &error);
  ASSERT_TRUE(db) << error;
  auto version = schema_version(db.get(), "memory");
  ASSERT_TRUE(version.ok());
  EXPECT_EQ(*version, 2);
}

TEST(SqliteMemoryStore, TheIndexMatchesWithinANamespace) {
  TempDir dir;
  const auto path = dir.file("memory.db");
  auto store = open_or_fail(path);
  ASSERT_TRUE(store);
  add(*store, record("mem_1", "shared word", kUser1));
  add(*store, record("mem_2", "shared word", kPlanner));
  add(*store, record("mem_3", "shared word", kUser1, kT0, "acm"));
  add(*store, record("mem_4", "shared word", kTenantWide, kT0, "acme2"));
  std::string error;
  auto db = open_sqlite_database(path, &error);
  ASSERT_TRUE(db) << error;
  // hex("acme") = 61636D65, hex("u1") = 7531, hex("planner") = 706C616E6E6572.
  EXPECT_EQ(count_index_matches(db.get(), "shared"), 4);
  EXPECT_EQ(count_index_matches(db.get(), "shared AND scope : \"61636D65x7531x\""), 1);
  EXPECT_EQ(count_index_matches(db.get(), "shared AND scope : \"61636D65x7531x706C616E6E6572\""),
            1);
  // The tenant's prefix takes in all of its namespaces and none of "acm" or "acme2".
  EXPECT_EQ(count_index_matches(db.get(), "shared AND scope : \"61636D65x\" *"), 2);
  // Words are never matched against the namespace column.
  EXPECT_EQ(count_index_matches(db.get(), "text : \"61636D65x\" *"), 0);
  EXPECT_THAT(ids_of(store->search_records(query("shared", {kUser1}))), ElementsAre("mem_1"));
  EXPECT_THAT(ids_of(store->search_records(query("shared"))),
              UnorderedElementsAre("mem_1", "mem_2"));
  EXPECT_THAT(ids_of(store->search_records(query("shared", {}, "acm"))), ElementsAre("mem_3"));
}

TEST(SqliteMemoryStore, UpgradingFromVersion1IndexesTheNamespacesOfExistingRecords) {
  TempDir dir;
  const auto path = dir.file("memory.db");
  {
    auto store = open_or_fail(path);
    ASSERT_TRUE(store);
    add(*store, record("mem_1", "the deploy window is Tuesday", kUser1));
    add(*store, record("mem_2", "deploy freeze in December", kPlanner));
    add(*store, record("mem_3", "deploy from the beta tenant", kTenantWide, kT0, "beta"));
  }
  std::string error;
  {
    // Back to what version 1 of the schema built: an index of words only, no namespaces.
    auto db = open_sqlite_database(path, &error);
    ASSERT_TRUE(db) << error;
    ASSERT_EQ(sqlite3_exec(db.get(), R"sql(
DROP TRIGGER memory_records_fts_insert;
DROP TRIGGER memory_records_fts_delete;
DROP TABLE memory_records_fts;
DROP VIEW memory_records_fts_source;
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
INSERT INTO memory_records_fts(memory_records_fts) VALUES ('rebuild');
UPDATE schema_migrations SET version = 1 WHERE module = 'memory';
)sql",
                           nullptr, nullptr, nullptr),
              SQLITE_OK)
        << sqlite3_errmsg(db.get());
  }
  auto store = open_or_fail(path);
  ASSERT_TRUE(store);
  EXPECT_THAT(ids_of(store->search_records(query("deploy", {kUser1}))), ElementsAre("mem_1"));
  EXPECT_THAT(ids_of(store->search_records(query("deploy"))),
              UnorderedElementsAre("mem_1", "mem_2"));
  EXPECT_THAT(ids_of(store->search_records(query("deploy", {}, "beta"))), ElementsAre("mem_3"));
  // Later writes and erasures keep the rebuilt index in step.
  add(*store, record("mem_4", "deploy checklist", kUser1, kT0 + 1));
  ASSERT_TRUE(store->delete_record("acme", "mem_1").ok());
  EXPECT_THAT(ids_of(store->search_records(query("deploy", {kUser1}))), ElementsAre("mem_4"));

  auto db = open_sqlite_database(path, &error);
  ASSERT_TRUE(db) << error;
  EXPECT_EQ(sqlite3_exec(db.get(),
                         "INSERT INTO memory_records_fts(memory_records_fts) "
                         "VALUES('integrity-check')",
                         nullptr, nullptr, nullptr),
            SQLITE_OK)
      << sqlite3_errmsg(db.get());
  auto version = schema_version(db.get(), "memory");
  ASSERT_TRUE(version.ok());
  EXPECT_EQ(*version, 2);
}

}  // namespace
}  // namespace redline::store
