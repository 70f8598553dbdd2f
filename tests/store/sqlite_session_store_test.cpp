#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <thread>

#include "store/key_store.h"
#include "store/session_store.h"
#include "store/sqlite_database.h"
#include "temp_dir.h"

namespace redline::store {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

using testing::TempDir;

constexpr std::int64_t kT0 = 1'700'000'000;

std::unique_ptr<SessionStore> open_or_fail(const std::string& path) {
  std::string error;
  auto store = open_sqlite_session_store(path, &error);
  EXPECT_NE(store, nullptr) << error;
  return store;
}

SessionItem item(const std::string& id, std::int64_t created_at = kT0) {
  return {id, R"({"id":")" + id + R"(","type":"message","role":"user"})", created_at};
}

std::vector<SessionItem> items(std::initializer_list<std::string> ids) {
  std::vector<SessionItem> result;
  for (const auto& id : ids) result.push_back(item(id));
  return result;
}

std::vector<std::string> ids_of(const std::vector<SessionItem>& list) {
  std::vector<std::string> ids;
  for (const auto& entry : list) ids.push_back(entry.id);
  return ids;
}

ResponseRecord response(const std::string& id, const std::string& tenant = "acme",
                        const std::string& previous = "") {
  ResponseRecord record;
  record.id = id;
  record.tenant = tenant;
  record.status = "completed";
  record.previous_response_id = previous;
  record.object_json = R"({"id":")" + id + R"(","object":"response"})";
  record.vault_json = R"({"<PERSON_1>":"Alice"})";
  record.created_at = kT0;
  record.updated_at = kT0;
  return record;
}

ConversationRecord conversation(const std::string& id, const std::string& tenant = "acme") {
  ConversationRecord record;
  record.id = id;
  record.tenant = tenant;
  record.metadata_json = R"({"topic":"billing"})";
  record.created_at = kT0;
  record.updated_at = kT0;
  return record;
}

PageRequest page(std::size_t limit, bool ascending, std::string after = "") {
  return {limit, ascending, std::move(after)};
}

TEST(SqliteSessionStore, ResponseRoundTripAndUpdate) {
  auto store = open_or_fail(":memory:");
  ASSERT_TRUE(store);
  auto stored = response("resp_1");
  stored.status = "in_progress";
  stored.conversation_id = "conv_1";
  stored.background = true;
  ASSERT_TRUE(store->insert_response(stored, items({"msg_a", "msg_b"})).ok);

  auto found = store->find_response("acme", "resp_1");
  ASSERT_TRUE(found.ok()) << found.error();
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ(**found, stored);
  auto input = store->response_input_items("acme", "resp_1", page(20, true));
  ASSERT_TRUE(input.ok()) << input.error();
  EXPECT_EQ(input->items, items({"msg_a", "msg_b"}));
  EXPECT_FALSE(input->has_more);
  auto output = store->response_output_items("acme", "resp_1");
  ASSERT_TRUE(output.ok());
  EXPECT_THAT(*output, IsEmpty());

  ASSERT_TRUE(store
                  ->update_response("acme", "resp_1", "completed", R"({"done":true})", "{}",
                                    items({"msg_out1", "fc_out2"}), kT0 + 5)
                  .ok);
  auto expected = stored;
  expected.status = "completed";
  expected.object_json = R"({"done":true})";
  expected.vault_json = "{}";
  expected.updated_at = kT0 + 5;
  found = store->find_response("acme", "resp_1");
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ(**found, expected);
  output = store->response_output_items("acme", "resp_1");
  ASSERT_TRUE(output.ok());
  EXPECT_EQ(*output, items({"msg_out1", "fc_out2"}));

  // A second update replaces the output items rather than adding to them.
  ASSERT_TRUE(
      store->update_response("acme", "resp_1", "completed", "{}", "", items({"msg_out3"}), kT0 + 6)
          .ok);
  output = store->response_output_items("acme", "resp_1");
  ASSERT_TRUE(output.ok());
  EXPECT_THAT(ids_of(*output), ElementsAre("msg_out3"));
  // The input items are untouched by updates.
  input = store->response_input_items("acme", "resp_1", page(20, true));
  ASSERT_TRUE(input.ok());
  EXPECT_THAT(ids_of(input->items), ElementsAre("msg_a", "msg_b"));
}

TEST(SqliteSessionStore, InsertFailuresChangeNothing) {
  auto store = open_or_fail(":memory:");
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->insert_response(response("resp_1"), items({"msg_a"})).ok);

