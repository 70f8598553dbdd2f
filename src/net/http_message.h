#pragma once
// Plain HTTP message types shared by the server, the upstream client and every handler.
// No Boost.Beast here: modules that handle requests do not pay Beast's compile cost.
#include <string>
#include <string_view>
#include <vector>

namespace redline::net {

struct Header {
  std::string name;
  std::string value;
};
using Headers = std::vector<Header>;

// Case-insensitive lookup; empty when absent.
std::string_view find_header(const Headers& headers, std::string_view name);
bool iequals(std::string_view a, std::string_view b);

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // origin-form, query included: "/v1/models?x=1"
  Headers headers;
  std::string body;
  std::string remote_address;

  std::string_view header(std::string_view name) const { return find_header(headers, name); }
  // The target without its query string.
  std::string_view path() const;
};

struct HttpResponse {
  int status = 200;
  Headers headers;  // Content-Length is added by the server.
  std::string body;
};

}  // namespace redline::net
