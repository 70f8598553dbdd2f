#include "cli/keys_command.h"

#include <boost/json.hpp>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <memory>

#include "audit/audit_log.h"
#include "cli/serve.h"
#include "gateway/caller.h"
#include "policy/red_line_policy.h"
#include "quota/api_keys.h"
#include "quota/key_expiry.h"
#include "quota/key_json.h"
#include "store/key_store.h"

namespace redline::cli {
namespace {

// Where the store lives: --db, or [store].sqlite_path of --config (relative to the config
// file's directory, "redline.db" when unset, as the config module defines it).
struct StoreLocation {
  std::string db_path;
  std::string config_path;
};

// Fails the command: one line on stderr, exit status 1.
[[noreturn]] void fail(const std::string& message) {
  std::cerr << "redline keys: " << message << "\n";
  throw CLI::RuntimeError(1);
}

// The gateway configuration a keys command works on: its store and its label lattice.
LoadedGateway load_config_or_fail(const std::string& config_path) {
  LoadedGateway loaded = load_gateway(config_path);
  if (!loaded.config) fail(config::format_errors(loaded.errors));
  return loaded;
}

std::string sqlite_path_from_config(const std::string& config_path) {
  return load_config_or_fail(config_path).config->store.sqlite_path;
}

std::shared_ptr<store::KeyStore> open_store(const StoreLocation& location) {
  if (location.db_path.empty() && location.config_path.empty()) {
    fail("the store is unknown: pass --db PATH or --config FILE");
  }
  const std::string path =
      location.db_path.empty() ? sqlite_path_from_config(location.config_path) : location.db_path;
  std::string error;
  std::shared_ptr<store::KeyStore> store = store::open_sqlite_store(path, &error);
  if (!store) fail(error);
  return store;
}

// Key changes made on a configuration's store are recorded in its audit chain, as the admin API's
// are; the running gateway and this process append to one chain (see audit_log.h). A store named
// with --db alone has no configuration to say where the chain's signing key is.
void record_key_change(const StoreLocation& location, std::string action, std::string target,
                       std::string tenant) {
  if (location.config_path.empty()) return;
  const LoadedGateway loaded = load_config_or_fail(location.config_path);
  if (!loaded.config->audit.enabled) return;
  std::string error;
  auto log = audit::AuditLog::open(audit_options_from(*loaded.config), &error);
  if (!log) fail("the change was made but could not be recorded in the audit log: " + error);
  audit::AuditEvent event;
  event.kind = "admin";
  event.action = std::move(action);
  event.target = std::move(target);
  event.tenant = std::move(tenant);
  event.decision = "cli";
  log->append(std::move(event));
  log->flush();
  if (log->failed_records() > 0) {
    fail("the change was made but could not be recorded in the audit log");
  }
}

void add_store_options(CLI::App& command, StoreLocation& location) {
  auto* db = command.add_option("--db", location.db_path, "SQLite database file");
  auto* config =
      command.add_option("-c,--config", location.config_path, "Gateway configuration (TOML)");
  db->excludes(config);
}

std::string utc_time(std::optional<std::int64_t> seconds) {
  if (!seconds) return "-";
  const std::time_t time = static_cast<std::time_t>(*seconds);
  std::tm parts{};
  gmtime_r(&time, &parts);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &parts);
  return text;
}

std::string joined(const std::vector<std::string>& items, std::string_view empty) {
  if (items.empty()) return std::string(empty);
  std::string text;
  for (const auto& item : items) {
    if (!text.empty()) text += ',';
    text += item;
  }
  return text;
}

void print_table(const std::vector<store::ApiKeyRecord>& keys) {
  // Tab-separated: aligned enough for a terminal, trivial for cut and awk.
  std::cout << "ID\tTENANT\tDEFAULT_LABEL\tMAX_LABEL\tMODELS\tCREATED\tEXPIRES\tREVOKED\t"
               "DESCRIPTION\n";
  for (const auto& key : keys) {
    std::cout << key.id << '\t' << key.tenant << '\t'
              << (key.default_label.empty() ? "-" : key.default_label) << '\t'
              << (key.max_label.empty() ? "-" : key.max_label) << '\t' << joined(key.models, "*")
              << '\t' << utc_time(key.created_at) << '\t' << utc_time(key.expires_at) << '\t'
              << utc_time(key.revoked_at) << '\t' << key.description << '\n';
  }
}

void print_json(const std::vector<store::ApiKeyRecord>& keys) {
  boost::json::array out;
  for (const auto& key : keys) out.push_back(quota::key_to_json(key));
  std::cout << boost::json::serialize(out) << '\n';
}

std::vector<std::string> split_models(const std::string& text) {
  std::vector<std::string> models;
  std::size_t start = 0;
  while (start <= text.size()) {
    const auto comma = std::min(text.find(',', start), text.size());
    const auto model = text.substr(start, comma - start);
    if (model.empty()) fail("--models has an empty name in \"" + text + "\"");
    models.push_back(model);
    start = comma + 1;
  }
  return models;
}

// The options of every subcommand, alive for as long as the App that refers to them.
struct KeysOptions {
  LabelValidator validate_label;
  StoreLocation create_store, list_store, revoke_store;
  quota::KeyRequest request;
  std::string models, expires;
  std::string list_tenant;
  bool list_json = false;
  std::string revoke_id;
};

void run_create(KeysOptions& options) {
  auto& request = options.request;
  if (!options.create_store.config_path.empty()) {
    // The configured lattice, not the default one: operators may name their own levels.
    const LoadedGateway loaded = load_config_or_fail(options.create_store.config_path);
    if (auto problem = gateway::check_key_labels(loaded.policy->lattice(), request.default_label,
                                                 request.max_label)) {
      fail(*problem);
    }
  } else {
    for (const auto* label : {&request.default_label, &request.max_label}) {
      if (label->empty()) continue;
      if (auto error = options.validate_label(*label)) {
        fail("label \"" + *label + "\": " + *error);
      }
    }
  }
  if (!options.models.empty()) request.models = split_models(options.models);
  auto clock = quota::system_clock();
  if (!options.expires.empty()) {
    std::string error;
    request.expires_at = quota::parse_expiry(options.expires, clock->unix_seconds(), &error);
    if (!request.expires_at) fail(error);
  }
  quota::ApiKeyService service(open_store(options.create_store), clock);
  auto created = service.create(request);
  if (!created) fail(created.error());
  std::cout << created->secret << "\n" << created->record.id << "\n";
  record_key_change(options.create_store, "keys.create", created->record.id, request.tenant);
}

void run_list(KeysOptions& options) {
  quota::ApiKeyService service(open_store(options.list_store), quota::system_clock());
  auto keys = service.list(options.list_tenant.empty()
                               ? std::nullopt
                               : std::optional<std::string_view>(options.list_tenant));
  if (!keys) fail(keys.error());
  if (options.list_json) {
    print_json(*keys);
  } else {
    print_table(*keys);
  }
}

void run_revoke(KeysOptions& options) {
  quota::ApiKeyService service(open_store(options.revoke_store), quota::system_clock());
  if (auto status = service.revoke(options.revoke_id); !status) fail(status.message);
  std::cout << "revoked " << options.revoke_id << "\n";
  record_key_change(options.revoke_store, "keys.revoke", options.revoke_id, "");
}

}  // namespace

