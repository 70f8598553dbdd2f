// RunStore on SQLite. One connection per store, serialised by a mutex, like the other SQLite
// stores: a journal write is one or two small statements. Other processes sharing the file are
// serialised by SQLite's write lock (every write transaction is IMMEDIATE).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "store/run_store.h"
#include "store/sqlite_statement.h"

namespace redline::store {
namespace {

// The "runs" module's schema; append-only (see sqlite_database.h).
//
// Every key starts with the tenant, so a lookup without the right tenant finds nothing. A run
// owns its steps and a graph its tasks (the foreign keys remove them together). A run's graph_id
// is a plain reference, not a foreign key: most runs have none, and the graph executor may write
// a task's run before or after it updates the task.
//
// Lookup paths: runs_by_age and runs_by_graph serve list_runs (newest first, with and without a
// graph); runs_by_status serves runs_with_status (what a restart resumes); graphs_running serves
// running_graphs and must keep the condition the query uses. A step's seq is the next after the
// run's largest, read from the primary key; run_steps_by_key makes a non-empty idempotency key
// unique within its run. Tasks keep the order they were inserted in (`position`).
const std::vector<std::string_view> kRunsSchema = {
    R"sql(
CREATE TABLE runs (
  tenant TEXT NOT NULL,
  id TEXT NOT NULL,
  key_id TEXT NOT NULL,
  graph_id TEXT NOT NULL,
  task_id TEXT NOT NULL,
  status TEXT NOT NULL,
  spec_json TEXT NOT NULL,
  state_json TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (tenant, id)
);
CREATE INDEX runs_by_age ON runs(tenant, created_at, id);
CREATE INDEX runs_by_graph ON runs(tenant, graph_id, created_at, id);
CREATE INDEX runs_by_status ON runs(status, created_at, id, tenant);
CREATE TABLE run_steps (
  tenant TEXT NOT NULL,
  run_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  kind TEXT NOT NULL,
  idempotency_key TEXT NOT NULL,
  status TEXT NOT NULL,
  request_json TEXT NOT NULL,
  result_json TEXT NOT NULL,
  started_at INTEGER NOT NULL,
  finished_at INTEGER NOT NULL,
  PRIMARY KEY (tenant, run_id, seq),
  FOREIGN KEY (tenant, run_id) REFERENCES runs(tenant, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX run_steps_by_key ON run_steps(tenant, run_id, idempotency_key)
  WHERE idempotency_key <> '';
CREATE TABLE graphs (
  tenant TEXT NOT NULL,
  id TEXT NOT NULL,
  key_id TEXT NOT NULL,
  status TEXT NOT NULL,
  spec_json TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (tenant, id)
);
CREATE INDEX graphs_running ON graphs(created_at, id, tenant) WHERE status = 'running';
CREATE TABLE graph_tasks (
  tenant TEXT NOT NULL,
  graph_id TEXT NOT NULL,
  position INTEGER NOT NULL,
  task_id TEXT NOT NULL,
  status TEXT NOT NULL,
  run_id TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  output_json TEXT NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (tenant, graph_id, position),
  UNIQUE (tenant, graph_id, task_id),
  FOREIGN KEY (tenant, graph_id) REFERENCES graphs(tenant, id) ON DELETE CASCADE
);
)sql",
};

constexpr std::string_view kRunColumns =
    "tenant, id, key_id, graph_id, task_id, status, spec_json, state_json, created_at, "
    "updated_at";
constexpr std::string_view kStepColumns =
    "seq, kind, idempotency_key, status, request_json, result_json, started_at, finished_at";
constexpr std::string_view kGraphColumns =
    "tenant, id, key_id, status, spec_json, created_at, updated_at";
constexpr std::string_view kTaskColumns =
    "graph_id, task_id, status, run_id, attempts, output_json, updated_at";

// Statements with a list of statuses are cached per length up to this many (there are eight run
// statuses); longer lists are prepared for the one call.
constexpr std::size_t kMaxCachedStatusCount = 8;

// "(?first, ?first+1, …)" for `count` values.
std::string placeholders(int first, std::size_t count) {
  std::string list = "(";
  for (std::size_t index = 0; index < count; ++index) {
    if (index > 0) list += ", ";
    list += '?';
    list += std::to_string(first + static_cast<int>(index));
  }
  return list + ")";
}

// ?1 tenant, ?2 id, ?3 status, ?4 state_json, ?5 updated_at, then the statuses it may replace.
// One statement, so a cancel and the engine's own transition can't interleave between a check
// and the write.
std::string update_run_sql(std::size_t status_count) {
  std::string sql =
      "UPDATE runs SET status = ?3, state_json = ?4, updated_at = ?5 "
      "WHERE tenant = ?1 AND id = ?2";
  if (status_count > 0) sql += " AND status IN " + placeholders(6, status_count);
  return sql;
}

// ?1, ?2, … the statuses.
std::string runs_with_status_sql(std::size_t status_count) {
  return sql_of({"SELECT ", kRunColumns, " FROM runs WHERE status IN ",
                 placeholders(1, status_count), " ORDER BY created_at, id, tenant"});
}

// A statement whose shape depends on how many statuses it lists: prepared once per length.
class StatusListStatements {
 public:
  using Build = std::string (*)(std::size_t);
  explicit StatusListStatements(Build build) : build_(build) {}

  // The statement for `count` statuses, cached or (for long lists) in `*once`.
  Result<sqlite3_stmt*> get(sqlite3* db, std::size_t count, Statement* once) {
    Statement* slot = count <= kMaxCachedStatusCount ? &cached_[count] : once;
    if (!*slot) {
      std::string error;
      *slot = prepare_statement(db, build_(count), count <= kMaxCachedStatusCount, &error);
      if (!*slot) return Status::error(error);
    }
    return slot->get();
  }

 private:
  Build build_;
  Statement cached_[kMaxCachedStatusCount + 1];
};

RunRecord run_from_row(const StatementUse& row) {
  RunRecord run;
  run.tenant = row.text(0);
  run.id = row.text(1);
  run.key_id = row.text(2);
  run.graph_id = row.text(3);
  run.task_id = row.text(4);
  run.status = row.text(5);
  run.spec_json = row.text(6);
  run.state_json = row.text(7);
  run.created_at = row.integer(8);
  run.updated_at = row.integer(9);
  return run;
}

RunStep step_from_row(const StatementUse& row) {
  RunStep step;
  step.seq = row.integer(0);
  step.kind = row.text(1);
  step.idempotency_key = row.text(2);
  step.status = row.text(3);
  step.request_json = row.text(4);
  step.result_json = row.text(5);
  step.started_at = row.integer(6);
  step.finished_at = row.integer(7);
  return step;
}

GraphRecord graph_from_row(const StatementUse& row) {
  GraphRecord graph;
  graph.tenant = row.text(0);
  graph.id = row.text(1);
  graph.key_id = row.text(2);
  graph.status = row.text(3);
  graph.spec_json = row.text(4);
  graph.created_at = row.integer(5);
  graph.updated_at = row.integer(6);
  return graph;
}

GraphTask task_from_row(const StatementUse& row) {
  GraphTask task;
  task.graph_id = row.text(0);
  task.task_id = row.text(1);
  task.status = row.text(2);
  task.run_id = row.text(3);
  task.attempts = row.integer(4);
  task.output_json = row.text(5);
  task.updated_at = row.integer(6);
  return task;
}

class SqliteRunStore final : public RunStore {
 public:
  explicit SqliteRunStore(SqliteConnection db) : db_(std::move(db)) {}

  // Takes the write-ahead log's checkpoints off this store's write path (see WalCheckpointer).
  bool attach_checkpointer(const std::string& path, std::string* error) {
    checkpointer_ = WalCheckpointer::attach(db_.get(), path, error);
    return checkpointer_ != nullptr || path == ":memory:";
  }

  // Prepares every fixed statement once; false and `*error` set when the schema doesn't match.
  bool prepare(std::string* error) {
    const CachedStatement statements[] = {
        {&insert_run_,
         sql_of({"INSERT INTO runs(", kRunColumns, ") VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"})},
        {&select_run_, sql_of({"SELECT ", kRunColumns, " FROM runs WHERE tenant = ? AND id = ?"})},
        {&run_exists_, "SELECT 1 FROM runs WHERE tenant = ? AND id = ?"},
        {&list_runs_, sql_of({"SELECT ", kRunColumns,
                              " FROM runs WHERE tenant = ?1 ORDER BY created_at DESC, id DESC "
                              "LIMIT ?2"})},
        {&list_graph_runs_, sql_of({"SELECT ", kRunColumns,
                                    " FROM runs WHERE tenant = ?1 AND graph_id = ?2 "
                                    "ORDER BY created_at DESC, id DESC LIMIT ?3"})},
        // The next seq is read in the same statement, inside the caller's write transaction, so
        // concurrent appends can't pick the same number; selecting from runs appends nothing when
        // the tenant has no such run.
        {&begin_step_, sql_of({"INSERT INTO run_steps(tenant, run_id, ", kStepColumns,
                               ") SELECT ?1, ?2, (SELECT coalesce(max(seq), 0) + 1 FROM run_steps "
                               "WHERE tenant = ?1 AND run_id = ?2), ?3, ?4, ?5, ?6, ?7, ?8, ?9 "
                               "FROM runs WHERE tenant = ?1 AND id = ?2 RETURNING seq"})},
        // A step ends once: the condition on its status is what makes a second end fail.
        {&end_step_,
         "UPDATE run_steps SET status = ?4, result_json = ?5, finished_at = ?6 "
         "WHERE tenant = ?1 AND run_id = ?2 AND seq = ?3 AND status = 'started'"},
        {&step_status_,
         "SELECT status FROM run_steps WHERE tenant = ?1 AND run_id = ?2 AND seq = ?3"},
        {&select_steps_, sql_of({"SELECT ", kStepColumns,
                                 " FROM run_steps WHERE tenant = ?1 AND run_id = ?2 AND seq > ?3 "
                                 "ORDER BY seq"})},
        {&insert_graph_,
         sql_of({"INSERT INTO graphs(", kGraphColumns, ") VALUES(?, ?, ?, ?, ?, ?, ?)"})},
        {&select_graph_,
         sql_of({"SELECT ", kGraphColumns, " FROM graphs WHERE tenant = ? AND id = ?"})},
        {&graph_exists_, "SELECT 1 FROM graphs WHERE tenant = ? AND id = ?"},
        {&update_graph_status_,
         "UPDATE graphs SET status = ?3, updated_at = ?4 WHERE tenant = ?1 AND id = ?2"},
        {&running_graphs_, sql_of({"SELECT ", kGraphColumns,
                                   " FROM graphs WHERE status = 'running' "
                                   "ORDER BY created_at, id, tenant"})},
        {&insert_task_, sql_of({"INSERT INTO graph_tasks(tenant, position, ", kTaskColumns,
                                ") VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)"})},
        {&select_tasks_, sql_of({"SELECT ", kTaskColumns,
                                 " FROM graph_tasks WHERE tenant = ?1 AND graph_id = ?2 "
                                 "ORDER BY position"})},
        {&update_task_,
         "UPDATE graph_tasks SET status = ?4, run_id = ?5, attempts = ?6, output_json = ?7, "
         "updated_at = ?8 WHERE tenant = ?1 AND graph_id = ?2 AND task_id = ?3"},
    };
    return prepare_statements(db_.get(), statements, error) &&
           transactions_.prepare(db_.get(), error);
  }

  // ---- runs

  Status insert_run(const RunRecord& run) override {
    StoreLock lock(mutex_, checkpointer_.get());
    StatementUse insert(insert_run_.get());
    insert.bind(1, run.tenant);
    insert.bind(2, run.id);
    insert.bind(3, run.key_id);
    insert.bind(4, run.graph_id);
    insert.bind(5, run.task_id);
    insert.bind(6, run.status);
    insert.bind(7, run.spec_json);
    insert.bind(8, run.state_json);
    insert.bind(9, run.created_at);
    insert.bind(10, run.updated_at);
    if (insert.step() != SQLITE_DONE) return insert_error(db_.get(), "run", run.id);
    return Status::success();
  }

  Result<std::optional<RunRecord>> find_run(std::string_view tenant, std::string_view id) override {
    StoreLock lock(mutex_, checkpointer_.get());
    return find_owned(select_run_.get(), tenant, id, "cannot look up run", run_from_row);
  }

  Result<std::vector<RunRecord>> list_runs(std::string_view tenant, std::string_view graph_id,
                                           std::size_t limit) override {
    const auto bounded = static_cast<std::int64_t>(
        std::min<std::size_t>(limit, std::numeric_limits<std::int64_t>::max()));
    StoreLock lock(mutex_, checkpointer_.get());
    StatementUse select(graph_id.empty() ? list_runs_.get() : list_graph_runs_.get());
    select.bind(1, tenant);
    if (graph_id.empty()) {
      select.bind(2, bounded);
    } else {
      select.bind(2, graph_id);
      select.bind(3, bounded);
    }
    return select.all_rows("cannot list runs", run_from_row);
  }

  Result<bool> update_run(std::string_view tenant, std::string_view id, std::string_view status,
                          std::string_view state_json, std::int64_t updated_at,
                          const std::vector<std::string>& only_if_status) override {
    StoreLock lock(mutex_, checkpointer_.get());
    Statement once;
    auto statement = update_run_statements_.get(db_.get(), only_if_status.size(), &once);
    if (!statement) return Status::error(statement.error());
    StatementUse update(*statement);
    update.bind(1, tenant);
    update.bind(2, id);
    update.bind(3, status);
    update.bind(4, state_json);
    update.bind(5, updated_at);
    for (std::size_t index = 0; index < only_if_status.size(); ++index) {
      update.bind(static_cast<int>(index) + 6, only_if_status[index]);
    }
    return update.execute_changing("cannot update run");
  }

  Result<std::vector<RunRecord>> runs_with_status(
      const std::vector<std::string>& statuses) override {
    if (statuses.empty()) return std::vector<RunRecord>();
    StoreLock lock(mutex_, checkpointer_.get());
    Statement once;
    auto statement = runs_with_status_statements_.get(db_.get(), statuses.size(), &once);
    if (!statement) return Status::error(statement.error());
    StatementUse select(*statement);
    for (std::size_t index = 0; index < statuses.size(); ++index) {
      select.bind(static_cast<int>(index) + 1, statuses[index]);
    }
    return select.all_rows("cannot list runs", run_from_row);
  }

  // ---- the journal of a run

  Result<std::int64_t> begin_step(std::string_view tenant, std::string_view run_id,
                                  const RunStep& step) override {
    StoreLock lock(mutex_, checkpointer_.get());
    Transaction transaction(db_.get(), transactions_);
    if (auto status = transaction.begin(Transaction::Kind::kWrite); !status) return status;
    std::int64_t seq = 0;
    {
      StatementUse insert(begin_step_.get());
      insert.bind(1, tenant);
      insert.bind(2, run_id);
      insert.bind(3, step.kind);
      insert.bind(4, step.idempotency_key);
      insert.bind(5, step.status.empty() ? std::string_view("started") : step.status);
      insert.bind(6, step.request_json);
      insert.bind(7, step.result_json);
      insert.bind(8, step.started_at);
      insert.bind(9, step.finished_at);
      const int rc = insert.step();
      if (rc == SQLITE_DONE) return Status::error("no run " + std::string(run_id));
      if (rc != SQLITE_ROW) {
        if (sqlite3_extended_errcode(db_.get()) == SQLITE_CONSTRAINT_UNIQUE) {
          return Status::error("idempotency key " + step.idempotency_key + " is taken in run " +
                               std::string(run_id));
        }
        return sqlite_error(db_.get(), "cannot begin step");
      }
      seq = insert.integer(0);
      if (insert.step() != SQLITE_DONE) return sqlite_error(db_.get(), "cannot begin step");
    }
    if (auto status = transaction.commit(); !status) return status;
    return seq;
  }

  Status end_step(std::string_view tenant, std::string_view run_id, std::int64_t seq,
                  std::string_view status, std::string_view result_json,
                  std::int64_t finished_at) override {
    StoreLock lock(mutex_, checkpointer_.get());
    {
      StatementUse update(end_step_.get());
      update.bind(1, tenant);
      update.bind(2, run_id);
      update.bind(3, seq);
      update.bind(4, status);
      update.bind(5, result_json);
      update.bind(6, finished_at);
      auto ended = update.execute_changing("cannot end step");
      if (!ended) return Status::error(ended.error());
      if (*ended) return Status::success();
    }
    // Nothing changed: say why.
    StatementUse select(step_status_.get());
    select.bind(1, tenant);
    select.bind(2, run_id);
    select.bind(3, seq);
    auto current = select.first_row("cannot end step", [](const StatementUse&) { return true; });
    if (!current) return Status::error(current.error());
    const std::string step_name = "step " + std::to_string(seq) + " of run " + std::string(run_id);
    if (*current) return Status::error(step_name + " has already ended");
    return Status::error("no " + step_name);
  }

  Result<std::vector<RunStep>> steps(std::string_view tenant, std::string_view run_id,
                                     std::int64_t after_seq) override {
    StoreLock lock(mutex_, checkpointer_.get());
    // One snapshot, so the run can't vanish between the check and the read.
    Transaction transaction(db_.get(), transactions_);
    if (auto status = transaction.begin(Transaction::Kind::kRead); !status) return status;
    auto found = owned_exists(run_exists_.get(), tenant, run_id, "cannot look up run");
    if (!found) return Status::error(found.error());
    if (!*found) return Status::error("no run " + std::string(run_id));
    auto rows = select_steps(tenant, run_id, after_seq);
    if (!rows) return rows;
    if (auto status = transaction.commit(); !status) return status;
    return rows;
  }

  // ---- graphs

  Status insert_graph(const GraphRecord& graph, const std::vector<GraphTask>& tasks) override {
    StoreLock lock(mutex_, checkpointer_.get());
    Transaction transaction(db_.get(), transactions_);
    if (auto status = transaction.begin(Transaction::Kind::kWrite); !status) return status;
    {
      StatementUse insert(insert_graph_.get());
      insert.bind(1, graph.tenant);
      insert.bind(2, graph.id);
      insert.bind(3, graph.key_id);
      insert.bind(4, graph.status);
      insert.bind(5, graph.spec_json);
      insert.bind(6, graph.created_at);
      insert.bind(7, graph.updated_at);
      if (insert.step() != SQLITE_DONE) return insert_error(db_.get(), "graph", graph.id);
    }
    std::int64_t position = 0;
    for (const auto& task : tasks) {
      StatementUse insert(insert_task_.get());
      insert.bind(1, graph.tenant);
      insert.bind(2, ++position);
      insert.bind(3, graph.id);
      insert.bind(4, task.task_id);
      insert.bind(5, task.status.empty() ? std::string_view("pending") : task.status);
      insert.bind(6, task.run_id);
      insert.bind(7, task.attempts);
      insert.bind(8, task.output_json);
      insert.bind(9, task.updated_at);
      if (insert.step() != SQLITE_DONE) return insert_error(db_.get(), "task", task.task_id);
    }
    return transaction.commit();
  }

  Result<std::optional<GraphRecord>> find_graph(std::string_view tenant,
                                                std::string_view id) override {
    StoreLock lock(mutex_, checkpointer_.get());
    return find_owned(select_graph_.get(), tenant, id, "cannot look up graph", graph_from_row);
  }

  Result<std::vector<GraphTask>> graph_tasks(std::string_view tenant,
                                             std::string_view graph_id) override {
    StoreLock lock(mutex_, checkpointer_.get());
    Transaction transaction(db_.get(), transactions_);
    if (auto status = transaction.begin(Transaction::Kind::kRead); !status) return status;
    auto found = owned_exists(graph_exists_.get(), tenant, graph_id, "cannot look up graph");
    if (!found) return Status::error(found.error());
    if (!*found) return Status::error("no graph " + std::string(graph_id));
    auto rows = select_tasks(tenant, graph_id);
    if (!rows) return rows;
    if (auto status = transaction.commit(); !status) return status;
    return rows;
  }

  Status update_graph_status(std::string_view tenant, std::string_view id, std::string_view status,
                             std::int64_t updated_at) override {
    StoreLock lock(mutex_, checkpointer_.get());
    StatementUse update(update_graph_status_.get());
    update.bind(1, tenant);
    update.bind(2, id);
    update.bind(3, status);
    update.bind(4, updated_at);
    auto updated = update.execute_changing("cannot update graph");
    if (!updated) return Status::error(updated.error());
    if (!*updated) return Status::error("no graph " + std::string(id));
    return Status::success();
  }

  Status update_graph_task(std::string_view tenant, const GraphTask& task) override {
    StoreLock lock(mutex_, checkpointer_.get());
    StatementUse update(update_task_.get());
    update.bind(1, tenant);
    update.bind(2, task.graph_id);
    update.bind(3, task.task_id);
    update.bind(4, task.status);
    update.bind(5, task.run_id);
    update.bind(6, task.attempts);
    update.bind(7, task.output_json);
    update.bind(8, task.updated_at);
    auto updated = update.execute_changing("cannot update graph task");
    if (!updated) return Status::error(updated.error());
    if (!*updated) return Status::error("no task " + task.task_id + " in graph " + task.graph_id);
    return Status::success();
  }

  Result<std::vector<GraphRecord>> running_graphs() override {
    StoreLock lock(mutex_, checkpointer_.get());
    StatementUse select(running_graphs_.get());
    return select.all_rows("cannot list running graphs", graph_from_row);
  }

 private:
  // Helpers: call with mutex_ held.

  // Whether `tenant` has the object `id`, by a statement taking ?1 = tenant, ?2 = id.
  static Result<bool> owned_exists(sqlite3_stmt* select, std::string_view tenant,
                                   std::string_view id, std::string_view what) {
    auto found = find_owned(select, tenant, id, what, [](const StatementUse&) { return true; });
    if (!found) return Status::error(found.error());
    return found->has_value();
  }

  Result<std::vector<RunStep>> select_steps(std::string_view tenant, std::string_view run_id,
                                            std::int64_t after_seq) {
    StatementUse select(select_steps_.get());
    select.bind(1, tenant);
    select.bind(2, run_id);
    select.bind(3, after_seq);
    return select.all_rows("cannot read steps", step_from_row);
  }

  Result<std::vector<GraphTask>> select_tasks(std::string_view tenant, std::string_view graph_id) {
    StatementUse select(select_tasks_.get());
    select.bind(1, tenant);
    select.bind(2, graph_id);
    return select.all_rows("cannot read graph tasks", task_from_row);
  }

  std::mutex mutex_;
  SqliteConnection db_;  // declared before the statements: they must be finalized first
  std::unique_ptr<WalCheckpointer> checkpointer_;  // unhooks db_, so destroyed before it
  Statement insert_run_, select_run_, run_exists_, list_runs_, list_graph_runs_, begin_step_,
      end_step_, step_status_, select_steps_, insert_graph_, select_graph_, graph_exists_,
      update_graph_status_, running_graphs_, insert_task_, select_tasks_, update_task_;
  StatusListStatements update_run_statements_{update_run_sql};
  StatusListStatements runs_with_status_statements_{runs_with_status_sql};
  TransactionStatements transactions_;
};

}  // namespace

std::unique_ptr<RunStore> open_sqlite_run_store(const std::string& path, std::string* error) {
  return open_prepared_store<SqliteRunStore>(path, "runs", kRunsSchema, error);
}

}  // namespace redline::store
