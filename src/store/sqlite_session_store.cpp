// SessionStore on SQLite. One connection per store, serialised by a mutex, like the key store:
// a session write is a handful of small statements, and the mutex keeps cached statements and
// transactions on one connection simple. Other processes sharing the file are serialised by
// SQLite's write lock (every write transaction is IMMEDIATE).
#include <iterator>
#include <mutex>
#include <span>
#include <utility>

#include "store/session_store.h"
#include "store/sqlite_statement.h"

namespace redline::store {
namespace {

// The "sessions" module's schema; append-only (see sqlite_database.h).
//
// Every key starts with the tenant, so a lookup without the right tenant finds nothing. Items
// live in one table per list, all of one shape; `seq` numbers a list's items from 1 in the order
// they were added, and the foreign keys remove a list together with its owner. Retention seeks
// the *_idle_by_tenant indexes for a rule that names its tenant and the *_idle ones for the
// default rule.
const std::vector<std::string_view> kSessionsSchema = {
    R"sql(
CREATE TABLE responses (
  tenant TEXT NOT NULL,
  id TEXT NOT NULL,
  status TEXT NOT NULL,
  previous_response_id TEXT NOT NULL,
  conversation_id TEXT NOT NULL,
  object_json TEXT NOT NULL,
  vault_json TEXT NOT NULL,
  background INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (tenant, id)
);
CREATE INDEX responses_idle_by_tenant ON responses(tenant, updated_at);
CREATE INDEX responses_idle ON responses(updated_at);
CREATE INDEX responses_unfinished ON responses(created_at)
  WHERE status IN ('queued', 'in_progress');
CREATE TABLE response_input_items (
  tenant TEXT NOT NULL,
  owner_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  id TEXT NOT NULL,
  json TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (tenant, owner_id, seq),
  UNIQUE (tenant, owner_id, id),
  FOREIGN KEY (tenant, owner_id) REFERENCES responses(tenant, id) ON DELETE CASCADE
);
CREATE TABLE response_output_items (
  tenant TEXT NOT NULL,
  owner_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  id TEXT NOT NULL,
  json TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (tenant, owner_id, seq),
  UNIQUE (tenant, owner_id, id),
  FOREIGN KEY (tenant, owner_id) REFERENCES responses(tenant, id) ON DELETE CASCADE
);
CREATE TABLE conversations (
  tenant TEXT NOT NULL,
  id TEXT NOT NULL,
  metadata_json TEXT NOT NULL,
  vault_json TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (tenant, id)
);
CREATE INDEX conversations_idle_by_tenant ON conversations(tenant, updated_at);
CREATE INDEX conversations_idle ON conversations(updated_at);
CREATE TABLE conversation_items (
  tenant TEXT NOT NULL,
  owner_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  id TEXT NOT NULL,
  json TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (tenant, owner_id, seq),
  UNIQUE (tenant, owner_id, id),
  FOREIGN KEY (tenant, owner_id) REFERENCES conversations(tenant, id) ON DELETE CASCADE
);
)sql",
};

constexpr std::string_view kResponseColumns =
    "tenant, id, status, previous_response_id, conversation_id, object_json, vault_json, "
    "background, created_at, updated_at";
constexpr std::string_view kConversationColumns =
    "tenant, id, metadata_json, vault_json, created_at, updated_at";
// Must match the condition of the responses_unfinished index, or SQLite won't use it.
constexpr std::string_view kUnfinished = "status IN ('queued', 'in_progress')";

// The item tables share one shape, so their statements differ only in the table name. Every
// item statement takes ?1 = tenant and ?2 = owner id.
std::string append_item_sql(std::string_view table) {
  // The next seq is read in the same statement, inside the caller's write transaction, so
  // concurrent appends can't pick the same number.
  return sql_of({"INSERT INTO ", table, "(tenant, owner_id, seq, id, json, created_at) ",
                 "SELECT ?1, ?2, coalesce(max(seq), 0) + 1, ?3, ?4, ?5 FROM ", table,
                 " WHERE tenant = ?1 AND owner_id = ?2"});
}

std::string all_items_sql(std::string_view table) {
  return sql_of({"SELECT id, json, created_at FROM ", table,
                 " WHERE tenant = ?1 AND owner_id = ?2 ORDER BY seq"});
}

// ?3 = the `after` item id ("" = from the start), ?4 = how many rows at most. The bound is a
// constant for the query, so SQLite seeks to it in the primary key; an `after` id that is not in
// the list makes it NULL, and the page empty.
std::string item_page_sql(std::string_view table, bool ascending) {
  return sql_of({"SELECT id, json, created_at FROM ", table,
                 " WHERE tenant = ?1 AND owner_id = ?2 AND seq ", ascending ? ">" : "<",
                 " CASE WHEN ?3 = '' THEN ", ascending ? "0" : "9223372036854775807",
                 " ELSE (SELECT seq FROM ", table,
                 " WHERE tenant = ?1 AND owner_id = ?2 AND id = ?3) END ORDER BY seq ",
                 ascending ? "ASC" : "DESC", " LIMIT ?4"});
}

std::string clear_items_sql(std::string_view table) {
  return sql_of({"DELETE FROM ", table, " WHERE tenant = ?1 AND owner_id = ?2"});
}

// Purge statements: ?1 = cutoff, then the tenants that `tenant_condition` names.
std::string purge_responses_sql(std::string_view tenant_condition) {
  return sql_of({"DELETE FROM responses WHERE updated_at < ?1 AND NOT ", kUnfinished, " AND ",
                 tenant_condition});
}
std::string purge_conversations_sql(std::string_view tenant_condition) {
  return sql_of({"DELETE FROM conversations WHERE updated_at < ?1 AND ", tenant_condition});
}

// "tenant NOT IN (?2, ?3, …)" for `count` tenants; SQLite accepts the empty list.
std::string tenant_not_in(std::size_t count) {
  std::string condition = "tenant NOT IN (";
  for (std::size_t index = 0; index < count; ++index) {
    if (index > 0) condition += ", ";
    condition += '?';
    condition += std::to_string(index + 2);
  }
  return condition + ")";
}

ResponseRecord response_from_row(const StatementUse& row) {
  ResponseRecord response;
  response.tenant = row.text(0);
  response.id = row.text(1);
  response.status = row.text(2);
  response.previous_response_id = row.text(3);
  response.conversation_id = row.text(4);
  response.object_json = row.text(5);
  response.vault_json = row.text(6);
  response.background = row.integer(7) != 0;
  response.created_at = row.integer(8);
  response.updated_at = row.integer(9);
  return response;
}

ConversationRecord conversation_from_row(const StatementUse& row) {
  ConversationRecord conversation;
  conversation.tenant = row.text(0);
  conversation.id = row.text(1);
  conversation.metadata_json = row.text(2);
  conversation.vault_json = row.text(3);
  conversation.created_at = row.integer(4);
  conversation.updated_at = row.integer(5);
  return conversation;
}

SessionItem item_from_row(const StatementUse& row) {
  return {row.text(0), row.text(1), row.integer(2)};
}

// The two orders of one list's pages.
struct PageStatements {
  Statement ascending;
  Statement descending;
};

struct PurgeStatements {
  Statement responses;
  Statement conversations;
};

class SqliteSessionStore final : public SessionStore {
 public:
  explicit SqliteSessionStore(SqliteConnection db) : db_(std::move(db)) {}

