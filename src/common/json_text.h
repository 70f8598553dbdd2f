#pragma once
// Small helpers for writing JSON text by hand on hot paths, where building a DOM would cost
// more than the response itself.
#include <string>
#include <string_view>

namespace redline {

// Appends `text` to `out` as a JSON string literal, quotes included.
void append_json_string(std::string& out, std::string_view text);

// Returns `text` as a JSON string literal, quotes included.
std::string json_string(std::string_view text);

}  // namespace redline
