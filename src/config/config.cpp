#include "config/config.h"

#include <toml++/toml.h>

#include <algorithm>
#include <array>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <span>
#include <sstream>
#include <system_error>
#include <tuple>
#include <utility>

namespace redline::config {
namespace {

struct Position {
  int line = 0;
  int column = 0;
};

Position position_of(const toml::source_region& region) {
  return {static_cast<int>(region.begin.line), static_cast<int>(region.begin.column)};
}

Position position_of(const toml::node& node) { return position_of(node.source()); }

// Collects errors with the file name stamped on each.
class ErrorSink {
 public:
  ErrorSink(std::string source, std::vector<ConfigError>& errors)
      : source_(std::move(source)), errors_(errors) {}

  void add(Position at, std::string key, std::string message) {
    errors_.push_back(ConfigError{source_, at.line, at.column, std::move(key), std::move(message)});
  }

  std::size_t count() const { return errors_.size(); }

 private:
  std::string source_;
  std::vector<ConfigError>& errors_;
};

std::string join(std::span<const std::string_view> words, std::string_view separator) {
  std::string out;
  for (std::size_t i = 0; i < words.size(); ++i) {
    if (i > 0) {
      out += separator;
    }
    out += words[i];
  }
  return out;
}

// Edits (insert, delete, substitute, swap two neighbours) that turn a into b: swapped letters are
// the most common typo, so they count as one.
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) {
    d[i][0] = i;
  }
  for (std::size_t j = 0; j <= b.size(); ++j) {
    d[0][j] = j;
  }
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

// The closest candidate within a third of the word's length, for "did you mean" hints.
std::optional<std::string_view> closest(std::string_view word,
                                        std::span<const std::string_view> candidates) {
  std::optional<std::string_view> best;
  std::size_t best_distance = std::max<std::size_t>(1, word.size() / 3) + 1;
  for (std::string_view candidate : candidates) {
    const std::size_t distance = edit_distance(word, candidate);
    if (distance < best_distance) {
      best_distance = distance;
      best = candidate;
    }
  }
  return best;
}

std::string with_suggestion(std::string message, std::string_view word,
                            std::span<const std::string_view> candidates) {
  if (auto suggestion = closest(word, candidates)) {
    message += "; did you mean '";
    message += *suggestion;
    message += "'?";
  }
  return message;
}

std::string_view type_name(toml::node_type type) {
  switch (type) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

std::string found(const toml::node& node) {
  return " (found " + std::string(type_name(node.type())) + ")";
}

template <typename Number>
std::string found_value(Number value) {
  std::ostringstream out;
  out << " (found " << value << ")";
  return out.str();
}

std::string error_text(int error_number) { return std::generic_category().message(error_number); }

std::string in_quotes(std::string_view text) { return "'" + std::string(text) + "'"; }

// Two hex digits per byte, either case; nullopt for anything else.
std::optional<std::string> decode_hex(std::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(hex.size() / 2);
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    const int high = digit(hex[i]);
    const int low = digit(hex[i + 1]);
    if (high < 0 || low < 0) return std::nullopt;
    out.push_back(static_cast<char>(high * 16 + low));
  }
  return out;
}

std::string indexed(std::string_view path, std::size_t index) {
  return std::string(path) + "[" + std::to_string(index) + "]";
}

// Reads one TOML table: typed accessors that report wrong types and out-of-range values under
// the key's dotted path, and a check that flags every key the table does not define.
class TableReader {
 public:
  TableReader(const toml::table& table, std::string path, ErrorSink& sink,
              std::vector<std::string_view> known_keys)
      : table_(table), path_(std::move(path)), sink_(sink) {
    for (auto&& [key, value] : table_) {
      if (std::find(known_keys.begin(), known_keys.end(), key.str()) != known_keys.end()) {
        continue;
      }
      sink_.add(position_of(key.source()), key_path(key.str()),
                with_suggestion("unknown key " + in_quotes(key.str()), key.str(), known_keys));
    }
  }

  std::string key_path(std::string_view key) const {
    return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  }

  Position position() const { return position_of(table_); }

  const toml::node* find(std::string_view key) const { return table_.get(key); }

  void error(std::string_view key, const toml::node& at, std::string message) {
    sink_.add(position_of(at), key_path(key), std::move(message));
  }

  void missing(std::string_view key) { sink_.add(position(), key_path(key), "is required"); }

  // Each reader leaves `out` untouched unless the key is present and valid, and returns whether
  // it assigned. A missing required key is reported at the table's position.
  bool read_string(std::string_view key, std::string& out, bool required = false,
                   bool allow_empty = true) {
    const toml::node* node = find(key);
    if (node == nullptr) {
      if (required) {
        missing(key);
      }
      return false;
    }
    const auto* value = node->as_string();
    if (value == nullptr) {
      error(key, *node, "must be a string" + found(*node));
      return false;
    }
    if (!allow_empty && value->get().empty()) {
      error(key, *node, "must not be empty");
      return false;
    }
    out = value->get();
    return true;
  }

  template <typename Integer>
  bool read_integer(std::string_view key, Integer& out, std::int64_t min) {
    const toml::node* node = find(key);
    if (node == nullptr) {
      return false;
    }
    const std::int64_t max = static_cast<std::int64_t>(std::min<std::uint64_t>(
        std::numeric_limits<Integer>::max(), std::numeric_limits<std::int64_t>::max()));
    const std::string requirement = min == 0   ? "must be a non-negative integer"
                                    : min == 1 ? "must be a positive integer"
                                               : "must be an integer >= " + std::to_string(min);
    const auto* value = node->as_integer();
    if (value == nullptr) {
      error(key, *node, requirement + found(*node));
      return false;
    }
    const std::int64_t number = value->get();
    if (number < min) {
      error(key, *node, requirement + found_value(number));
      return false;
    }
    if (number > max) {
      error(key, *node, "must be at most " + std::to_string(max) + found_value(number));
      return false;
    }
    out = static_cast<Integer>(number);
    return true;
  }

  bool read_duration(std::string_view key, std::chrono::milliseconds& out, std::int64_t min_ms) {
    const toml::node* node = find(key);
    if (node == nullptr) {
      return false;
    }
    const std::string requirement = min_ms == 0
                                        ? "must be a non-negative integer number of milliseconds"
                                        : "must be a positive integer number of milliseconds";
    const auto* value = node->as_integer();
    if (value == nullptr) {
      error(key, *node, requirement + found(*node));
      return false;
    }
    if (value->get() < min_ms) {
      error(key, *node, requirement + found_value(value->get()));
      return false;
    }
    out = std::chrono::milliseconds(value->get());
    return true;
  }

  enum class Range { kNonNegative, kPositive, kUnit };

  // Accepts integers too, so `weight = 2` means 2.0.
  bool read_number(std::string_view key, double& out, Range range) {
    const toml::node* node = find(key);
    if (node == nullptr) {
      return false;
    }
    const char* requirement = range == Range::kNonNegative ? "must be a non-negative number"
                              : range == Range::kPositive  ? "must be a positive number"
                                                           : "must be a number between 0 and 1";
    double number = 0;
    if (const auto* floating = node->as_floating_point()) {
      number = floating->get();
    } else if (const auto* integer = node->as_integer()) {
      number = static_cast<double>(integer->get());
    } else {
      error(key, *node, requirement + found(*node));
      return false;
    }
    const bool in_range =
        std::isfinite(number) && (range == Range::kNonNegative ? number >= 0
                                  : range == Range::kPositive  ? number > 0
                                                               : number >= 0 && number <= 1);
    if (!in_range) {
      error(key, *node, requirement + found_value(number));
      return false;
    }
    out = number;
    return true;
  }