  // Takes the write-ahead log's checkpoints off this store's write path (see WalCheckpointer).
  bool attach_checkpointer(const std::string& path, std::string* error) {
    checkpointer_ = WalCheckpointer::attach(db_.get(), path, error);
    return checkpointer_ != nullptr || path == ":memory:";
  }

  // Prepares every fixed statement once; false and `*error` set when the schema doesn't match.
  bool prepare(std::string* error) {
    const CachedStatement statements[] = {
        {&insert_response_, sql_of({"INSERT INTO responses(", kResponseColumns,
                                    ") VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"})},
        {&update_response_,
         "UPDATE responses SET status = ?3, object_json = ?4, vault_json = ?5, updated_at = ?6 "
         "WHERE tenant = ?1 AND id = ?2"},
        {&select_response_,
         sql_of({"SELECT ", kResponseColumns, " FROM responses WHERE tenant = ? AND id = ?"})},
        {&select_previous_response_id_,
         "SELECT previous_response_id FROM responses WHERE tenant = ? AND id = ?"},
        {&delete_response_, "DELETE FROM responses WHERE tenant = ? AND id = ?"},
        {&select_unfinished_responses_,
         sql_of({"SELECT ", kResponseColumns, " FROM responses WHERE ", kUnfinished,
                 " ORDER BY created_at, tenant, id"})},
        {&append_input_item_, append_item_sql("response_input_items")},
        {&all_input_items_, all_items_sql("response_input_items")},
        {&input_item_pages_.ascending, item_page_sql("response_input_items", true)},
        {&input_item_pages_.descending, item_page_sql("response_input_items", false)},
        {&append_output_item_, append_item_sql("response_output_items")},
        {&all_output_items_, all_items_sql("response_output_items")},
        {&clear_output_items_, clear_items_sql("response_output_items")},
        {&insert_conversation_, sql_of({"INSERT INTO conversations(", kConversationColumns,
                                        ") VALUES(?, ?, ?, ?, ?, ?)"})},
        {&select_conversation_, sql_of({"SELECT ", kConversationColumns,
                                        " FROM conversations WHERE tenant = ? AND id = ?"})},
        {&update_conversation_metadata_,
         "UPDATE conversations SET metadata_json = ?3, updated_at = ?4 "
         "WHERE tenant = ?1 AND id = ?2"},
        // A NULL vault keeps the stored one.
        {&touch_conversation_,
         "UPDATE conversations SET vault_json = coalesce(?3, vault_json), updated_at = ?4 "
         "WHERE tenant = ?1 AND id = ?2"},
        {&delete_conversation_, "DELETE FROM conversations WHERE tenant = ? AND id = ?"},
        {&append_conversation_item_, append_item_sql("conversation_items")},
        {&all_conversation_items_, all_items_sql("conversation_items")},
        {&conversation_item_pages_.ascending, item_page_sql("conversation_items", true)},
        {&conversation_item_pages_.descending, item_page_sql("conversation_items", false)},
        {&select_conversation_item_,
         "SELECT id, json, created_at FROM conversation_items "
         "WHERE tenant = ? AND owner_id = ? AND id = ?"},
        {&delete_conversation_item_,
         "DELETE FROM conversation_items WHERE tenant = ? AND owner_id = ? AND id = ?"},
        {&purge_tenant_.responses, purge_responses_sql("tenant = ?2")},
        {&purge_tenant_.conversations, purge_conversations_sql("tenant = ?2")},
    };
    return prepare_statements(db_.get(), statements, error) &&
           transactions_.prepare(db_.get(), error);
  }