  auto taken = store->insert_response(response("resp_1"), items({"msg_x", "msg_y"}));
  EXPECT_FALSE(taken.ok);
  EXPECT_NE(taken.message.find("resp_1"), std::string::npos) << taken.message;
  auto input = store->response_input_items("acme", "resp_1", page(20, true));
  ASSERT_TRUE(input.ok());
  EXPECT_THAT(ids_of(input->items), ElementsAre("msg_a"));

  // A repeated item id fails the whole insert: the response is not left behind without it.
  auto repeated = store->insert_response(response("resp_2"), items({"msg_a", "msg_a"}));
  EXPECT_FALSE(repeated.ok);
  auto missing = store->find_response("acme", "resp_2");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());

  ASSERT_TRUE(store->insert_conversation(conversation("conv_1"), items({"msg_a"})).ok);
  EXPECT_FALSE(store->insert_conversation(conversation("conv_1"), items({"msg_b"})).ok);
  // An append that repeats an id rolls back whole, updated_at included.
  EXPECT_FALSE(store
                   ->append_conversation_items("acme", "conv_1", items({"msg_c", "msg_a"}),
                                               std::nullopt, kT0 + 9)
                   .ok);
  auto all = store->all_conversation_items("acme", "conv_1");
  ASSERT_TRUE(all.ok());
  EXPECT_THAT(ids_of(*all), ElementsAre("msg_a"));
  auto conv = store->find_conversation("acme", "conv_1");
  ASSERT_TRUE(conv.ok() && conv->has_value());
  EXPECT_EQ((*conv)->updated_at, kT0);
}

TEST(SqliteSessionStore, UnknownIdsAreErrorsForUpdatesAndFalseForDeletes) {
  auto store = open_or_fail(":memory:");
  ASSERT_TRUE(store);
  auto update = store->update_response("acme", "resp_none", "completed", "{}", "", {}, kT0);
  EXPECT_FALSE(update.ok);
  EXPECT_NE(update.message.find("resp_none"), std::string::npos) << update.message;
  EXPECT_FALSE(store->update_conversation_metadata("acme", "conv_none", "{}", kT0).ok);
  EXPECT_FALSE(
      store->append_conversation_items("acme", "conv_none", items({"msg_a"}), std::nullopt, kT0)
          .ok);
  auto deleted = store->delete_response("acme", "resp_none");
  ASSERT_TRUE(deleted.ok());
  EXPECT_FALSE(*deleted);
  deleted = store->delete_conversation("acme", "conv_none");
  ASSERT_TRUE(deleted.ok());
  EXPECT_FALSE(*deleted);
  deleted = store->delete_conversation_item("acme", "conv_none", "msg_a");
  ASSERT_TRUE(deleted.ok());
  EXPECT_FALSE(*deleted);
}

TEST(SqliteSessionStore, DeleteResponseRemovesItsItems) {
  auto store = open_or_fail(":memory:");
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->insert_response(response("resp_1"), items({"msg_a"})).ok);
  ASSERT_TRUE(
      store->update_response("acme", "resp_1", "completed", "{}", "", items({"msg_b"}), kT0).ok);
  auto deleted = store->delete_response("acme", "resp_1");
  ASSERT_TRUE(deleted.ok());
  EXPECT_TRUE(*deleted);
  deleted = store->delete_response("acme", "resp_1");
  ASSERT_TRUE(deleted.ok());
  EXPECT_FALSE(*deleted);

  // A new response under the same id starts with no leftovers of the old one.
  ASSERT_TRUE(store->insert_response(response("resp_1"), {}).ok);
  auto input = store->response_input_items("acme", "resp_1", page(20, true));
  ASSERT_TRUE(input.ok());
  EXPECT_THAT(input->items, IsEmpty());
  auto output = store->response_output_items("acme", "resp_1");
  ASSERT_TRUE(output.ok());
  EXPECT_THAT(*output, IsEmpty());
}

