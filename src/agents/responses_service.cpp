#include "agents/responses_service.h"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <unordered_set>

#include "agents/blocking_pool.h"
#include "agents/json_answer.h"
#include "agents/memory_service.h"
#include "agents/responses_format.h"
#include "agents/run_engine.h"
#include "agents/run_spec.h"
#include "common/ids.h"
#include "gateway/caller.h"
#include "gateway/gateway.h"
#include "gateway/model_call.h"
#include "net/query_string.h"
#include "policy/red_line_policy.h"
#include "policy/redaction.h"
#include "quota/clock.h"

namespace redline::agents {

namespace asio = boost::asio;
namespace json = boost::json;

// Everything one turn needs, shared by the request that starts it and, for a background
// response, the task that runs it after that request has been answered.
struct Turn {
  ResponsesRequest request;
  gateway::Caller caller;
  net::HttpRequest origin;  // credentials, declared label and request id; no body
  std::string id;
  std::int64_t created_at = 0;
  std::optional<MemoryOptions> memory;
  policy::Label base_label;  // the turn's own classification, before memory
  std::shared_ptr<gateway::CallCancellation> cancellation;
  bool inserted = false;  // the response row exists
};

namespace {

constexpr std::size_t kMaxConversationItemsPerRequest = 20;
constexpr std::size_t kMaxMetadataPairs = 16;

IdSource object_ids() {
  return [](std::string_view prefix) { return new_object_id(prefix); };
}

std::string_view string_of(const json::object& object, std::string_view key) {
  const json::value* value = object.if_contains(key);
  return value && value->is_string() ? std::string_view(value->as_string()) : std::string_view();
}

// ---- items and vaults at rest ---------------------------------------------------------------

std::vector<store::SessionItem> to_session_items(const json::array& items, std::int64_t at) {
  std::vector<store::SessionItem> out;
  out.reserve(items.size());
  for (const json::value& item : items) {
    out.push_back({std::string(string_of(item.as_object(), "id")), json::serialize(item), at});
  }
  return out;
}

json::array to_json_items(const std::vector<store::SessionItem>& items) {
  json::array out;
  out.reserve(items.size());
  for (const store::SessionItem& item : items) {
    boost::system::error_code ec;
    json::value parsed = json::parse(item.json, ec);
    if (!ec && parsed.is_object()) out.push_back(std::move(parsed));
  }
  return out;
}

// [["EMAIL","a@example.com"], ...] in issue order; "" for an empty vault.
std::string vault_to_json(const policy::RedactionVault& vault) {
  if (vault.empty()) return "";
  json::array entries;
  for (const auto& entry : vault.entries()) {
    entries.push_back(json::array{json::string(entry.category), json::string(entry.value)});
  }
  return json::serialize(entries);
}

void replay_vault(std::string_view text, policy::RedactionVault& vault) {
  if (text.empty()) return;
  boost::system::error_code ec;
  const json::value parsed = json::parse(text, ec);
  if (ec || !parsed.is_array()) return;
  for (const json::value& entry : parsed.as_array()) {
    if (!entry.is_array() || entry.as_array().size() != 2) continue;
    const auto& pair = entry.as_array();
    if (pair[0].is_string() && pair[1].is_string()) {
      vault.placeholder_for(pair[0].as_string(), pair[1].as_string());
    }
  }
}

// The id of an input item that repeats another input item or one of the history: stored item
// ids are unique within their list.
std::optional<std::string> duplicate_item(const std::vector<store::SessionItem>& history,
                                          const json::array& input) {
  std::unordered_set<std::string_view> seen;
  for (const store::SessionItem& item : history) seen.insert(item.id);
  for (const json::value& item : input) {
    const std::string_view id = string_of(item.as_object(), "id");
    if (!seen.insert(id).second) return std::string(id);
  }
  return std::nullopt;
}

// ---- text of items, for memory search and extraction ------------------------------------------

std::string item_text(const json::object& item) {
  const std::string_view type = string_of(item, "type");
  if (type == "function_call") {
    return "called " + std::string(string_of(item, "name")) + "(" +
           std::string(string_of(item, "arguments")) + ")";
  }
  if (type == "function_call_output") {
    const json::value* output = item.if_contains("output");
    return output && output->is_string() ? std::string(output->as_string()) : std::string();
  }
  std::string text;
  const json::value* content = item.if_contains("content");
  if (content == nullptr || !content->is_array()) return text;
  for (const json::value& part : content->as_array()) {
    if (!part.is_object()) continue;
    const std::string_view piece = string_of(part.as_object(), "text");
    if (!piece.empty()) text.append(piece);
  }
  return text;
}

std::string last_user_text(const json::array& input) {
  for (auto it = input.rbegin(); it != input.rend(); ++it) {
    if (it->is_object() && string_of(it->as_object(), "role") == "user") {
      return item_text(it->as_object());
    }
  }
  return "";
}

std::string transcript_of(const json::array& input, const json::array& output) {
  std::string transcript;
  auto add = [&](const json::array& items) {
    for (const json::value& item : items) {
      if (!item.is_object()) continue;
      const json::object& object = item.as_object();
      std::string_view role = string_of(object, "role");
      if (role.empty())
        role = string_of(object, "type") == "function_call_output" ? "tool" : "assistant";
      transcript.append(role).append(": ").append(item_text(object)).push_back('\n');
    }
  };
  add(input);
  add(output);
  return transcript;
}

// ---- metadata, paging -----------------------------------------------------------------------

std::optional<json::object> read_metadata(const json::object& body, ApiError& error) {
  const json::value* value = body.if_contains("metadata");
  if (value == nullptr || value->is_null()) return json::object{};
  if (!value->is_object() || value->as_object().size() > kMaxMetadataPairs) {
    error = make_error(400, "`metadata` must be an object of at most 16 string values.", "metadata",
                       "invalid_metadata");
    return std::nullopt;
  }
  for (const auto& [key, entry] : value->as_object()) {
    if (key.size() > 64 || !entry.is_string() || entry.as_string().size() > 512) {
      error = make_error(400,
                         "`metadata` keys are at most 64 characters and values strings of at "
                         "most 512.",
                         "metadata", "invalid_metadata");
      return std::nullopt;
    }
  }
  return value->as_object();
}

// ?limit=&order=&after= with OpenAI's defaults (20, newest first).
std::optional<store::PageRequest> read_page(const net::HttpRequest& request, ApiError& error) {
  store::PageRequest page;
  page.ascending = false;
  bool bad = false;
  if (auto limit = net::integer_query_param(request.target, "limit", bad)) {
    page.limit = static_cast<std::size_t>(*limit);
  }
  if (bad || page.limit < 1 || page.limit > 100) {
    error =
        make_error(400, "`limit` must be an integer between 1 and 100.", "limit", "invalid_value");
    return std::nullopt;
  }
  const std::string order = net::query_param(request.target, "order").value_or("desc");
  if (order != "asc" && order != "desc") {
    error = make_error(400, "`order` must be \"asc\" or \"desc\".", "order", "invalid_value");
    return std::nullopt;
  }
  page.ascending = order == "asc";
  page.after = net::query_param(request.target, "after").value_or("");
  return page;
}

net::HttpResponse page_answer(const store::ItemPage& page) {
  return json_page(to_json_items(page.items), page.has_more);
}

json::object conversation_json(const store::ConversationRecord& conversation) {
  boost::system::error_code ec;
  json::value metadata = json::parse(conversation.metadata_json, ec);
  if (ec || !metadata.is_object()) metadata = json::object{};
  return {{"id", conversation.id},
          {"object", "conversation"},
          {"created_at", conversation.created_at},
          {"metadata", std::move(metadata)}};
}

net::HttpResponse not_found(std::string_view what, std::string_view id) {
  return json_error(make_error(
      404, std::string(what) + " with id '" + std::string(id) + "' not found.", "", "not_found"));
}

net::HttpResponse store_failed(const std::string& message) {
  return json_error(make_error(500, "The session store failed: " + message, "", "store_error"));
}

ResponseState initial_state(const Turn& turn, std::string status) {
  ResponseState state;
  state.id = turn.id;
  state.created_at = turn.created_at;
  state.status = std::move(status);
  state.conversation_id = turn.request.conversation_id;
  return state;
}

// What a turn continues from: the conversation's items or the previous_response_id chain, and
// the redaction vault they were sent with. `error` says what vanished in the meantime.
struct History {
  std::vector<store::SessionItem> items;
  std::string vault_json;
  std::string error;
};

template <typename Depth>
History load_history(store::SessionStore& store, const std::string& tenant,
                     const ResponsesRequest& call, Depth max_chain_depth) {
  History loaded;
  if (!call.conversation_id.empty()) {
    auto conversation = store.find_conversation(tenant, call.conversation_id);
    auto items = store.all_conversation_items(tenant, call.conversation_id);
    if (!conversation || !items || !*conversation) {
      loaded.error = "conversation " + call.conversation_id + " is gone";
    } else {
      loaded.items = std::move(*items);
      loaded.vault_json = (*conversation)->vault_json;
    }
  } else if (!call.previous_response_id.empty()) {
    auto previous = store.find_response(tenant, call.previous_response_id);
    auto items = store.response_chain_items(tenant, call.previous_response_id, max_chain_depth);
    if (!previous || !items || !*previous) {
      loaded.error = "previous response " + call.previous_response_id + " is gone";
    } else {
      loaded.items = std::move(*items);
      loaded.vault_json = (*previous)->vault_json;
    }
  }
  return loaded;
}

// A tool call of an agent run as a Responses output item.
json::object mcp_call_item(const store::RunStep& step, std::string_view run_id) {
  const json::value request = parse_or_null(step.request_json);
  const json::value result = parse_or_null(step.result_json);
  const json::object empty;
  const json::object& asked = request.is_object() ? request.as_object() : empty;
  const json::object& got = result.is_object() ? result.as_object() : empty;
  const bool is_error = got.contains("is_error") && got.at("is_error") == json::value(true);
  const json::value output = got.contains("output") ? got.at("output") : json::value(nullptr);
  return {{"type", "mcp_call"},
          {"id", "mcp_" + std::string(run_id.substr(run_id.find('_') + 1)) + "_" +
                     std::to_string(step.seq)},
          {"server_label", string_of(asked, "server")},
          {"name", string_of(asked, "tool")},
          {"arguments", string_of(asked, "arguments")},
          {"output", is_error ? json::value(nullptr) : output},
          {"error", is_error ? output : json::value(nullptr)},
          {"status", "completed"}};
}

bool terminal(std::string_view status) {
  return status == "completed" || status == "incomplete" || status == "failed" ||
         status == "cancelled";
}

// Writes a turn's stream to the client as Responses API events. In the background the run
// outlives its client: when the client leaves, the events stop and the run goes on.
class TurnStreamSink : public gateway::ChatChunkSink {
 public:
  TurnStreamSink(const Turn& turn, ResponseState state, net::ResponseWriter* writer)
      : translator_(turn.request, std::move(state), object_ids()),
        writer_(writer),
        request_id_(std::string(turn.origin.header("x-request-id"))),
        detachable_(turn.request.background) {}