  // ---- responses

  Status insert_response(const ResponseRecord& response,
                         const std::vector<SessionItem>& input_items) override {
    StoreLock lock(mutex_, checkpointer_.get());
    Transaction transaction(db_.get(), transactions_);
    if (auto status = transaction.begin(Transaction::Kind::kWrite); !status) return status;
    if (auto status = insert_response_rows(response, input_items); !status) return status;
    return transaction.commit();
  }

  Status update_response(std::string_view tenant, std::string_view id, std::string_view status,
                         std::string_view object_json, std::string_view vault_json,
                         const std::vector<SessionItem>& output_items,
                         std::int64_t updated_at) override {
    StoreLock lock(mutex_, checkpointer_.get());
    Transaction transaction(db_.get(), transactions_);
    if (auto begun = transaction.begin(Transaction::Kind::kWrite); !begun) return begun;
    if (auto updated =
            update_response_rows(tenant, id, status, object_json, vault_json, updated_at);
        !updated) {
      return updated;
    }
    if (auto replaced = replace_output_items(tenant, id, output_items); !replaced) {
      return replaced;
    }
    return transaction.commit();
  }

  Status record_turn(const TurnRecord& turn) override {
    const ResponseRecord& response = turn.response;
    StoreLock lock(mutex_, checkpointer_.get());
    Transaction transaction(db_.get(), transactions_);
    if (auto begun = transaction.begin(Transaction::Kind::kWrite); !begun) return begun;
    if (turn.insert) {
      if (auto inserted = insert_response_rows(response, turn.input_items); !inserted) {
        return inserted;
      }
    } else if (auto updated = update_response_rows(response.tenant, response.id, response.status,
                                                   response.object_json, response.vault_json,
                                                   response.updated_at);
               !updated) {
      return updated;
    }
    if (auto replaced = replace_output_items(response.tenant, response.id, turn.output_items);
        !replaced) {
      return replaced;
    }
    if (turn.append_to_conversation) {
      std::optional<std::string_view> vault;
      if (!response.vault_json.empty()) vault = response.vault_json;
      if (auto appended = append_to_conversation(response.tenant, response.conversation_id,
                                                 turn.input_items, vault, response.updated_at);
          !appended) {
        return appended;
      }
      if (auto appended = append_items(append_conversation_item_.get(), response.tenant,
                                       response.conversation_id, turn.output_items);
          !appended) {
        return appended;
      }
    }
    return transaction.commit();
  }