TEST(SqliteSessionStore, AnotherTenantSeesNothing) {
  auto store = open_or_fail(":memory:");
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->insert_response(response("resp_1"), items({"msg_a"})).ok);
  ASSERT_TRUE(
      store->update_response("acme", "resp_1", "completed", "{}", "", items({"msg_b"}), kT0).ok);
  ASSERT_TRUE(store->insert_response(response("resp_2", "acme", "resp_1"), items({"msg_c"})).ok);
  ASSERT_TRUE(store->insert_conversation(conversation("conv_1"), items({"msg_d", "msg_e"})).ok);
  const auto acme_response = store->find_response("acme", "resp_1");
  ASSERT_TRUE(acme_response.ok() && acme_response->has_value());

  auto found = store->find_response("beta", "resp_1");
  ASSERT_TRUE(found.ok());
  EXPECT_FALSE(found->has_value());
  auto input = store->response_input_items("beta", "resp_1", page(20, true));
  ASSERT_TRUE(input.ok());
  EXPECT_THAT(input->items, IsEmpty());
  EXPECT_FALSE(input->has_more);
  auto output = store->response_output_items("beta", "resp_1");
  ASSERT_TRUE(output.ok());
  EXPECT_THAT(*output, IsEmpty());
  auto chain = store->response_chain_items("beta", "resp_2", 10);
  ASSERT_TRUE(chain.ok());
  EXPECT_THAT(*chain, IsEmpty());
  EXPECT_FALSE(store->update_response("beta", "resp_1", "failed", "{}", "", {}, kT0 + 1).ok);
  auto deleted = store->delete_response("beta", "resp_1");
  ASSERT_TRUE(deleted.ok());
  EXPECT_FALSE(*deleted);

  auto conv = store->find_conversation("beta", "conv_1");
  ASSERT_TRUE(conv.ok());
  EXPECT_FALSE(conv->has_value());
  auto conv_items = store->conversation_items("beta", "conv_1", page(20, false));
  ASSERT_TRUE(conv_items.ok());
  EXPECT_THAT(conv_items->items, IsEmpty());
  auto all = store->all_conversation_items("beta", "conv_1");
  ASSERT_TRUE(all.ok());
  EXPECT_THAT(*all, IsEmpty());
  auto conv_item = store->find_conversation_item("beta", "conv_1", "msg_d");
  ASSERT_TRUE(conv_item.ok());
  EXPECT_FALSE(conv_item->has_value());
  EXPECT_FALSE(store->update_conversation_metadata("beta", "conv_1", "{}", kT0 + 1).ok);
  EXPECT_FALSE(
      store->append_conversation_items("beta", "conv_1", items({"msg_x"}), "{}", kT0 + 1).ok);
  deleted = store->delete_conversation_item("beta", "conv_1", "msg_d");
  ASSERT_TRUE(deleted.ok());
  EXPECT_FALSE(*deleted);
  deleted = store->delete_conversation("beta", "conv_1");
  ASSERT_TRUE(deleted.ok());
  EXPECT_FALSE(*deleted);

  // Nothing of acme's changed.
  found = store->find_response("acme", "resp_1");
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ(**found, **acme_response);
  output = store->response_output_items("acme", "resp_1");
  ASSERT_TRUE(output.ok());
  EXPECT_THAT(ids_of(*output), ElementsAre("msg_b"));
  conv = store->find_conversation("acme", "conv_1");
  ASSERT_TRUE(conv.ok() && conv->has_value());
  EXPECT_EQ(**conv, conversation("conv_1"));
  all = store->all_conversation_items("acme", "conv_1");
  ASSERT_TRUE(all.ok());
  EXPECT_THAT(ids_of(*all), ElementsAre("msg_d", "msg_e"));

  // Ids belong to their tenant: beta may use the same one for its own response.
  auto own = response("resp_1", "beta");
  own.object_json = "{\"beta\":true}";
  ASSERT_TRUE(store->insert_response(own, items({"msg_z"})).ok);
  found = store->find_response("beta", "resp_1");
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ(**found, own);
  found = store->find_response("acme", "resp_1");
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ(**found, **acme_response);
}

