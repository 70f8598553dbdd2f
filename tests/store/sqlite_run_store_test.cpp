#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <thread>

#include "store/run_store.h"
#include "store/sqlite_database.h"
#include "temp_dir.h"

namespace redline::store {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

using testing::TempDir;

constexpr std::int64_t kT0 = 1'700'000'000'000;

std::unique_ptr<RunStore> open_or_fail(const std::string& path) {
  std::string error;
  auto store = open_sqlite_run_store(path, &error);
  EXPECT_NE(store, nullptr) << error;
  return store;
}

RunRecord run(const std::string& id, const std::string& tenant = "acme",
              std::int64_t created_at = kT0, const std::string& status = "queued") {
  RunRecord record;
  record.id = id;
  record.tenant = tenant;
  record.key_id = "key_1";
  record.status = status;
  record.spec_json = R"({"model":"chat","input":")" + id + R"("})";
  record.state_json = "{}";
  record.created_at = created_at;
  record.updated_at = created_at;
  return record;
}

RunStep step(const std::string& key, const std::string& kind = "tool_call") {
  RunStep record;
  record.kind = kind;
  record.idempotency_key = key;
  record.request_json = R"({"call":")" + key + R"("})";
  record.started_at = kT0 + 10;
  return record;
}

GraphRecord graph(const std::string& id, const std::string& tenant = "acme",
                  std::int64_t created_at = kT0, const std::string& status = "running") {
  GraphRecord record;
  record.id = id;
  record.tenant = tenant;
  record.key_id = "key_1";
  record.status = status;
  record.spec_json = R"({"tasks":[]})";
  record.created_at = created_at;
  record.updated_at = created_at;
  return record;
}

GraphTask task(const std::string& task_id) {
  GraphTask record;
  record.task_id = task_id;
  record.updated_at = kT0;
  return record;
}

std::vector<std::string> ids_of(const std::vector<RunRecord>& runs) {
  std::vector<std::string> ids;
  for (const auto& entry : runs) ids.push_back(entry.tenant + "/" + entry.id);
  return ids;
}

std::vector<std::int64_t> seqs_of(const std::vector<RunStep>& steps) {
  std::vector<std::int64_t> seqs;
  for (const auto& entry : steps) seqs.push_back(entry.seq);
  return seqs;
}

TEST(SqliteRunStore, RunRoundTrip) {
  auto store = open_or_fail(":memory:");
  ASSERT_TRUE(store);
  auto stored = run("run_1");
  stored.graph_id = "graph_1";
  stored.task_id = "fetch";
  ASSERT_TRUE(store->insert_run(stored));

  auto found = store->find_run("acme", "run_1");
  ASSERT_TRUE(found) << found.error();
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ(**found, stored);

  auto missing = store->find_run("acme", "run_2");
  ASSERT_TRUE(missing);
  EXPECT_FALSE(missing->has_value());

  auto taken = store->insert_run(run("run_1"));
  EXPECT_FALSE(taken);
  EXPECT_EQ(taken.message, "run id run_1 is taken");

  auto updated = store->update_run("acme", "run_1", "running", R"({"steps":1})", kT0 + 5);
  ASSERT_TRUE(updated) << updated.error();
  EXPECT_TRUE(*updated);
  auto expected = stored;
  expected.status = "running";
  expected.state_json = R"({"steps":1})";
  expected.updated_at = kT0 + 5;
  EXPECT_EQ(**store->find_run("acme", "run_1"), expected);

  auto absent = store->update_run("acme", "run_9", "running", "{}", kT0 + 5);
  ASSERT_TRUE(absent);
  EXPECT_FALSE(*absent);
}

TEST(SqliteRunStore, ListRunsNewestFirstWithGraphFilterAndLimit) {
  auto store = open_or_fail(":memory:");
  ASSERT_TRUE(store);
  auto in_graph = [](std::string id, std::int64_t created_at) {
    auto record = run(std::move(id), "acme", created_at);
    record.graph_id = "graph_1";
    return record;
  };
  ASSERT_TRUE(store->insert_run(run("run_a", "acme", kT0 + 1)));
  ASSERT_TRUE(store->insert_run(in_graph("run_b", kT0 + 3)));
  ASSERT_TRUE(store->insert_run(run("run_c", "acme", kT0 + 2)));
  ASSERT_TRUE(store->insert_run(in_graph("run_d", kT0 + 2)));
  ASSERT_TRUE(store->insert_run(run("run_e", "other", kT0 + 9)));

  auto all = store->list_runs("acme", "", 10);
  ASSERT_TRUE(all) << all.error();
  // Same created_at: the larger id first.
  EXPECT_THAT(ids_of(*all), ElementsAre("acme/run_b", "acme/run_d", "acme/run_c", "acme/run_a"));

  auto two = store->list_runs("acme", "", 2);
  ASSERT_TRUE(two);
  EXPECT_THAT(ids_of(*two), ElementsAre("acme/run_b", "acme/run_d"));

  auto of_graph = store->list_runs("acme", "graph_1", 10);
  ASSERT_TRUE(of_graph);
  EXPECT_THAT(ids_of(*of_graph), ElementsAre("acme/run_b", "acme/run_d"));

  auto none = store->list_runs("acme", "", 0);
  ASSERT_TRUE(none);
  EXPECT_THAT(*none, IsEmpty());
}

TEST(SqliteRunStore, AnotherTenantSeesNothing) {
  auto store = open_or_fail(":memory:");
  ASSERT_TRUE(store);
  auto stored = run("run_1");
  stored.graph_id = "graph_1";
  ASSERT_TRUE(store->insert_run(stored));
  auto seq = store->begin_step("acme", "run_1", step("k1"));
  ASSERT_TRUE(seq) << seq.error();
  ASSERT_TRUE(store->insert_graph(graph("graph_1"), {task("fetch")}));

  // Reads.
  auto found = store->find_run("evil", "run_1");
  ASSERT_TRUE(found);
  EXPECT_FALSE(found->has_value());
  auto listed = store->list_runs("evil", "", 10);
  ASSERT_TRUE(listed);
  EXPECT_THAT(*listed, IsEmpty());
  auto listed_graph = store->list_runs("evil", "graph_1", 10);
  ASSERT_TRUE(listed_graph);
  EXPECT_THAT(*listed_graph, IsEmpty());
  auto steps = store->steps("evil", "run_1");
  EXPECT_FALSE(steps);
  EXPECT_EQ(steps.error(), "no run run_1");
  auto found_graph = store->find_graph("evil", "graph_1");
  ASSERT_TRUE(found_graph);
  EXPECT_FALSE(found_graph->has_value());
  auto tasks = store->graph_tasks("evil", "graph_1");
  EXPECT_FALSE(tasks);
  EXPECT_EQ(tasks.error(), "no graph graph_1");

  // Writes.
  auto updated = store->update_run("evil", "run_1", "cancelled", "{}", kT0 + 1);
  ASSERT_TRUE(updated);
  EXPECT_FALSE(*updated);
  auto conditional = store->update_run("evil", "run_1", "cancelled", "{}", kT0 + 1, {"queued"});
  ASSERT_TRUE(conditional);
  EXPECT_FALSE(*conditional);
  auto begun = store->begin_step("evil", "run_1", step("k2"));
  EXPECT_FALSE(begun);
  EXPECT_EQ(begun.error(), "no run run_1");
  auto ended = store->end_step("evil", "run_1", *seq, "completed", "{}", kT0 + 1);
  EXPECT_FALSE(ended);
  EXPECT_EQ(ended.message, "no step 1 of run run_1");
  auto graph_status = store->update_graph_status("evil", "graph_1", "cancelled", kT0 + 1);
  EXPECT_FALSE(graph_status);
  EXPECT_EQ(graph_status.message, "no graph graph_1");
  auto changed_task = task("fetch");
  changed_task.graph_id = "graph_1";
  changed_task.status = "running";
  auto task_status = store->update_graph_task("evil", changed_task);
  EXPECT_FALSE(task_status);
  EXPECT_EQ(task_status.message, "no task fetch in graph graph_1");

  // The same ids are free for another tenant, and stay apart.
  ASSERT_TRUE(store->insert_run(run("run_1", "evil")));
  auto evil_seq = store->begin_step("evil", "run_1", step("k1"));
  ASSERT_TRUE(evil_seq) << evil_seq.error();
  EXPECT_EQ(*evil_seq, 1);
  ASSERT_TRUE(store->insert_graph(graph("graph_1", "evil"), {task("other")}));

  // Nothing of acme's changed.
  EXPECT_EQ(**store->find_run("acme", "run_1"), stored);
  auto acme_steps = store->steps("acme", "run_1");
  ASSERT_TRUE(acme_steps);
  ASSERT_EQ(acme_steps->size(), 1u);
  EXPECT_EQ((*acme_steps)[0].status, "started");
  EXPECT_EQ((**store->find_graph("acme", "graph_1")).status, "running");
  auto acme_tasks = store->graph_tasks("acme", "graph_1");
  ASSERT_TRUE(acme_tasks);
  ASSERT_EQ(acme_tasks->size(), 1u);
  EXPECT_EQ((*acme_tasks)[0].task_id, "fetch");
  EXPECT_EQ((*acme_tasks)[0].status, "pending");
}

TEST(SqliteRunStore, ConditionalUpdateNeverOverwritesTheOtherSide) {
  auto store = open_or_fail(":memory:");
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->insert_run(run("run_1", "acme", kT0, "running")));
  ASSERT_TRUE(store->insert_run(run("run_2", "acme", kT0, "running")));
  const std::vector<std::string> active = {"queued", "running", "waiting_approval"};