  Result<std::optional<ResponseRecord>> find_response(std::string_view tenant,
                                                      std::string_view id) override {
    StoreLock lock(mutex_, checkpointer_.get());
    return find_owned(select_response_.get(), tenant, id, "cannot look up response",
                      response_from_row);
  }

  Result<bool> delete_response(std::string_view tenant, std::string_view id) override {
    StoreLock lock(mutex_, checkpointer_.get());
    return delete_owned(delete_response_.get(), tenant, id, "cannot delete response");
  }

  Result<ItemPage> response_input_items(std::string_view tenant, std::string_view id,
                                        const PageRequest& page) override {
    StoreLock lock(mutex_, checkpointer_.get());
    return read_page(input_item_pages_, tenant, id, page);
  }

  Result<std::vector<SessionItem>> response_output_items(std::string_view tenant,
                                                         std::string_view id) override {
    StoreLock lock(mutex_, checkpointer_.get());
    return read_all_items(all_output_items_.get(), tenant, id);
  }

  Result<std::vector<SessionItem>> response_chain_items(std::string_view tenant,
                                                        std::string_view id,
                                                        std::size_t max_depth) override {
    StoreLock lock(mutex_, checkpointer_.get());
    // One snapshot for the walk and the reads, so another process deleting a link midway
    // can't leave a response in the chain without its items.
    Transaction transaction(db_.get(), transactions_);
    if (auto status = transaction.begin(Transaction::Kind::kRead); !status) return status;
    auto chain = walk_chain(tenant, id, max_depth);
    if (!chain) return Status::error(chain.error());
    std::vector<SessionItem> items;
    for (auto link = chain->rbegin(); link != chain->rend(); ++link) {
      for (auto* list : {all_input_items_.get(), all_output_items_.get()}) {
        auto part = read_all_items(list, tenant, *link);
        if (!part) return Status::error(part.error());
        items.insert(items.end(), std::make_move_iterator(part->begin()),
                     std::make_move_iterator(part->end()));
      }
    }
    if (auto status = transaction.commit(); !status) return status;
    return items;
  }

  Result<std::vector<ResponseRecord>> unfinished_responses() override {
    StoreLock lock(mutex_, checkpointer_.get());
    StatementUse select(select_unfinished_responses_.get());
    return select.all_rows("cannot list unfinished responses", response_from_row);
  }

  // ---- conversations

  Status insert_conversation(const ConversationRecord& conversation,
                             const std::vector<SessionItem>& items) override {
    StoreLock lock(mutex_, checkpointer_.get());
    Transaction transaction(db_.get(), transactions_);
    if (auto status = transaction.begin(Transaction::Kind::kWrite); !status) return status;
    {
      StatementUse insert(insert_conversation_.get());
      insert.bind(1, conversation.tenant);
      insert.bind(2, conversation.id);
      insert.bind(3, conversation.metadata_json);
      insert.bind(4, conversation.vault_json);
      insert.bind(5, conversation.created_at);
      insert.bind(6, conversation.updated_at);
      if (insert.step() != SQLITE_DONE) {
        return insert_error(db_.get(), "conversation", conversation.id);
      }
    }
    if (auto status = append_items(append_conversation_item_.get(), conversation.tenant,
                                   conversation.id, items);
        !status) {
      return status;
    }
    return transaction.commit();
  }

