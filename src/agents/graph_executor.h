#pragma once
// Executes task graphs: each task runs as a durable run (RunEngine), independent tasks side by
// side up to the graph's max_concurrency (and the tenant's run limit), each in its own context.
// A task starts with its dependencies' results in its input and reads and writes the graph's
// shared memory namespace; what it produced is filed there as a record. A failed task is
// retried per its policy; when it fails for good, every task that depends on it is blocked.
//
// The graph's state is the stored state of its tasks: every decision is written before it is
// acted on, so a restarted gateway rebuilds each running graph's schedule from the store and
// goes on (its tasks' runs resume on their own).
#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>
#include <memory>
#include <string>
#include <string_view>

#include "agents/task_graph.h"
#include "agents/turn_queue.h"
#include "store/run_store.h"

namespace redline::gateway {
class Gateway;
struct Caller;
}  // namespace redline::gateway

namespace redline::agents {

class BlockingPool;
class MemoryService;
class RunEngine;

class GraphExecutor {
 public:
  GraphExecutor(gateway::Gateway& gateway, RunEngine& runs, std::shared_ptr<store::RunStore> store,
                MemoryService& memory, BlockingPool& blocking);

  // Stores a validated graph and starts its first tasks.
  boost::asio::awaitable<store::Result<store::GraphRecord>> start(const gateway::Caller& caller,
                                                                  GraphSpec graph);
  // Goes on with every graph the last stop left running. Called once, when the gateway starts.
  void resume_all();
  // Cancels the graph: pending tasks are cancelled and running ones stopped. False when it had
  // ended already.
  boost::asio::awaitable<store::Result<bool>> cancel(std::string_view tenant, std::string_view id);

  // The graph as the API shows it: status, and per task its state, run, attempts, usage and
  // output.
  boost::asio::awaitable<store::Result<std::optional<boost::json::object>>> describe(
      std::string_view tenant, std::string_view id);

 private:
  // Applies what happened to a task's run, then starts what may start; one graph at a time.
  boost::asio::awaitable<void> on_run_finished(store::RunRecord run);
  boost::asio::awaitable<void> schedule(std::string tenant, std::string id);
  boost::asio::awaitable<void> schedule_after(std::string tenant, std::string id,
                                              std::int64_t delay_ms);
  void publish(const std::string& graph_id, boost::json::object event);

  gateway::Gateway& gateway_;
  RunEngine& runs_;
  std::shared_ptr<store::RunStore> store_;
  MemoryService& memory_;
  BlockingPool& blocking_;
  TurnQueue graph_turns_;  // one scheduler at a time per graph
};

}  // namespace redline::agents
