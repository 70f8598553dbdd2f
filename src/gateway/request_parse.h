#pragma once
// Reads what routing needs from an inbound OpenAI request body, without building a DOM and
// without copying the body, and rejects bodies an upstream must never see (not JSON, missing or
// mistyped fields) with the error OpenAI would give.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/openai_error.h"

namespace redline::gateway {

enum class ApiKind { kChatCompletions, kCompletions, kEmbeddings };
std::string_view to_string(ApiKind kind);

struct ParsedRequest {
  std::string model;  // the alias the client asked for
  // Where the model's JSON string token sits in the body (quotes included), so forwarding can
  // splice in the upstream name without re-serialising the rest.
  std::size_t model_offset = 0;
  std::size_t model_length = 0;
  bool stream = false;
  bool include_usage = false;       // stream_options.include_usage
  std::optional<long> max_tokens;   // max_tokens or max_completion_tokens
  std::uint64_t affinity_hash = 0;  // hash of the prompt's first bytes; 0 when there is none
};

struct ParseResult {
  std::optional<ParsedRequest> request;
  ApiError error;  // meaningful when !request
};

// `body` may be grown in capacity (never in content) so the JSON parser can read past its end.
ParseResult parse_request(ApiKind kind, std::string& body, std::size_t affinity_prefix_bytes);

// The body with the model token replaced by `upstream_model` as a JSON string.
std::string with_model(std::string_view body, const ParsedRequest& request,
                       std::string_view upstream_model);

// The body with `"stream_options":{"include_usage":true}` added as its last member, so a stream
// ends with the upstream's usage (for budgets and accounting) even when the client did not ask.
// A later member wins in JSON parsers that accept duplicates, which is why it goes last. `body`
// must be a JSON object (parse_request accepted it).
std::string with_usage_requested(std::string_view body);

}  // namespace redline::gateway
