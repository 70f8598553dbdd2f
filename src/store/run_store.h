// The journal of durable agent runs and task graphs. A run is a server-side tool loop (model
// call → tool calls → results → model call ...); every step is written here *before* it is acted
// on and again when it ends, so a gateway killed at any point can resume each run where it was:
// a step journaled as completed is never done again, and one journaled as started but never
// completed is known to have an unknown outcome. A graph is a set of tasks with dependencies;
// each task runs as a run.
//
// Everything is owned by a tenant: every lookup takes the tenant, and another tenant's object is
// reported exactly like a missing one. Specs, states and step payloads are JSON texts the store
// never parses.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "store/status.h"

namespace redline::store {

struct RunRecord {
  std::string id;  // "run_…"
  std::string tenant;
  std::string key_id;    // the API key it runs under ("" = anonymous); its owner may act on it
  std::string graph_id;  // "" unless it runs a task of a graph
  std::string task_id;   // the task's id within its graph
  // queued | running | waiting_approval | requires_action | completed | failed | cancelled |
  // stopped (a limit was hit)
  std::string status;
  std::string spec_json;   // what to run (model, instructions, input, tools, limits); immutable
  std::string state_json;  // the engine's running summary (usage, steps, output, error)
  std::int64_t created_at = 0;  // unix milliseconds
  std::int64_t updated_at = 0;
  friend bool operator==(const RunRecord&, const RunRecord&) = default;
};

// One journaled step of a run.
struct RunStep {
  std::int64_t seq = 0;  // 1, 2, ... within the run, in the order the steps were begun
  // model_call | tool_call | approval | compaction | decision | event
  std::string kind;
  // Unique within the run ("" = none: steps without a key are not checked); for a tool call it is
  // also sent to the tool server, so a server that deduplicates can recognise a retry.
  std::string idempotency_key;
  std::string status;            // started | completed | failed
  std::string request_json;      // what the step asks (a model call's messages digest, a tool call)
  std::string result_json;       // what came of it; "" while started
  std::int64_t started_at = 0;   // unix milliseconds
  std::int64_t finished_at = 0;  // 0 while started
  friend bool operator==(const RunStep&, const RunStep&) = default;
};

struct GraphRecord {
  std::string id;  // "graph_…"
  std::string tenant;
  std::string key_id;
  std::string status;           // running | completed | failed | cancelled
  std::string spec_json;        // the validated graph as submitted; immutable
  std::int64_t created_at = 0;  // unix milliseconds
  std::int64_t updated_at = 0;
  friend bool operator==(const GraphRecord&, const GraphRecord&) = default;
};

struct GraphTask {
  std::string graph_id;
  std::string task_id;  // as given in the spec
  // pending | running | completed | failed | blocked | cancelled
  std::string status;
  std::string run_id;  // the current (latest) attempt's run; "" before the first
  std::int64_t attempts = 0;
  std::string output_json;  // the result handed to dependents; "" until completed
  std::int64_t updated_at = 0;
  friend bool operator==(const GraphTask&, const GraphTask&) = default;
};

// Thread-safe: every method may be called from any thread. Errors come back as values. Every
// write is committed (durable as far as WAL synchronous=NORMAL goes, i.e. across a process kill)
// when the call returns.
class RunStore {
 public:
  virtual ~RunStore() = default;

  // ---- runs
  // Fails when the id is taken.
  virtual Status insert_run(const RunRecord& run) = 0;
  virtual Result<std::optional<RunRecord>> find_run(std::string_view tenant,
                                                    std::string_view id) = 0;
  // Runs of a tenant, newest first, at most `limit`; of one graph when `graph_id` is not "".
  virtual Result<std::vector<RunRecord>> list_runs(std::string_view tenant,
                                                   std::string_view graph_id,
                                                   std::size_t limit) = 0;
  // Sets status, state_json and updated_at. When `only_if_status` is non-empty, the update is
  // made only while the run's status is one of them (returns false otherwise, changing nothing):
  // how a cancel and the engine's own transition never overwrite each other. False too when the
  // tenant has no such run.
  virtual Result<bool> update_run(std::string_view tenant, std::string_view id,
                                  std::string_view status, std::string_view state_json,
                                  std::int64_t updated_at,
                                  const std::vector<std::string>& only_if_status = {}) = 0;
  // Runs of every tenant in one of `statuses` (e.g. queued, running), oldest first (by created_at,
  // then id): what a restarted gateway resumes.
  virtual Result<std::vector<RunRecord>> runs_with_status(
      const std::vector<std::string>& statuses) = 0;

  // ---- the journal of a run (the run must exist; its tenant is checked)
  // Appends a step with the next seq (returned) and status "started" unless `step.status` says
  // otherwise. Fails when the idempotency key is taken within the run.
  virtual Result<std::int64_t> begin_step(std::string_view tenant, std::string_view run_id,
                                          const RunStep& step) = 0;
  // Ends a started step: status (completed | failed), result_json, finished_at. Ending a step
  // that is not "started" is an error (a step ends once).
  virtual Status end_step(std::string_view tenant, std::string_view run_id, std::int64_t seq,
                          std::string_view status, std::string_view result_json,
                          std::int64_t finished_at) = 0;
  // Every step of the run in seq order; with `after_seq`, only those after it. Fails when the
  // tenant has no such run.
  virtual Result<std::vector<RunStep>> steps(std::string_view tenant, std::string_view run_id,
                                             std::int64_t after_seq = 0) = 0;

  // ---- graphs
  // Inserts a graph and all its tasks (status pending unless a task's says otherwise) in one
  // transaction, or nothing. The tasks' graph_id is the graph's; their order is kept.
  virtual Status insert_graph(const GraphRecord& graph, const std::vector<GraphTask>& tasks) = 0;
  virtual Result<std::optional<GraphRecord>> find_graph(std::string_view tenant,
                                                        std::string_view id) = 0;
  // The graph's tasks in the order they were inserted. Fails when the tenant has no such graph.
  virtual Result<std::vector<GraphTask>> graph_tasks(std::string_view tenant,
                                                     std::string_view graph_id) = 0;
  // Fails when the tenant has no such graph.
  virtual Status update_graph_status(std::string_view tenant, std::string_view id,
                                     std::string_view status, std::int64_t updated_at) = 0;
  // Replaces one task's status, run_id, attempts, output_json and updated_at. Fails when the
  // tenant's graph has no such task.
  virtual Status update_graph_task(std::string_view tenant, const GraphTask& task) = 0;
  // Graphs of every tenant whose status is "running", oldest first (by created_at, then id).
  virtual Result<std::vector<GraphRecord>> running_graphs() = 0;
};

// Opens (creating when missing) the SQLite database at `path` and brings the "runs" schema up to
// date. The file may be shared with the other modules' tables. ":memory:" gives a private
// in-memory database. Null and `*error` set on failure.
std::unique_ptr<RunStore> open_sqlite_run_store(const std::string& path, std::string* error);

}  // namespace redline::store