  // The engine completes run_1 first; the cancel that follows loses.
  auto completed =
      store->update_run("acme", "run_1", "completed", R"({"output":"done"})", kT0 + 1, active);
  ASSERT_TRUE(completed) << completed.error();
  EXPECT_TRUE(*completed);
  auto cancelled = store->update_run("acme", "run_1", "cancelled", "{}", kT0 + 2, active);
  ASSERT_TRUE(cancelled);
  EXPECT_FALSE(*cancelled);
  auto run_1 = **store->find_run("acme", "run_1");
  EXPECT_EQ(run_1.status, "completed");
  EXPECT_EQ(run_1.state_json, R"({"output":"done"})");
  EXPECT_EQ(run_1.updated_at, kT0 + 1);

  // run_2 is cancelled first; the engine's completion that follows loses.
  cancelled =
      store->update_run("acme", "run_2", "cancelled", R"({"error":"cancelled"})", kT0 + 1, active);
  ASSERT_TRUE(cancelled);
  EXPECT_TRUE(*cancelled);
  completed = store->update_run("acme", "run_2", "completed", "{}", kT0 + 2, {"running"});
  ASSERT_TRUE(completed);
  EXPECT_FALSE(*completed);
  auto run_2 = **store->find_run("acme", "run_2");
  EXPECT_EQ(run_2.status, "cancelled");
  EXPECT_EQ(run_2.state_json, R"({"error":"cancelled"})");
  EXPECT_EQ(run_2.updated_at, kT0 + 1);

