#pragma once
// The Responses API's wire format and its translation to and from chat completions, as plain
// functions without I/O. Upstream backends speak chat completions; Redline speaks the Responses
// API to clients (OpenAI's API reference: POST /v1/responses, its items and its typed stream
// events), so every turn is translated twice:
//
//   Responses request ──parse_responses_request──▶ ResponsesRequest
//   context items + ResponsesRequest ──build_chat_body──▶ chat completions body ──▶ gateway
//   chat.completion JSON ──output_from_chat_completion──▶ TurnOutput ──▶ response_object
//   chat.completion.chunk events ──ResponsesStreamTranslator──▶ response.* SSE events
//
// Items ("message", "function_call", "function_call_output") are kept in OpenAI's item shape with
// an "id", so they can be stored, listed and replayed as they are.
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/openai_error.h"

namespace redline::agents {

// Makes the id of a new object from its prefix ("msg", "fc", "fco", "call", "resp"); new_object_id
// in production, a counter in tests.
using IdSource = std::function<std::string(std::string_view prefix)>;

// A validated POST /v1/responses body. Unknown members are ignored (clients send newer fields);
// known members of the wrong type are 400s naming the member in `param`.
struct ResponsesRequest {
  std::string model;                        // required, non-empty
  std::optional<std::string> instructions;  // becomes the first system message
  boost::json::array input;                 // normalised items (see normalize_items); may be empty
  boost::json::array tools;                 // function tools, Responses shape, as given
  boost::json::array mcp_tools;             // {"type":"mcp"} tools, as given: run server-side
  boost::json::value tool_choice;           // as given: "auto" | "none" | "required" |
                                            // {"type":"function","name":...}; null = not given
  std::string previous_response_id;         // "" = none
  std::string conversation_id;              // "conversation": "conv_…" or {"id": "conv_…"}
  bool store = true;
  bool stream = false;
  bool background = false;
  std::optional<std::int64_t> max_output_tokens;  // >= 1
  std::optional<double> temperature;              // [0, 2]
  std::optional<double> top_p;                    // [0, 1]
  std::optional<bool> parallel_tool_calls;
  boost::json::object metadata;  // at most 16 string values, keys <= 64 chars, values <= 512
  boost::json::value text;       // {"format": {"type": "text" | "json_object" | "json_schema",
                                 //  ...}}; null = not given
  std::string user;              // "user" or "safety_identifier"
  boost::json::object redline;   // Redline's extension object "redline" (checked by its users)
};

struct ResponsesParse {
  std::optional<ResponsesRequest> request;
  ApiError error;  // a 400 when !request
};

// Parses and validates the body of POST /v1/responses. 400s: not a JSON object; model missing;
// input neither a string nor an array of items; an item that normalize_items rejects; a tool
// whose type is neither "function" nor "mcp" ("Redline supports function and mcp tools; '<type>'
// is not supported", param "tools[i].type") or a function without a name; tool_choice naming a
// function not in tools; conversation given together with previous_response_id; background without
// store; numbers out of range; metadata over its limits.
ResponsesParse parse_responses_request(std::string_view body, const IdSource& ids);

// Normalises client-supplied items into stored items, each given a fresh "id" unless it brought
// one, and "status": "completed". Accepted shapes:
//  - a string (only as the whole `input`): one user message with one input_text part
//  - {"role": "user"|"assistant"|"system"|"developer", "content": string | parts,
//     "type": "message" (optional)} → {"type":"message","id","status","role","content":[parts]}
//    where string content becomes one part: input_text (output_text for assistant). Parts are
//    kept as given, as in OpenAI's API: assistant messages hold output_text {"text"} and refusal
//    {"refusal"}, the others input_text {"text"} and input_image {"image_url", "detail"}; a
//    missing "annotations" becomes [] and a missing "detail" "auto", as the SDKs' types require.
//  - {"type":"function_call","call_id","name","arguments"}      (id prefix "fc")
//  - {"type":"function_call_output","call_id","output"}         (id prefix "fco"); output is a
//    string or an array of input_text parts
//  - {"type":"reasoning", ...} and {"type":"item_reference", ...} are dropped (nothing upstream
//    could use them).
// Message ids get the prefix "msg". A member that is null counts as absent. On error returns
// nullopt and sets `error` (a 400 whose param is "<param_prefix>[i]..." naming the offending
// member).
std::optional<boost::json::array> normalize_items(const boost::json::value& items,
                                                  std::string_view param_prefix,
                                                  const IdSource& ids, ApiError& error);

// The chat completions body for one turn: `instructions` (when non-empty) as a system message, then
// `memory_context` (when non-empty) as a second system message, then every item of `context`
// (history followed by the new input, each a normalised item) translated:
//  - message → {"role", "content"}; "developer" becomes "system"; a content that is only text
//    parts becomes one string (parts joined with no separator); parts with images become
//    [{"type":"text","text"}, {"type":"image_url","image_url":{"url","detail"}}]; a refusal part
//    counts as text (what the assistant said)
//  - consecutive function_call items → one assistant message with "tool_calls" (id = call_id);
//    an assistant message directly before them becomes that message's content
//  - function_call_output → {"role":"tool","tool_call_id","content"} (text parts joined)
// and the request's parameters: model, tools → [{"type":"function","function":{name,
// description, parameters, strict}}], tool_choice (a named function becomes {"type":"function",
// "function":{"name"}}) and parallel_tool_calls (these two only with tools, as chat completions
// reject them without), max_output_tokens → max_completion_tokens, temperature, top_p, user,
// text.format → response_format (json_object as is, json_schema becomes {"type":"json_schema",
// "json_schema":{name, schema, strict, description}}; "text", every upstream's default, is not
// sent), and when `stream`: "stream": true with "stream_options": {"include_usage": true}.
std::string build_chat_body(const ResponsesRequest& request, const boost::json::array& context,
                            std::string_view memory_context, bool stream);

// What one model call produced, in Responses terms.
struct TurnOutput {
  boost::json::array output;  // items: an assistant message (when there was text or a
                              // refusal), then one function_call per tool call
  std::int64_t input_tokens = 0;
  std::int64_t output_tokens = 0;
  std::string status = "completed";  // or "incomplete"
  std::string incomplete_reason;     // finish_reason "length" → "max_output_tokens",
                                     // "content_filter" → "content_filter"
};

// Translates a chat.completion JSON body (choices[0]). nullopt when it is not one. Items are
// "incomplete" when the turn is; tool calls without a function name are dropped, and a missing,
// empty or repeated call id is replaced by a fresh "call" id.
std::optional<TurnOutput> output_from_chat_completion(std::string_view chat_json,
                                                      const IdSource& ids);

// The state of a response that is not part of its request.
struct ResponseState {
  std::string id;  // "resp_…"
  std::int64_t created_at = 0;
  std::string status;                    // queued | in_progress | completed | incomplete | failed |
                                         // cancelled
  boost::json::array output;             // output items
  std::optional<TurnOutput> usage_from;  // usage is present only when set (tokens read here)
  boost::json::value error;              // null, or {"code", "message"}
  std::string incomplete_reason;         // "" = incomplete_details is null
  std::string conversation_id;           // "" = "conversation": null
};

// A completed assistant message item holding `text` as one output_text part.
boost::json::object assistant_text_item(std::string_view id, std::string_view text);

// The Response object clients receive and GET returns: {"id","object":"response","created_at",
// "status","background","error","incomplete_details","instructions","max_output_tokens","model",
// "output","parallel_tool_calls","previous_response_id","conversation","reasoning":{"effort":
// null,"summary":null},"store","temperature","text","tool_choice","tools","top_p","truncation":
// "disabled","usage","user","metadata"} with the request's values (defaults: temperature 1,
// top_p 1, parallel_tool_calls true, tool_choice "auto", text {"format":{"type":"text"}}).
// usage = {"input_tokens","input_tokens_details":{"cached_tokens":0},"output_tokens",
// "output_tokens_details":{"reasoning_tokens":0},"total_tokens"} or null.
boost::json::object response_object(const ResponsesRequest& request, const ResponseState& state);

// Translates a chat completions stream into the Responses API's typed events, each framed as
// "event: <type>\ndata: <json>\n\n" with a "sequence_number" counting from 0:
//   response.created, response.in_progress                                     (begin)
//   text:  response.output_item.added (message, in_progress), response.content_part.added,
//          response.output_text.delta* (refusal deltas: a refusal part, response.refusal.delta*),
//          then on finish, or when a tool call starts after it, response.output_text.done
//          (response.refusal.done), response.content_part.done, response.output_item.done;
//          text after a tool call opens a new message item
//   tool call i: response.output_item.added (function_call, once the upstream has named the
//          function), response.function_call_arguments.delta*, then on finish
//          response.function_call_arguments.done, response.output_item.done
//   response.completed (or response.incomplete; open items are then "incomplete")  (finish)
//   response.failed                                                           (fail)
// Output indexes follow the order items were opened in; the final response's output lists them
// in that order. A missing, empty or repeated upstream tool call id is replaced by a fresh "call"
// id, since clients reject a response whose call ids collide. begin() happens implicitly before
// the first event when the caller skipped it, and nothing is appended after finish or fail, so the
// events always form a sequence the SDKs accept. Not thread-safe.
class ResponsesStreamTranslator {
 public:
  // `request` must outlive the translator. `state` carries id, created_at and conversation_id;
  // its status and output are managed here.
  ResponsesStreamTranslator(const ResponsesRequest& request, ResponseState state, IdSource ids);
  ~ResponsesStreamTranslator();

