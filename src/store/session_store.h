// Stored state of the Responses and Conversations APIs: responses with their input and output
// items, conversations with their items, and the redaction placeholders each keeps stable across
// turns. The storage sits behind SessionStore so the embedded SQLite store and a shared one are
// interchangeable; agents/ is the only intended caller.
//
// Everything is owned by a tenant: every lookup takes the tenant, and an object of another tenant
// is reported exactly like a missing one (nullopt / false), so no caller can tell the two apart.
// Items are kept as the JSON text of the OpenAI item object (id included); the store never parses
// them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "store/status.h"

namespace redline::store {

// One item of a response or a conversation ("message", "function_call", ...).
struct SessionItem {
  std::string id;  // "msg_…", "fc_…", "fco_…": unique within its list (a response's input, its
                   // output, a conversation); a write that repeats one fails
  std::string json;             // the whole item object, "id" included
  std::int64_t created_at = 0;  // unix seconds
  friend bool operator==(const SessionItem&, const SessionItem&) = default;
};

struct ResponseRecord {
  std::string id;  // "resp_…"
  std::string tenant;
  // queued | in_progress | completed | incomplete | failed | cancelled
  std::string status;
  std::string previous_response_id;  // "" = none
  std::string conversation_id;       // "" = none
  std::string object_json;           // the Response object as last returned to the client
  std::string vault_json;            // redaction placeholders of its chain; "" = none
  bool background = false;
  std::int64_t created_at = 0;  // unix seconds
  std::int64_t updated_at = 0;
  friend bool operator==(const ResponseRecord&, const ResponseRecord&) = default;
};

struct ConversationRecord {
  std::string id;  // "conv_…"
  std::string tenant;
  std::string metadata_json = "{}";  // the conversation's metadata object
  std::string vault_json;            // redaction placeholders of the conversation; "" = none
  std::int64_t created_at = 0;
  std::int64_t updated_at = 0;  // the last change: new items, metadata; retention counts from it
  friend bool operator==(const ConversationRecord&, const ConversationRecord&) = default;
};

// A page of a list, in the order asked for. `after` is an item id: the page starts right after
// it in that order (an id that is not in the list gives an empty page).
struct PageRequest {
  std::size_t limit = 20;  // callers bound it (1..100)
  bool ascending = true;   // oldest first
  std::string after;       // "" = from the start
};

struct ItemPage {
  std::vector<SessionItem> items;
  bool has_more = false;
};

// Retention: what `purge` removes. A rule with an empty tenant applies to every tenant that no
// other rule names.
struct RetentionRule {
  std::string tenant;
  std::int64_t cutoff = 0;  // unix seconds: objects whose updated_at is before it are removed
};

// One finished turn, written in one transaction (see SessionStore::record_turn).
struct TurnRecord {
  ResponseRecord response;  // as it ends: status, object_json, vault_json, updated_at
  bool insert = true;       // false: the response exists already (a background one) and is
                            // updated; its input items are not written again
  std::vector<SessionItem> input_items;
  std::vector<SessionItem> output_items;
  // Append input_items then output_items to response.conversation_id, and make the response's
  // vault the conversation's (when it has one).
  bool append_to_conversation = false;
};

struct PurgeCounts {
  std::int64_t responses = 0;
  std::int64_t conversations = 0;
};

// Thread-safe: every method may be called from any thread. Errors (I/O, a database locked past
// the busy timeout) come back as values. Writes are committed when the call returns.
class SessionStore {
 public:
  virtual ~SessionStore() = default;