  // A list longer than the cached statement lengths works the same.
  std::vector<std::string> long_list(12, "nope");
  long_list.back() = "cancelled";
  auto stopped = store->update_run("acme", "run_2", "stopped", "{}", kT0 + 3, long_list);
  ASSERT_TRUE(stopped) << stopped.error();
  EXPECT_TRUE(*stopped);
  long_list.back() = "nope";
  auto again = store->update_run("acme", "run_2", "failed", "{}", kT0 + 4, long_list);
  ASSERT_TRUE(again);
  EXPECT_FALSE(*again);
  EXPECT_EQ((**store->find_run("acme", "run_2")).status, "stopped");
}

TEST(SqliteRunStore, StepsAreNumberedAndEndOnce) {
  auto store = open_or_fail(":memory:");
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->insert_run(run("run_1")));
  ASSERT_TRUE(store->insert_run(run("run_2")));

  EXPECT_EQ(*store->begin_step("acme", "run_1", step("k1", "model_call")), 1);
  EXPECT_EQ(*store->begin_step("acme", "run_1", step("k2")), 2);
  // Another run numbers its own steps.
  EXPECT_EQ(*store->begin_step("acme", "run_2", step("k1")), 1);
  // A step that is journaled already ended keeps what it was given.
  auto event = step("", "event");
  event.status = "completed";
  event.result_json = R"({"note":"x"})";
  event.finished_at = kT0 + 11;
  EXPECT_EQ(*store->begin_step("acme", "run_1", event), 3);
  // Steps without a key are not checked for duplicates.
  auto decision = step("", "decision");
  EXPECT_EQ(*store->begin_step("acme", "run_1", decision), 4);

  ASSERT_TRUE(store->end_step("acme", "run_1", 2, "completed", R"({"ok":true})", kT0 + 20));
  auto twice = store->end_step("acme", "run_1", 2, "failed", "{}", kT0 + 21);
  EXPECT_FALSE(twice);
  EXPECT_EQ(twice.message, "step 2 of run run_1 has already ended");
  auto journaled_ended = store->end_step("acme", "run_1", 3, "failed", "{}", kT0 + 21);
  EXPECT_FALSE(journaled_ended);
  EXPECT_EQ(journaled_ended.message, "step 3 of run run_1 has already ended");
  auto missing = store->end_step("acme", "run_1", 9, "completed", "{}", kT0 + 21);
  EXPECT_FALSE(missing);
  EXPECT_EQ(missing.message, "no step 9 of run run_1");
  auto no_run = store->end_step("acme", "run_9", 1, "completed", "{}", kT0 + 21);
  EXPECT_FALSE(no_run);
  EXPECT_EQ(no_run.message, "no step 1 of run run_9");
  auto begun_no_run = store->begin_step("acme", "run_9", step("k1"));
  EXPECT_FALSE(begun_no_run);
  EXPECT_EQ(begun_no_run.error(), "no run run_9");

  // A duplicate key fails and changes nothing: no step, no seq used up.
  auto duplicate = store->begin_step("acme", "run_1", step("k2"));
  EXPECT_FALSE(duplicate);
  EXPECT_EQ(duplicate.error(), "idempotency key k2 is taken in run run_1");
  auto all = store->steps("acme", "run_1");
  ASSERT_TRUE(all) << all.error();
  EXPECT_THAT(seqs_of(*all), ElementsAre(1, 2, 3, 4));
  EXPECT_EQ(*store->begin_step("acme", "run_1", step("k5")), 5);

  all = store->steps("acme", "run_1");
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 5u);
  RunStep first = step("k1", "model_call");
  first.seq = 1;
  first.status = "started";
  EXPECT_EQ((*all)[0], first);
  RunStep second = step("k2");
  second.seq = 2;
  second.status = "completed";
  second.result_json = R"({"ok":true})";
  second.finished_at = kT0 + 20;
  EXPECT_EQ((*all)[1], second);
  event.seq = 3;
  EXPECT_EQ((*all)[2], event);
  EXPECT_EQ((*all)[3].idempotency_key, "");
  EXPECT_EQ((*all)[3].status, "started");

  auto after = store->steps("acme", "run_1", 3);
  ASSERT_TRUE(after);
  EXPECT_THAT(seqs_of(*after), ElementsAre(4, 5));
  auto after_last = store->steps("acme", "run_1", 5);
  ASSERT_TRUE(after_last);
  EXPECT_THAT(*after_last, IsEmpty());
  auto other_run = store->steps("acme", "run_2");
  ASSERT_TRUE(other_run);
  EXPECT_THAT(seqs_of(*other_run), ElementsAre(1));
  auto no_steps = store->steps("acme", "run_9");
  EXPECT_FALSE(no_steps);
  EXPECT_EQ(no_steps.error(), "no run run_9");
}

