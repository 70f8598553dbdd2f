#include "agents/json_answer.h"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <string>

namespace redline::agents {

namespace json = boost::json;

namespace {

net::HttpResponse json_response(int status, std::string body) {
  return {status, {{"Content-Type", "application/json"}}, std::move(body)};
}

std::string_view id_of(const json::value& item) {
  if (!item.is_object()) return {};
  const json::value* id = item.as_object().if_contains("id");
  return id && id->is_string() ? std::string_view(id->as_string()) : std::string_view();
}

}  // namespace

net::HttpResponse json_ok(const json::object& body) {
  return json_response(200, json::serialize(body));
}

net::HttpResponse json_list(json::array data) {
  return json_response(
      200, json::serialize(json::object{{"object", "list"}, {"data", std::move(data)}}));
}

net::HttpResponse json_page(json::array data, bool has_more) {
  json::value first = data.empty() ? json::value(nullptr) : json::value(id_of(data.front()));
  json::value last = data.empty() ? json::value(nullptr) : json::value(id_of(data.back()));
  return json_response(200, json::serialize(json::object{{"object", "list"},
                                                         {"data", std::move(data)},
                                                         {"first_id", std::move(first)},
                                                         {"last_id", std::move(last)},
                                                         {"has_more", has_more}}));
}

net::HttpResponse json_error(const ApiError& error) {
  return json_response(error.status, error_body(error));
}

net::HttpResponse method_not_allowed(const net::HttpRequest& request, std::string_view allowed) {
  net::HttpResponse response = json_error(make_error(
      405, "Method " + request.method + " is not allowed on " + std::string(request.path()) + ".",
      "", "method_not_allowed"));
  response.headers.push_back({"Allow", std::string(allowed)});
  return response;
}

json::value parse_or_null(std::string_view text) {
  if (text.empty()) return nullptr;
  boost::system::error_code ec;
  json::value value = json::parse(text, ec);
  return ec ? json::value(nullptr) : value;
}

}  // namespace redline::agents