  Result<std::optional<ConversationRecord>> find_conversation(std::string_view tenant,
                                                              std::string_view id) override {
    StoreLock lock(mutex_, checkpointer_.get());
    return find_owned(select_conversation_.get(), tenant, id, "cannot look up conversation",
                      conversation_from_row);
  }

  Status update_conversation_metadata(std::string_view tenant, std::string_view id,
                                      std::string_view metadata_json,
                                      std::int64_t updated_at) override {
    StoreLock lock(mutex_, checkpointer_.get());
    StatementUse update(update_conversation_metadata_.get());
    update.bind(1, tenant);
    update.bind(2, id);
    update.bind(3, metadata_json);
    update.bind(4, updated_at);
    return expect_conversation(update.execute_changing("cannot update conversation"), id);
  }

  Result<bool> delete_conversation(std::string_view tenant, std::string_view id) override {
    StoreLock lock(mutex_, checkpointer_.get());
    return delete_owned(delete_conversation_.get(), tenant, id, "cannot delete conversation");
  }

  Status append_conversation_items(std::string_view tenant, std::string_view id,
                                   const std::vector<SessionItem>& items,
                                   std::optional<std::string_view> vault_json,
                                   std::int64_t updated_at) override {
    StoreLock lock(mutex_, checkpointer_.get());
    Transaction transaction(db_.get(), transactions_);
    if (auto status = transaction.begin(Transaction::Kind::kWrite); !status) return status;
    if (auto status = append_to_conversation(tenant, id, items, vault_json, updated_at); !status) {
      return status;
    }
    return transaction.commit();
  }

  Result<ItemPage> conversation_items(std::string_view tenant, std::string_view id,
                                      const PageRequest& page) override {
    StoreLock lock(mutex_, checkpointer_.get());
    return read_page(conversation_item_pages_, tenant, id, page);
  }

  Result<std::vector<SessionItem>> all_conversation_items(std::string_view tenant,
                                                          std::string_view id) override {
    StoreLock lock(mutex_, checkpointer_.get());
    return read_all_items(all_conversation_items_.get(), tenant, id);
  }

  Result<std::optional<SessionItem>> find_conversation_item(std::string_view tenant,
                                                            std::string_view conversation_id,
                                                            std::string_view item_id) override {
    StoreLock lock(mutex_, checkpointer_.get());
    StatementUse select(select_conversation_item_.get());
    select.bind(1, tenant);
    select.bind(2, conversation_id);
    select.bind(3, item_id);
    return select.first_row("cannot look up conversation item", item_from_row);
  }

  Result<bool> delete_conversation_item(std::string_view tenant, std::string_view conversation_id,
                                        std::string_view item_id) override {
    StoreLock lock(mutex_, checkpointer_.get());
    StatementUse erase(delete_conversation_item_.get());
    erase.bind(1, tenant);
    erase.bind(2, conversation_id);
    erase.bind(3, item_id);
    return erase.execute_changing("cannot delete conversation item");
  }

  // ---- retention

  Result<PurgeCounts> purge(const std::vector<RetentionRule>& rules) override {
    std::vector<std::string_view> named_tenants;
    for (const auto& rule : rules) {
      if (!rule.tenant.empty()) named_tenants.push_back(rule.tenant);
    }
    StoreLock lock(mutex_, checkpointer_.get());
    Transaction transaction(db_.get(), transactions_);
    if (auto status = transaction.begin(Transaction::Kind::kWrite); !status) return status;
    // Prepared per purge: its shape depends on how many tenants the rules name, and purges are
    // rare.
    PurgeStatements purge_others;
    if (named_tenants.size() < rules.size()) {
      if (auto status = prepare_purge_of_others(named_tenants.size(), purge_others); !status) {
        return status;
      }
    }
    PurgeCounts total;
    for (const auto& rule : rules) {
      const std::string_view tenant = rule.tenant;
      auto removed = tenant.empty() ? run_purge(purge_others, rule.cutoff, named_tenants)
                                    : run_purge(purge_tenant_, rule.cutoff, std::span(&tenant, 1));
      if (!removed) return Status::error(removed.error());
      total.responses += removed->responses;
      total.conversations += removed->conversations;
    }
    if (auto status = transaction.commit(); !status) return status;
    return total;
  }

