#include "agents/memory_service.h"

#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/json.hpp>
#include <ctime>

#include "agents/blocking_pool.h"
#include "agents/json_answer.h"
#include "common/ids.h"
#include "gateway/caller.h"
#include "gateway/gateway.h"
#include "gateway/model_call.h"
#include "net/query_string.h"
#include "policy/red_line_policy.h"
#include "quota/clock.h"

namespace redline::agents {

namespace asio = boost::asio;
namespace json = boost::json;
using store::MemoryBlock;
using store::MemoryNamespace;
using store::MemoryRecord;

namespace {

constexpr std::size_t kMaxNamespaceChars = 128;
constexpr std::size_t kMaxNameChars = 128;
constexpr std::size_t kMaxListLimit = 100;

const char kExtractionInstructions[] =
    "You maintain the long-term memory of an assistant. From the conversation turn below, extract "
    "the durable facts worth remembering in later conversations: who the user is, what they "
    "prefer, decisions made, commitments. Leave out small talk and anything only true for this "
    "turn. Answer with a JSON object {\"facts\": [{\"subject\": \"<short dotted key such as "
    "user.home_city>\", \"text\": \"<one self-contained sentence>\"}]}; a fact that updates an "
    "earlier one keeps its subject. Answer {\"facts\": []} when there is nothing to remember.";

// ---- request reading ----------------------------------------------------------------------

const json::value* member(const json::object& object, std::string_view key) {
  const json::value* value = object.if_contains(key);
  return value != nullptr && !value->is_null() ? value : nullptr;
}

// A string member: nullopt when absent; `error` set when present but not a string or too long.
std::optional<std::string> string_member(const json::object& object, std::string_view key,
                                         std::size_t max_chars, std::string_view param_prefix,
                                         std::optional<ApiError>& error) {
  const json::value* value = member(object, key);
  if (value == nullptr) return std::nullopt;
  const std::string param = std::string(param_prefix) + std::string(key);
  if (!value->is_string()) {
    error = make_error(400, "`" + param + "` must be a string.", param, "invalid_type");
    return std::nullopt;
  }
  if (value->as_string().size() > max_chars) {
    error = make_error(
        400, "`" + param + "` is longer than " + std::to_string(max_chars) + " characters.", param,
        "string_above_max_length");
    return std::nullopt;
  }
  return std::string(value->as_string());
}

std::optional<std::int64_t> integer_member(const json::object& object, std::string_view key,
                                           std::int64_t min, std::string_view param_prefix,
                                           std::optional<ApiError>& error) {
  const json::value* value = member(object, key);
  if (value == nullptr) return std::nullopt;
  const std::string param = std::string(param_prefix) + std::string(key);
  std::optional<std::int64_t> number;
  if (value->is_int64()) number = value->as_int64();
  if (value->is_uint64() && value->as_uint64() <= INT64_MAX) {
    number = static_cast<std::int64_t>(value->as_uint64());
  }
  if (!number || *number < min) {
    error = make_error(400, "`" + param + "` must be an integer >= " + std::to_string(min) + ".",
                       param, "invalid_value");
    return std::nullopt;
  }
  return number;
}

std::optional<bool> bool_member(const json::object& object, std::string_view key,
                                std::string_view param_prefix, std::optional<ApiError>& error) {
  const json::value* value = member(object, key);
  if (value == nullptr) return std::nullopt;
  if (!value->is_bool()) {
    const std::string param = std::string(param_prefix) + std::string(key);
    error = make_error(400, "`" + param + "` must be a boolean.", param, "invalid_type");
    return std::nullopt;
  }
  return value->as_bool();
}

MemoryNamespace scope_member(const json::object& object, std::string_view param_prefix,
                             std::optional<ApiError>& error) {
  MemoryNamespace scope;
  scope.user = string_member(object, "user", kMaxNamespaceChars, param_prefix, error).value_or("");
  scope.agent =
      string_member(object, "agent", kMaxNamespaceChars, param_prefix, error).value_or("");
  return scope;
}

// The namespaces a scope sees: the tenant's, the user's, the agent's.
std::vector<MemoryNamespace> visible_namespaces(const MemoryNamespace& scope) {
  std::vector<MemoryNamespace> out{{"", ""}};
  if (!scope.user.empty()) out.push_back({scope.user, ""});
  if (!scope.agent.empty()) out.push_back({scope.user, scope.agent});
  return out;
}

// ---- JSON shapes --------------------------------------------------------------------------

json::value optional_time(const std::optional<std::int64_t>& at) {
  return at ? json::value(*at) : json::value(nullptr);
}

json::object block_json(const MemoryBlock& block) {
  return {{"id", block.id},
          {"object", "memory.block"},
          {"user", block.scope.user},
          {"agent", block.scope.agent},
          {"name", block.name},
          {"value", block.value},
          {"label", block.label},
          {"max_chars", block.max_chars},
          {"created_at", block.created_at},
          {"updated_at", block.updated_at}};
}

json::object record_json(const MemoryRecord& record) {
  return {{"id", record.id},
          {"object", "memory.record"},
          {"user", record.scope.user},
          {"agent", record.scope.agent},
          {"text", record.text},
          {"subject", record.subject},
          {"source", record.source},
          {"label", record.label},
          {"created_at", record.created_at},
          {"valid_from", record.valid_from},
          {"valid_until", optional_time(record.valid_until)},
          {"superseded_by",
           record.superseded_by.empty() ? json::value(nullptr) : json::value(record.superseded_by)},
          {"expires_at", optional_time(record.expires_at)}};
}

std::string date_of(std::int64_t unix_seconds) {
  const std::time_t at = unix_seconds;
  std::tm parts{};
  gmtime_r(&at, &parts);
  char text[16];
  std::strftime(text, sizeof text, "%Y-%m-%d", &parts);
  return text;
}

}  // namespace

std::optional<MemoryOptions> read_memory_options(const json::object& redline, std::size_t max_top_k,
                                                 std::optional<ApiError>& error) {
  const json::value* value = member(redline, "memory");
  if (value == nullptr) return std::nullopt;
  if (!value->is_object()) {
    error =
        make_error(400, "`redline.memory` must be an object.", "redline.memory", "invalid_type");
    return std::nullopt;
  }
  const json::object& memory = value->as_object();
  constexpr std::string_view kPrefix = "redline.memory.";
  MemoryOptions options;
  options.scope = scope_member(memory, kPrefix, error);
  options.blocks = bool_member(memory, "blocks", kPrefix, error).value_or(true);
  options.extract = bool_member(memory, "extract", kPrefix, error).value_or(false);
  if (const json::value* search = member(memory, "search")) {
    if (search->is_bool()) {
      options.search = search->as_bool();
    } else if (search->is_string()) {
      options.search = true;
      options.query = std::string(search->as_string());
    } else {
      error =
          make_error(400, "`redline.memory.search` must be true, false or the text to search for.",
                     "redline.memory.search", "invalid_type");
    }
  }
  if (auto top_k = integer_member(memory, "top_k", 1, kPrefix, error)) {
    options.top_k = std::min<std::size_t>(static_cast<std::size_t>(*top_k), max_top_k);
  }
  if (error) return std::nullopt;
  return options;
}

// Everything an extraction needs after the turn's request is gone.
struct MemoryService::Extraction {
  net::HttpRequest origin;  // credentials and request id only
  MemoryNamespace scope;
  std::string tenant;
  TurnTranscript turn;
};

MemoryService::MemoryService(gateway::Gateway& gateway, std::shared_ptr<store::MemoryStore> store,
                             BlockingPool& blocking, std::shared_ptr<const quota::Clock> clock)
    : gateway_(gateway), store_(std::move(store)), blocking_(blocking), clock_(std::move(clock)) {}

namespace {

// The label of what a key writes: the label it gives (the lattice's bottom when none), raised
// by what the detectors find in the text. nullopt and `error` when the given label does not
// parse or the result is above what the key may handle.
std::optional<policy::Label> label_for_write(const policy::RedLinePolicy& red_lines,
                                             const gateway::Caller& caller, std::string_view given,
                                             std::string_view text,
                                             std::optional<ApiError>& error) {
  const policy::LabelLattice& lattice = red_lines.lattice();
  policy::Label label;
  if (!given.empty()) {
    std::string problem;
    auto parsed = lattice.parse(given, &problem);
    if (!parsed) {
      error = make_error(400, "`label` is not a label of this gateway: " + problem + ".", "label",
                         "invalid_label");
      return std::nullopt;
    }
    label = *parsed;
  }
  label = policy::least_upper_bound(label, red_lines.scan_text(text).raised);
  if (!policy::dominates(caller.max_label, label)) {
    error =
        make_error(403,
                   "This memory is classified " + lattice.format(label) + ", above what API key " +
                       caller.key_id + " may handle (" + lattice.format(caller.max_label) + ").",
                   "", "label_above_key_clearance");
    return std::nullopt;
  }
  return label;
}

// Whether the caller may read something stored with `label` (text as stored).
bool readable(const policy::LabelLattice& lattice, const gateway::Caller& caller,
              std::string_view label) {
  auto parsed =
      label.empty() ? std::optional<policy::Label>(policy::Label{}) : lattice.parse(label);
  return parsed && policy::dominates(caller.max_label, *parsed);
}

net::HttpResponse not_found(std::string_view kind, std::string_view id) {
  return json_error(
      make_error(404, "No " + std::string(kind) + " found with id '" + std::string(id) + "'.", "",
                 "not_found"));
}

}  // namespace

asio::awaitable<net::HttpResponse> MemoryService::handle(const gateway::Caller& caller,
                                                         const net::HttpRequest& request,
                                                         std::string_view path) {
  const auto table = gateway_.table();
  const policy::RedLinePolicy& red_lines = table->policy();
  const policy::LabelLattice& lattice = red_lines.lattice();
  const config::MemorySettings& settings = table->config().memory;
  const std::string& tenant = caller.tenant;
  const std::int64_t now = clock_->unix_seconds();
  std::string_view rest = path.substr(std::string_view("/v1/memory").size());

  auto body_object = [&](std::optional<ApiError>& error) -> json::object {
    boost::system::error_code ec;
    json::value parsed = json::parse(request.body, ec);
    if (ec || !parsed.is_object()) {
      error = make_error(400, "The body must be a JSON object.", "", "invalid_json");
      return {};
    }
    return std::move(parsed.as_object());
  };
  auto list_scope = [&]() {
    if (net::query_param(request.target, "all").value_or("") == "true") {
      return std::vector<MemoryNamespace>{};
    }
    return visible_namespaces({net::query_param(request.target, "user").value_or(""),
                               net::query_param(request.target, "agent").value_or("")});
  };
  auto store_failed = [](const std::string& message) {
    return json_error(make_error(500, "The memory store failed: " + message, "", "store_error"));
  };

  // ---- blocks
  if (rest == "/blocks" && request.method == "GET") {
    const std::vector<MemoryNamespace> scope = list_scope();
    auto blocks = co_await blocking_.run([&] { return store_->list_blocks(tenant, scope); });
    if (!blocks) co_return store_failed(blocks.error());
    json::array data;
    for (const MemoryBlock& block : *blocks) {
      if (readable(lattice, caller, block.label)) data.push_back(block_json(block));
    }
    co_return json_list(std::move(data));
  }
  if (rest == "/blocks" && request.method == "POST") {
    std::optional<ApiError> error;
    json::object body = body_object(error);
    MemoryBlock block;
    block.tenant = tenant;
    if (!error) block.scope = scope_member(body, "", error);
    const auto name = string_member(body, "name", kMaxNameChars, "", error);
    const auto value = string_member(body, "value", settings.max_block_chars, "", error);
    const auto max_chars = integer_member(body, "max_chars", 1, "", error);
    const auto label = string_member(body, "label", kMaxNameChars, "", error);
    if (!error && (!name || name->empty())) {
      error = make_error(400, "`name` is required.", "name", "missing_required_parameter");
    }
    if (!error && !value) {
      error = make_error(400, "`value` is required.", "value", "missing_required_parameter");
    }
    block.max_chars = max_chars.value_or(static_cast<std::int64_t>(settings.default_block_chars));
    if (!error && block.max_chars > static_cast<std::int64_t>(settings.max_block_chars)) {
      error = make_error(
          400, "`max_chars` may be at most " + std::to_string(settings.max_block_chars) + ".",
          "max_chars", "invalid_value");
    }
    if (!error && static_cast<std::int64_t>(value->size()) > block.max_chars) {
      error = make_error(400,
                         "`value` is longer than the block's limit of " +
                             std::to_string(block.max_chars) + " characters.",
                         "value", "string_above_max_length");
    }
    std::optional<policy::Label> effective;
    if (!error) effective = label_for_write(red_lines, caller, label.value_or(""), *value, error);
    if (error) co_return json_error(*error);
    block.id = new_object_id("blk");
    block.name = *name;
    block.value = *value;
    block.label = lattice.format(*effective);
    block.created_at = block.updated_at = now;
    auto stored = co_await blocking_.run([&] { return store_->put_block(block); });
    if (!stored) co_return store_failed(stored.error());
    co_return json_ok(block_json(*stored));
  }
  if (rest.starts_with("/blocks/")) {
    const std::string id(rest.substr(8));
    auto found = co_await blocking_.run([&] { return store_->find_block(tenant, id); });
    if (!found) co_return store_failed(found.error());
    if (!*found || !readable(lattice, caller, (*found)->label)) {
      co_return not_found("memory block", id);
    }
    MemoryBlock block = std::move(**found);
    if (request.method == "GET") co_return json_ok(block_json(block));
    if (request.method == "DELETE") {
      auto deleted = co_await blocking_.run([&] { return store_->delete_block(tenant, id); });
      if (!deleted) co_return store_failed(deleted.error());
      co_return json_ok(
          json::object{{"id", id}, {"object", "memory.block.deleted"}, {"deleted", *deleted}});
    }
    if (request.method == "POST") {
      std::optional<ApiError> error;
      json::object body = body_object(error);
      const auto value = string_member(body, "value", settings.max_block_chars, "", error);
      const auto max_chars = integer_member(body, "max_chars", 1, "", error);
      const auto label = string_member(body, "label", kMaxNameChars, "", error);
      if (value) block.value = *value;
      if (max_chars) block.max_chars = *max_chars;
      if (!error && block.max_chars > static_cast<std::int64_t>(settings.max_block_chars)) {
        error = make_error(
            400, "`max_chars` may be at most " + std::to_string(settings.max_block_chars) + ".",
            "max_chars", "invalid_value");
      }
      if (!error && static_cast<std::int64_t>(block.value.size()) > block.max_chars) {
        error = make_error(400,
                           "`value` is longer than the block's limit of " +
                               std::to_string(block.max_chars) + " characters.",
                           "value", "string_above_max_length");
      }
      std::optional<policy::Label> effective;
      if (!error) {
        effective =
            label_for_write(red_lines, caller, label.value_or(block.label), block.value, error);
      }
      if (error) co_return json_error(*error);
      block.label = lattice.format(*effective);
      block.updated_at = now;
      auto stored = co_await blocking_.run([&] { return store_->put_block(block); });
      if (!stored) co_return store_failed(stored.error());
      co_return json_ok(block_json(*stored));
    }
    co_return method_not_allowed(request, "GET, POST, DELETE");
  }

  // ---- records
  auto add = [&](MemoryRecord record,
                 std::string supersedes) -> asio::awaitable<net::HttpResponse> {
    auto added = co_await blocking_.run([&] { return store_->add_record(record, supersedes); });
    if (!added) {
      co_return json_error(
          make_error(409, "The record was not added: " + added.error(), "", "memory_conflict"));
    }
    json::object answer = record_json(added->record);
    json::array superseded;
    for (const std::string& id : added->superseded) superseded.push_back(json::string(id));
    answer["superseded_ids"] = std::move(superseded);
    answer["duplicate"] = added->duplicate;
    co_return json_ok(std::move(answer));
  };
  auto record_from = [&](const json::object& body, MemoryRecord record,
                         std::optional<ApiError>& error) -> MemoryRecord {
    if (auto text = string_member(body, "text", settings.max_record_chars, "", error)) {
      record.text = std::move(*text);
    }
    if (auto subject = string_member(body, "subject", kMaxNameChars, "", error)) {
      record.subject = std::move(*subject);
    }
    if (auto source = string_member(body, "source", kMaxNameChars, "", error)) {
      record.source = std::move(*source);
    }
    if (auto expires_at = integer_member(body, "expires_at", 0, "", error)) {
      record.expires_at = *expires_at;
    }
    if (auto ttl = integer_member(body, "ttl_seconds", 1, "", error))
      record.expires_at = now + *ttl;
    if (!error && record.text.empty()) {
      error = make_error(400, "`text` is required.", "text", "missing_required_parameter");
    }
    const auto label = string_member(body, "label", kMaxNameChars, "", error);
    if (!error) {
      if (auto effective = label_for_write(red_lines, caller, label.value_or(record.label),
                                           record.text, error)) {
        record.label = lattice.format(*effective);
      }
    }
    record.id = new_object_id("mem");
    record.created_at = record.valid_from = now;
    record.valid_until.reset();
    record.superseded_by.clear();
    return record;
  };
  auto search = [&](store::RecordQuery query) -> asio::awaitable<net::HttpResponse> {
    // Records the key may not read are dropped after the query, so ask for more than needed.
    const std::size_t wanted = query.limit;
    query.limit = std::min<std::size_t>(wanted * 4, 400);
    auto found = co_await blocking_.run([&] { return store_->search_records(query); });
    if (!found) co_return store_failed(found.error());
    json::array data;
    for (const store::ScoredRecord& hit : *found) {
      if (data.size() >= wanted) break;
      if (!readable(lattice, caller, hit.record.label)) continue;
      json::object entry = record_json(hit.record);
      if (!query.text.empty()) entry["score"] = hit.score;
      data.push_back(std::move(entry));
    }
    co_return json_list(std::move(data));
  };

  if (rest == "/records" && request.method == "POST") {
    std::optional<ApiError> error;
    json::object body = body_object(error);
    MemoryRecord record;
    record.tenant = tenant;
    record.source = "api";
    if (!error) record.scope = scope_member(body, "", error);
    const std::string supersedes =
        string_member(body, "supersedes", kMaxNameChars, "", error).value_or("");
    if (!error) record = record_from(body, std::move(record), error);
    if (error) co_return json_error(*error);
    co_return co_await add(std::move(record), supersedes);
  }
  if ((rest == "/records" && request.method == "GET") ||
      (rest == "/search" && request.method == "POST")) {
    store::RecordQuery query;
    query.tenant = tenant;
    query.now = now;
    query.limit = 20;
    std::optional<ApiError> error;
    if (request.method == "GET") {
      bool bad = false;
      query.namespaces = list_scope();
      query.text = net::query_param(request.target, "query").value_or("");
      query.subject = net::query_param(request.target, "subject").value_or("");
      if (auto limit = net::integer_query_param(request.target, "limit", bad)) {
        query.limit = static_cast<std::size_t>(*limit);
      }
      if (auto as_of = net::integer_query_param(request.target, "as_of", bad)) query.as_of = as_of;
      query.include_superseded =
          net::query_param(request.target, "include_superseded").value_or("") == "true";
      if (bad) {
        error = make_error(400, "`limit` and `as_of` must be non-negative integers.", "",
                           "invalid_value");
      }
    } else {
      json::object body = body_object(error);
      if (!error) query.namespaces = visible_namespaces(scope_member(body, "", error));
      query.text = string_member(body, "query", 4096, "", error).value_or("");
      query.subject = string_member(body, "subject", kMaxNameChars, "", error).value_or("");
      if (auto limit = integer_member(body, "limit", 1, "", error)) {
        query.limit = static_cast<std::size_t>(*limit);
      }
      query.as_of = integer_member(body, "as_of", 0, "", error);
      if (!error && query.text.empty()) {
        error = make_error(400, "`query` is required.", "query", "missing_required_parameter");
      }
    }
    if (!error && (query.limit == 0 || query.limit > kMaxListLimit)) {
      error = make_error(400, "`limit` must be between 1 and 100.", "limit", "invalid_value");
    }
    if (error) co_return json_error(*error);
    co_return co_await search(std::move(query));
  }
  if (rest.starts_with("/records/")) {
    const std::string id(rest.substr(9));
    auto found = co_await blocking_.run([&] { return store_->find_record(tenant, id); });
    if (!found) co_return store_failed(found.error());
    if (!*found || !readable(lattice, caller, (*found)->label)) {
      co_return not_found("memory record", id);
    }
    if (request.method == "GET") co_return json_ok(record_json(**found));
    if (request.method == "DELETE") {
      auto deleted = co_await blocking_.run([&] { return store_->delete_record(tenant, id); });
      if (!deleted) co_return store_failed(deleted.error());
      co_return json_ok(
          json::object{{"id", id}, {"object", "memory.record.deleted"}, {"deleted", *deleted}});
    }
    if (request.method == "POST") {
      // Records are never edited: the new text becomes a new record that supersedes this one.
      std::optional<ApiError> error;
      json::object body = body_object(error);
      MemoryRecord next = **found;
      next.text.clear();
      next.source = "api";
      if (!error) next = record_from(body, std::move(next), error);
      if (error) co_return json_error(*error);
      co_return co_await add(std::move(next), id);
    }
    co_return method_not_allowed(request, "GET, POST, DELETE");
  }
  co_return json_error(
      make_error(404, "Unknown request URL: " + request.method + " " + std::string(path) + ".", "",
                 "unknown_url"));
}

asio::awaitable<MemoryContext> MemoryService::context_for(const gateway::Caller& caller,
                                                          std::string_view alias,
                                                          const MemoryOptions& options,
                                                          std::string_view query,
                                                          policy::Label base) {
  MemoryContext context;
  const auto table = gateway_.table();
  const policy::RedLinePolicy& red_lines = table->policy();
  const policy::LabelLattice& lattice = red_lines.lattice();
  std::vector<policy::Label> clearances;
  for (const std::string& name : table->config().backends_for(alias)) {
    if (const policy::BackendProfile* backend = red_lines.find_backend(name)) {
      clearances.push_back(backend->clearance);
    }
  }
  // Memory goes in only while the turn stays routable: some backend of the alias must be
  // cleared for everything injected so far together with the turn's own label, and the key
  // must be allowed to read it.
  policy::Label carried = base;
  auto admit = [&](std::string_view label_text) {
    auto label = label_text.empty() ? std::optional<policy::Label>(policy::Label{})
                                    : lattice.parse(label_text);
    if (!label || !policy::dominates(caller.max_label, *label)) return false;
    const policy::Label together = policy::least_upper_bound(carried, *label);
    for (const policy::Label& clearance : clearances) {
      if (policy::dominates(clearance, together)) {
        carried = together;
        return true;
      }
    }
    return false;
  };

  const std::vector<MemoryNamespace> namespaces = visible_namespaces(options.scope);
  std::string blocks_text;
  if (options.blocks) {
    auto blocks =
        co_await blocking_.run([&] { return store_->list_blocks(caller.tenant, namespaces); });
    if (!blocks) spdlog::warn("memory: cannot read blocks: {}", blocks.error());
    for (const MemoryBlock& block : blocks ? *blocks : std::vector<MemoryBlock>{}) {
      if (block.value.empty() || !admit(block.label)) continue;
      blocks_text += "[" + block.name + "] " + block.value + "\n";
      context.injected.push_back(block.id);
    }
  }
  std::string records_text;
  const std::string search_text = options.query.empty() ? std::string(query) : options.query;
  if (options.search && !search_text.empty()) {
    store::RecordQuery record_query;
    record_query.tenant = caller.tenant;
    record_query.namespaces = namespaces;
    record_query.text = search_text;
    record_query.limit = options.top_k * 4;
    record_query.now = clock_->unix_seconds();
    auto found = co_await blocking_.run([&] { return store_->search_records(record_query); });
    if (!found) spdlog::warn("memory: cannot search records: {}", found.error());
    std::size_t taken = 0;
    for (const store::ScoredRecord& hit : found ? *found : std::vector<store::ScoredRecord>{}) {
      if (taken == options.top_k) break;
      if (!admit(hit.record.label)) continue;
      records_text +=
          "- " + hit.record.text + " (recorded " + date_of(hit.record.created_at) + ")\n";
      context.injected.push_back(hit.record.id);
      ++taken;
    }
  }
  if (context.injected.empty()) co_return context;
  context.text = "Memory kept for this conversation by Redline; use it where it is relevant.\n";
  if (!blocks_text.empty()) context.text += "Pinned memory:\n" + blocks_text;
  if (!records_text.empty()) context.text += "Relevant records:\n" + records_text;
  if (!(carried == policy::Label{})) context.label_floor = lattice.format(carried);
  co_return context;
}

void MemoryService::extract_in_background(const net::HttpRequest& origin, MemoryNamespace scope,
                                          std::string tenant, TurnTranscript turn) {
  auto extraction = std::make_shared<Extraction>();
  for (const net::Header& header : origin.headers) {
    if (net::iequals(header.name, "authorization") || net::iequals(header.name, "x-api-key") ||
        net::iequals(header.name, "x-request-id")) {
      extraction->origin.headers.push_back(header);
    }
  }
  extraction->origin.remote_address = origin.remote_address;
  extraction->scope = std::move(scope);
  extraction->tenant = std::move(tenant);
  extraction->turn = std::move(turn);
  asio::co_spawn(gateway_.io().next(), extract(std::move(extraction)), asio::detached);
}

asio::awaitable<void> MemoryService::extract(std::shared_ptr<Extraction> extraction) {
  const auto table = gateway_.table();
  const config::MemorySettings& settings = table->config().memory;
  if (settings.extraction_model.value.empty()) co_return;
  std::string_view transcript = extraction->turn.transcript;
  if (transcript.size() > settings.extraction_max_input_chars) {
    // The end of a turn (the answer) matters most.
    transcript.remove_prefix(transcript.size() - settings.extraction_max_input_chars);
  }
  json::object body{
      {"model", settings.extraction_model.value},
      {"messages",
       json::array{json::object{{"role", "system"}, {"content", kExtractionInstructions}},
                   json::object{{"role", "user"}, {"content", transcript}}}},
      {"response_format", json::object{{"type", "json_object"}}},
      {"max_completion_tokens", settings.extraction_max_output_tokens}};
  gateway::ModelCall call;
  call.origin = &extraction->origin;
  call.body = json::serialize(body);
  call.route = "memory.extract";
  call.label_floor = extraction->turn.label;
  const gateway::ModelCallResult result = co_await gateway::call_model(gateway_, std::move(call));
  if (!result.completed) {
    spdlog::warn("memory: extraction after {} failed: {}", extraction->turn.response_id,
                 result.error ? result.error->message : std::string("no answer"));
    co_return;
  }
  // {"choices":[{"message":{"content":"{\"facts\":[...]}"}}]}
  boost::system::error_code ec;
  const json::value answer = json::parse(result.body, ec);
  const json::value* content = nullptr;
  if (!ec && answer.is_object()) {
    if (const auto* choices = answer.as_object().if_contains("choices");
        choices && choices->is_array() && !choices->as_array().empty() &&
        choices->as_array()[0].is_object()) {
      if (const auto* message = choices->as_array()[0].as_object().if_contains("message");
          message && message->is_object()) {
        content = message->as_object().if_contains("content");
      }
    }
  }
  const json::value facts_json =
      content && content->is_string() ? json::parse(content->as_string(), ec) : json::value();
  const json::value* facts =
      !ec && facts_json.is_object() ? facts_json.as_object().if_contains("facts") : nullptr;
  if (facts == nullptr || !facts->is_array()) {
    spdlog::warn("memory: extraction after {} did not answer with facts",
                 extraction->turn.response_id);
    co_return;
  }
  const std::int64_t now = clock_->unix_seconds();
  // What was extracted carries the turn's label (at least): it came out of that turn's text.
  const std::string label = extraction->turn.label.empty() ? result.label : extraction->turn.label;
  std::vector<MemoryRecord> records;
  for (const json::value& fact : facts->as_array()) {
    if (!fact.is_object()) continue;
    const json::value* text = fact.as_object().if_contains("text");
    if (text == nullptr || !text->is_string() || text->as_string().empty() ||
        text->as_string().size() > settings.max_record_chars) {
      continue;
    }
    const json::value* subject = fact.as_object().if_contains("subject");
    MemoryRecord record;
    record.id = new_object_id("mem");
    record.tenant = extraction->tenant;
    record.scope = extraction->scope;
    record.text = std::string(text->as_string());
    if (subject != nullptr && subject->is_string() &&
        subject->as_string().size() <= kMaxNameChars) {
      record.subject = std::string(subject->as_string());
    }
    record.source = "extraction:" + extraction->turn.response_id;
    record.label = label;
    record.created_at = record.valid_from = now;
    records.push_back(std::move(record));
  }
  co_await blocking_.run([&] {
    for (const MemoryRecord& record : records) {
      auto added = store_->add_record(record, "");
      if (!added) spdlog::warn("memory: cannot file an extracted fact: {}", added.error());
    }
    return 0;
  });
}

asio::awaitable<void> MemoryService::remember(const std::string& tenant,
                                              const MemoryNamespace& scope, const std::string& text,
                                              const std::string& subject, const std::string& source,
                                              const std::string& label) {
  if (text.empty()) co_return;
  const auto table = gateway_.table();
  const policy::RedLinePolicy& red_lines = table->policy();
  const policy::LabelLattice& lattice = red_lines.lattice();
  policy::Label floor;
  if (auto parsed = label.empty() ? std::optional<policy::Label>() : lattice.parse(label)) {
    floor = *parsed;
  }
  MemoryRecord record;
  record.id = new_object_id("mem");
  record.tenant = tenant;
  record.scope = scope;
  record.text = text.substr(0, table->config().memory.max_record_chars);
  record.subject = subject;
  record.source = source;
  record.label =
      lattice.format(policy::least_upper_bound(floor, red_lines.scan_text(record.text).raised));
  record.created_at = record.valid_from = clock_->unix_seconds();
  auto added = co_await blocking_.run([&] { return store_->add_record(record, ""); });
  if (!added) spdlog::warn("memory: cannot file {}: {}", record.subject, added.error());
}

std::int64_t MemoryService::purge_expired() {
  auto purged = store_->purge_expired_records(clock_->unix_seconds());
  if (!purged) {
    spdlog::warn("memory: purge failed: {}", purged.error());
    return 0;
  }
  return *purged;
}

}  // namespace redline::agents
