#pragma once
// Identifiers of stored objects (responses, items, conversations, memory): a short prefix that
// says what the object is, as OpenAI's ids do ("resp_", "msg_", "conv_"), then 32 random hex
// digits. Ids are not secrets: every lookup is also scoped to the tenant that owns the object.
#include <string>
#include <string_view>

namespace redline {

// "<prefix>_<32 hex digits>".
std::string new_object_id(std::string_view prefix);

}  // namespace redline