  void on_headers(const net::Headers& headers) override {
    for (const net::Header& header : headers) {
      if (header.name.starts_with("x-redline-") || header.name.starts_with("x-ratelimit-")) {
        headers_.push_back(header);
      }
    }
  }

  asio::awaitable<bool> on_chunk(std::string_view payload) override {
    std::string events;
    begin(events);
    translator_.on_chunk(payload, events);
    co_return co_await send(events);
  }

  // Ends the stream: completed, failed with `failure`, or cancelled.
  asio::awaitable<void> end(bool cancelled, const std::optional<ApiError>& failure) {
    std::string events;
    begin(events);
    if (cancelled) {
      translator_.cancel(events);
    } else if (failure) {
      translator_.fail(*failure, events);
    } else {
      translator_.finish(events);
    }
    if (co_await send(events) && writer_ != nullptr) co_await writer_->end_stream();
  }

  bool started() const { return started_; }
  ResponsesStreamTranslator& translator() { return translator_; }

 private:
  void begin(std::string& events) {
    if (started_) return;
    started_ = true;
    translator_.begin(events);
  }

  asio::awaitable<bool> send(const std::string& events) {
    if (writer_ == nullptr) co_return true;
    bool ok = true;
    if (!stream_open_) {
      stream_open_ = true;
      net::Headers headers{{"Content-Type", "text/event-stream"},
                           {"Cache-Control", "no-cache"},
                           {"x-request-id", request_id_}};
      headers.insert(headers.end(), headers_.begin(), headers_.end());
      ok = co_await writer_->begin_stream(200, std::move(headers));
    }
    if (ok && !events.empty()) ok = co_await writer_->write_chunk(events);
    if (ok) co_return true;
    writer_ = nullptr;
    co_return detachable_;
  }