  // One of `allowed`; returns its index.
  std::optional<std::size_t> read_enum(std::string_view key,
                                       std::span<const std::string_view> allowed) {
    std::string text;
    if (!read_string(key, text)) {
      return std::nullopt;
    }
    auto it = std::find(allowed.begin(), allowed.end(), text);
    if (it != allowed.end()) {
      return static_cast<std::size_t>(it - allowed.begin());
    }
    error(key, *find(key),
          with_suggestion(
              "unknown value " + in_quotes(text) + " (allowed: " + join(allowed, ", ") + ")", text,
              allowed));
    return std::nullopt;
  }

  const toml::array* read_array(std::string_view key, bool required) {
    const toml::node* node = find(key);
    if (node == nullptr) {
      if (required) {
        missing(key);
      }
      return nullptr;
    }
    const auto* array = node->as_array();
    if (array == nullptr) {
      error(key, *node, "must be an array" + found(*node));
    }
    return array;
  }

  bool read_bool(std::string_view key, bool& out) {
    const toml::node* node = find(key);
    if (node == nullptr) {
      return false;
    }
    const auto* value = node->as_boolean();
    if (value == nullptr) {
      error(key, *node, "must be true or false" + found(*node));
      return false;
    }
    out = value->get();
    return true;
  }

  Located located(std::string_view key, const toml::node& node, std::string value) const {
    const Position at = position_of(node);
    return Located{std::move(value), at.line, at.column, key_path(key)};
  }

  bool read_located(std::string_view key, Located& out, bool required = false) {
    std::string text;
    if (!read_string(key, text, required, false)) {
      return false;
    }
    out = located(key, *find(key), std::move(text));
    return true;
  }

  // An array of non-empty strings, each kept with its position.
  std::vector<Located> read_located_list(std::string_view key) {
    std::vector<Located> out;
    const toml::array* array = read_array(key, false);
    if (array == nullptr) {
      return out;
    }
    for (std::size_t i = 0; i < array->size(); ++i) {
      const toml::node& entry = (*array)[i];
      const auto* text = entry.as_string();
      const Position at = position_of(entry);
      const std::string entry_path = indexed(key_path(key), i);
      if (text == nullptr || text->get().empty()) {
        sink_.add(at, entry_path, "must be a non-empty string" + found(entry));
        continue;
      }
      out.push_back(Located{text->get(), at.line, at.column, entry_path});
    }
    return out;
  }

  std::vector<std::string> read_string_list(std::string_view key) {
    std::vector<std::string> out;
    for (Located& entry : read_located_list(key)) {
      out.push_back(std::move(entry.value));
    }
    return out;
  }

  std::vector<std::size_t> read_enum_list(std::string_view key,
                                          std::span<const std::string_view> allowed) {
    std::vector<std::size_t> out;
    for (const Located& entry : read_located_list(key)) {
      auto it = std::find(allowed.begin(), allowed.end(), entry.value);
      if (it == allowed.end()) {
        sink_.add({entry.line, entry.column}, entry.key,
                  with_suggestion("unknown value " + in_quotes(entry.value) +
                                      " (allowed: " + join(allowed, ", ") + ")",
                                  entry.value, allowed));
        continue;
      }
      out.push_back(static_cast<std::size_t>(it - allowed.begin()));
    }
    return out;
  }

  const toml::table* read_table(std::string_view key) {
    const toml::node* node = find(key);
    if (node == nullptr) {
      return nullptr;
    }
    const auto* table = node->as_table();
    if (table == nullptr) {
      error(key, *node, "must be a table" + found(*node));
    }
    return table;
  }

 private:
  const toml::table& table_;
  std::string path_;
  ErrorSink& sink_;
};

// Drops empty and repeated names, keeping the first occurrence's order, for "(known: ...)" lists.
void distinct_names(std::vector<std::string_view>& names) {
  std::vector<std::string_view> distinct;
  for (std::string_view name : names) {
    if (!name.empty() && std::find(distinct.begin(), distinct.end(), name) == distinct.end()) {
      distinct.push_back(name);
    }
  }
  names = std::move(distinct);
}

constexpr std::array<std::string_view, 3> kTierNames = {"edge", "onprem", "cloud"};
constexpr std::array<std::string_view, 5> kStrategyNames = {"least_load", "latency", "cost",
                                                            "weighted", "prefix_affinity"};
constexpr std::array<std::string_view, 5> kRuleActionNames = {"deny", "redact", "restrict",
                                                              "require_approval", "log"};
constexpr std::array<std::string_view, 2> kRuleModeNames = {"enforce", "shadow"};
constexpr std::array<std::string_view, 2> kAuditDurabilityNames = {"batched", "before_response"};
constexpr std::array<std::string_view, 3> kAuditBodiesNames = {"none", "flagged", "all"};
constexpr std::array<std::string_view, 2> kMcpTransportNames = {"stdio", "http"};
constexpr std::array<std::string_view, 3> kMcpProtocolNames = {"auto", "2025-11-25", "2026-07-28"};
constexpr std::array<std::string_view, 3> kBudgetPeriodNames = {"day", "month", "total"};
constexpr std::array<std::string_view, 5> kLogLevels = {"trace", "debug", "info", "warn", "error"};

// Where the cross-references of the file sit, for errors found after every table is read.
struct NamedAt {
  std::string name;
  Position at;
  std::string key;
};

struct AliasLocations {
  NamedAt name;
  std::vector<NamedAt> target_backends;  // parallel to ModelAlias::targets
  std::vector<NamedAt> target_models;
  std::vector<NamedAt> fallbacks;  // parallel to ModelAlias::fallbacks
  std::string path;
};

class ConfigReader {
 public:
  ConfigReader(ErrorSink& sink, const EnvLookup& env, std::filesystem::path base_dir)
      : sink_(sink), env_(env), base_dir_(std::move(base_dir)) {}