LabelValidator lattice_label_validator(policy::LabelLattice lattice) {
  return [lattice = std::move(lattice)](std::string_view label) -> std::optional<std::string> {
    std::string error;
    if (lattice.parse(label, &error)) return std::nullopt;
    return error;
  };
}

void add_keys_command(CLI::App& app, LabelValidator validate_label) {
  auto* keys = app.add_subcommand("keys", "Manage API keys (create, list, revoke)");
  keys->require_subcommand(1);
  // Owned by the subcommand's callbacks, which the App keeps for its lifetime.
  auto options = std::make_shared<KeysOptions>();
  options->validate_label = std::move(validate_label);

  auto* create = keys->add_subcommand("create", "Mint a key; prints it once, then its id");
  add_store_options(*create, options->create_store);
  create->add_option("--tenant", options->request.tenant, "Tenant (created when missing)")
      ->required();
  create->add_option("--default-label", options->request.default_label,
                     "Label of requests that carry none (default: the lowest)");
  create->add_option("--max-label", options->request.max_label,
                     "Highest label the key may send (default: no limit)");
  create->add_option("--models", options->models, "Allowed model aliases, a,b,c (default: all)");
  create->add_option("--expires", options->expires,
                     "Expiry: YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ, <n>d or <n>h (default: never)");
  create->add_option("--description", options->request.description, "Free text");

  auto* list = keys->add_subcommand("list", "List keys (never their secrets or hashes)");
  add_store_options(*list, options->list_store);
  list->add_option("--tenant", options->list_tenant, "Only this tenant's keys");
  list->add_flag("--json", options->list_json, "One JSON array instead of a table");

  auto* revoke = keys->add_subcommand("revoke", "Revoke a key by id");
  add_store_options(*revoke, options->revoke_store);
  revoke->add_option("id", options->revoke_id, "Key id, e.g. k_7f3a9c2e1b0d")->required();

  for (auto [command, run] : {std::pair{create, &run_create}, std::pair{list, &run_list},
                              std::pair{revoke, &run_revoke}}) {
    command->callback([run, options] {
      run(*options);
      throw CLI::Success();
    });
  }
}

}  // namespace redline::cli
