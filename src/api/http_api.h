#pragma once
// The HTTP surface of the gateway: OpenAI-compatible routes, health, readiness, metrics and the
// admin API.
// Paths and methods are resolved here; the work is the gateway's.
#include <boost/asio/awaitable.hpp>

#include "api/admin_api.h"
#include "net/http_server.h"

namespace redline::gateway {
class Gateway;
}

namespace redline::api {

class HttpApi {
 public:
  explicit HttpApi(gateway::Gateway& gateway) : gateway_(gateway), admin_(gateway) {}
  boost::asio::awaitable<void> handle(net::HttpRequest& request, net::ResponseWriter& writer);
  net::Handler handler();

 private:
  gateway::Gateway& gateway_;
  AdminApi admin_;
};

}  // namespace redline::api