TEST(SqliteSessionStore, ConversationItemsPageInBothOrders) {
  auto store = open_or_fail(":memory:");
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->insert_conversation(conversation("conv_1"), items({"i1", "i2", "i3"})).ok);
  ASSERT_TRUE(store
                  ->append_conversation_items("acme", "conv_1", items({"i4", "i5", "i6", "i7"}),
                                              std::nullopt, kT0 + 1)
                  .ok);

  auto first = store->conversation_items("acme", "conv_1", page(3, true));
  ASSERT_TRUE(first.ok()) << first.error();
  EXPECT_THAT(ids_of(first->items), ElementsAre("i1", "i2", "i3"));
  EXPECT_TRUE(first->has_more);
  auto second = store->conversation_items("acme", "conv_1", page(3, true, "i3"));
  ASSERT_TRUE(second.ok());
  EXPECT_THAT(ids_of(second->items), ElementsAre("i4", "i5", "i6"));
  EXPECT_TRUE(second->has_more);
  auto last = store->conversation_items("acme", "conv_1", page(3, true, "i6"));
  ASSERT_TRUE(last.ok());
  EXPECT_THAT(ids_of(last->items), ElementsAre("i7"));
  EXPECT_FALSE(last->has_more);

  auto newest = store->conversation_items("acme", "conv_1", page(3, false));
  ASSERT_TRUE(newest.ok());
  EXPECT_THAT(ids_of(newest->items), ElementsAre("i7", "i6", "i5"));
  EXPECT_TRUE(newest->has_more);
  auto older = store->conversation_items("acme", "conv_1", page(3, false, "i5"));
  ASSERT_TRUE(older.ok());
  EXPECT_THAT(ids_of(older->items), ElementsAre("i4", "i3", "i2"));
  EXPECT_TRUE(older->has_more);
  auto oldest = store->conversation_items("acme", "conv_1", page(3, false, "i2"));
  ASSERT_TRUE(oldest.ok());
  EXPECT_THAT(ids_of(oldest->items), ElementsAre("i1"));
  EXPECT_FALSE(oldest->has_more);

  // A page that ends exactly at the last item has no more.
  auto exact = store->conversation_items("acme", "conv_1", page(7, true));
  ASSERT_TRUE(exact.ok());
  EXPECT_EQ(exact->items.size(), 7u);
  EXPECT_FALSE(exact->has_more);
  auto after_last = store->conversation_items("acme", "conv_1", page(3, true, "i7"));
  ASSERT_TRUE(after_last.ok());
  EXPECT_THAT(after_last->items, IsEmpty());
  EXPECT_FALSE(after_last->has_more);
  auto unknown_cursor = store->conversation_items("acme", "conv_1", page(3, true, "nope"));
  ASSERT_TRUE(unknown_cursor.ok());
  EXPECT_THAT(unknown_cursor->items, IsEmpty());
  EXPECT_FALSE(unknown_cursor->has_more);

  // Items keep their JSON and time.
  EXPECT_EQ(first->items[0], item("i1"));
}

TEST(SqliteSessionStore, ResponseInputItemsPage) {
  auto store = open_or_fail(":memory:");
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->insert_response(response("resp_1"), items({"a", "b", "c", "d", "e"})).ok);
  auto newest = store->response_input_items("acme", "resp_1", page(2, false));
  ASSERT_TRUE(newest.ok());
  EXPECT_THAT(ids_of(newest->items), ElementsAre("e", "d"));
  EXPECT_TRUE(newest->has_more);
  auto next = store->response_input_items("acme", "resp_1", page(2, false, "d"));
  ASSERT_TRUE(next.ok());
  EXPECT_THAT(ids_of(next->items), ElementsAre("c", "b"));
  EXPECT_TRUE(next->has_more);
  auto forward = store->response_input_items("acme", "resp_1", page(10, true, "b"));
  ASSERT_TRUE(forward.ok());
  EXPECT_THAT(ids_of(forward->items), ElementsAre("c", "d", "e"));
  EXPECT_FALSE(forward->has_more);
}

TEST(SqliteSessionStore, ConversationLifecycle) {
  auto store = open_or_fail(":memory:");
  ASSERT_TRUE(store);
  auto stored = conversation("conv_1");
  stored.vault_json = R"({"<EMAIL_1>":"a@b.c"})";
  ASSERT_TRUE(store->insert_conversation(stored, items({"msg_a"})).ok);
  auto found = store->find_conversation("acme", "conv_1");
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ(**found, stored);

  ASSERT_TRUE(store->update_conversation_metadata("acme", "conv_1", R"({"x":"1"})", kT0 + 1).ok);
  // No vault given: the stored one stays.
  ASSERT_TRUE(
      store->append_conversation_items("acme", "conv_1", items({"msg_b"}), std::nullopt, kT0 + 2)
          .ok);
  found = store->find_conversation("acme", "conv_1");
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ((*found)->metadata_json, R"({"x":"1"})");
  EXPECT_EQ((*found)->vault_json, stored.vault_json);
  EXPECT_EQ((*found)->updated_at, kT0 + 2);
  EXPECT_EQ((*found)->created_at, kT0);

  ASSERT_TRUE(
      store->append_conversation_items("acme", "conv_1", items({"msg_c"}), "{}", kT0 + 3).ok);
  found = store->find_conversation("acme", "conv_1");
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ((*found)->vault_json, "{}");

  auto one = store->find_conversation_item("acme", "conv_1", "msg_b");
  ASSERT_TRUE(one.ok() && one->has_value());
  EXPECT_EQ(**one, item("msg_b"));
  auto deleted = store->delete_conversation_item("acme", "conv_1", "msg_b");
  ASSERT_TRUE(deleted.ok());
  EXPECT_TRUE(*deleted);
  deleted = store->delete_conversation_item("acme", "conv_1", "msg_b");
  ASSERT_TRUE(deleted.ok());
  EXPECT_FALSE(*deleted);
  // Appending after a deletion still goes to the end.
  ASSERT_TRUE(
      store->append_conversation_items("acme", "conv_1", items({"msg_d"}), std::nullopt, kT0 + 4)
          .ok);
  auto all = store->all_conversation_items("acme", "conv_1");
  ASSERT_TRUE(all.ok());
  EXPECT_THAT(ids_of(*all), ElementsAre("msg_a", "msg_c", "msg_d"));

  deleted = store->delete_conversation("acme", "conv_1");
  ASSERT_TRUE(deleted.ok());
  EXPECT_TRUE(*deleted);
  ASSERT_TRUE(store->insert_conversation(conversation("conv_1"), {}).ok);
  all = store->all_conversation_items("acme", "conv_1");
  ASSERT_TRUE(all.ok());
  EXPECT_THAT(*all, IsEmpty());
}

