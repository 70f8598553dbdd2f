#pragma once
// The HTTP surface of durable runs and task graphs, for API keys (the tenant's own objects) and
// for the admin (approvals across tenants):
//
//   POST /v1/agent/runs                          start a run (RunSpec body)
//   GET  /v1/agent/runs[?graph_id&limit]          the tenant's runs, newest first
//   GET  /v1/agent/runs/{id}                      status, usage, output, what it waits for
//   GET  /v1/agent/runs/{id}/steps                its journal
//   GET  /v1/agent/runs/{id}/events               SSE: the journal so far, then live steps
//   POST /v1/agent/runs/{id}/cancel
//   POST /v1/agent/runs/{id}/approvals/{seq}      {"approve": bool, "reason"} (owning key)
//   POST /v1/agent/runs/{id}/resolve              {"step", "action": "retry" | "assume_done" |
//                                                  "fail", "output"} (owning key)
//   POST /v1/agent/graphs                         start a graph (task_graph.h body)
//   GET  /v1/agent/graphs/{id}                    per-task status, usage, outputs
//   GET  /v1/agent/graphs/{id}/events             SSE: task and graph status changes
//   POST /v1/agent/graphs/{id}/cancel
//   GET  /admin/agent/approvals                   runs of every tenant waiting for approval
//   POST /admin/agent/runs/{tenant}/{id}/approvals/{seq}   the admin's decision
//
// Another tenant's run or graph is a 404, like one that never existed.
#include <boost/asio/awaitable.hpp>
#include <string_view>

#include "net/http_server.h"

namespace redline::gateway {
class Gateway;
struct Caller;
struct RequestContext;
}  // namespace redline::gateway

namespace redline::agents {

class BlockingPool;
class GraphExecutor;
class RunEngine;

class AgentsApi {
 public:
  AgentsApi(gateway::Gateway& gateway, RunEngine& runs, GraphExecutor& graphs,
            BlockingPool& blocking)
      : gateway_(gateway), runs_(runs), graphs_(graphs), blocking_(blocking) {}

  // A request under /v1/agent/ from an authenticated caller.
  boost::asio::awaitable<void> handle(const gateway::Caller& caller, net::HttpRequest& request,
                                      net::ResponseWriter& writer,
                                      gateway::RequestContext& context);
  // A request under /admin/agent/, the admin's credential already checked.
  boost::asio::awaitable<net::HttpResponse> handle_admin(const net::HttpRequest& request);

 private:
  boost::asio::awaitable<net::HttpResponse> runs(const gateway::Caller& caller,
                                                 const net::HttpRequest& request,
                                                 std::string_view rest);
  boost::asio::awaitable<net::HttpResponse> graphs(const gateway::Caller& caller,
                                                   const net::HttpRequest& request,
                                                   std::string_view rest);
  // Follows a run's or a graph's events as SSE until it ends or the client leaves.
  boost::asio::awaitable<void> stream_events(const gateway::Caller& caller, std::string_view id,
                                             bool graph, net::ResponseWriter& writer,
                                             gateway::RequestContext& context);

  gateway::Gateway& gateway_;
  RunEngine& runs_;
  GraphExecutor& graphs_;
  BlockingPool& blocking_;
};

}  // namespace redline::agents