TEST(SqliteRunStore, ConcurrentStepsGetDistinctConsecutiveSeqs) {
  TempDir dir;
  const auto path = dir.file("redline.db");
  // Two stores on one file: two connections, so the seq must be picked inside SQLite's write
  // transaction, not just under one store's mutex.
  auto first = open_or_fail(path);
  auto second = open_or_fail(path);
  ASSERT_TRUE(first && second);
  ASSERT_TRUE(first->insert_run(run("run_1")));

  constexpr int kThreads = 8;
  constexpr int kStepsPerThread = 25;
  std::vector<std::vector<std::int64_t>> seqs(kThreads);
  std::vector<std::thread> threads;
  for (int thread = 0; thread < kThreads; ++thread) {
    threads.emplace_back([&, thread] {
      RunStore& store = thread % 2 == 0 ? *first : *second;
      for (int index = 0; index < kStepsPerThread; ++index) {
        // Built by appending: GCC 12 warns (-Wrestrict, falsely) on "t" + std::to_string(…).
        std::string key = "t";
        key += std::to_string(thread);
        key += '-';
        key += std::to_string(index);
        auto seq = store.begin_step("acme", "run_1", step(key));
        if (seq) {
          seqs[thread].push_back(*seq);
        } else {
          ADD_FAILURE() << seq.error();
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();

  std::vector<std::int64_t> all;
  for (const auto& mine : seqs) {
    EXPECT_TRUE(std::is_sorted(mine.begin(), mine.end()));
    all.insert(all.end(), mine.begin(), mine.end());
  }
  std::sort(all.begin(), all.end());
  std::vector<std::int64_t> expected(kThreads * kStepsPerThread);
  std::iota(expected.begin(), expected.end(), 1);
  EXPECT_EQ(all, expected);

  auto stored = first->steps("acme", "run_1");
  ASSERT_TRUE(stored);
  EXPECT_EQ(seqs_of(*stored), expected);
}

TEST(SqliteRunStore, RunsWithStatusAcrossTenantsOldestFirst) {
  auto store = open_or_fail(":memory:");
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->insert_run(run("run_b", "acme", kT0 + 2, "running")));
  ASSERT_TRUE(store->insert_run(run("run_a", "zeta", kT0 + 2, "queued")));
  ASSERT_TRUE(store->insert_run(run("run_c", "beta", kT0 + 1, "running")));
  ASSERT_TRUE(store->insert_run(run("run_d", "acme", kT0, "completed")));
  ASSERT_TRUE(store->insert_run(run("run_e", "beta", kT0 + 3, "waiting_approval")));
  ASSERT_TRUE(store->insert_run(run("run_f", "acme", kT0 + 4, "queued")));

  auto active = store->runs_with_status({"queued", "running"});
  ASSERT_TRUE(active) << active.error();
  // Same created_at: the smaller id first, whatever the tenant.
  EXPECT_THAT(ids_of(*active), ElementsAre("beta/run_c", "zeta/run_a", "acme/run_b", "acme/run_f"));

  auto waiting = store->runs_with_status({"waiting_approval"});
  ASSERT_TRUE(waiting);
  EXPECT_THAT(ids_of(*waiting), ElementsAre("beta/run_e"));

  auto none = store->runs_with_status({});
  ASSERT_TRUE(none);
  EXPECT_THAT(*none, IsEmpty());

  // Once a run leaves the status, it is no longer listed.
  ASSERT_TRUE(*store->update_run("beta", "run_c", "completed", "{}", kT0 + 5));
  active = store->runs_with_status({"queued", "running"});
  ASSERT_TRUE(active);
  EXPECT_THAT(ids_of(*active), ElementsAre("zeta/run_a", "acme/run_b", "acme/run_f"));
}

TEST(SqliteRunStore, GraphWithTasks) {
  auto store = open_or_fail(":memory:");
  ASSERT_TRUE(store);
  const auto stored = graph("graph_1");
  ASSERT_TRUE(store->insert_graph(stored, {task("plan"), task("fetch"), task("write")}));

  auto found = store->find_graph("acme", "graph_1");
  ASSERT_TRUE(found) << found.error();
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ(**found, stored);

  auto tasks = store->graph_tasks("acme", "graph_1");
  ASSERT_TRUE(tasks) << tasks.error();
  ASSERT_EQ(tasks->size(), 3u);
  // In the order given (not by id), pending, owned by the graph.
  GraphTask plan{"graph_1", "plan", "pending", "", 0, "", kT0};
  EXPECT_EQ((*tasks)[0], plan);
  EXPECT_EQ((*tasks)[1].task_id, "fetch");
  EXPECT_EQ((*tasks)[2].task_id, "write");

  GraphTask fetch{"graph_1", "fetch", "running", "run_7", 2, "", kT0 + 5};
  ASSERT_TRUE(store->update_graph_task("acme", fetch));
  GraphTask done{"graph_1", "plan", "completed", "run_6", 1, R"({"plan":"x"})", kT0 + 4};
  ASSERT_TRUE(store->update_graph_task("acme", done));
  tasks = store->graph_tasks("acme", "graph_1");
  ASSERT_TRUE(tasks);
  EXPECT_THAT(*tasks,
              ElementsAre(done, fetch, GraphTask{"graph_1", "write", "pending", "", 0, "", kT0}));

  auto missing_task = fetch;
  missing_task.task_id = "nope";
  auto status = store->update_graph_task("acme", missing_task);
  EXPECT_FALSE(status);
  EXPECT_EQ(status.message, "no task nope in graph graph_1");

  ASSERT_TRUE(store->update_graph_status("acme", "graph_1", "completed", kT0 + 9));
  auto expected = stored;
  expected.status = "completed";
  expected.updated_at = kT0 + 9;
  EXPECT_EQ(**store->find_graph("acme", "graph_1"), expected);
  auto missing_graph = store->update_graph_status("acme", "graph_2", "completed", kT0 + 9);
  EXPECT_FALSE(missing_graph);
  EXPECT_EQ(missing_graph.message, "no graph graph_2");
}

TEST(SqliteRunStore, GraphInsertIsAllOrNothing) {
  auto store = open_or_fail(":memory:");
  ASSERT_TRUE(store);
  // A task id given twice fails the whole insert.
  auto status = store->insert_graph(graph("graph_1"), {task("a"), task("b"), task("a")});
  EXPECT_FALSE(status);
  EXPECT_EQ(status.message, "task id a is taken");
  auto found = store->find_graph("acme", "graph_1");
  ASSERT_TRUE(found);
  EXPECT_FALSE(found->has_value());
  auto tasks = store->graph_tasks("acme", "graph_1");
  EXPECT_FALSE(tasks);

  ASSERT_TRUE(store->insert_graph(graph("graph_1"), {task("a")}));
  auto taken = store->insert_graph(graph("graph_1"), {task("b")});
  EXPECT_FALSE(taken);
  EXPECT_EQ(taken.message, "graph id graph_1 is taken");
  tasks = store->graph_tasks("acme", "graph_1");
  ASSERT_TRUE(tasks);
  ASSERT_EQ(tasks->size(), 1u);
  EXPECT_EQ((*tasks)[0].task_id, "a");
}

TEST(SqliteRunStore, RunningGraphsAcrossTenantsOldestFirst) {
  auto store = open_or_fail(":memory:");
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->insert_graph(graph("graph_b", "acme", kT0 + 2), {task("a")}));
  ASSERT_TRUE(store->insert_graph(graph("graph_a", "zeta", kT0 + 2), {task("a")}));
  ASSERT_TRUE(store->insert_graph(graph("graph_c", "beta", kT0 + 1), {task("a")}));
  ASSERT_TRUE(store->insert_graph(graph("graph_d", "acme", kT0, "completed"), {task("a")}));

  auto running = store->running_graphs();
  ASSERT_TRUE(running) << running.error();
  std::vector<std::string> ids;
  for (const auto& entry : *running) ids.push_back(entry.tenant + "/" + entry.id);
  EXPECT_THAT(ids, ElementsAre("beta/graph_c", "zeta/graph_a", "acme/graph_b"));

  ASSERT_TRUE(store->update_graph_status("zeta", "graph_a", "failed", kT0 + 3));
  running = store->running_graphs();
  ASSERT_TRUE(running);
  ASSERT_EQ(running->size(), 2u);
  EXPECT_EQ((*running)[0].id, "graph_c");
  EXPECT_EQ((*running)[1].id, "graph_b");
}

TEST(SqliteRunStore, SurvivesARestart) {
  TempDir dir;
  const auto path = dir.file("redline.db");
  auto stored = run("run_1", "acme", kT0, "running");
  stored.graph_id = "graph_1";
  stored.task_id = "fetch";
  {
    auto store = open_or_fail(path);
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->insert_run(stored));
    ASSERT_TRUE(store->insert_run(run("run_2", "acme", kT0 + 1, "completed")));
    EXPECT_EQ(*store->begin_step("acme", "run_1", step("k1", "model_call")), 1);
    ASSERT_TRUE(store->end_step("acme", "run_1", 1, "completed", R"({"tokens":3})", kT0 + 20));
    EXPECT_EQ(*store->begin_step("acme", "run_1", step("k2")), 2);
    ASSERT_TRUE(store->insert_graph(graph("graph_1"), {task("fetch")}));
    GraphTask fetch{"graph_1", "fetch", "running", "run_1", 1, "", kT0 + 1};
    ASSERT_TRUE(store->update_graph_task("acme", fetch));
  }

  auto store = open_or_fail(path);
  ASSERT_TRUE(store);
  EXPECT_EQ(**store->find_run("acme", "run_1"), stored);
  auto resumable = store->runs_with_status({"queued", "running"});
  ASSERT_TRUE(resumable);
  EXPECT_THAT(ids_of(*resumable), ElementsAre("acme/run_1"));
  auto steps = store->steps("acme", "run_1");
  ASSERT_TRUE(steps);
  ASSERT_EQ(steps->size(), 2u);
  EXPECT_EQ((*steps)[0].status, "completed");
  EXPECT_EQ((*steps)[0].result_json, R"({"tokens":3})");
  EXPECT_EQ((*steps)[0].finished_at, kT0 + 20);
  // Started but never ended: its outcome is unknown, and it can still be ended once.
  EXPECT_EQ((*steps)[1].status, "started");
  EXPECT_EQ((*steps)[1].finished_at, 0);
  EXPECT_EQ(*store->begin_step("acme", "run_1", step("k3")), 3);
  EXPECT_FALSE(store->begin_step("acme", "run_1", step("k1")));
  ASSERT_TRUE(store->end_step("acme", "run_1", 2, "failed", R"({"error":"lost"})", kT0 + 30));

  auto running = store->running_graphs();
  ASSERT_TRUE(running);
  ASSERT_EQ(running->size(), 1u);
  EXPECT_EQ((*running)[0], graph("graph_1"));
  auto tasks = store->graph_tasks("acme", "graph_1");
  ASSERT_TRUE(tasks);
  EXPECT_THAT(*tasks,
              ElementsAre(GraphTask{"graph_1", "fetch", "running", "run_1", 1, "", kT0 + 1}));

  std::string error;
  auto db = open_sqlite_database(path, &error);
  ASSERT_TRUE(db) << error;
  auto version = schema_version(db.get(), "runs");
  ASSERT_TRUE(version);
  EXPECT_EQ(*version, 1);
}

TEST(SqliteRunStore, OwnersRemoveWhatTheyOwn) {
  TempDir dir;
  const auto path = dir.file("redline.db");
  auto store = open_or_fail(path);
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->insert_run(run("run_1")));
  EXPECT_EQ(*store->begin_step("acme", "run_1", step("k1")), 1);
  ASSERT_TRUE(store->insert_graph(graph("graph_1"), {task("a"), task("b")}));

  // The interface removes nothing yet; retention will delete runs and graphs directly.
  std::string error;
  auto db = open_sqlite_database(path, &error);
  ASSERT_TRUE(db) << error;
  ASSERT_EQ(sqlite3_exec(db.get(),
                         "DELETE FROM runs WHERE tenant = 'acme' AND id = 'run_1';"
                         "DELETE FROM graphs WHERE tenant = 'acme' AND id = 'graph_1';",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  auto count = [&](const char* sql) {
    sqlite3_stmt* statement = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db.get(), sql, -1, &statement, nullptr), SQLITE_OK);
    EXPECT_EQ(sqlite3_step(statement), SQLITE_ROW);
    const auto rows = sqlite3_column_int64(statement, 0);
    sqlite3_finalize(statement);
    return rows;
  };
  EXPECT_EQ(count("SELECT count(*) FROM run_steps"), 0);
  EXPECT_EQ(count("SELECT count(*) FROM graph_tasks"), 0);
}

}  // namespace
}  // namespace redline::store