 private:
  // Helpers: call with mutex_ held.

  // Inside a write transaction.
  // The write steps below run inside a transaction their caller holds, with the mutex held.

  Status insert_response_rows(const ResponseRecord& response,
                              const std::vector<SessionItem>& input_items) {
    {
      StatementUse insert(insert_response_.get());
      insert.bind(1, response.tenant);
      insert.bind(2, response.id);
      insert.bind(3, response.status);
      insert.bind(4, response.previous_response_id);
      insert.bind(5, response.conversation_id);
      insert.bind(6, response.object_json);
      insert.bind(7, response.vault_json);
      insert.bind(8, std::int64_t{response.background});
      insert.bind(9, response.created_at);
      insert.bind(10, response.updated_at);
      if (insert.step() != SQLITE_DONE) return insert_error(db_.get(), "response", response.id);
    }
    return append_items(append_input_item_.get(), response.tenant, response.id, input_items);
  }

  Status update_response_rows(std::string_view tenant, std::string_view id, std::string_view status,
                              std::string_view object_json, std::string_view vault_json,
                              std::int64_t updated_at) {
    StatementUse update(update_response_.get());
    update.bind(1, tenant);
    update.bind(2, id);
    update.bind(3, status);
    update.bind(4, object_json);
    update.bind(5, vault_json);
    update.bind(6, updated_at);
    auto updated = update.execute_changing("cannot update response");
    if (!updated) return Status::error(updated.error());
    if (!*updated) return Status::error("no response with id " + std::string(id));
    return Status::success();
  }

  Status replace_output_items(std::string_view tenant, std::string_view id,
                              const std::vector<SessionItem>& output_items) {
    if (auto cleared = clear_items(clear_output_items_.get(), tenant, id); !cleared) {
      return cleared;
    }
    return append_items(append_output_item_.get(), tenant, id, output_items);
  }

  Status append_to_conversation(std::string_view tenant, std::string_view id,
                                const std::vector<SessionItem>& items,
                                std::optional<std::string_view> vault_json,
                                std::int64_t updated_at) {
    {
      StatementUse touch(touch_conversation_.get());
      touch.bind(1, tenant);
      touch.bind(2, id);
      if (vault_json) {
        touch.bind(3, *vault_json);
      } else {
        touch.bind_null(3);
      }
      touch.bind(4, updated_at);
      if (auto status =
              expect_conversation(touch.execute_changing("cannot update conversation"), id);
          !status) {
        return status;
      }
    }
    return append_items(append_conversation_item_.get(), tenant, id, items);
  }

  Status append_items(sqlite3_stmt* append, std::string_view tenant, std::string_view owner,
                      const std::vector<SessionItem>& items) {
    for (const auto& item : items) {
      StatementUse insert(append);
      insert.bind(1, tenant);
      insert.bind(2, owner);
      insert.bind(3, item.id);
      insert.bind(4, item.json);
      insert.bind(5, item.created_at);
      if (insert.step() != SQLITE_DONE) return insert_error(db_.get(), "item", item.id);
    }
    return Status::success();
  }

  Status clear_items(sqlite3_stmt* clear, std::string_view tenant, std::string_view owner) {
    StatementUse erase(clear);
    erase.bind(1, tenant);
    erase.bind(2, owner);
    return erase.execute("cannot remove items");
  }

  Result<std::vector<SessionItem>> read_all_items(sqlite3_stmt* list, std::string_view tenant,
                                                  std::string_view owner) {
    StatementUse select(list);
    select.bind(1, tenant);
    select.bind(2, owner);
    return select.all_rows("cannot read items", item_from_row);
  }