  void read(const toml::table& root, Config& config) {
    TableReader reader(root, "", sink_,
                       {"server", "routing", "backends", "models", "auth", "store", "labels",
                        "detectors", "tenants", "rules", "audit", "limits", "budgets", "sessions",
                        "memory", "agents", "mcp_servers"});
    if (const auto* auth = reader.read_table("auth")) {
      read_auth(*auth, config.auth);
    }
    if (const auto* store = reader.read_table("store")) {
      TableReader store_reader(*store, "store", sink_, {"sqlite_path"});
      if (store_reader.read_string("sqlite_path", config.store.sqlite_path, false, false)) {
        config.store.sqlite_path = resolve_path(config.store.sqlite_path);
      }
    } else {
      config.store.sqlite_path = resolve_path(config.store.sqlite_path);
    }
    if (const auto* labels = reader.read_table("labels")) {
      read_labels(*labels, config.labels);
    }
    if (const auto* detectors = reader.read_table("detectors")) {
      read_detectors(*detectors, config.detectors);
    }
    if (const toml::array* tenants = reader.read_array("tenants", false)) {
      for_each_table(*tenants, "tenants", [&](const toml::table& table, const std::string& path) {
        TableReader tenant_reader(table, path, sink_, {"name", "jurisdictions", "retention_ms"});
        TenantSettings tenant;
        tenant_reader.read_string("name", tenant.name, true, false);
        tenant.jurisdictions = tenant_reader.read_string_list("jurisdictions");
        std::chrono::milliseconds retention{0};
        if (tenant_reader.read_duration("retention_ms", retention, 1)) {
          tenant.session_retention = retention;
        }
        config.tenants.push_back(std::move(tenant));
      });
    }
    if (const toml::array* rules = reader.read_array("rules", false)) {
      for_each_table(*rules, "rules", [&](const toml::table& table, const std::string& path) {
        config.rules.push_back(read_rule(table, path));
      });
    }
    if (const auto* audit = reader.read_table("audit")) {
      read_audit(*audit, config.audit);
    }
    if (const auto* sessions = reader.read_table("sessions")) {
      read_sessions(*sessions, config.sessions);
    }
    if (const auto* memory = reader.read_table("memory")) {
      read_memory(*memory, config.memory);
    }
    if (const auto* agents = reader.read_table("agents")) {
      read_agents(*agents, config.agents);
    }
    if (const toml::array* servers = reader.read_array("mcp_servers", false)) {
      for_each_table(*servers, "mcp_servers",
                     [&](const toml::table& table, const std::string& path) {
                       config.mcp_servers.push_back(read_mcp_server(table, path));
                     });
    }
    config.audit.signing_key_path = resolve_path(config.audit.signing_key_path);
    if (const toml::array* limits = reader.read_array("limits", false)) {
      for_each_table(*limits, "limits", [&](const toml::table& table, const std::string& path) {
        config.limits.push_back(read_limit(table, path));
      });
    }
    if (const toml::array* budgets = reader.read_array("budgets", false)) {
      for_each_table(*budgets, "budgets", [&](const toml::table& table, const std::string& path) {
        config.budgets.push_back(read_budget(table, path));
      });
    }
    if (const auto* server = reader.read_table("server")) {
      read_server(*server, config.server);
    }
    if (const auto* routing = reader.read_table("routing")) {
      read_routing(*routing, config.routing);
    }

    const toml::array* backends = reader.read_array("backends", false);
    if (backends != nullptr) {
      const bool all_tables = for_each_table(
          *backends, "backends", [&](const toml::table& table, const std::string& path) {
            config.backends.push_back(read_backend(table, path));
          });
      if (!all_tables) {
        backend_names_complete_ = false;
      }
    } else if (reader.find("backends") != nullptr) {
      backend_names_complete_ = false;  // already reported as not an array
    }
    if (config.backends.empty() && backend_names_complete_) {
      sink_.add(position_of(backends ? static_cast<const toml::node&>(*backends) : root),
                "backends", "at least one [[backends]] entry is required");
    }

    const toml::array* aliases = reader.read_array("models", false);
    if (aliases != nullptr) {
      const bool all_tables = for_each_table(
          *aliases, "models", [&](const toml::table& table, const std::string& path) {
            config.models.push_back(read_alias(table, path));
          });
      if (!all_tables) {
        alias_names_complete_ = false;
      }
    } else if (reader.find("models") != nullptr) {
      alias_names_complete_ = false;
    }
    if (config.models.empty() && alias_names_complete_) {
      sink_.add(position_of(aliases ? static_cast<const toml::node&>(*aliases) : root), "models",
                "at least one [[models]] entry is required");
    }

    check_backend_names();
    check_alias_references(config);
    check_fallbacks(config);
    check_extraction_model(config);
    check_alias_reference(config, config.agents.summary_model);
    check_mcp_server_names(config);
  }

 private:
  // Returns whether every element was a table.
  template <typename Visit>
  bool for_each_table(const toml::array& array, std::string_view path, Visit visit) {
    bool all_tables = true;
    for (std::size_t i = 0; i < array.size(); ++i) {
      const std::string element_path = indexed(path, i);
      if (const auto* table = array[i].as_table()) {
        visit(*table, element_path);
      } else {
        sink_.add(position_of(array[i]), element_path, "must be a table" + found(array[i]));
        all_tables = false;
      }
    }
    return all_tables;
  }

  std::string resolve_path(const std::string& path) const {
    if (path.empty() || std::filesystem::path(path).is_absolute()) {
      return path;
    }
    return (base_dir_ / path).lexically_normal().string();
  }

  void read_auth(const toml::table& table, AuthSettings& auth) {
    TableReader reader(table, "auth", sink_, {"required", "admin_token_env", "key_cache_ttl_ms"});
    reader.read_bool("required", auth.required);
    if (reader.read_string("admin_token_env", auth.admin_token_env) &&
        !auth.admin_token_env.empty()) {
      auto token = env_(auth.admin_token_env);
      if (!token || token->size() < 16) {
        reader.error("admin_token_env", *reader.find("admin_token_env"),
                     "environment variable " + in_quotes(auth.admin_token_env) +
                         (token ? " holds fewer than 16 characters" : " is not set"));
      } else {
        auth.admin_token = std::move(*token);
      }
    }
    if (reader.read_duration("key_cache_ttl_ms", auth.key_cache_ttl, 0) &&
        auth.key_cache_ttl > std::chrono::milliseconds(1000)) {
      reader.error("key_cache_ttl_ms", *reader.find("key_cache_ttl_ms"),
                   "must be at most 1000 so a revoked key stops working within a second");
    }
  }

  void read_labels(const toml::table& table, LabelSettings& labels) {
    TableReader reader(table, "labels", sink_, {"levels", "caveats", "residency"});
    const Position at = reader.position();
    labels.line = at.line;
    labels.column = at.column;
    if (reader.find("levels") != nullptr) {
      labels.levels = reader.read_string_list("levels");
    }
    if (reader.find("caveats") != nullptr) {
      labels.caveats = reader.read_string_list("caveats");
    }
    if (const toml::array* residency = reader.read_array("residency", false)) {
      for_each_table(
          *residency, "labels.residency", [&](const toml::table& entry, const std::string& path) {
            TableReader entry_reader(entry, path, sink_, {"label", "jurisdictions", "tiers"});
            ResidencyRule rule;
            entry_reader.read_located("label", rule.label, true);
            rule.jurisdictions = entry_reader.read_string_list("jurisdictions");
            for (std::size_t tier : entry_reader.read_enum_list("tiers", kTierNames)) {
              rule.tiers.push_back(static_cast<Tier>(tier));
            }
            labels.residency.push_back(std::move(rule));
          });
    }
  }

  // [detectors.<builtin>] tables override built-ins; [[detectors.custom]] adds new ones. Whether
  // a name is a built-in is the policy module's to say.
  void read_detectors(const toml::table& table, std::vector<DetectorSettings>& detectors) {
    for (auto&& [key, value] : table) {
      const std::string path = "detectors." + std::string(key.str());
      if (key.str() == "custom") {
        const auto* array = value.as_array();
        if (array == nullptr) {
          sink_.add(position_of(value), path, "must be an array of tables" + found(value));
          continue;
        }
        for_each_table(*array, path, [&](const toml::table& entry, const std::string& entry_path) {
          TableReader reader(entry, entry_path, sink_,
                             {"name", "patterns", "keywords", "raise", "enabled"});
          DetectorSettings detector;
          detector.custom = true;
          reader.read_located("name", detector.name, true);
          detector.patterns = reader.read_string_list("patterns");
          detector.keywords = reader.read_string_list("keywords");
          Located raise;
          if (reader.read_located("raise", raise, true)) {
            detector.raise = std::move(raise);
          }
          bool enabled = true;
          if (reader.read_bool("enabled", enabled)) {
            detector.enabled = enabled;
          }
          if (detector.patterns.empty() && detector.keywords.empty()) {
            sink_.add(reader.position(), entry_path, "needs at least one of patterns, keywords");
          }
          detectors.push_back(std::move(detector));
        });
        continue;
      }
      const auto* entry = value.as_table();
      if (entry == nullptr) {
        sink_.add(position_of(value), path, "must be a table" + found(value));
        continue;
      }
      TableReader reader(*entry, path, sink_, {"raise", "enabled"});
      DetectorSettings detector;
      const Position at = position_of(key.source());
      detector.name = Located{std::string(key.str()), at.line, at.column, path};
      Located raise;
      if (reader.read_located("raise", raise)) {
        detector.raise = std::move(raise);
      }
      bool enabled = true;
      if (reader.read_bool("enabled", enabled)) {
        detector.enabled = enabled;
      }
      detectors.push_back(std::move(detector));
    }
  }

  void read_sessions(const toml::table& table, SessionSettings& sessions) {
    TableReader reader(
        table, "sessions", sink_,
        {"enabled", "retention_ms", "purge_interval_ms", "max_chain_depth", "max_background"});
    reader.read_bool("enabled", sessions.enabled);
    reader.read_duration("retention_ms", sessions.retention, 1);
    reader.read_duration("purge_interval_ms", sessions.purge_interval, 1);
    reader.read_integer("max_chain_depth", sessions.max_chain_depth, 1);
    reader.read_integer("max_background", sessions.max_background, 1);
  }

