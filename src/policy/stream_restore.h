#pragma once
// Puts redacted values back into what the client receives. The model only ever saw placeholders;
// whenever it repeats one, the client gets the original value instead. Model output that is not a
// placeholder of the request's vault reaches the client exactly as the model wrote it.
//
// Output text lives in these channels, per choice index:
//  chat.completion(.chunk)  message/delta .content, .tool_calls[i].function.arguments (one
//                           channel per tool-call index), .function_call.arguments (legacy)
//  text_completion          choices[].text
// Argument channels carry JSON text, so the values restored into them are JSON-escaped.
#include <compare>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "policy/redaction.h"

namespace redline::policy {

// The channels of model output listed above.
enum class OutputChannel { kContent, kToolArguments, kFunctionArguments, kText };

// A whole (non-streaming) chat.completion or text_completion body with the vault's placeholders
// restored in its output texts; every other byte is kept. When no placeholder occurs, or the body
// is not such JSON, it is returned unchanged.
std::string restore_response_body(std::string_view body, const RedactionVault& vault);

// Restores placeholders in a chat.completion.chunk or text_completion SSE stream, where the model
// output arrives in arbitrary fragments and may split a placeholder anywhere
// ("[RED" | "ACTED_EM" | "AIL_1] and").
//
// Per channel, the output that could still be the start of a placeholder is held back and
// prepended to that channel's next fragment. It is flushed, restored if it completed a placeholder
// and unchanged otherwise, when its choice reports a finish_reason, at "[DONE]" and at finish();
// a flush that has no fragment of its channel to ride in goes out in a chunk of its own, copying
// id, object, created and model from the last chunk seen. Events whose output needs no change
// pass through byte-identical; changed ones keep every other field.
//
// One per stream; not thread-safe. The vault must outlive it.
class StreamRestorer {
 public:
  explicit StreamRestorer(const RedactionVault& vault) : vault_(vault) {}

  // Appends to `out` the data payloads to send in place of this event's `payload`: usually one,
  // two when held-back output is flushed in a chunk of its own before it. Payloads that are not
  // JSON pass through.
  void on_event(std::string_view payload, std::vector<std::string>& out);

  // The upstream ended without "[DONE]": appends a chunk with whatever is still held back, if
  // anything is.
  void finish(std::vector<std::string>& out);

 private:
  struct ChannelKey {
    std::int64_t choice = 0;
    OutputChannel channel = OutputChannel::kContent;
    std::int64_t tool_index = 0;
    auto operator<=>(const ChannelKey&) const = default;
  };

  // Flushes the held output of the channels `flush` selects into one chunk of its own.
  void flush_held(const std::function<bool(const ChannelKey&)>& flush,
                  std::vector<std::string>& out);

  const RedactionVault& vault_;
  std::map<ChannelKey, std::string> held_;  // only channels with output held back
  // Raw JSON tokens of the last chunk's identity, for chunks Redline has to add.
  std::string id_;
  std::string object_;
  std::string created_;
  std::string model_;
};

// For output scanning: calls on_text with each piece of model output text (unescaped) in one SSE
// data payload or a whole response body, in document order. Nothing is called for non-JSON.
// The views are valid during the call only, and on_text must not call this header's functions.
void for_each_output_text(std::string_view json,
                          const std::function<void(std::string_view text)>& on_text);

}  // namespace redline::policy