// r1 <- r2 <- r3 <- r4, each with one input and one output item.
void store_chain(SessionStore& store) {
  std::string previous;
  for (int n = 1; n <= 4; ++n) {
    const auto id = "resp_" + std::to_string(n);
    ASSERT_TRUE(store.insert_response(response(id, "acme", previous), items({"in" + id})).ok);
    ASSERT_TRUE(
        store.update_response("acme", id, "completed", "{}", "", items({"out" + id}), kT0).ok);
    previous = id;
  }
}

TEST(SqliteSessionStore, ChainItemsOldestFirstWithinDepth) {
  auto store = open_or_fail(":memory:");
  ASSERT_TRUE(store);
  store_chain(*store);

  auto whole = store->response_chain_items("acme", "resp_4", 10);
  ASSERT_TRUE(whole.ok()) << whole.error();
  EXPECT_THAT(ids_of(*whole), ElementsAre("inresp_1", "outresp_1", "inresp_2", "outresp_2",
                                          "inresp_3", "outresp_3", "inresp_4", "outresp_4"));
  auto recent = store->response_chain_items("acme", "resp_4", 2);
  ASSERT_TRUE(recent.ok());
  EXPECT_THAT(ids_of(*recent), ElementsAre("inresp_3", "outresp_3", "inresp_4", "outresp_4"));
  auto middle = store->response_chain_items("acme", "resp_2", 10);
  ASSERT_TRUE(middle.ok());
  EXPECT_THAT(ids_of(*middle), ElementsAre("inresp_1", "outresp_1", "inresp_2", "outresp_2"));
  auto none = store->response_chain_items("acme", "resp_4", 0);
  ASSERT_TRUE(none.ok());
  EXPECT_THAT(*none, IsEmpty());
  auto unknown = store->response_chain_items("acme", "resp_9", 10);
  ASSERT_TRUE(unknown.ok());
  EXPECT_THAT(*unknown, IsEmpty());
}

TEST(SqliteSessionStore, ChainStopsAtDeletedLink) {
  auto store = open_or_fail(":memory:");
  ASSERT_TRUE(store);
  store_chain(*store);
  auto deleted = store->delete_response("acme", "resp_2");
  ASSERT_TRUE(deleted.ok() && *deleted);
  auto chain = store->response_chain_items("acme", "resp_4", 10);
  ASSERT_TRUE(chain.ok());
  EXPECT_THAT(ids_of(*chain), ElementsAre("inresp_3", "outresp_3", "inresp_4", "outresp_4"));
}

TEST(SqliteSessionStore, UnfinishedResponsesOfEveryTenantOldestFirst) {
  auto store = open_or_fail(":memory:");
  ASSERT_TRUE(store);
  auto queued = response("resp_q", "beta");
  queued.status = "queued";
  queued.created_at = kT0 + 2;
  auto running = response("resp_r", "acme");
  running.status = "in_progress";
  running.created_at = kT0 + 1;
  auto done = response("resp_d", "acme");
  done.created_at = kT0;
  for (const auto& record : {queued, running, done}) {
    ASSERT_TRUE(store->insert_response(record, {}).ok);
  }
  auto unfinished = store->unfinished_responses();
  ASSERT_TRUE(unfinished.ok()) << unfinished.error();
  EXPECT_THAT(*unfinished, ElementsAre(running, queued));

  ASSERT_TRUE(store->update_response("acme", "resp_r", "failed", "{}", "", {}, kT0 + 3).ok);
  unfinished = store->unfinished_responses();
  ASSERT_TRUE(unfinished.ok());
  EXPECT_THAT(*unfinished, ElementsAre(queued));
}