  // Appends response.created and response.in_progress.
  void begin(std::string& out);
  // One chat.completion.chunk (an SSE data payload, never "[DONE]"): appends the events it
  // causes. A usage-only chunk records usage. False when the payload is not a chunk object.
  bool on_chunk(std::string_view payload, std::string& out);
  // The upstream stream ended with [DONE]: closes open items and appends response.completed
  // (response.incomplete when finish_reason was "length" or "content_filter").
  void finish(std::string& out);
  // The call failed (before or during the stream): closes nothing, appends response.failed with
  // "error": {"code", "message"} from `error` (code = error.code, or error.type when empty).
  void fail(const ApiError& error, std::string& out);
  // The response was cancelled: closes open items as incomplete and ends with a response.failed
  // event whose response has status "cancelled" (the API has no event of its own for it).
  void cancel(std::string& out);

  // The Response object as it stands (status in_progress until finish/fail).
  boost::json::object response() const;
  const ResponseState& state() const { return state_; }

 private:
  struct OpenItem;
  struct ToolCallDraft;

  void on_choice(const boost::json::object& choice, std::string& out);
  void append_content_delta(bool refusal, std::string_view delta, std::string& out);
  void on_tool_call_delta(const boost::json::object& entry, std::string& out);
  ToolCallDraft& draft_for(const boost::json::object& entry);
  void announce_call(ToolCallDraft& draft, std::string& out);
  void append_arguments(std::size_t position, std::string_view delta, std::string& out);
  std::size_t open_message(std::string& out);
  std::size_t announce(OpenItem item, std::string& out);
  void close_message(std::string& out);
  void close_item(std::size_t position, std::string_view status, std::string& out);
  void close_all(std::string_view status, std::string& out);
  void end(std::string_view type, std::string& out);
  boost::json::array current_output() const;
  void emit(std::string_view type, boost::json::object event, std::string& out);

  const ResponsesRequest& request_;
  ResponseState state_;
  IdSource ids_;
  std::int64_t sequence_ = 0;
  bool begun_ = false;
  bool ended_ = false;
  std::vector<OpenItem> items_;              // every announced item; position = output_index
  std::optional<std::size_t> open_message_;  // the message item text deltas go to
  std::vector<ToolCallDraft> drafts_;        // upstream tool calls, announced once named
  std::string finish_reason_;
};

}  // namespace redline::agents