  // ---- responses
  // Inserts a response and its input items (in order) in one transaction. Fails when the id is
  // taken.
  virtual Status insert_response(const ResponseRecord& response,
                                 const std::vector<SessionItem>& input_items) = 0;
  // Replaces status, object_json, vault_json and updated_at of a stored response, and its output
  // items with `output_items` (in order), in one transaction. An unknown (or other tenant's) id
  // is an error.
  virtual Status update_response(std::string_view tenant, std::string_view id,
                                 std::string_view status, std::string_view object_json,
                                 std::string_view vault_json,
                                 const std::vector<SessionItem>& output_items,
                                 std::int64_t updated_at) = 0;
  // A finished turn in one transaction: the response inserted (with its input items) or
  // updated, its output items replaced, and, when asked, the turn's items appended to its
  // conversation. Either all of it is stored or none of it.
  virtual Status record_turn(const TurnRecord& turn) = 0;
  virtual Result<std::optional<ResponseRecord>> find_response(std::string_view tenant,
                                                              std::string_view id) = 0;
  // Removes the response and its items; false when there was none.
  virtual Result<bool> delete_response(std::string_view tenant, std::string_view id) = 0;
  virtual Result<ItemPage> response_input_items(std::string_view tenant, std::string_view id,
                                                const PageRequest& page) = 0;
  virtual Result<std::vector<SessionItem>> response_output_items(std::string_view tenant,
                                                                 std::string_view id) = 0;
  // What the model has seen and said along the chain of previous_response_id links that ends at
  // `id`, oldest first: for each response, its input items, then its output items. The walk
  // stops at a missing (deleted, purged) link or after `max_depth` responses, so the result is
  // then the most recent part of the chain. Empty when `id` itself is unknown.
  virtual Result<std::vector<SessionItem>> response_chain_items(std::string_view tenant,
                                                                std::string_view id,
                                                                std::size_t max_depth) = 0;
  // Responses of every tenant whose status is queued or in_progress (after a restart these can
  // no longer finish), oldest first.
  virtual Result<std::vector<ResponseRecord>> unfinished_responses() = 0;

  // ---- conversations
  // Inserts a conversation and its first items in one transaction. Fails when the id is taken.
  virtual Status insert_conversation(const ConversationRecord& conversation,
                                     const std::vector<SessionItem>& items) = 0;
  virtual Result<std::optional<ConversationRecord>> find_conversation(std::string_view tenant,
                                                                      std::string_view id) = 0;
  // Replaces the metadata; an unknown id is an error.
  virtual Status update_conversation_metadata(std::string_view tenant, std::string_view id,
                                              std::string_view metadata_json,
                                              std::int64_t updated_at) = 0;
  // Removes the conversation and all its items; false when there was none.
  virtual Result<bool> delete_conversation(std::string_view tenant, std::string_view id) = 0;
  // Appends items after every item the conversation has, in order, and sets updated_at; when
  // `vault_json` is given it replaces the conversation's. One transaction; unknown id = error.
  virtual Status append_conversation_items(std::string_view tenant, std::string_view id,
                                           const std::vector<SessionItem>& items,
                                           std::optional<std::string_view> vault_json,
                                           std::int64_t updated_at) = 0;
  virtual Result<ItemPage> conversation_items(std::string_view tenant, std::string_view id,
                                              const PageRequest& page) = 0;
  // Every item, oldest first.
  virtual Result<std::vector<SessionItem>> all_conversation_items(std::string_view tenant,
                                                                  std::string_view id) = 0;
  virtual Result<std::optional<SessionItem>> find_conversation_item(
      std::string_view tenant, std::string_view conversation_id, std::string_view item_id) = 0;
  // false when the conversation or the item does not exist.
  virtual Result<bool> delete_conversation_item(std::string_view tenant,
                                                std::string_view conversation_id,
                                                std::string_view item_id) = 0;

  // ---- retention
  // Removes responses and conversations (with their items) idle since before their tenant's
  // cutoff. Responses still queued or in progress are kept.
  virtual Result<PurgeCounts> purge(const std::vector<RetentionRule>& rules) = 0;
};

// Opens (creating when missing; the parent directory must exist) the SQLite database at `path`
// and brings the "sessions" schema up to date. The file may be shared with the other modules'
// tables. ":memory:" gives a private in-memory database. Null and `*error` set on failure.
std::unique_ptr<SessionStore> open_sqlite_session_store(const std::string& path,
                                                        std::string* error);

}  // namespace redline::store
