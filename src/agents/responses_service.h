#pragma once
// The Responses and Conversations APIs: stateful turns on top of the gateway.
//
// A turn loads what came before (the previous_response_id chain or the conversation's items),
// adds the memory it asked for, translates everything into one chat completions call made
// through the gateway under the caller's own key (so red lines, budgets, routing and the audit
// chain apply to it exactly as to a direct call), translates the answer back — as a whole or as
// typed stream events — and stores the new items. Turns on one conversation run one at a time,
// in arrival order. Every stored object belongs to the caller's tenant; another tenant's id is a
// 404.
//
//   POST   /v1/responses                       create (stream, background, store, conversation)
//   GET    /v1/responses/{id}                  retrieve
//   DELETE /v1/responses/{id}                  delete
//   POST   /v1/responses/{id}/cancel           cancel a background response
//   GET    /v1/responses/{id}/input_items      list its input items
//   POST   /v1/conversations                   create (with up to 20 items)
//   GET    /v1/conversations/{id}              retrieve
//   POST   /v1/conversations/{id}              update metadata
//   DELETE /v1/conversations/{id}              delete with its items
//   GET    /v1/conversations/{id}/items        list items
//   POST   /v1/conversations/{id}/items        add items
//   GET    /v1/conversations/{id}/items/{item} retrieve one
//   DELETE /v1/conversations/{id}/items/{item} delete one
#include <boost/asio/awaitable.hpp>
#include <boost/json/array.hpp>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "agents/turn_queue.h"
#include "common/openai_error.h"
#include "net/http_server.h"
#include "store/session_store.h"

namespace redline::gateway {
class Gateway;
struct Caller;
struct RequestContext;
class CallCancellation;
}  // namespace redline::gateway
namespace redline::quota {
class Clock;
}

namespace redline::agents {

class BlockingPool;
class MemoryService;
class RunEngine;
struct Turn;

class ResponsesService {
 public:
  ResponsesService(gateway::Gateway& gateway, std::shared_ptr<store::SessionStore> store,
                   MemoryService& memory, BlockingPool& blocking,
                   std::shared_ptr<const quota::Clock> clock);
  ~ResponsesService();

  // Answers a request whose path starts with /v1/responses or /v1/conversations.
  boost::asio::awaitable<void> handle(const gateway::Caller& caller, net::HttpRequest& request,
                                      net::ResponseWriter& writer,
                                      gateway::RequestContext& context);

  // Lets responses offer MCP tools ({"type":"mcp"}): such a turn is a durable run of `runs`.
  void run_mcp_tools_with(RunEngine* runs) { runs_ = runs; }

  // After a restart: responses that were queued or in progress can no longer finish; they are
  // marked failed so clients polling them learn it. Returns how many.
  std::size_t fail_interrupted();
  // Retention: removes responses and conversations idle longer than their tenant's retention.
  store::PurgeCounts purge_idle();

 private:
  boost::asio::awaitable<void> create(const gateway::Caller& caller, net::HttpRequest& request,
                                      net::ResponseWriter& writer,
                                      gateway::RequestContext& context);
  // Runs one turn and stores it; answers `writer` unless it is null (a background response
  // nobody follows). Returns the status the client got.
  boost::asio::awaitable<int> run_turn(std::shared_ptr<Turn> turn, net::ResponseWriter* writer);
  // A turn offering MCP tools: the tool loop runs server-side as a durable agent run, and the
  // answer comes when it ends (or parks, waiting for an approval or a decision).
  boost::asio::awaitable<int> run_mcp_turn(std::shared_ptr<Turn> turn, net::ResponseWriter& writer);
  // A background turn, registered for cancel() while it runs; `writer` for one that streams.
  boost::asio::awaitable<int> run_in_background(std::shared_ptr<Turn> turn,
                                                net::ResponseWriter* writer);
  boost::asio::awaitable<net::HttpResponse> cancel(const gateway::Caller& caller,
                                                   const std::string& id);
  boost::asio::awaitable<net::HttpResponse> responses(const gateway::Caller& caller,
                                                      const net::HttpRequest& request,
                                                      std::string_view rest);
  boost::asio::awaitable<net::HttpResponse> conversations(const gateway::Caller& caller,
                                                          const net::HttpRequest& request,
                                                          std::string_view rest);

  // False, with a 403 in `error`, when items classify above what the caller's key may send.
  bool within_key_clearance(const gateway::Caller& caller, const boost::json::array& items,
                            ApiError& error) const;

  gateway::Gateway& gateway_;
  std::shared_ptr<store::SessionStore> store_;
  MemoryService& memory_;
  BlockingPool& blocking_;
  std::shared_ptr<const quota::Clock> clock_;
  RunEngine* runs_ = nullptr;
  TurnQueue conversation_turns_;
  // Background responses running in this process, by id: what cancel() stops.
  std::mutex background_mutex_;
  std::unordered_map<std::string, std::shared_ptr<gateway::CallCancellation>> background_;
};

}  // namespace redline::agents
