#pragma once
// Query-string parameters of a request target ("/v1/memory/records?query=Berlin%20flat&limit=5").
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace redline::net {

// The percent-decoded value of the first parameter called `name` ('+' reads as a space);
// nullopt when the target has no such parameter or no valid query string.
std::optional<std::string> query_param(std::string_view target, std::string_view name);

// A non-negative integer parameter: nullopt when absent; `bad` set when present but not one.
std::optional<std::int64_t> integer_query_param(std::string_view target, std::string_view name,
                                                bool& bad);

}  // namespace redline::net