  void read_memory(const toml::table& table, MemorySettings& memory) {
    TableReader reader(
        table, "memory", sink_,
        {"default_block_chars", "max_block_chars", "max_record_chars", "max_injected_records",
         "extraction_model", "extraction_max_output_tokens", "extraction_max_input_chars"});
    reader.read_integer("default_block_chars", memory.default_block_chars, 1);
    reader.read_integer("max_block_chars", memory.max_block_chars, 1);
    reader.read_integer("max_record_chars", memory.max_record_chars, 1);
    reader.read_integer("max_injected_records", memory.max_injected_records, 1);
    reader.read_located("extraction_model", memory.extraction_model);
    reader.read_integer("extraction_max_output_tokens", memory.extraction_max_output_tokens, 1);
    reader.read_integer("extraction_max_input_chars", memory.extraction_max_input_chars, 1);
    if (memory.default_block_chars > memory.max_block_chars) {
      sink_.add(reader.position(), "memory.default_block_chars",
                "must not exceed max_block_chars (" + std::to_string(memory.max_block_chars) + ")");
    }
  }

  void check_extraction_model(const Config& config) {
    check_alias_reference(config, config.memory.extraction_model);
  }

  // `model`, when set, must name an alias of the configuration.
  void check_alias_reference(const Config& config, const Located& model) {
    if (model.value.empty() || !alias_names_complete_) return;
    if (config.find_alias(model.value) != nullptr) return;
    std::vector<std::string_view> names;
    for (const auto& alias : config.models) names.push_back(alias.name);
    sink_.add({model.line, model.column}, model.key,
              with_suggestion("unknown model alias " + in_quotes(model.value), model.value, names));
  }

  void read_agents(const toml::table& table, AgentSettings& agents) {
    TableReader reader(
        table, "agents", sink_,
        {"max_steps", "max_tokens", "max_wall_ms", "max_concurrent_runs_per_tenant",
         "max_graph_tasks", "max_graph_concurrency", "approval_timeout_ms", "compaction_threshold",
         "context_window_tokens", "summary_model", "keep_recent_steps"});
    reader.read_integer("max_steps", agents.max_steps, 1);
    reader.read_integer("max_tokens", agents.max_tokens, 1);
    reader.read_duration("max_wall_ms", agents.max_wall, 1);
    reader.read_integer("max_concurrent_runs_per_tenant", agents.max_concurrent_runs_per_tenant, 1);
    reader.read_integer("max_graph_tasks", agents.max_graph_tasks, 1);
    reader.read_integer("max_graph_concurrency", agents.max_graph_concurrency, 1);
    reader.read_duration("approval_timeout_ms", agents.approval_timeout, 1);
    if (reader.read_number("compaction_threshold", agents.compaction_threshold,
                           TableReader::Range::kUnit) &&
        agents.compaction_threshold == 0) {
      reader.error("compaction_threshold", *reader.find("compaction_threshold"),
                   "must be above 0 (1 = compact only a full window)");
    }
    reader.read_integer("context_window_tokens", agents.context_window_tokens, 256);
    reader.read_located("summary_model", agents.summary_model);
    reader.read_integer("keep_recent_steps", agents.keep_recent_steps, 0);
  }

  McpServerSettings read_mcp_server(const toml::table& table, const std::string& path) {
    TableReader reader(table, path, sink_,
                       {"name", "tenants", "transport", "command", "args", "env", "url", "protocol",
                        "idempotent_tools", "require_approval", "result_label", "timeout_ms"});
    McpServerSettings server;
    Located name;
    if (reader.read_located("name", name, true)) {
      server.name = name.value;
      mcp_server_names_.push_back({name.value, {name.line, name.column}, name.key});
    }
    server.tenants = reader.read_string_list("tenants");
    if (auto transport = reader.read_enum("transport", kMcpTransportNames)) {
      server.transport = static_cast<McpTransport>(*transport);
    }
    if (auto protocol = reader.read_enum("protocol", kMcpProtocolNames)) {
      server.protocol = static_cast<McpProtocol>(*protocol);
    }
    server.args = reader.read_string_list("args");
    server.env = reader.read_string_list("env");
    server.idempotent_tools = reader.read_string_list("idempotent_tools");
    server.require_approval = reader.read_string_list("require_approval");
    reader.read_located("result_label", server.result_label);
    reader.read_duration("timeout_ms", server.timeout, 1);
    if (server.transport == McpTransport::kStdio) {
      if (reader.read_string("command", server.command, true, false) &&
          server.command.find('/') != std::string::npos) {
        server.command = resolve_path(server.command);
      }
      if (reader.find("url") != nullptr) {
        reader.error("url", *reader.find("url"), "is for transport = \"http\"");
      }
    } else {
      if (reader.read_string("url", server.url, true, false)) {
        auto parsed = boost::urls::parse_absolute_uri(server.url);
        if (!parsed || (parsed->scheme() != "http" && parsed->scheme() != "https") ||
            parsed->host().empty()) {
          reader.error("url", *reader.find("url"), "must be an http or https URL with a host");
        }
      }
      for (std::string_view key : {"command", "args", "env"}) {
        if (reader.find(key) != nullptr) {
          reader.error(key, *reader.find(key), "is for transport = \"stdio\"");
        }
      }
    }
    return server;
  }

  void check_mcp_server_names(const Config& config) {
    std::map<std::string, std::size_t, std::less<>> first_by_name;
    for (std::size_t i = 0; i < mcp_server_names_.size(); ++i) {
      const NamedAt& name = mcp_server_names_[i];
      auto [it, inserted] = first_by_name.emplace(name.name, i);
      if (!inserted) {
        sink_.add(name.at, name.key,
                  "duplicate MCP server name " + in_quotes(name.name) + " (first defined at line " +
                      std::to_string(mcp_server_names_[it->second].at.line) + ")");
      }
    }
  }

  void read_audit(const toml::table& table, AuditSettings& audit) {
    TableReader reader(table, "audit", sink_,
                       {"enabled", "durability", "flush_interval_ms", "checkpoint_interval_ms",
                        "signing_key_path", "store_bodies", "body_key_env", "body_retention_days"});
    reader.read_bool("enabled", audit.enabled);
    if (auto durability = reader.read_enum("durability", kAuditDurabilityNames)) {
      audit.durability = static_cast<AuditDurability>(*durability);
    }
    reader.read_duration("flush_interval_ms", audit.flush_interval, 1);
    reader.read_duration("checkpoint_interval_ms", audit.checkpoint_interval, 1);
    reader.read_string("signing_key_path", audit.signing_key_path, false, false);
    if (auto bodies = reader.read_enum("store_bodies", kAuditBodiesNames)) {
      audit.store_bodies = static_cast<AuditBodies>(*bodies);
    }
    std::int64_t days = 30;
    if (reader.read_integer("body_retention_days", days, 1)) {
      audit.body_retention = std::chrono::hours(24 * days);
    }
    reader.read_string("body_key_env", audit.body_key_env);
    if (audit.store_bodies == AuditBodies::kNone) return;
    if (audit.body_key_env.empty()) {
      sink_.add(reader.position(), "audit.body_key_env",
                "is required when store_bodies is not \"none\" (bodies are kept encrypted)");
      return;
    }
    auto hex = env_(audit.body_key_env);
    auto key = hex ? decode_hex(*hex) : std::nullopt;
    if (!key || key->size() != 32) {
      reader.error("body_key_env", *reader.find("body_key_env"),
                   "environment variable " + in_quotes(audit.body_key_env) +
                       " must hold 64 hex digits (a 256-bit key)");
      return;
    }
    audit.body_key = std::move(*key);
  }