  Result<ItemPage> read_page(const PageStatements& pages, std::string_view tenant,
                             std::string_view owner, const PageRequest& page) {
    StatementUse select(page.ascending ? pages.ascending.get() : pages.descending.get());
    select.bind(1, tenant);
    select.bind(2, owner);
    select.bind(3, page.after);
    // One row more than asked says whether there is a next page.
    select.bind(4, static_cast<std::int64_t>(page.limit) + 1);
    auto items = select.all_rows("cannot list items", item_from_row);
    if (!items) return Status::error(items.error());
    ItemPage result;
    result.has_more = items->size() > page.limit;
    if (result.has_more) items->resize(page.limit);
    result.items = std::move(*items);
    return result;
  }

  // The ids along the previous_response_id links from `id`, newest first: at most `max_depth`,
  // ending before the first link that is missing.
  Result<std::vector<std::string>> walk_chain(std::string_view tenant, std::string_view id,
                                              std::size_t max_depth) {
    std::vector<std::string> chain;
    std::string next(id);
    while (!next.empty() && chain.size() < max_depth) {
      StatementUse select(select_previous_response_id_.get());
      select.bind(1, tenant);
      select.bind(2, next);
      auto previous = select.first_row("cannot walk the response chain",
                                       [](const StatementUse& row) { return row.text(0); });
      if (!previous) return Status::error(previous.error());
      if (!*previous) break;
      chain.push_back(std::exchange(next, std::move(**previous)));
    }
    return chain;
  }

  static Status expect_conversation(const Result<bool>& updated, std::string_view id) {
    if (!updated) return Status::error(updated.error());
    if (!*updated) return Status::error("no conversation with id " + std::string(id));
    return Status::success();
  }

  Status prepare_purge_of_others(std::size_t named_count, PurgeStatements& statements) {
    const auto others = tenant_not_in(named_count);
    std::string error;
    statements.responses =
        prepare_statement(db_.get(), purge_responses_sql(others), /*persistent=*/false, &error);
    if (!statements.responses) return Status::error(error);
    statements.conversations =
        prepare_statement(db_.get(), purge_conversations_sql(others), /*persistent=*/false, &error);
    if (!statements.conversations) return Status::error(error);
    return Status::success();
  }

  // Inside a write transaction.
  Result<PurgeCounts> run_purge(const PurgeStatements& statements, std::int64_t cutoff,
                                std::span<const std::string_view> tenants) {
    auto run = [&](sqlite3_stmt* statement) {
      StatementUse erase(statement);
      erase.bind(1, cutoff);
      for (std::size_t index = 0; index < tenants.size(); ++index) {
        erase.bind(static_cast<int>(index) + 2, tenants[index]);
      }
      return erase.execute_counting("cannot purge");
    };
    auto responses = run(statements.responses.get());
    if (!responses) return Status::error(responses.error());
    auto conversations = run(statements.conversations.get());
    if (!conversations) return Status::error(conversations.error());
    return PurgeCounts{*responses, *conversations};
  }

  std::mutex mutex_;
  SqliteConnection db_;  // declared before the statements: they must be finalized first
  std::unique_ptr<WalCheckpointer> checkpointer_;  // unhooks db_, so destroyed before it
  Statement insert_response_, update_response_, select_response_, select_previous_response_id_,
      delete_response_, select_unfinished_responses_, append_input_item_, all_input_items_,
      append_output_item_, all_output_items_, clear_output_items_, insert_conversation_,
      select_conversation_, update_conversation_metadata_, touch_conversation_,
      delete_conversation_, append_conversation_item_, all_conversation_items_,
      select_conversation_item_, delete_conversation_item_;
  PageStatements input_item_pages_, conversation_item_pages_;
  PurgeStatements purge_tenant_;
  TransactionStatements transactions_;
};

}  // namespace

std::unique_ptr<SessionStore> open_sqlite_session_store(const std::string& path,
                                                        std::string* error) {
  return open_prepared_store<SqliteSessionStore>(path, "sessions", kSessionsSchema, error);
}

}  // namespace redline::store
