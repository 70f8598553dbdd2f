#pragma once
// The HTTP surface of the gateway: OpenAI-compatible routes, health, readiness, metrics and the
// admin API.
// Paths and methods are resolved here; the work is the gateway's.
#include <boost/asio/awaitable.hpp>

#include "api/admin_api.h"
#include "gateway/gateway.h"
#include "net/http_server.h"

namespace redline::gateway {
class Gateway;
}
namespace redline::agents {
class AgentsApi;
class ResponsesService;
class MemoryService;
}  // namespace redline::agents

namespace redline::api {

class HttpApi {
 public:
  explicit HttpApi(gateway::Gateway& gateway) : gateway_(gateway), admin_(gateway) {}
  // The stateful APIs (/v1/responses, /v1/conversations, /v1/memory); without them those paths
  // are unknown URLs.
  void serve_sessions(agents::ResponsesService* responses, agents::MemoryService* memory) {
    responses_ = responses;
    memory_ = memory;
  }
  // Durable runs and task graphs (/v1/agent/, /admin/agent/).
  void serve_agents(agents::AgentsApi* agents) { agents_ = agents; }
  boost::asio::awaitable<void> handle(net::HttpRequest& request, net::ResponseWriter& writer);
  net::Handler handler();

 private:
  // Answers /v1/responses…, /v1/conversations… and /v1/memory… for an authenticated caller.
  boost::asio::awaitable<void> handle_stateful(std::string_view family, net::HttpRequest& request,
                                               net::ResponseWriter& writer,
                                               gateway::RequestContext& context);

  gateway::Gateway& gateway_;
  AdminApi admin_;
  agents::ResponsesService* responses_ = nullptr;
  agents::MemoryService* memory_ = nullptr;
  agents::AgentsApi* agents_ = nullptr;
};

}  // namespace redline::api