  // Exactly one of `key` and `tenant`; `each_key` only with a tenant.
  template <typename Settings>
  void read_scope(TableReader& reader, const std::string& path, Settings& settings) {
    reader.read_string("tenant", settings.tenant, false, false);
    reader.read_string("key", settings.key, false, false);
    if (settings.tenant.empty() == settings.key.empty()) {
      sink_.add(reader.position(), path, "needs exactly one of `tenant` or `key`");
    }
  }

  LimitSettings read_limit(const toml::table& table, const std::string& path) {
    TableReader reader(table, path, sink_,
                       {"tenant", "key", "each_key", "requests_per_minute", "tokens_per_minute",
                        "max_concurrent"});
    LimitSettings limit;
    read_scope(reader, path, limit);
    reader.read_bool("each_key", limit.each_key);
    if (limit.each_key && limit.tenant.empty()) {
      sink_.add(reader.position(), path, "`each_key` needs a `tenant`");
    }
    reader.read_integer("requests_per_minute", limit.requests_per_minute, 0);
    reader.read_integer("tokens_per_minute", limit.tokens_per_minute, 0);
    reader.read_integer("max_concurrent", limit.max_concurrent, 0);
    return limit;
  }

  BudgetSettings read_budget(const toml::table& table, const std::string& path) {
    TableReader reader(table, path, sink_,
                       {"tenant", "key", "period", "max_tokens", "max_cost_usd"});
    BudgetSettings budget;
    read_scope(reader, path, budget);
    if (budget.tenant == "*") {
      sink_.add(reader.position(), path + ".tenant", "a budget names one tenant, not \"*\"");
    }
    if (auto period = reader.read_enum("period", kBudgetPeriodNames)) {
      budget.period = static_cast<BudgetPeriod>(*period);
    }
    std::int64_t tokens = 0;
    if (reader.read_integer("max_tokens", tokens, 0)) budget.max_tokens = tokens;
    double cost = 0;
    if (reader.read_number("max_cost_usd", cost, TableReader::Range::kNonNegative)) {
      budget.max_cost_usd = cost;
    }
    if (!budget.max_tokens && !budget.max_cost_usd) {
      sink_.add(reader.position(), path, "needs max_tokens, max_cost_usd or both");
    }
    return budget;
  }

  RuleSettings read_rule(const toml::table& table, const std::string& path) {
    TableReader reader(
        table, path, sink_,
        {"name", "action", "mode", "detectors", "label_at_least", "tenants", "keys", "models",
         "tools", "backend_tiers", "backend_jurisdictions", "redact", "restrict_tiers",
         "restrict_jurisdictions", "restrict_backends", "approval_timeout_ms", "message"});
    RuleSettings rule;
    reader.read_located("name", rule.name, true);
    if (auto action = reader.read_enum("action", kRuleActionNames)) {
      rule.action = static_cast<RuleAction>(*action);
    } else if (reader.find("action") == nullptr) {
      reader.missing("action");
    }
    if (auto mode = reader.read_enum("mode", kRuleModeNames)) {
      rule.mode = static_cast<RuleMode>(*mode);
    }
    rule.detectors = reader.read_located_list("detectors");
    Located label;
    if (reader.read_located("label_at_least", label)) {
      rule.label_at_least = std::move(label);
    }
    rule.tenants = reader.read_string_list("tenants");
    rule.keys = reader.read_string_list("keys");
    rule.models = reader.read_string_list("models");
    rule.tools = reader.read_string_list("tools");
    for (std::size_t tier : reader.read_enum_list("backend_tiers", kTierNames)) {
      rule.backend_tiers.push_back(static_cast<Tier>(tier));
    }
    rule.backend_jurisdictions = reader.read_string_list("backend_jurisdictions");
    rule.redact = reader.read_located_list("redact");
    for (std::size_t tier : reader.read_enum_list("restrict_tiers", kTierNames)) {
      rule.restrict_tiers.push_back(static_cast<Tier>(tier));
    }
    rule.restrict_jurisdictions = reader.read_string_list("restrict_jurisdictions");
    rule.restrict_backends = reader.read_string_list("restrict_backends");
    reader.read_duration("approval_timeout_ms", rule.approval_timeout, 1);
    reader.read_string("message", rule.message);
    const bool restricts = !rule.restrict_tiers.empty() || !rule.restrict_jurisdictions.empty() ||
                           !rule.restrict_backends.empty();
    if (rule.action == RuleAction::kRestrict && !restricts) {
      sink_.add(reader.position(), path,
                "action 'restrict' needs restrict_tiers, restrict_jurisdictions or "
                "restrict_backends");
    }
    if (rule.action == RuleAction::kRedact && rule.redact.empty() && rule.detectors.empty()) {
      sink_.add(reader.position(), path, "action 'redact' needs `redact` or `detectors`");
    }
    const bool per_backend = !rule.backend_tiers.empty() || !rule.backend_jurisdictions.empty();
    if (per_backend &&
        (rule.action == RuleAction::kRequireApproval || rule.action == RuleAction::kRestrict)) {
      sink_.add(reader.position(), path,
                "backend conditions apply to deny, redact and log rules only");
    }
    return rule;
  }

  void read_server(const toml::table& table, ServerSettings& server) {
    TableReader reader(
        table, "server", sink_,
        {"listen", "threads", "max_body_bytes", "max_header_bytes", "max_connections",
         "header_timeout_ms", "body_timeout_ms", "idle_timeout_ms", "write_timeout_ms",
         "drain_timeout_ms", "access_log", "log_level"});
    read_listen(reader, server);
    reader.read_integer("threads", server.threads, 0);
    reader.read_integer("max_body_bytes", server.max_body_bytes, 1);
    reader.read_integer("max_header_bytes", server.max_header_bytes, 1);
    reader.read_integer("max_connections", server.max_connections, 1);
    reader.read_duration("header_timeout_ms", server.header_timeout, 1);
    reader.read_duration("body_timeout_ms", server.body_timeout, 1);
    reader.read_duration("idle_timeout_ms", server.idle_timeout, 1);
    reader.read_duration("write_timeout_ms", server.write_timeout, 1);
    reader.read_duration("drain_timeout_ms", server.drain_timeout, 1);
    if (reader.read_string("access_log", server.access_log, false, false) &&
        server.access_log != "stdout" && server.access_log != "off") {
      server.access_log = resolve_path(server.access_log);
    }
    if (auto level = reader.read_enum("log_level", kLogLevels)) {
      server.log_level = std::string(kLogLevels[*level]);
    }
  }

  void read_listen(TableReader& reader, ServerSettings& server) {
    const toml::node* node = reader.find("listen");
    if (node == nullptr) {
      return;
    }
    std::vector<std::pair<const toml::node*, std::string>> entries;
    if (node->is_string()) {
      entries.emplace_back(node, reader.key_path("listen"));
    } else if (const auto* array = node->as_array()) {
      if (array->empty()) {
        reader.error("listen", *node, "must name at least one address");
      }
      for (std::size_t i = 0; i < array->size(); ++i) {
        entries.emplace_back(&(*array)[i], indexed(reader.key_path("listen"), i));
      }
    } else {
      reader.error("listen", *node, "must be an address string or an array of them" + found(*node));
      return;
    }
    std::vector<Endpoint> listeners;
    bool valid = !entries.empty();
    for (const auto& [entry, path] : entries) {
      const auto* text = entry->as_string();
      if (text == nullptr) {
        sink_.add(position_of(*entry), path, "must be a \"host:port\" string" + found(*entry));
        valid = false;
        continue;
      }
      auto endpoint = parse_endpoint(text->get());
      if (!endpoint) {
        sink_.add(position_of(*entry), path,
                  "invalid listen address " + in_quotes(text->get()) +
                      " (expected \"host:port\" or \"[ipv6]:port\")");
        valid = false;
        continue;
      }
      if (std::find(listeners.begin(), listeners.end(), *endpoint) != listeners.end()) {
        sink_.add(position_of(*entry), path, "duplicate listen address " + in_quotes(text->get()));
        valid = false;
        continue;
      }
      listeners.push_back(*endpoint);
    }
    if (valid) {
      server.listeners = std::move(listeners);
    }
  }

