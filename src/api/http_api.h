#pragma once
// The HTTP surface of the gateway: OpenAI-compatible routes, health, readiness and metrics.
// Paths and methods are resolved here; the work is the gateway's.
#include <boost/asio/awaitable.hpp>

#include "net/http_server.h"

namespace redline::gateway {
class Gateway;
}

namespace redline::api {

class HttpApi {
 public:
  explicit HttpApi(gateway::Gateway& gateway) : gateway_(gateway) {}
  boost::asio::awaitable<void> handle(net::HttpRequest& request, net::ResponseWriter& writer);
  net::Handler handler();

 private:
  gateway::Gateway& gateway_;
};

}  // namespace redline::api
