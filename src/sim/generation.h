#pragma once
// The simulator's request parsing and response generation, as plain functions without I/O:
// what a simulated model answers to a request, and the exact bytes of that answer (a JSON
// body, or the events of a server-sent-event stream).
//
// Answers are deterministic: words come from a fixed vocabulary, chosen by a PRNG seeded from
// the configured seed and a hash of the request's input (messages, prompt, embedding input),
// so the same request gets the same answer and another seed gets another one.
#include <boost/json/array.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/openai_error.h"
#include "sim/sim_config.h"

namespace redline::sim {

// A request or the 400 error that explains why it is not one.
template <typename Request>
struct Parsed {
  Request request;
  std::optional<ApiError> error;
};

enum class OutputFormat { kText, kJsonObject, kJsonSchema };

struct ChatRequest {
  std::string model;
  bool stream = false;
  bool include_usage = false;     // stream_options.include_usage
  std::optional<int> max_tokens;  // max_completion_tokens, else max_tokens
  std::uint64_t input_hash = 0;   // over every message's role, content and tool_call_id
  std::size_t prompt_chars = 0;   // characters of every message content
  bool last_message_is_tool = false;
  int tool_results = 0;          // tool results after the last user message
  std::string last_tool_result;  // the last tool result's text (its first 200 bytes)
  OutputFormat format = OutputFormat::kText;
  boost::json::value schema;  // response_format.json_schema.schema (null if none)
  boost::json::array tools;   // as sent
  bool tool_choice_none = false;
  std::string tool_choice_name;  // a tool_choice naming one function
  // The rest of the last message content that starts with "echo: ": answered verbatim (as the
  // content, or as the tool call's {"text": ...} arguments) in 3-byte pieces, so tests can see
  // exactly what reached the model and how a client reassembles split output. "echo-reverse: "
  // answers the rest with its characters in reverse order.
  std::optional<std::string> echo;
  // One per message, in order: a hash of every message up to and including this one (role,
  // content, name, tool_call_id, tool_calls) and the prompt characters they hold. The simulator's
  // prefix cache keys on these; they do not feed the answer (input_hash does).
  struct Prefix {
    std::uint64_t hash = 0;
    std::size_t chars = 0;
  };
  std::vector<Prefix> prefixes;
  std::uint64_t tools_hash = 0;  // of the tools array as sent; 0 = no tools
};

struct CompletionRequest {
  std::string model;
  bool stream = false;
  bool include_usage = false;
  std::optional<int> max_tokens;
  std::vector<std::uint64_t> prompt_hashes;  // one per prompt, one choice each
  int prompt_tokens = 0;
};

struct EmbeddingRequest {
  std::string model;
  std::vector<std::uint64_t> input_hashes;  // one per input, one vector each
  int prompt_tokens = 0;
  bool base64 = false;
  std::optional<int> dimensions;
};

// `body` is the raw request body; no padding is needed.
Parsed<ChatRequest> parse_chat_request(std::string_view body);
Parsed<CompletionRequest> parse_completion_request(std::string_view body);
Parsed<EmbeddingRequest> parse_embedding_request(std::string_view body);

// One generated answer. Its text is the concatenation of its pieces; a stream sends one
// piece per event, and each piece counts as one completion token.
struct Choice {
  std::string text;  // the content, or the tool call's arguments (a JSON object)
  std::vector<std::uint32_t> piece_ends;
  std::string tool_name;  // non-empty: the answer is a call of this tool
  std::string tool_call_id;
  std::string_view finish_reason;  // "stop", "length", "tool_calls"

  std::string_view piece(std::size_t i) const;
  int tokens() const { return static_cast<int>(piece_ends.size()); }
};

struct Generation {
  std::vector<Choice> choices;
  int prompt_tokens = 0;
  int completion_tokens = 0;
  // Set by a model with a prefix cache: rendered as usage.prompt_tokens_details.cached_tokens.
  std::optional<int> cached_tokens;
};

// Prompt tokens of the first `chars` characters of message content, counted as prompt_tokens
// counts them (4 characters a token, rounded down); 0 for 0.
int prefix_tokens(std::size_t chars);

// The answer of the chat model described by `profile`.
// - Plain text: min(output_tokens, max_tokens) words; "length" when max_tokens cut it.
// - response_format json_object / json_schema: always a complete JSON object ({"answer": ...},
//   or the schema's required properties filled with values of their types); max_tokens bounds
//   its words but never makes it invalid, so finish_reason is "stop".
// - tools given, tool_choice not "none" and fewer tool results after the last user message than
//   the profile's tool_rounds (1: the last message is not a tool result): a call of the tool
//   named by tool_choice, else of the first function tool, its arguments a JSON object with
//   every required parameter; finish_reason "tool_calls".
// - after tool results, with cite_tool_results: the answer starts "Found: <first line of the
//   last tool result>".
// - a message starting with "echo: " (see ChatRequest::echo): its text back, in small pieces.
// Fails (400) only when tool_choice names a function that is not in tools.
Parsed<Generation> generate_chat(const ChatRequest& request, const ModelProfile& profile,
                                 std::uint64_t seed);
Generation generate_completion(const CompletionRequest& request, const ModelProfile& profile,
                               std::uint64_t seed);

// What every rendered object repeats.
struct ResponseMeta {
  std::string_view id;
  std::int64_t created = 0;
  std::string_view model;
};

std::string render_chat_response(const ResponseMeta& meta, const Generation& generation);
std::string render_completion_response(const ResponseMeta& meta, const Generation& generation);

// The events of a stream ("data: ...\n\n"), in three parts so a caller can pace the pieces
// and stop halfway: `head` goes out with the first token, then `pieces` one per token, then
// `tail` (finish_reason chunk, usage chunk when asked for, "data: [DONE]").
struct StreamEvents {
  std::vector<std::string> head;
  std::vector<std::string> pieces;
  std::vector<std::string> tail;
};

StreamEvents render_chat_stream(const ResponseMeta& meta, const Generation& generation,
                                bool include_usage);
StreamEvents render_completion_stream(const ResponseMeta& meta, const Generation& generation,
                                      bool include_usage);

// Unit-length vectors of request.dimensions (else the profile's) floats, one per input.
std::string render_embeddings(const EmbeddingRequest& request, const ModelProfile& profile,
                              std::uint64_t seed);

// The embedding of one input, as render_embeddings computes it.
std::vector<float> embedding_vector(std::uint64_t input_hash, int dimensions, std::uint64_t seed);

// GET /v1/models: the configured model names except "*".
std::string render_models(const SimConfig& config);

}  // namespace redline::sim
