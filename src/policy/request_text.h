#pragma once
// Finds every text in an inbound request that the upstream model would read as content, so
// red-line detectors scan all of it and redaction can rewrite it. Everything else in the body
// (model, sampling parameters, names, ids) is neither reported nor touched.
//
// What counts as content, per API:
//  chat completions  messages[].content (a string, or parts whose "text"/"refusal" is read),
//                    messages[].refusal, messages[].tool_calls[].function.arguments,
//                    messages[].function_call.arguments (legacy); tool and function results are
//                    message content. tools[].function.description and the legacy
//                    functions[].description are read by the model too. messages[].name is not.
//  completions       prompt and suffix (a string or an array of strings; token-id arrays skipped)
//  embeddings        input (a string or an array of strings; token-id arrays skipped)
//  responses         instructions; input (a string, or items whose content is a string or parts
//                    with "text", whose function_call "arguments" and function_call_output
//                    "output" are read); tools[].description
// Fields of another type than the ones above, or absent, are skipped: the request parser has
// already rejected malformed shapes.
#include <functional>
#include <string>
#include <string_view>

namespace redline::policy {

enum class RequestKind { kChatCompletions, kCompletions, kEmbeddings, kResponses };

// Gets each text JSON-unescaped; may assign a new value to it and return true to have the body
// rewritten with it.
using TextVisitor = std::function<bool(std::string& text)>;

// Calls `visit` for each content text of `body`, in document order. Returns false when body is not
// a JSON object (or not JSON). When a visit returned true, *rewritten receives the body with those
// strings replaced, every other byte kept as it was; otherwise *rewritten is left empty.
// Not reentrant: `visit` must not call the functions of this header.
bool visit_request_texts(RequestKind kind, std::string_view body, const TextVisitor& visit,
                         std::string* rewritten);

// The read-only form for the hot path: each text as a view valid only during the call.
// Returns false when body is not a JSON object (or not JSON).
bool for_each_request_text(RequestKind kind, std::string_view body,
                           const std::function<void(std::string_view text)>& on_text);

}  // namespace redline::policy