  void read_routing(const toml::table& table, RoutingSettings& routing) {
    TableReader reader(
        table, "routing", sink_,
        {"max_attempts", "retry_budget_ratio", "retry_budget_min_per_second", "max_retry_after_ms",
         "breaker_failure_threshold", "breaker_open_duration_ms", "outlier_consecutive_5xx",
         "outlier_ejection_ms", "latency_exploration", "prefix_affinity_bytes"});
    using Range = TableReader::Range;
    reader.read_integer("max_attempts", routing.max_attempts, 1);
    reader.read_number("retry_budget_ratio", routing.retry_budget_ratio, Range::kUnit);
    reader.read_integer("retry_budget_min_per_second", routing.retry_budget_min_per_second, 0);
    reader.read_duration("max_retry_after_ms", routing.max_retry_after, 0);
    reader.read_integer("breaker_failure_threshold", routing.breaker_failure_threshold, 1);
    reader.read_duration("breaker_open_duration_ms", routing.breaker_open_duration, 1);
    reader.read_integer("outlier_consecutive_5xx", routing.outlier_consecutive_5xx, 1);
    reader.read_duration("outlier_ejection_ms", routing.outlier_ejection, 1);
    reader.read_number("latency_exploration", routing.latency_exploration, Range::kUnit);
    reader.read_integer("prefix_affinity_bytes", routing.prefix_affinity_bytes, 1);
  }

  Backend read_backend(const toml::table& table, const std::string& path) {
    TableReader reader(table, path, sink_,
                       {"name",
                        "base_url",
                        "api_key_env",
                        "tier",
                        "region",
                        "price_input_per_mtok",
                        "price_output_per_mtok",
                        "max_concurrency",
                        "weight",
                        "connect_timeout_ms",
                        "first_byte_timeout_ms",
                        "idle_timeout_ms",
                        "request_timeout_ms",
                        "ca_file",
                        "health_path",
                        "health_interval_ms",
                        "models",
                        "clearance",
                        "jurisdiction",
                        "operator"});
    using Range = TableReader::Range;
    Backend backend;
    if (reader.read_string("name", backend.name, true, false)) {
      backend_names_.push_back(
          {backend.name, position_of(*reader.find("name")), reader.key_path("name")});
    } else {
      backend_names_.push_back({"", reader.position(), reader.key_path("name")});
      backend_names_complete_ = false;
    }
    if (reader.read_string("base_url", backend.base_url, true, false)) {
      read_base_url(reader, backend);
    }
    if (reader.read_string("api_key_env", backend.api_key_env) && !backend.api_key_env.empty()) {
      auto key = env_(backend.api_key_env);
      if (!key) {
        reader.error("api_key_env", *reader.find("api_key_env"),
                     "environment variable " + in_quotes(backend.api_key_env) + " is not set");
      } else if (key->empty()) {
        reader.error("api_key_env", *reader.find("api_key_env"),
                     "environment variable " + in_quotes(backend.api_key_env) + " is empty");
      } else {
        backend.api_key = std::move(*key);
      }
    }
    if (auto tier = reader.read_enum("tier", kTierNames)) {
      backend.tier = static_cast<Tier>(*tier);
    }
    reader.read_string("region", backend.region);
    reader.read_number("price_input_per_mtok", backend.price_input_per_mtok, Range::kNonNegative);
    reader.read_number("price_output_per_mtok", backend.price_output_per_mtok, Range::kNonNegative);
    reader.read_integer("max_concurrency", backend.max_concurrency, 1);
    reader.read_number("weight", backend.weight, Range::kPositive);
    reader.read_duration("connect_timeout_ms", backend.connect_timeout, 1);
    reader.read_duration("first_byte_timeout_ms", backend.first_byte_timeout, 1);
    reader.read_duration("idle_timeout_ms", backend.idle_timeout, 1);
    reader.read_duration("request_timeout_ms", backend.request_timeout, 1);
    if (reader.read_string("ca_file", backend.ca_file) && !backend.ca_file.empty()) {
      backend.ca_file = resolve_path(backend.ca_file);
      std::ifstream file(backend.ca_file);
      if (!file) {
        reader.error("ca_file", *reader.find("ca_file"),
                     "cannot read " + in_quotes(backend.ca_file) + ": " + error_text(errno));
      }
    }
    if (reader.read_string("health_path", backend.health_path) && !backend.health_path.empty() &&
        backend.health_path.front() != '/') {
      reader.error("health_path", *reader.find("health_path"),
                   "must start with '/' or be empty to disable health checks");
    }
    reader.read_duration("health_interval_ms", backend.health_interval, 1);
    if (!reader.read_located("clearance", backend.clearance)) {
      backend.clearance.key = reader.key_path("clearance");
    }
    reader.read_string("jurisdiction", backend.jurisdiction);
    reader.read_string("operator", backend.operator_name);
    const std::size_t errors_before = sink_.count();
    read_served_models(reader, backend);
    models_complete_.push_back(sink_.count() == errors_before);
    return backend;
  }

  void read_base_url(TableReader& reader, Backend& backend) {
    const toml::node& node = *reader.find("base_url");
    auto fail = [&](std::string_view why) {
      reader.error("base_url", node,
                   "invalid base_url " + in_quotes(backend.base_url) + ": " + std::string(why));
    };
    auto parsed = boost::urls::parse_absolute_uri(backend.base_url);
    if (!parsed) {
      return fail("not an absolute URL");
    }
    const boost::urls::url_view& url = *parsed;
    if (url.scheme_id() == boost::urls::scheme::https) {
      backend.tls = true;
    } else if (url.scheme_id() != boost::urls::scheme::http) {
      return fail("scheme must be http or https");
    }
    if (!url.has_authority() || url.encoded_host().empty()) {
      return fail("missing host");
    }
    if (url.has_userinfo()) {
      return fail("credentials belong in api_key_env, not the URL");
    }
    if (url.has_query() || url.has_fragment()) {
      return fail("must not have a query or fragment");
    }
    backend.host = url.host_address();
    backend.port = backend.tls ? 443 : 80;
    if (url.has_port()) {
      const std::string_view port_text = url.port();
      unsigned port = 0;
      auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
      if (ec != std::errc() || end != port_text.data() + port_text.size() || port == 0 ||
          port > 65535) {
        return fail("port must be 1-65535");
      }
      backend.port = static_cast<std::uint16_t>(port);
    }
    backend.base_path = std::string(url.encoded_path());
    while (!backend.base_path.empty() && backend.base_path.back() == '/') {
      backend.base_path.pop_back();
    }
  }

  void read_served_models(TableReader& reader, Backend& backend) {
    const toml::array* models = reader.read_array("models", true);
    if (models == nullptr) {
      return;
    }
    if (models->empty()) {
      reader.error("models", *reader.find("models"), "must list at least one model");
      return;
    }
    std::set<std::string, std::less<>> seen;
    for (std::size_t i = 0; i < models->size(); ++i) {
      const toml::node& entry = (*models)[i];
      const std::string path = indexed(reader.key_path("models"), i);
      ServedModel model;
      Position name_at = position_of(entry);
      std::string name_path = path;
      if (const auto* name = entry.as_string()) {
        if (name->get().empty()) {
          sink_.add(name_at, path, "must not be empty");
          continue;
        }
        model.name = name->get();
      } else if (const auto* table = entry.as_table()) {
        TableReader model_reader(*table, path, sink_, {"name", "upstream_name"});
        if (!model_reader.read_string("name", model.name, true, false)) {
          continue;
        }
        name_at = position_of(*model_reader.find("name"));
        name_path = model_reader.key_path("name");
        model_reader.read_string("upstream_name", model.upstream_name, false, false);
      } else {
        sink_.add(name_at, path, "must be a table { name = ... } or a model name" + found(entry));
        continue;
      }
      if (model.upstream_name.empty()) {
        model.upstream_name = model.name;
      }
      if (!seen.insert(model.name).second) {
        sink_.add(
            name_at, name_path,
            "duplicate model " + in_quotes(model.name) + " in backend " + in_quotes(backend.name));
        continue;
      }
      backend.models.push_back(std::move(model));
    }
  }

