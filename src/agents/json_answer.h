#pragma once
// The HTTP answers of the stateful APIs (/v1/responses, /v1/conversations, /v1/memory): JSON
// objects, OpenAI-style lists and errors.
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <string_view>

#include "common/openai_error.h"
#include "net/http_message.h"

namespace redline::agents {

net::HttpResponse json_ok(const boost::json::object& body);
// {"object":"list","data":[...]} plus, when given, first_id / last_id / has_more.
net::HttpResponse json_list(boost::json::array data);
net::HttpResponse json_page(boost::json::array data, bool has_more);
net::HttpResponse json_error(const ApiError& error);
// JSON kept as text (a journal step, a stored spec): its value, or null when empty or unreadable.
boost::json::value parse_or_null(std::string_view text);
// 405 with Allow.
net::HttpResponse method_not_allowed(const net::HttpRequest& request, std::string_view allowed);

}  // namespace redline::agents