  ResponsesStreamTranslator translator_;
  net::ResponseWriter* writer_;
  std::string request_id_;
  net::Headers headers_;
  bool detachable_;
  bool started_ = false;
  bool stream_open_ = false;
};

}  // namespace

ResponsesService::ResponsesService(gateway::Gateway& gateway,
                                   std::shared_ptr<store::SessionStore> store,
                                   MemoryService& memory, BlockingPool& blocking,
                                   std::shared_ptr<const quota::Clock> clock)
    : gateway_(gateway),
      store_(std::move(store)),
      memory_(memory),
      blocking_(blocking),
      clock_(std::move(clock)) {}

ResponsesService::~ResponsesService() = default;

asio::awaitable<void> ResponsesService::handle(const gateway::Caller& caller,
                                               net::HttpRequest& request,
                                               net::ResponseWriter& writer,
                                               gateway::RequestContext& context) {
  const std::string_view path = request.path();
  if (path == "/v1/responses") {
    if (request.method == "POST") {
      co_await create(caller, request, writer, context);
      co_return;
    }
    net::HttpResponse refused = method_not_allowed(request, "POST");
    context.status = refused.status;
    co_await writer.send(std::move(refused));
    co_return;
  }
  // Plain statements, not a conditional expression: g++ 12 destroys the result of a co_await
  // inside a conditional twice.
  net::HttpResponse answer;
  if (path.starts_with("/v1/responses/")) {
    answer =
        co_await responses(caller, request, path.substr(std::string_view("/v1/responses/").size()));
  } else {
    answer = co_await conversations(caller, request,
                                    path.substr(std::string_view("/v1/conversations").size()));
  }
  answer.headers.push_back({"x-request-id", context.request_id});
  context.status = answer.status;
  co_await writer.send(std::move(answer));
}

asio::awaitable<void> ResponsesService::create(const gateway::Caller& caller,
                                               net::HttpRequest& request,
                                               net::ResponseWriter& writer,
                                               gateway::RequestContext& context) {
  // Takes its error by value: g++ 12 destroys a temporary bound to a reference parameter in a
  // co_await expression twice, so callers build the error first.
  auto fail = [&](ApiError error) -> asio::awaitable<void> {
    net::HttpResponse answer = json_error(error);
    answer.headers.push_back({"x-request-id", context.request_id});
    context.status = answer.status;
    context.error = error.message;
    co_await writer.send(std::move(answer));
  };
  const auto table = gateway_.table();
  ResponsesParse parsed = parse_responses_request(request.body, object_ids());
  if (!parsed.request) {
    co_await fail(std::move(parsed.error));
    co_return;
  }
  auto turn = std::make_shared<Turn>();
  turn->request = std::move(*parsed.request);
  turn->caller = caller;
  turn->id = new_object_id("resp");
  turn->created_at = clock_->unix_seconds();
  turn->cancellation = std::make_shared<gateway::CallCancellation>();
  turn->origin.remote_address = request.remote_address;
  turn->origin.headers.push_back({"x-request-id", context.request_id});
  for (const net::Header& header : request.headers) {
    if (net::iequals(header.name, "authorization") || net::iequals(header.name, "x-api-key") ||
        net::iequals(header.name, "x-redline-classification")) {
      turn->origin.headers.push_back(header);
    }
  }
  context.model = turn->request.model;
  context.stream = turn->request.stream;
  const ResponsesRequest& call = turn->request;

  std::optional<ApiError> error;
  turn->memory =
      read_memory_options(call.redline, table->config().memory.max_injected_records, error);
  if (!error && turn->memory && turn->memory->extract &&
      table->config().memory.extraction_model.value.empty()) {
    error = make_error(400,
                       "Memory extraction is not configured on this gateway "
                       "([memory] extraction_model).",
                       "redline.memory.extract", "extraction_unavailable");
  }
  if (!error && !call.store && !call.conversation_id.empty()) {
    error = make_error(400,
                       "`store: false` cannot be combined with `conversation`: a conversation "
                       "stores every turn.",
                       "store", "invalid_value");
  }
  if (!error && call.input.empty() && call.conversation_id.empty() &&
      call.previous_response_id.empty() && !call.instructions) {
    error = make_error(400, "`input` must not be empty: there is nothing for the model to answer.",
                       "input", "empty_input");
  }
  // Refusals a background response could only report later are given now.
  if (!error && table->find_alias(call.model) == nullptr) {
    error = make_error(
        404, "The model `" + call.model + "` does not exist or you do not have access to it.",
        "model", "model_not_found");
  }
  if (!error && !caller.may_use(call.model)) {
    error = make_error(403, "API key " + caller.key_id + " may not use model `" + call.model + "`.",
                       "model", "model_not_allowed");
  }
  if (error) {
    co_await fail(std::move(*error));
    co_return;
  }
  if (!call.conversation_id.empty()) {
    auto found = co_await blocking_.run(
        [&] { return store_->find_conversation(caller.tenant, call.conversation_id); });
    if (!found || !*found) {
      ApiError missing =
          make_error(404, "Conversation with id '" + call.conversation_id + "' not found.",
                     "conversation", "not_found");
      co_await fail(std::move(missing));
      co_return;
    }
  }
  if (!call.previous_response_id.empty()) {
    auto found = co_await blocking_.run(
        [&] { return store_->find_response(caller.tenant, call.previous_response_id); });
    if (!found || !*found) {
      ApiError missing = make_error(
          404, "Previous response with id '" + call.previous_response_id + "' not found.",
          "previous_response_id", "previous_response_not_found");
      co_await fail(std::move(missing));
      co_return;
    }
    if (!terminal((*found)->status)) {
      ApiError unfinished = make_error(
          400,
          "Previous response with id '" + call.previous_response_id + "' has not finished yet.",
          "previous_response_id", "previous_response_in_progress");
      co_await fail(std::move(unfinished));
      co_return;
    }
  }

  if (!call.mcp_tools.empty()) {
    context.status = co_await run_mcp_turn(turn, writer);
    co_return;
  }

  // The turn's own label, before memory: what the gateway will at least classify it as.
  const policy::RedLinePolicy& red_lines = table->policy();
  turn->base_label = policy::least_upper_bound(
      caller.default_label,
      red_lines.scan_request(policy::RequestKind::kResponses, request.body).raised);
  std::optional<ApiError> declared_error;
  if (auto declared = gateway::declared_label(request, red_lines.lattice(), declared_error)) {
    turn->base_label = policy::least_upper_bound(turn->base_label, *declared);
  }

  if (!call.background) {
    context.status = co_await run_turn(turn, &writer);
    co_return;
  }
  {
    std::lock_guard lock(background_mutex_);
    if (background_.size() >= table->config().sessions.max_background) {
      error = make_error(429,
                         "Too many background responses are running; retry when one has "
                         "finished.",
                         "", "too_many_background_responses");
    } else {
      background_.emplace(turn->id, turn->cancellation);
    }
  }
  if (error) {
    co_await fail(std::move(*error));
    co_return;
  }
  // The response exists, queued, before the client hears of it.
  const json::object queued = response_object(call, initial_state(*turn, "queued"));
  store::ResponseRecord record{turn->id,
                               caller.tenant,
                               "queued",
                               call.previous_response_id,
                               call.conversation_id,
                               json::serialize(queued),
                               "",
                               true,
                               turn->created_at,
                               turn->created_at};
  auto inserted = co_await blocking_.run([&] {
    return store_->insert_response(record, to_session_items(call.input, turn->created_at));
  });
  if (!inserted) {
    {
      std::lock_guard lock(background_mutex_);
      background_.erase(turn->id);
    }
    ApiError failed =
        make_error(500, "The session store failed: " + inserted.message, "", "store_error");
    co_await fail(std::move(failed));
    co_return;
  }
  turn->inserted = true;
  if (call.stream) {
    // The client follows the run as it happens; it continues if the client leaves.
    context.status = co_await run_in_background(turn, &writer);
    co_return;
  }
  net::HttpResponse answer = json_ok(queued);
  answer.headers.push_back({"x-request-id", context.request_id});
  context.status = 200;
  co_await writer.send(std::move(answer));
  asio::co_spawn(co_await asio::this_coro::executor, run_in_background(turn, nullptr),
                 asio::detached);
}

asio::awaitable<int> ResponsesService::run_in_background(std::shared_ptr<Turn> turn,
                                                         net::ResponseWriter* writer) {
  const int status = co_await run_turn(turn, writer);
  std::lock_guard lock(background_mutex_);
  background_.erase(turn->id);
  co_return status;
}

asio::awaitable<int> ResponsesService::run_turn(std::shared_ptr<Turn> turn,
                                                net::ResponseWriter* writer) {
  const ResponsesRequest& call = turn->request;
  const std::string& tenant = turn->caller.tenant;
  const auto settings = gateway_.table()->config().sessions;

  // One writer per conversation: from reading its history to storing this turn's items.
  TurnLease lease;
  if (!call.conversation_id.empty()) {
    lease = co_await conversation_turns_.acquire(call.conversation_id);
  }

  // What came before, and the placeholders it was redacted with.
  History history = co_await blocking_.run([&] {
    History loaded = load_history(*store_, tenant, call, settings.max_chain_depth);
    if (turn->inserted) {
      // A background response: queued until now.
      auto record = store_->find_response(tenant, turn->id);
      if (record && *record) {
        std::string object = (*record)->object_json;
        if (auto at = object.find("\"status\":\"queued\""); at != std::string::npos) {
          object.replace(at, 17, "\"status\":\"in_progress\"");
        }
        store_->update_response(tenant, turn->id, "in_progress", object, "", {},
                                clock_->unix_seconds());
      }
    }
    return loaded;
  });

  policy::RedactionVault vault;
  replay_vault(history.vault_json, vault);
  json::array context_items = to_json_items(history.items);
  for (const json::value& item : call.input) context_items.push_back(item);

  MemoryContext memory;
  if (turn->memory && history.error.empty()) {
    const std::string query = last_user_text(call.input);
    memory = co_await memory_.context_for(turn->caller, call.model, *turn->memory, query,
                                          turn->base_label);
  }

  ResponseState state = initial_state(*turn, "in_progress");
  const bool streamed = call.stream && (writer != nullptr || call.background);
  std::optional<TurnStreamSink> sink;
  if (streamed) sink.emplace(*turn, state, writer);

  gateway::ModelCallResult result;
  if (!history.error.empty()) {
    result.status = 409;
    result.error = make_error(409, "The turn cannot run: " + history.error + ".", "", "conflict");
  } else if (auto duplicate = duplicate_item(history.items, call.input)) {
    result.status = 400;
    result.error = make_error(400, "Duplicate item found with id '" + *duplicate + "'.", "input",
                              "duplicate_item");
  } else if (turn->cancellation->cancelled()) {
    result.status = 499;
    result.error = make_error(499, "The response was cancelled.", "", "cancelled");
  } else {
    gateway::ModelCall model_call;
    model_call.origin = &turn->origin;
    model_call.body = build_chat_body(call, context_items, memory.text, streamed);
    model_call.route = "responses.model";
    model_call.label_floor = memory.label_floor;
    model_call.sink = sink ? &*sink : nullptr;
    model_call.vault = &vault;
    model_call.cancellation = turn->cancellation;
    result = co_await gateway::call_model(gateway_, std::move(model_call));
  }

  // The outcome, in Responses terms.
  std::optional<ApiError> failure = result.error;
  if (result.completed && !streamed) {
    if (auto output = output_from_chat_completion(result.body, object_ids())) {
      state.output = output->output;
      state.status = output->status;
      state.incomplete_reason = output->incomplete_reason;
      state.usage_from = std::move(*output);
    } else {
      failure =
          make_error(502, "The model's answer was not a chat completion.", "", "upstream_error");
    }
  }
  // Cancelled: by POST …/cancel, or by the client of a foreground turn leaving.
  const bool cancelled = turn->cancellation->cancelled() || result.status == 499;
  json::object object;
  if (sink && sink->started()) {
    // The translator holds the streamed output; the stream ends in-band, for whoever still
    // follows it.
    co_await sink->end(cancelled, failure);
    state = sink->translator().state();
  }
  if (cancelled) {
    state.status = "cancelled";
    state.error = nullptr;
  } else if (failure) {
    state.status = "failed";
    state.error = json::object{{"code", failure->code.empty() ? failure->type : failure->code},
                               {"message", failure->message}};
  }
  object = response_object(call, state);
  const bool completed = state.status == "completed" || state.status == "incomplete";

  // Store what happened. A foreground call that failed before its client saw anything leaves no
  // trace: the client got an error, not a response.
  const bool client_saw_response = call.background || (sink && sink->started());
  const std::int64_t now = clock_->unix_seconds();
  if (call.store && (completed || client_saw_response)) {
    store::TurnRecord record;
    record.response = {turn->id,
                       tenant,
                       state.status,
                       call.previous_response_id,
                       call.conversation_id,
                       json::serialize(object),
                       vault_to_json(vault),
                       call.background,
                       turn->created_at,
                       now};
    record.insert = !turn->inserted;
    record.input_items = to_session_items(call.input, turn->created_at);
    record.output_items = to_session_items(state.output, now);
    record.append_to_conversation = completed && !call.conversation_id.empty();
    const auto stored = co_await blocking_.run([&] { return store_->record_turn(record); });
    if (!stored) {
      // Also the expected end of a response deleted while it ran.
      spdlog::warn("responses: cannot store {}: {}", turn->id, stored.message);
      if (writer != nullptr && !(sink && sink->started())) {
        net::HttpResponse failed = json_error(make_error(
            500, "The response could not be stored: " + stored.message, "", "store_error"));
        co_await writer->send(std::move(failed));
        co_return 500;
      }
    }
  }
  lease.release();

  if (completed && turn->memory && turn->memory->extract) {
    memory_.extract_in_background(
        turn->origin, turn->memory->scope, tenant,
        {turn->id, transcript_of(call.input, state.output), result.label});
  }
  if (writer == nullptr || (sink && sink->started())) co_return 200;
  // A foreground answer: the response, or the error the gateway gave.
  net::HttpResponse answer;
  if (completed) {
    answer = json_ok(object);
  } else {
    answer =
        result.status >= 400 && !result.body.empty() && !result.streamed
            ? net::HttpResponse{result.status, {{"Content-Type", "application/json"}}, result.body}
            : json_error(failure.value_or(make_error(502, "The model call failed.")));
  }
  for (const net::Header& header : result.headers) {
    if (header.name.starts_with("x-redline-") || header.name.starts_with("x-ratelimit-") ||
        net::iequals(header.name, "retry-after") || net::iequals(header.name, "retry-after-ms")) {
      answer.headers.push_back(header);
    }
  }
  answer.headers.push_back({"x-request-id", std::string(turn->origin.header("x-request-id"))});
  const int status = answer.status;
  co_await writer->send(std::move(answer));
  co_return status;
}

asio::awaitable<int> ResponsesService::run_mcp_turn(std::shared_ptr<Turn> turn,
                                                    net::ResponseWriter& writer) {
  const ResponsesRequest& call = turn->request;
  const std::string& tenant = turn->caller.tenant;
  // Takes a named response: g++ 12 destroys a temporary in a co_await expression twice.
  auto answer = [&](net::HttpResponse& response) -> asio::awaitable<int> {
    response.headers.push_back({"x-request-id", std::string(turn->origin.header("x-request-id"))});
    const int status = response.status;
    co_await writer.send(std::move(response));
    co_return status;
  };

  std::optional<ApiError> error;
  RunSpec spec;
  if (runs_ == nullptr) {
    error = make_error(400, "This gateway runs no agent runtime, which MCP tools need.", "tools",
                       "mcp_unavailable");
  } else if (call.stream || call.background) {
    error = make_error(400,
                       "With mcp tools the response is given when the server-side tool loop "
                       "ends; `stream` and `background` are not supported with them. Follow the "
                       "loop step by step with POST /v1/agent/runs instead.",
                       call.stream ? "stream" : "background", "unsupported_parameter");
  } else if (!call.tools.empty()) {
    error = make_error(400,
                       "mcp tools run on the gateway and cannot be combined with function tools, "
                       "which only the client can call.",
                       "tools", "invalid_value");
  }
  if (!error) spec.tools = read_mcp_grants(call.mcp_tools, "tools", error);
  if (!error) error = check_run_request(gateway_, turn->caller, call.model, spec.tools, "");
  if (error) {
    net::HttpResponse refused = json_error(*error);
    co_return co_await answer(refused);
  }

  // One writer per conversation, as for any turn.
  TurnLease lease;
  if (!call.conversation_id.empty()) {
    lease = co_await conversation_turns_.acquire(call.conversation_id);
  }
  const auto max_chain_depth = gateway_.table()->config().sessions.max_chain_depth;
  History history =
      co_await blocking_.run([&] { return load_history(*store_, tenant, call, max_chain_depth); });
  if (!history.error.empty()) {
    ApiError conflict =
        make_error(409, "The turn cannot run: " + history.error + ".", "", "conflict");
    net::HttpResponse refused = json_error(conflict);
    co_return co_await answer(refused);
  }

  spec.model = call.model;
  spec.instructions = call.instructions.value_or("");
  spec.input = to_json_items(history.items);
  for (const json::value& item : call.input) spec.input.push_back(item);
  spec.metadata = call.metadata;
  spec.response_id = turn->id;
  const std::string run_id = new_object_id("run");
  const std::string_view no_graph;
  const std::string_view no_task;
  // Subscribed before the run starts, so no step of it goes unseen.
  auto events = runs_->events().subscribe(run_id, co_await asio::this_coro::executor);
  auto started = co_await runs_->start(turn->caller, std::move(spec), no_graph, no_task, run_id);
  if (!started) {
    ApiError failed =
        make_error(500, "The run store failed: " + started.error(), "", "store_error");
    net::HttpResponse refused = json_error(failed);
    co_return co_await answer(refused);
  }
  // Until the run ends or parks; a client that leaves does not stop it.
  store::RunRecord run = *started;
  while (run_is_active(run.status) && run.status != "waiting_approval" &&
         run.status != "requires_action") {
    co_await events->next(std::chrono::milliseconds(500));
    auto found = co_await blocking_.run([&] { return runs_->store().find_run(tenant, run_id); });
    if (found && *found) run = std::move(**found);
  }
  auto steps = co_await blocking_.run([&] { return runs_->store().steps(tenant, run_id); });

  ResponseState state = initial_state(*turn, "completed");
  for (const store::RunStep& step : steps ? *steps : std::vector<store::RunStep>()) {
    if (step.kind == "tool_call" && step.status == "completed") {
      state.output.push_back(mcp_call_item(step, run_id));
    }
  }
  const json::value run_state = parse_or_null(run.state_json);
  const json::object no_state;
  const json::object& facts = run_state.is_object() ? run_state.as_object() : no_state;
  json::array answer_items;
  if (run.status == "completed") {
    answer_items.push_back(
        assistant_text_item(new_object_id("msg"), string_of(facts, "output_text")));
    state.output.push_back(answer_items.back());
  } else if (run.status == "failed" || run.status == "cancelled") {
    state.status = run.status;
    state.error = facts.contains("error") ? facts.at("error") : json::value(nullptr);
  } else {
    // Stopped at a limit, or parked for an approval or a decision: the run says what next.
    state.status = "incomplete";
    state.incomplete_reason = run.status;
  }
  if (const auto* usage = facts.if_contains("usage"); usage && usage->is_object()) {
    TurnOutput tokens;
    const json::object& numbers = usage->as_object();
    if (const auto* in = numbers.if_contains("input_tokens"); in && in->is_int64()) {
      tokens.input_tokens = in->as_int64();
    }
    if (const auto* out = numbers.if_contains("output_tokens"); out && out->is_int64()) {
      tokens.output_tokens = out->as_int64();
    }
    state.usage_from = std::move(tokens);
  }
  json::object object = response_object(call, state);
  object["redline"] = json::object{{"run_id", run_id}, {"run_status", run.status}};

  if (call.store) {
    const std::int64_t now = clock_->unix_seconds();
    store::TurnRecord record;
    record.response = {turn->id,
                       tenant,
                       state.status,
                       call.previous_response_id,
                       call.conversation_id,
                       json::serialize(object),
                       history.vault_json,
                       false,
                       turn->created_at,
                       now};
    record.insert = true;
    record.input_items = to_session_items(call.input, turn->created_at);
    // The answer continues a chain or a conversation; the tool calls stay in the run's journal.
    record.output_items = to_session_items(answer_items, now);
    record.append_to_conversation = run.status == "completed" && !call.conversation_id.empty();
    const auto stored = co_await blocking_.run([&] { return store_->record_turn(record); });
    if (!stored) spdlog::warn("responses: cannot store {}: {}", turn->id, stored.message);
  }
  lease.release();
  net::HttpResponse done = json_ok(object);
  co_return co_await answer(done);
}

asio::awaitable<net::HttpResponse> ResponsesService::cancel(const gateway::Caller& caller,
                                                            const std::string& id) {
  auto found = co_await blocking_.run([&] { return store_->find_response(caller.tenant, id); });
  if (!found) co_return store_failed(found.error());
  if (!*found) co_return not_found("Response", id);
  if (!(*found)->background) {
    co_return json_error(
        make_error(400, "Only background responses can be cancelled.", "", "not_cancellable"));
  }
  std::shared_ptr<gateway::CallCancellation> running;
  {
    std::lock_guard lock(background_mutex_);
    if (auto it = background_.find(id); it != background_.end()) running = it->second;
  }
  if (running) {
    running->cancel();
    // The run writes its own final state, so there is one writer; wait briefly for it.
    asio::steady_timer timer(co_await asio::this_coro::executor);
    for (int attempt = 0; attempt < 100; ++attempt) {
      timer.expires_after(std::chrono::milliseconds(20));
      co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
      found = co_await blocking_.run([&] { return store_->find_response(caller.tenant, id); });
      if (!found) co_return store_failed(found.error());
      if (!*found || terminal((*found)->status)) break;
    }
    if (!*found) co_return not_found("Response", id);
  }
  boost::system::error_code ec;
  json::value object = json::parse((*found)->object_json, ec);
  if (ec || !object.is_object()) co_return store_failed("unreadable response " + id);
  if (running && !terminal((*found)->status)) {
    // Still waiting for its conversation's turn: it will store "cancelled" when it gets it.
    object.as_object()["status"] = "cancelled";
  }
  co_return json_ok(object.as_object());
}

asio::awaitable<net::HttpResponse> ResponsesService::responses(const gateway::Caller& caller,
                                                               const net::HttpRequest& request,
                                                               std::string_view rest) {
  const std::string_view tenant = caller.tenant;
  const auto slash = rest.find('/');
  const std::string id(rest.substr(0, slash));
  const std::string_view action = slash == std::string_view::npos ? "" : rest.substr(slash);
  if (id.empty()) co_return not_found("Response", id);
  if (action == "/cancel") {
    if (request.method != "POST") co_return method_not_allowed(request, "POST");
    co_return co_await cancel(caller, id);
  }
  if (action == "/input_items") {
    if (request.method != "GET") co_return method_not_allowed(request, "GET");
    ApiError error;
    auto page = read_page(request, error);
    if (!page) co_return json_error(error);
    auto found = co_await blocking_.run([&]() -> store::Result<std::optional<store::ItemPage>> {
      auto response = store_->find_response(tenant, id);
      if (!response) return store::Status::error(response.error());
      if (!*response) return std::optional<store::ItemPage>();
      auto items = store_->response_input_items(tenant, id, *page);
      if (!items) return store::Status::error(items.error());
      return std::optional<store::ItemPage>(std::move(*items));
    });
    if (!found) co_return store_failed(found.error());
    if (!*found) co_return not_found("Response", id);
    co_return page_answer(**found);
  }
  if (!action.empty()) {
    co_return json_error(make_error(
        404, "Unknown request URL: " + request.method + " " + std::string(request.path()) + ".", "",
        "unknown_url"));
  }
  if (request.method == "GET") {
    if (net::query_param(request.target, "stream").value_or("") == "true") {
      co_return json_error(make_error(400,
                                      "Redline does not replay the events of a response; "
                                      "retrieve it without `stream`.",
                                      "stream", "unsupported_parameter"));
    }
    auto found = co_await blocking_.run([&] { return store_->find_response(tenant, id); });
    if (!found) co_return store_failed(found.error());
    if (!*found) co_return not_found("Response", id);
    co_return net::HttpResponse{200, {{"Content-Type", "application/json"}}, (*found)->object_json};
  }
  if (request.method == "DELETE") {
    {
      std::lock_guard lock(background_mutex_);
      if (auto it = background_.find(id); it != background_.end()) it->second->cancel();
    }
    auto deleted = co_await blocking_.run([&] { return store_->delete_response(tenant, id); });
    if (!deleted) co_return store_failed(deleted.error());
    if (!*deleted) co_return not_found("Response", id);
    co_return json_ok(json::object{{"id", id}, {"object", "response"}, {"deleted", true}});
  }
  co_return method_not_allowed(request, "GET, DELETE");
}

asio::awaitable<net::HttpResponse> ResponsesService::conversations(const gateway::Caller& caller,
                                                                   const net::HttpRequest& request,
                                                                   std::string_view rest) {
  const std::string tenant = caller.tenant;
  const std::int64_t now = clock_->unix_seconds();
  auto body_object = [&](ApiError& error) -> std::optional<json::object> {
    if (request.body.empty()) return json::object{};
    boost::system::error_code ec;
    json::value parsed = json::parse(request.body, ec);
    if (ec || !parsed.is_object()) {
      error = make_error(400, "The body must be a JSON object.", "", "invalid_json");
      return std::nullopt;
    }
    return std::move(parsed.as_object());
  };
  // "items": [...] of a body, normalised; `required` when the member must be there.
  auto read_items = [&](const json::object& body, bool required,
                        ApiError& error) -> std::optional<json::array> {
    const json::value* items = body.if_contains("items");
    if (items == nullptr || items->is_null()) {
      if (!required) return json::array{};
      error = make_error(400, "`items` is required.", "items", "missing_required_parameter");
      return std::nullopt;
    }
    if (items->is_array() && items->as_array().size() > kMaxConversationItemsPerRequest) {
      error = make_error(400, "At most 20 items can be added at once.", "items",
                         "array_above_max_length");
      return std::nullopt;
    }
    if (!items->is_array()) {
      error = make_error(400, "`items` must be an array of items.", "items", "invalid_type");
      return std::nullopt;
    }
    auto normalized = normalize_items(*items, "items", object_ids(), error);
    if (normalized && !within_key_clearance(caller, *normalized, error)) return std::nullopt;
    return normalized;
  };

  if (rest.empty() || rest == "/") {
    if (request.method != "POST") co_return method_not_allowed(request, "POST");
    ApiError error;
    auto body = body_object(error);
    auto items = body ? read_items(*body, false, error) : std::nullopt;
    auto metadata = items ? read_metadata(*body, error) : std::nullopt;
    if (!metadata) co_return json_error(error);
    store::ConversationRecord conversation{
        new_object_id("conv"), tenant, json::serialize(*metadata), "", now, now};
    auto inserted = co_await blocking_.run(
        [&] { return store_->insert_conversation(conversation, to_session_items(*items, now)); });
    if (!inserted) co_return store_failed(inserted.message);
    co_return json_ok(conversation_json(conversation));
  }
  rest.remove_prefix(1);
  const auto slash = rest.find('/');
  const std::string id(rest.substr(0, slash));
  const std::string_view action = slash == std::string_view::npos ? "" : rest.substr(slash);
  auto found = co_await blocking_.run([&] { return store_->find_conversation(tenant, id); });
  if (!found) co_return store_failed(found.error());
  if (!*found) co_return not_found("Conversation", id);
  store::ConversationRecord conversation = std::move(**found);

  if (action.empty()) {
    if (request.method == "GET") co_return json_ok(conversation_json(conversation));
    if (request.method == "POST") {
      ApiError error;
      auto body = body_object(error);
      auto metadata = body ? read_metadata(*body, error) : std::nullopt;
      if (!metadata) co_return json_error(error);
      conversation.metadata_json = json::serialize(*metadata);
      auto updated = co_await blocking_.run([&] {
        return store_->update_conversation_metadata(tenant, id, conversation.metadata_json, now);
      });
      if (!updated) co_return store_failed(updated.message);
      co_return json_ok(conversation_json(conversation));
    }
    if (request.method == "DELETE") {
      auto deleted =
          co_await blocking_.run([&] { return store_->delete_conversation(tenant, id); });
      if (!deleted) co_return store_failed(deleted.error());
      co_return json_ok(
          json::object{{"id", id}, {"object", "conversation.deleted"}, {"deleted", true}});
    }
    co_return method_not_allowed(request, "GET, POST, DELETE");
  }
  if (action == "/items") {
    if (request.method == "GET") {
      ApiError error;
      auto page = read_page(request, error);
      if (!page) co_return json_error(error);
      auto items =
          co_await blocking_.run([&] { return store_->conversation_items(tenant, id, *page); });
      if (!items) co_return store_failed(items.error());
      co_return page_answer(*items);
    }
    if (request.method == "POST") {
      ApiError error;
      auto body = body_object(error);
      auto items = body ? read_items(*body, true, error) : std::nullopt;
      if (!items) co_return json_error(error);
      // Added items take their place in line behind turns already running on the conversation.
      TurnLease lease = co_await conversation_turns_.acquire(id);
      auto appended = co_await blocking_.run([&] {
        return store_->append_conversation_items(tenant, id, to_session_items(*items, now),
                                                 std::nullopt, now);
      });
      if (!appended) co_return store_failed(appended.message);
      co_return json_page(std::move(*items), false);
    }
    co_return method_not_allowed(request, "GET, POST");
  }
  if (action.starts_with("/items/")) {
    const std::string item_id(action.substr(7));
    if (request.method == "GET") {
      auto item = co_await blocking_.run(
          [&] { return store_->find_conversation_item(tenant, id, item_id); });
      if (!item) co_return store_failed(item.error());
      if (!*item) co_return not_found("Item", item_id);
      co_return net::HttpResponse{200, {{"Content-Type", "application/json"}}, (*item)->json};
    }
    if (request.method == "DELETE") {
      TurnLease lease = co_await conversation_turns_.acquire(id);
      auto deleted = co_await blocking_.run(
          [&] { return store_->delete_conversation_item(tenant, id, item_id); });
      if (!deleted) co_return store_failed(deleted.error());
      if (!*deleted) co_return not_found("Item", item_id);
      co_return json_ok(conversation_json(conversation));
    }
    co_return method_not_allowed(request, "GET, DELETE");
  }
  co_return json_error(make_error(
      404, "Unknown request URL: " + request.method + " " + std::string(request.path()) + ".", "",
      "unknown_url"));
}

bool ResponsesService::within_key_clearance(const gateway::Caller& caller, const json::array& items,
                                            ApiError& error) const {
  // Stored items are read by every later turn: a key may not store what it could not send.
  const auto table = gateway_.table();
  const policy::RedLinePolicy& red_lines = table->policy();
  const std::string as_input = json::serialize(json::object{{"input", items}});
  const policy::Label label = policy::least_upper_bound(
      caller.default_label,
      red_lines.scan_request(policy::RequestKind::kResponses, as_input).raised);
  if (policy::dominates(caller.max_label, label)) return true;
  const policy::LabelLattice& lattice = red_lines.lattice();
  error =
      make_error(403,
                 "These items are classified " + lattice.format(label) + ", above what API key " +
                     caller.key_id + " may send (" + lattice.format(caller.max_label) + ").",
                 "items", "label_above_key_clearance");
  return false;
}

std::size_t ResponsesService::fail_interrupted() {
  auto unfinished = store_->unfinished_responses();
  if (!unfinished) {
    spdlog::error("responses: cannot list unfinished responses: {}", unfinished.error());
    return 0;
  }
  const std::int64_t now = clock_->unix_seconds();
  std::size_t failed = 0;
  for (const store::ResponseRecord& record : *unfinished) {
    boost::system::error_code ec;
    json::value object = json::parse(record.object_json, ec);
    if (ec || !object.is_object()) continue;
    object.as_object()["status"] = "failed";
    object.as_object()["error"] =
        json::object{{"code", "server_restarted"},
                     {"message", "The gateway restarted before this response finished."}};
    if (store_->update_response(record.tenant, record.id, "failed", json::serialize(object),
                                record.vault_json, {}, now)) {
      ++failed;
    }
  }
  return failed;
}

store::PurgeCounts ResponsesService::purge_idle() {
  const auto table = gateway_.table();
  const config::Config& config = table->config();
  const std::int64_t now = clock_->unix_seconds();
  auto cutoff = [&](std::chrono::milliseconds retention) {
    return now - std::chrono::duration_cast<std::chrono::seconds>(retention).count();
  };
  std::vector<store::RetentionRule> rules{{"", cutoff(config.sessions.retention)}};
  for (const config::TenantSettings& tenant : config.tenants) {
    if (tenant.session_retention) rules.push_back({tenant.name, cutoff(*tenant.session_retention)});
  }
  auto purged = store_->purge(rules);
  if (!purged) {
    spdlog::error("sessions: purge failed: {}", purged.error());
    return {};
  }
  return *purged;
}

}  // namespace redline::agents
