#include <array>
#include <string>

#include "audit/audit_log.h"

namespace redline::audit {
namespace {

struct GroupColumn {
  std::string_view name;
  std::string_view expression;
};

// time_ms / 1000 in SQLite integer arithmetic, then formatted in UTC.
constexpr std::array<GroupColumn, 6> kGroupColumns{{
    {"tenant", "tenant"},
    {"key_id", "key_id"},
    {"model", "model"},
    {"backend", "backend"},
    {"day", "strftime('%Y-%m-%d', time_ms / 1000, 'unixepoch')"},
    {"hour", "strftime('%Y-%m-%dT%H', time_ms / 1000, 'unixepoch')"},
}};

struct StatementFinalizer {
  void operator()(sqlite3_stmt* statement) const { sqlite3_finalize(statement); }
};

}  // namespace

store::Result<std::vector<UsageRow>> query_usage(sqlite3* db, const UsageQuery& query) {
  std::string select = "SELECT ";
  std::string group_by;
  for (const auto& name : query.group_by) {
    const GroupColumn* column = nullptr;
    for (const auto& candidate : kGroupColumns) {
      if (candidate.name == name) column = &candidate;
    }
    if (!column) {
      return store::Status::error("cannot group usage by \"" + name +
                                  "\" (tenant, key_id, model, backend, day or hour)");
    }
    select += column->expression;
    select += ", ";
    if (!group_by.empty()) group_by += ", ";
    group_by += column->expression;
  }
  select +=
      "COUNT(*), SUM(tokens_in), SUM(tokens_out), SUM(cost_micro_usd) FROM audit_records "
      "WHERE kind = 'request' AND time_ms >= ?1 AND time_ms < ?2";
  // Filters bind by number so the statement text depends only on which filters are present.
  const std::array<std::pair<const std::optional<std::string>*, std::string_view>, 4> filters{{
      {&query.tenant, "tenant"},
      {&query.key_id, "key_id"},
      {&query.model, "model"},
      {&query.backend, "backend"},
  }};
  int parameter = 3;
  for (const auto& [value, column] : filters) {
    if (!*value) continue;
    select += " AND ";
    select += column;
    select += " = ?" + std::to_string(parameter++);
  }
  if (!group_by.empty()) select += " GROUP BY " + group_by + " ORDER BY " + group_by;

  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v2(db, select.c_str(), -1, &raw, nullptr) != SQLITE_OK) {
    return store::Status::error(std::string("cannot query usage: ") + sqlite3_errmsg(db));
  }
  std::unique_ptr<sqlite3_stmt, StatementFinalizer> statement(raw);
  sqlite3_bind_int64(raw, 1, query.since_ms);
  sqlite3_bind_int64(raw, 2, query.until_ms);
  parameter = 3;
  for (const auto& [value, column] : filters) {
    if (!*value) continue;
    sqlite3_bind_text(raw, parameter++, (*value)->data(), static_cast<int>((*value)->size()),
                      SQLITE_TRANSIENT);
  }
  std::vector<UsageRow> rows;
  const int groups = static_cast<int>(query.group_by.size());
  int rc;
  while ((rc = sqlite3_step(raw)) == SQLITE_ROW) {
    UsageRow row;
    for (int i = 0; i < groups; ++i) {
      const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(raw, i));
      row.group.emplace_back(query.group_by[i], text ? text : "");
    }
    row.requests = sqlite3_column_int64(raw, groups);
    // Integer sums are exact; SUM over no rows is NULL, which reads as 0.
    row.tokens_in = sqlite3_column_int64(raw, groups + 1);
    row.tokens_out = sqlite3_column_int64(raw, groups + 2);
    row.cost_usd = static_cast<double>(sqlite3_column_int64(raw, groups + 3)) / 1e6;
    // Without GROUP BY an aggregate answers one row even over no records: report none.
    if (groups == 0 && row.requests == 0) break;
    rows.push_back(std::move(row));
  }
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
    return store::Status::error(std::string("cannot query usage: ") + sqlite3_errmsg(db));
  }
  return rows;
}

}  // namespace redline::audit