// Eight threads on two connections to one file append to one conversation at once: every item
// arrives, each thread's batches stay in its order and each batch stays contiguous.
TEST(SqliteSessionStore, ConcurrentAppendsKeepEveryItemInOrder) {
  TempDir dir;
  const auto path = dir.file("sessions.db");
  auto first = open_or_fail(path);
  auto second = open_or_fail(path);
  ASSERT_TRUE(first && second);
  ASSERT_TRUE(first->insert_conversation(conversation("conv_1"), {}).ok);

  constexpr int kThreads = 8;
  constexpr int kBatches = 25;
  std::vector<std::thread> threads;
  std::vector<std::string> failures(kThreads);
  for (int thread = 0; thread < kThreads; ++thread) {
    threads.emplace_back([&, thread] {
      auto& store = thread % 2 == 0 ? *first : *second;
      for (int batch = 0; batch < kBatches; ++batch) {
        // Built with appends: gcc 12 warns falsely (-Wrestrict) on "t" + std::to_string(…).
        std::string prefix = "t";
        prefix += std::to_string(thread);
        prefix += '-';
        prefix += std::to_string(batch);
        auto status = store.append_conversation_items(
            "acme", "conv_1", items({prefix + "a", prefix + "b"}), std::nullopt, kT0 + batch);
        if (!status) failures[thread] = status.message;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (const auto& failure : failures) EXPECT_EQ(failure, "");

  auto all = first->all_conversation_items("acme", "conv_1");
  ASSERT_TRUE(all.ok()) << all.error();
  ASSERT_EQ(all->size(), static_cast<std::size_t>(kThreads * kBatches * 2));
  std::map<std::string, int> next_batch;  // thread prefix "tN-" -> batch expected next
  for (std::size_t index = 0; index < all->size(); index += 2) {
    const auto& a = (*all)[index].id;
    const auto& b = (*all)[index + 1].id;
    ASSERT_EQ(a.back(), 'a') << a;
    ASSERT_EQ(b, a.substr(0, a.size() - 1) + "b") << "batch split at " << index;
    const auto dash = a.find('-');
    const auto thread = a.substr(0, dash + 1);
    const int batch = std::stoi(a.substr(dash + 1));
    EXPECT_EQ(batch, next_batch[thread]) << a;
    next_batch[thread] = batch + 1;
  }
  EXPECT_EQ(next_batch.size(), static_cast<std::size_t>(kThreads));

  // Paging sees the same order.
  std::vector<std::string> paged;
  std::string after;
  for (;;) {
    auto next = second->conversation_items("acme", "conv_1", page(7, true, after));
    ASSERT_TRUE(next.ok());
    for (const auto& entry : next->items) paged.push_back(entry.id);
    if (!next->has_more) break;
    after = next->items.back().id;
  }
  EXPECT_EQ(paged, ids_of(*all));
}

// acme keeps 1000 s, everyone else 500 s; the objects are idle since 400, 800 or 1200.
TEST(SqliteSessionStore, PurgeAppliesEachTenantsRuleAndKeepsUnfinishedResponses) {
  auto store = open_or_fail(":memory:");
  ASSERT_TRUE(store);
  for (const std::string tenant : {"acme", "beta", "gamma"}) {
    for (const std::int64_t at : {400, 800, 1200}) {
      auto record = response("resp_" + std::to_string(at), tenant);
      record.updated_at = at;
      ASSERT_TRUE(store->insert_response(record, items({"msg_" + std::to_string(at)})).ok);
      auto conv = conversation("conv_" + std::to_string(at), tenant);
      conv.updated_at = at;
      ASSERT_TRUE(store->insert_conversation(conv, items({"msg_" + std::to_string(at)})).ok);
    }
    auto running = response("resp_running", tenant);
    running.status = "in_progress";
    running.updated_at = 100;
    ASSERT_TRUE(store->insert_response(running, {}).ok);
    auto queued = response("resp_queued", tenant);
    queued.status = "queued";
    queued.updated_at = 100;
    ASSERT_TRUE(store->insert_response(queued, {}).ok);
  }

  auto purged = store->purge({{"", 500}, {"acme", 1000}});
  ASSERT_TRUE(purged.ok()) << purged.error();
  // acme: 400 and 800; beta and gamma: 400.
  EXPECT_EQ(purged->responses, 4);
  EXPECT_EQ(purged->conversations, 4);

  auto exists = [&](const std::string& tenant, const std::string& id) {
    auto found = store->find_response(tenant, id);
    EXPECT_TRUE(found.ok());
    return found.ok() && found->has_value();
  };
  auto conversation_exists = [&](const std::string& tenant, const std::string& id) {
    auto found = store->find_conversation(tenant, id);
    EXPECT_TRUE(found.ok());
    return found.ok() && found->has_value();
  };
  EXPECT_FALSE(exists("acme", "resp_400"));
  EXPECT_FALSE(exists("acme", "resp_800"));
  EXPECT_TRUE(exists("acme", "resp_1200"));
  EXPECT_FALSE(conversation_exists("acme", "conv_800"));
  EXPECT_TRUE(conversation_exists("acme", "conv_1200"));
  for (const std::string tenant : {"beta", "gamma"}) {
    EXPECT_FALSE(exists(tenant, "resp_400"));
    EXPECT_TRUE(exists(tenant, "resp_800"));
    EXPECT_FALSE(conversation_exists(tenant, "conv_400"));
    EXPECT_TRUE(conversation_exists(tenant, "conv_800"));
  }
  for (const std::string tenant : {"acme", "beta", "gamma"}) {
    EXPECT_TRUE(exists(tenant, "resp_running"));
    EXPECT_TRUE(exists(tenant, "resp_queued"));
  }
  // The items went with their owners.
  auto items_left = store->all_conversation_items("acme", "conv_800");
  ASSERT_TRUE(items_left.ok());
  EXPECT_THAT(*items_left, IsEmpty());
  ASSERT_TRUE(store->insert_response(response("resp_800"), {}).ok);
  auto input_left = store->response_input_items("acme", "resp_800", page(20, true));
  ASSERT_TRUE(input_left.ok());
  EXPECT_THAT(input_left->items, IsEmpty());

  // Without a default rule, tenants no rule names are left alone.
  purged = store->purge({{"acme", 2000}});
  ASSERT_TRUE(purged.ok());
  EXPECT_EQ(purged->responses, 1);  // resp_1200; the re-inserted resp_800 is newer
  EXPECT_EQ(purged->conversations, 1);
  EXPECT_FALSE(exists("acme", "resp_1200"));
  EXPECT_TRUE(exists("acme", "resp_800"));
  EXPECT_TRUE(exists("acme", "resp_running"));
  EXPECT_TRUE(exists("beta", "resp_800"));
  EXPECT_TRUE(conversation_exists("gamma", "conv_800"));
}

TEST(SqliteSessionStore, RecordTurnStoresAResponseAndItsConversationItemsTogether) {
  auto store = open_or_fail(":memory:");
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->insert_conversation(conversation("conv_1"), items({"msg_0"})));
  TurnRecord turn;
  turn.response = response("resp_1");
  turn.response.conversation_id = "conv_1";
  turn.response.vault_json = R"([["EMAIL","a@example.com"]])";
  turn.response.updated_at = kT0 + 5;
  turn.input_items = items({"msg_1"});
  turn.output_items = items({"msg_2", "fc_3"});
  turn.append_to_conversation = true;
  ASSERT_TRUE(store->record_turn(turn));

  EXPECT_EQ(ids_of(store->response_input_items("acme", "resp_1", page(10, true))->items),
            (std::vector<std::string>{"msg_1"}));
  EXPECT_EQ(ids_of(*store->response_output_items("acme", "resp_1")),
            (std::vector<std::string>{"msg_2", "fc_3"}));
  EXPECT_EQ(ids_of(*store->all_conversation_items("acme", "conv_1")),
            (std::vector<std::string>{"msg_0", "msg_1", "msg_2", "fc_3"}));
  const auto stored = store->find_conversation("acme", "conv_1");
  EXPECT_EQ((*stored)->vault_json, R"([["EMAIL","a@example.com"]])");
  EXPECT_EQ((*stored)->updated_at, kT0 + 5);

  // A background response stored at creation is updated, its input not written twice.
  auto queued = response("resp_2");
  queued.status = "queued";
  ASSERT_TRUE(store->insert_response(queued, items({"msg_4"})));
  TurnRecord finished;
  finished.response = response("resp_2");
  finished.response.status = "completed";
  finished.insert = false;
  finished.input_items = items({"msg_4"});
  finished.output_items = items({"msg_5"});
  ASSERT_TRUE(store->record_turn(finished));
  EXPECT_EQ((*store->find_response("acme", "resp_2"))->status, "completed");
  EXPECT_EQ(ids_of(store->response_input_items("acme", "resp_2", page(10, true))->items),
            (std::vector<std::string>{"msg_4"}));
  EXPECT_EQ(ids_of(*store->response_output_items("acme", "resp_2")),
            (std::vector<std::string>{"msg_5"}));
}

TEST(SqliteSessionStore, RecordTurnStoresNothingWhenAnyPartFails) {
  auto store = open_or_fail(":memory:");
  ASSERT_TRUE(store);
  TurnRecord turn;
  turn.response = response("resp_1");
  turn.response.conversation_id = "conv_gone";
  turn.input_items = items({"msg_1"});
  turn.output_items = items({"msg_2"});
  turn.append_to_conversation = true;
  EXPECT_FALSE(store->record_turn(turn));
  EXPECT_FALSE(store->find_response("acme", "resp_1")->has_value());
  EXPECT_TRUE(store->response_output_items("acme", "resp_1")->empty());
}

TEST(SqliteSessionStore, TheWriteAheadLogIsCheckpointedOffTheWritePathAndStaysBounded) {
  TempDir dir;
  const std::string path = dir.file("sessions.db");
  auto store = open_or_fail(path);
  ASSERT_TRUE(store);
  // About 24 MB of responses, six times the checkpoint threshold.
  const std::string payload(8000, 'x');
  for (int i = 0; i < 3000; ++i) {
    auto record = response("resp_" + std::to_string(i));
    record.object_json = payload;
    ASSERT_TRUE(store->insert_response(record, {}));
  }
  const auto wal = std::filesystem::file_size(path + "-wal");
  const auto database = std::filesystem::file_size(path);
  EXPECT_LT(wal, 12u << 20) << "the log grew without being checkpointed";
  EXPECT_GT(database, 16u << 20) << "the responses never reached the database file";
}

TEST(SqliteSessionStore, TheWriteAheadLogStaysBoundedUnderSteadyConcurrentWrites) {
  TempDir dir;
  const std::string path = dir.file("sessions.db");
  auto store = open_or_fail(path);
  ASSERT_TRUE(store);
  // Two writers never leave the store idle, so a checkpoint never finds the log's end on its
  // own: about 190 MB through a log that must stay near its ~128 MB bound (without restarts it
  // grows past 300 MB).
  const std::string payload(64000, 'x');
  auto write = [&](int writer) {
    for (int i = 0; i < 1500; ++i) {
      auto record = response("resp_" + std::to_string(writer) + "_" + std::to_string(i));
      record.object_json = payload;
      ASSERT_TRUE(store->insert_response(record, {}));
    }
  };
  std::thread first(write, 1);
  std::thread second(write, 2);
  first.join();
  second.join();
  EXPECT_LT(std::filesystem::file_size(path + "-wal"), 160u << 20);
  EXPECT_EQ(store->find_response("acme", "resp_2_1499")->value().object_json, payload);
}

TEST(SqliteSessionStore, ReopenKeepsEverythingAndSharesTheFile) {
  TempDir dir;
  const auto path = dir.file("redline.db");
  auto stored = response("resp_1");
  stored.background = true;
  {
    auto store = open_or_fail(path);
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->insert_response(stored, items({"msg_a"})).ok);
    ASSERT_TRUE(store->insert_conversation(conversation("conv_1"), items({"msg_b", "msg_c"})).ok);
  }
  // Another module's tables live in the same file.
  std::string error;
  auto keys = open_sqlite_store(path, &error);
  ASSERT_TRUE(keys) << error;
  ASSERT_TRUE(keys->ensure_tenant("acme").ok);

  auto store = open_or_fail(path);
  ASSERT_TRUE(store);
  auto found = store->find_response("acme", "resp_1");
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ(**found, stored);
  auto input = store->response_input_items("acme", "resp_1", page(20, true));
  ASSERT_TRUE(input.ok());
  EXPECT_EQ(input->items, items({"msg_a"}));
  // Appends continue after the items stored before the reopen.
  ASSERT_TRUE(
      store->append_conversation_items("acme", "conv_1", items({"msg_d"}), std::nullopt, kT0 + 1)
          .ok);
  auto all = store->all_conversation_items("acme", "conv_1");
  ASSERT_TRUE(all.ok());
  EXPECT_THAT(ids_of(*all), ElementsAre("msg_b", "msg_c", "msg_d"));

  auto db = open_sqlite_database(path, &error);
  ASSERT_TRUE(db) << error;
  auto version = schema_version(db.get(), "sessions");
  ASSERT_TRUE(version.ok());
  EXPECT_EQ(*version, 1);
}

}  // namespace
}  // namespace redline::store