  ModelAlias read_alias(const toml::table& table, const std::string& path) {
    TableReader reader(table, path, sink_,
                       {"name", "strategy", "targets", "fallbacks", "max_latency_ms", "owned_by",
                        "max_output_tokens"});
    ModelAlias alias;
    AliasLocations locations;
    locations.path = path;
    if (reader.read_string("name", alias.name, true, false)) {
      locations.name = {alias.name, position_of(*reader.find("name")), reader.key_path("name")};
    } else {
      locations.name = {"", reader.position(), reader.key_path("name")};
      alias_names_complete_ = false;
    }
    if (auto strategy = reader.read_enum("strategy", kStrategyNames)) {
      alias.strategy = static_cast<Strategy>(*strategy);
    }
    if (const toml::array* targets = reader.read_array("targets", true)) {
      if (targets->empty()) {
        reader.error("targets", *reader.find("targets"), "must list at least one target");
      }
      for (std::size_t i = 0; i < targets->size(); ++i) {
        const toml::node& entry = (*targets)[i];
        const std::string target_path = indexed(reader.key_path("targets"), i);
        const auto* target_table = entry.as_table();
        if (target_table == nullptr) {
          sink_.add(position_of(entry), target_path,
                    "must be a table { backend = ..., model = ... }" + found(entry));
          continue;
        }
        TableReader target_reader(*target_table, target_path, sink_, {"backend", "model"});
        AliasTarget target;
        const bool has_backend = target_reader.read_string("backend", target.backend, true, false);
        const bool has_model = target_reader.read_string("model", target.model, true, false);
        if (!has_backend || !has_model) {
          continue;
        }
        locations.target_backends.push_back({target.backend,
                                             position_of(*target_reader.find("backend")),
                                             target_reader.key_path("backend")});
        locations.target_models.push_back({target.model, position_of(*target_reader.find("model")),
                                           target_reader.key_path("model")});
        alias.targets.push_back(std::move(target));
      }
    }
    if (const toml::array* fallbacks = reader.read_array("fallbacks", false)) {
      for (std::size_t i = 0; i < fallbacks->size(); ++i) {
        const toml::node& entry = (*fallbacks)[i];
        const std::string fallback_path = indexed(reader.key_path("fallbacks"), i);
        const auto* name = entry.as_string();
        if (name == nullptr) {
          sink_.add(position_of(entry), fallback_path, "must be an alias name" + found(entry));
          continue;
        }
        locations.fallbacks.push_back({name->get(), position_of(entry), fallback_path});
        alias.fallbacks.push_back(name->get());
      }
    }
    // 0 means unset, which only the cost strategy cannot do without.
    const bool latency_valid = reader.read_duration("max_latency_ms", alias.max_latency, 0);
    if (alias.strategy == Strategy::kCost && alias.max_latency.count() == 0) {
      if (const toml::node* node = reader.find("max_latency_ms")) {
        if (latency_valid) {
          reader.error("max_latency_ms", *node, "must be positive when strategy is 'cost'");
        }
      } else {
        sink_.add(reader.position(), reader.key_path("max_latency_ms"),
                  "is required when strategy is 'cost'");
      }
    }
    reader.read_string("owned_by", alias.owned_by, false, false);
    reader.read_integer("max_output_tokens", alias.max_output_tokens, 1);
    alias_locations_.push_back(std::move(locations));
    return alias;
  }

  void check_backend_names() {
    std::map<std::string, std::size_t, std::less<>> first_by_name;
    for (std::size_t i = 0; i < backend_names_.size(); ++i) {
      const NamedAt& name = backend_names_[i];
      if (name.name.empty()) {
        continue;
      }
      auto [it, inserted] = first_by_name.emplace(name.name, i);
      if (!inserted) {
        sink_.add(name.at, name.key,
                  "duplicate backend name " + in_quotes(name.name) + " (first defined at line " +
                      std::to_string(backend_names_[it->second].at.line) + ")");
      }
    }
  }

  void check_alias_references(const Config& config) {
    std::vector<std::string_view> known_backends;
    for (const Backend& backend : config.backends) {
      known_backends.push_back(backend.name);
    }
    distinct_names(known_backends);
    std::map<std::string, std::size_t, std::less<>> first_by_name;
    for (std::size_t a = 0; a < config.models.size(); ++a) {
      const ModelAlias& alias = config.models[a];
      const AliasLocations& locations = alias_locations_[a];
      if (!alias.name.empty()) {
        auto [it, inserted] = first_by_name.emplace(alias.name, a);
        if (!inserted) {
          sink_.add(locations.name.at, locations.name.key,
                    "duplicate alias name " + in_quotes(alias.name) + " (first defined at line " +
                        std::to_string(alias_locations_[it->second].name.at.line) + ")");
        }
      }
      std::set<std::pair<std::string_view, std::string_view>> seen_targets;
      for (std::size_t t = 0; t < alias.targets.size(); ++t) {
        const AliasTarget& target = alias.targets[t];
        const Backend* backend = config.find_backend(target.backend);
        // A reference into a part of the file that is already reported broken would only repeat
        // that error.
        if (backend == nullptr && (!backend_names_complete_ || config.backends.empty())) {
          continue;
        }
        if (backend != nullptr && !models_complete_[backend - config.backends.data()]) {
          continue;
        }
        if (backend == nullptr) {
          const NamedAt& at = locations.target_backends[t];
          sink_.add(at.at, at.key,
                    with_suggestion("unknown backend " + in_quotes(target.backend) +
                                        " (known: " + join(known_backends, ", ") + ")",
                                    target.backend, known_backends));
          continue;
        }
        if (backend->find_model(target.model) == nullptr) {
          std::vector<std::string_view> served;
          for (const ServedModel& model : backend->models) {
            served.push_back(model.name);
          }
          const NamedAt& at = locations.target_models[t];
          sink_.add(
              at.at, at.key,
              with_suggestion("backend " + in_quotes(backend->name) + " does not serve model " +
                                  in_quotes(target.model) + " (serves: " + join(served, ", ") + ")",
                              target.model, served));
          continue;
        }
        if (!seen_targets.emplace(target.backend, target.model).second) {
          const NamedAt& at = locations.target_backends[t];
          sink_.add(at.at, indexed(locations.path + ".targets", t),
                    "duplicate target " + in_quotes(target.backend + "/" + target.model));
        }
      }
    }
  }

  void check_fallbacks(const Config& config) {
    std::vector<std::string_view> alias_names;
    for (const ModelAlias& alias : config.models) {
      alias_names.push_back(alias.name);
    }
    distinct_names(alias_names);
    // Only well-formed edges take part in the cycle search, so each problem is reported once.
    std::vector<std::vector<std::pair<std::size_t, std::size_t>>> edges(config.models.size());
    for (std::size_t a = 0; a < config.models.size(); ++a) {
      const ModelAlias& alias = config.models[a];
      std::set<std::string_view> seen;
      for (std::size_t f = 0; f < alias.fallbacks.size(); ++f) {
        const std::string& fallback = alias.fallbacks[f];
        const NamedAt& at = alias_locations_[a].fallbacks[f];
        if (fallback == alias.name) {
          sink_.add(at.at, at.key, "alias " + in_quotes(alias.name) + " falls back to itself");
          continue;
        }
        if (!seen.insert(fallback).second) {
          sink_.add(at.at, at.key, "duplicate fallback " + in_quotes(fallback));
          continue;
        }
        auto it = std::find_if(config.models.begin(), config.models.end(),
                               [&](const ModelAlias& other) { return other.name == fallback; });
        if (it == config.models.end()) {
          if (!alias_names_complete_) {
            continue;
          }
          sink_.add(at.at, at.key,
                    with_suggestion("unknown alias " + in_quotes(fallback) +
                                        " (known: " + join(alias_names, ", ") + ")",
                                    fallback, alias_names));
          continue;
        }
        edges[a].emplace_back(static_cast<std::size_t>(it - config.models.begin()), f);
      }
    }
    find_cycles(config, edges);
  }

