#pragma once
#include <string_view>

namespace redline::net {

// The reason phrase for a status line ("OK", "Too Many Requests", ...).
std::string_view status_reason(int status);

}  // namespace redline::net