  // Depth-first search; every back edge closes one cycle, reported at the fallback entry that
  // closes it as "a -> b -> a".
  void find_cycles(const Config& config,
                   const std::vector<std::vector<std::pair<std::size_t, std::size_t>>>& edges) {
    enum class Mark { kUnvisited, kOnStack, kDone };
    std::vector<Mark> marks(config.models.size(), Mark::kUnvisited);
    std::vector<std::size_t> stack;
    std::function<void(std::size_t)> visit = [&](std::size_t node) {
      marks[node] = Mark::kOnStack;
      stack.push_back(node);
      for (const auto& [next, fallback_index] : edges[node]) {
        if (marks[next] == Mark::kOnStack) {
          auto start = std::find(stack.begin(), stack.end(), next);
          std::string cycle;
          for (auto it = start; it != stack.end(); ++it) {
            cycle += config.models[*it].name + " -> ";
          }
          cycle += config.models[next].name;
          const NamedAt& at = alias_locations_[node].fallbacks[fallback_index];
          sink_.add(at.at, at.key, "fallback cycle: " + cycle);
        } else if (marks[next] == Mark::kUnvisited) {
          visit(next);
        }
      }
      stack.pop_back();
      marks[node] = Mark::kDone;
    };
    for (std::size_t a = 0; a < config.models.size(); ++a) {
      if (marks[a] == Mark::kUnvisited) {
        visit(a);
      }
    }
  }

  ErrorSink& sink_;
  const EnvLookup& env_;
  std::filesystem::path base_dir_;
  std::vector<NamedAt> backend_names_;  // parallel to Config::backends
  std::vector<NamedAt> mcp_server_names_;
  std::vector<bool> models_complete_;   // parallel to Config::backends: models read without error
  bool backend_names_complete_ = true;  // every [[backends]] entry has a valid name
  bool alias_names_complete_ = true;    // every [[models]] entry has a valid name
  std::vector<AliasLocations> alias_locations_;  // parallel to Config::models
};

LoadResult load(std::string_view text, const std::string& source_name, const EnvLookup& env) {
  LoadResult result;
  ErrorSink sink(source_name, result.errors);
  toml::table root;
  try {
    root = toml::parse(text, source_name);
  } catch (const toml::parse_error& error) {
    sink.add(position_of(error.source()), "", std::string(error.description()));
    return result;
  }
  Config config;
  config.source = source_name;
  ConfigReader reader(sink, env, std::filesystem::path(source_name).parent_path());
  reader.read(root, config);
  std::stable_sort(result.errors.begin(), result.errors.end(),
                   [](const ConfigError& a, const ConfigError& b) {
                     return std::tie(a.line, a.column) < std::tie(b.line, b.column);
                   });
  if (result.errors.empty()) {
    result.config = std::move(config);
  }
  return result;
}

}  // namespace

std::string_view to_string(Tier tier) { return kTierNames[static_cast<std::size_t>(tier)]; }

std::string_view to_string(RuleAction action) {
  return kRuleActionNames[static_cast<std::size_t>(action)];
}

std::string_view to_string(RuleMode mode) { return kRuleModeNames[static_cast<std::size_t>(mode)]; }

std::string_view to_string(Strategy strategy) {
  return kStrategyNames[static_cast<std::size_t>(strategy)];
}

std::optional<Endpoint> parse_endpoint(std::string_view text) {
  std::string_view host;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return std::nullopt;
    }
    host = text.substr(1, close - 1);
    port_text = text.substr(close + 2);
    if (host.find(':') == std::string_view::npos) {
      return std::nullopt;
    }
  } else {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return std::nullopt;
    }
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return std::nullopt;  // bare IPv6
    }
  }
  if (host.empty() || port_text.empty()) {
    return std::nullopt;
  }
  const bool host_ok = std::all_of(host.begin(), host.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == ':' ||
           c == '_' || c == '%';
  });
  if (!host_ok) {
    return std::nullopt;
  }
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port > 65535) {
    return std::nullopt;
  }
  return Endpoint{std::string(host), static_cast<std::uint16_t>(port)};
}

std::string to_string(const Endpoint& endpoint) {
  const bool ipv6 = endpoint.host.find(':') != std::string::npos;
  return (ipv6 ? "[" + endpoint.host + "]" : endpoint.host) + ":" + std::to_string(endpoint.port);
}

const ServedModel* Backend::find_model(std::string_view name) const {
  for (const ServedModel& model : models) {
    if (model.name == name) {
      return &model;
    }
  }
  return nullptr;
}

const Backend* Config::find_backend(std::string_view name) const {
  for (const Backend& backend : backends) {
    if (backend.name == name) {
      return &backend;
    }
  }
  return nullptr;
}

const McpServerSettings* Config::find_mcp_server(std::string_view name) const {
  for (const McpServerSettings& server : mcp_servers) {
    if (server.name == name) return &server;
  }
  return nullptr;
}

std::string_view to_string(McpTransport transport) {
  return kMcpTransportNames[static_cast<std::size_t>(transport)];
}

std::string_view to_string(McpProtocol protocol) {
  return kMcpProtocolNames[static_cast<std::size_t>(protocol)];
}

const ModelAlias* Config::find_alias(std::string_view name) const {
  for (const ModelAlias& alias : models) {
    if (alias.name == name) {
      return &alias;
    }
  }
  return nullptr;
}

std::vector<std::string> Config::backends_for(std::string_view alias) const {
  std::vector<std::string> backends;
  std::vector<std::string_view> visited;
  std::function<void(std::string_view)> visit = [&](std::string_view name) {
    const ModelAlias* entry = find_alias(name);
    if (entry == nullptr || std::find(visited.begin(), visited.end(), name) != visited.end()) {
      return;
    }
    visited.push_back(name);
    for (const AliasTarget& target : entry->targets) {
      if (std::find(backends.begin(), backends.end(), target.backend) == backends.end()) {
        backends.push_back(target.backend);
      }
    }
    for (const std::string& fallback : entry->fallbacks) visit(fallback);
  };
  visit(alias);
  return backends;
}

std::string ConfigError::to_string() const {
  std::string out = source;
  if (line > 0) {
    out += ":" + std::to_string(line);
    if (column > 0) {
      out += ":" + std::to_string(column);
    }
  }
  out += ": ";
  if (!key.empty()) {
    out += key + ": ";
  }
  out += message;
  return out;
}

std::string format_errors(const std::vector<ConfigError>& errors) {
  std::string out;
  for (const ConfigError& error : errors) {
    out += error.to_string() + "\n";
  }
  return out;
}

EnvLookup process_environment() {
  return [](const std::string& name) -> std::optional<std::string> {
    // Redline reads the environment only at startup and never modifies it.
    const char* value = std::getenv(name.c_str());  // NOLINT(concurrency-mt-unsafe)
    if (value == nullptr) {
      return std::nullopt;
    }
    return std::string(value);
  };
}

LoadResult load_config_file(const std::string& path, const EnvLookup& env) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    LoadResult result;
    result.errors.push_back(
        ConfigError{path, 0, 0, "", std::string("cannot read file: ") + error_text(errno)});
    return result;
  }
  std::ostringstream contents;
  contents << file.rdbuf();
  return load(contents.str(), path, env);
}

LoadResult load_config_string(std::string_view toml_text, std::string source_name,
                              const EnvLookup& env) {
  return load(toml_text, source_name, env);
}

}  // namespace redline::config
