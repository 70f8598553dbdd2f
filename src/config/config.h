#pragma once
// Gateway configuration: the TOML file an operator writes, checked in full before the gateway
// starts. Loading never throws: it returns either a complete Config or every problem found, each
// with file, line, column and the dotted key, so one `redline config check FILE` run shows the
// operator everything to fix.
//
// File layout (examples/reference.toml lists every key with its default):
//
//   [server]                        # optional table; every key optional
//   listen = "127.0.0.1:8080"       # "host:port", "[v6]:port", or an array of them; port 0 = any
//   threads = 0                     # 0 = one per core
//   max_body_bytes = 10485760
//   max_header_bytes = 16384
//   max_connections = 10000
//   header_timeout_ms = 10000       # every duration is an integer number of milliseconds and its
//   body_timeout_ms = 30000         # key ends in _ms
//   idle_timeout_ms = 60000
//   write_timeout_ms = 30000
//   drain_timeout_ms = 30000
//   access_log = "stdout"           # "stdout" | "off" | a file path
//   log_level = "info"              # trace | debug | info | warn | error
//
//   [routing]                       # optional table; every key optional
//   max_attempts = 3                # >= 1
//   retry_budget_ratio = 0.2        # in [0, 1]
//   retry_budget_min_per_second = 10
//   max_retry_after_ms = 5000       # >= 0
//   breaker_failure_threshold = 5
//   breaker_open_duration_ms = 10000
//   outlier_consecutive_5xx = 5
//   outlier_ejection_ms = 30000
//   latency_exploration = 0.05      # in [0, 1]
//   prefix_affinity_bytes = 2048
//
//   [[backends]]                    # at least one
//   name = "edge"                   # required, unique
//   base_url = "http://127.0.0.1:9101/v1"   # required, http or https with a host
//   tier = "edge"                   # edge | onprem | cloud (default cloud)
//   region = "eu-west"
//   api_key_env = "EDGE_KEY"        # the key itself is read from this environment variable
//   price_input_per_mtok = 0.0      # USD per million tokens, >= 0
//   price_output_per_mtok = 0.0
//   max_concurrency = 64            # > 0
//   weight = 1.0                    # > 0, used by the "weighted" strategy
//   connect_timeout_ms = 2000
//   first_byte_timeout_ms = 60000
//   idle_timeout_ms = 30000
//   request_timeout_ms = 600000
//   ca_file = ""                    # PEM bundle; "" = system trust store
//   health_path = "/models"         # "" disables active health checks
//   health_interval_ms = 5000
//   models = [ { name = "llama-3.1-8b" }, { name = "embed", upstream_name = "nomic-embed-text" } ]
//                                   # required, non-empty; a plain string "x" means { name = "x" }
//
//   [[models]]                      # aliases clients can send as "model"; at least one
//   name = "chat"                   # required, unique
//   strategy = "least_load"         # least_load | latency | cost | weighted | prefix_affinity
//   targets = [ { backend = "edge", model = "llama-3.1-8b" } ]   # required, non-empty
//   fallbacks = ["chat-cloud"]      # aliases tried in order when no target can serve; no cycles
//   max_latency_ms = 2000           # required (> 0) when strategy = "cost"
//   owned_by = "redline"
//
//
//   [auth]                          # optional table
//   required = true                 # false: requests without a key run as tenant "anonymous"
//   admin_token_env = "REDLINE_ADMIN_TOKEN"   # the /admin/ credential; "" or unset = /admin/ off
//   key_cache_ttl_ms = 500          # a revoked key stops working within this (<= 1000)
//
//   [store]
//   sqlite_path = "redline.db"      # tenants, keys, ...; relative to the config file
//
//   [labels]                        # the classification lattice
//   levels = ["PUBLIC", "INTERNAL", "CONFIDENTIAL", "SECRET", "TOP_SECRET"]   # lowest first
//   caveats = ["NOFORN", "PII", "PHI", "PCI", "EXPORT_CONTROLLED"]
//   [[labels.residency]]            # requests whose label dominates `label` may only go to
//   label = "CONFIDENTIAL"          # backends in one of `jurisdictions` and of one of `tiers`
//   jurisdictions = ["DE", "EU"]    # matched against backend jurisdiction or region
//   tiers = ["onprem", "edge"]      # optional
//
//   [detectors.email]               # a built-in detector: change its raise or switch it off
//   raise = "CONFIDENTIAL//PII"
//   enabled = true
//   [[detectors.custom]]            # operator patterns (vectorscan syntax) and keyword lists
//   name = "project_bluebird"
//   patterns = ['bluebird-\d{4}']
//   keywords = ["bluebird"]
//   raise = "SECRET"
//
//   [[tenants]]                     # tenant policy; tenants not listed may use any jurisdiction
//   name = "acme"
//   jurisdictions = ["EU", "US"]
//
//   [[rules]]                       # red-line rules, evaluated in order; see README
//   name = "no-secrets-upstream"    # required, unique
//   action = "deny"                 # deny | redact | restrict | require_approval | log
//   mode = "enforce"                # enforce | shadow (evaluated and counted, not applied)
//   detectors = ["private_key"]     # conditions, all optional, all must hold; any listed
//   label_at_least = "SECRET"       # detector firing satisfies `detectors`
//   tenants = [], keys = [], models = [], tools = []
//   backend_tiers = [], backend_jurisdictions = []   # make the rule apply per backend
//   redact = ["email"]              # redact: detectors whose matches are replaced
//   restrict_tiers = ["onprem"], restrict_jurisdictions = [], restrict_backends = []
//   approval_timeout_ms = 60000     # require_approval: how long a request is held
//   message = "..."                 # shown to the client on deny
//
//   [audit]                         # the hash-chained, signed audit log (README: Accountability)
//   enabled = true
//   durability = "batched"          # batched | before_response (answer ends after its record
//   flush_interval_ms = 5           #   is durable); group commit interval
//   checkpoint_interval_ms = 1000   # how often the chain's head is signed (Ed25519)
//   signing_key_path = "redline-audit.key"   # created at first start; relative to the config
//   store_bodies = "none"           # none | flagged (a rule or detector fired) | all
//   body_key_env = "REDLINE_AUDIT_BODY_KEY"  # 64 hex digits; AES-256-GCM; needed unless "none"
//   body_retention_days = 30
//
//   [[limits]]                      # rate limits; exactly one of key / tenant ("*" = each)
//   tenant = "acme"
//   each_key = false                # true: each key of the tenant separately
//   requests_per_minute = 600       # 0 = unlimited
//   tokens_per_minute = 200000
//   max_concurrent = 32
//
//   [[budgets]]                     # spend caps; exactly one of key / tenant
//   tenant = "acme"
//   period = "month"                # day | month (UTC calendar) | total
//   max_tokens = 50000000           # at least one of max_tokens / max_cost_usd
//   max_cost_usd = 250.0
//
//   [sessions]                      # Responses and Conversations API state (README: Sessions)
//   enabled = true
//   retention_ms = 2592000000       # idle responses and conversations are purged after this;
//   purge_interval_ms = 60000       #   [[tenants]] retention_ms overrides it per tenant
//   max_chain_depth = 100           # previous_response_id links followed per turn
//   max_background = 64             # background responses running at once
//
//   [memory]                        # pinned blocks and archival records (README: Memory)
//   default_block_chars = 2000
//   max_block_chars = 20000
//   max_record_chars = 4000
//   max_injected_records = 20
//   extraction_model = ""           # alias for automatic extraction after a turn; "" = off
//   extraction_max_output_tokens = 512
//   extraction_max_input_chars = 16000
//
//   [[mcp_servers]]                 # tool servers for agent runs (README: Agents)
//   name = "files"                  # required, unique
//   tenants = ["acme"]              # empty = every tenant
//   transport = "stdio"             # stdio | http
//   command = "node"                # stdio: required; args, env (names passed through)
//   args = ["tools/files.mjs"]
//   env = ["FILES_ROOT"]
//   url = "http://127.0.0.1:9000/mcp"   # http: required
//   protocol = "auto"               # auto | 2025-11-25 | 2026-07-28
//   idempotent_tools = ["read"]     # may be retried when a call's outcome is unknown
//   require_approval = ["delete"]   # each call waits for approval
//   result_label = "INTERNAL"       # the least label its results carry
//   timeout_ms = 30000
//
//   [agents]                        # durable runs and task graphs (README: Agents)
//   max_steps = 50                  # per run, unless the request sets fewer
//   max_tokens = 200000
//   max_wall_ms = 3600000
//   max_concurrent_runs_per_tenant = 16
//   max_graph_tasks = 200
//   max_graph_concurrency = 32
//   approval_timeout_ms = 86400000
//   compaction_threshold = 0.7      # share of context_window_tokens that triggers compaction
//   context_window_tokens = 32768
//   summary_model = "chat-cheap"    # summarises older turns; unset = mask observations only
//   keep_recent_steps = 2           # the last model steps (with their tool results) kept whole
//
//   Each [[models]] alias also takes max_output_tokens = 4096: what a request without
//   max_tokens reserves for its answer.
//
//   Each backend also takes: clearance = "SECRET//PII" (default PUBLIC), jurisdiction = "DE"
//   (country or region code), operator = "acme-gpu".
//
// Relative paths (ca_file, access_log, sqlite_path) are resolved against the directory of the
// config file.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace redline::config {

enum class Tier { kEdge, kOnprem, kCloud };
enum class Strategy { kLeastLoad, kLatency, kCost, kWeighted, kPrefixAffinity };

// The spelling used in the config file: "edge", "onprem", "cloud"; "least_load", "latency", ...
std::string_view to_string(Tier tier);
std::string_view to_string(Strategy strategy);

// A host and port. IPv6 hosts are stored without brackets ("::1").
struct Endpoint {
  std::string host;
  std::uint16_t port = 0;

  friend bool operator==(const Endpoint&, const Endpoint&) = default;
};

// Parses "127.0.0.1:8080", "[::1]:8080" or "localhost:80". The port is required (0-65535).
std::optional<Endpoint> parse_endpoint(std::string_view text);
// The inverse of parse_endpoint: IPv6 hosts get their brackets back.
std::string to_string(const Endpoint& endpoint);

struct ServerSettings {
  std::vector<Endpoint> listeners{Endpoint{"127.0.0.1", 8080}};
  std::size_t threads = 0;  // 0 = number of cores
  std::size_t max_body_bytes = std::size_t{10} * 1024 * 1024;
  std::size_t max_header_bytes = std::size_t{16} * 1024;
  std::size_t max_connections = 10000;
  std::chrono::milliseconds header_timeout{10000};
  std::chrono::milliseconds body_timeout{30000};
  std::chrono::milliseconds idle_timeout{60000};
  std::chrono::milliseconds write_timeout{30000};
  std::chrono::milliseconds drain_timeout{30000};
  std::string access_log = "stdout";  // "stdout" | "off" | file path
  std::string log_level = "info";     // trace | debug | info | warn | error
};

struct RoutingSettings {
  int max_attempts = 3;                  // attempts per request across retries (>= 1)
  double retry_budget_ratio = 0.2;       // retries may add at most this share of requests...
  int retry_budget_min_per_second = 10;  // ...but at least this many per second
  std::chrono::milliseconds max_retry_after{5000};  // a longer 429 Retry-After is not waited for
  int breaker_failure_threshold = 5;  // consecutive failures that open a backend's breaker
  std::chrono::milliseconds breaker_open_duration{10000};
  int outlier_consecutive_5xx = 5;  // passive ejection
  std::chrono::milliseconds outlier_ejection{30000};
  double latency_exploration = 0.05;         // share the latency strategy sends to a random backend
  std::size_t prefix_affinity_bytes = 2048;  // prompt bytes hashed for prefix affinity
};

// A value another module interprets (a label, a detector name), kept with where it was written so
// that module's errors can point into the file.
struct Located {
  std::string value;
  int line = 0;
  int column = 0;
  std::string key;  // dotted path
};

struct AuthSettings {
  bool required = true;
  std::string admin_token_env;
  std::string admin_token;  // resolved from admin_token_env; "" = admin API disabled
  std::chrono::milliseconds key_cache_ttl{500};
};

struct StoreSettings {
  std::string sqlite_path = "redline.db";  // resolved against the config file's directory
};

enum class AuditDurability { kBatched, kBeforeResponse };
enum class AuditBodies { kNone, kFlagged, kAll };

struct AuditSettings {
  bool enabled = true;
  AuditDurability durability = AuditDurability::kBatched;
  std::chrono::milliseconds flush_interval{5};          // group commit at least this often
  std::chrono::milliseconds checkpoint_interval{1000};  // the head is signed this often
  std::string signing_key_path = "redline-audit.key";   // resolved against the config's directory
  AuditBodies store_bodies = AuditBodies::kNone;
  std::string body_key_env;  // names the variable holding 64 hex digits (AES-256-GCM key)
  std::string body_key;      // the 32 raw bytes, resolved at load time
  std::chrono::hours body_retention{24 * 30};
};

// [[limits]]: who a limit applies to is exactly one of `key` or `tenant` ("*" = every tenant);
// with a tenant, `each_key` applies the limit to each of its keys separately.
struct LimitSettings {
  std::string tenant;
  std::string key;
  bool each_key = false;
  std::int64_t requests_per_minute = 0;  // 0 = unlimited
  std::int64_t tokens_per_minute = 0;
  std::int64_t max_concurrent = 0;
};

enum class BudgetPeriod { kDay, kMonth, kTotal };

// [[budgets]]: spend allowed to one key or one tenant per UTC day, month, or in total.
struct BudgetSettings {
  std::string tenant;
  std::string key;
  BudgetPeriod period = BudgetPeriod::kMonth;
  std::optional<std::int64_t> max_tokens;
  std::optional<double> max_cost_usd;
};

struct ResidencyRule {
  Located label;
  std::vector<std::string> jurisdictions;  // empty = any
  std::vector<Tier> tiers;                 // empty = any
};

struct LabelSettings {
  std::vector<std::string> levels{"PUBLIC", "INTERNAL", "CONFIDENTIAL", "SECRET", "TOP_SECRET"};
  std::vector<std::string> caveats{"NOFORN", "PII", "PHI", "PCI", "EXPORT_CONTROLLED"};
  int line = 0;  // where [labels] is, for lattice errors
  int column = 0;
  std::vector<ResidencyRule> residency;
};

struct DetectorSettings {
  Located name;
  bool custom = false;  // from [[detectors.custom]]; otherwise a built-in's overrides
  std::optional<bool> enabled;
  std::optional<Located> raise;
  std::vector<std::string> patterns;
  std::vector<std::string> keywords;
};

struct TenantSettings {
  std::string name;
  std::vector<std::string> jurisdictions;  // empty = any
  // How long this tenant's responses and conversations are kept after their last change;
  // nullopt = [sessions] retention_ms.
  std::optional<std::chrono::milliseconds> session_retention;
};

// [sessions]: the Responses and Conversations APIs' stored state.
struct SessionSettings {
  bool enabled = true;
  std::chrono::milliseconds retention{std::chrono::hours(24 * 30)};  // idle objects are purged
  std::chrono::milliseconds purge_interval{60000};
  std::size_t max_chain_depth = 100;  // previous_response_id links followed per turn
  std::size_t max_background = 64;    // background responses running at once per process
};

enum class McpTransport { kStdio, kHttp };
// The MCP protocol revision to speak: "auto" negotiates per server (the newest both speak).
enum class McpProtocol { kAuto, k20251125, k20260728 };
std::string_view to_string(McpTransport transport);
std::string_view to_string(McpProtocol protocol);

// [[mcp_servers]]: a tool server the agent runtime may call. Its address comes from here only,
// never from a request.
struct McpServerSettings {
  std::string name;                  // what requests name it by ("server_label"); unique
  std::vector<std::string> tenants;  // who may use it; empty = every tenant
  McpTransport transport = McpTransport::kStdio;
  std::string command;            // stdio: the program, resolved against the config's dir
  std::vector<std::string> args;  //   when it contains a '/'; and its arguments
  std::vector<std::string> env;   // stdio: environment variables passed through by name
  std::string url;                // http: the Streamable HTTP endpoint
  McpProtocol protocol = McpProtocol::kAuto;
  // Tools whose call may be repeated when its outcome is unknown (the gateway stopped mid-call).
  std::vector<std::string> idempotent_tools;
  // Tools whose every call waits for an admin's or the owning key's approval.
  std::vector<std::string> require_approval;
  // The lowest label the tools' results carry (before detectors); "" = the lattice's bottom.
  Located result_label{"", 0, 0, ""};
  std::chrono::milliseconds timeout{30000};  // one request to the server
};

// [agents]: the durable run engine and task graphs.
struct AgentSettings {
  // Defaults for every run; a request may set lower ones.
  std::int64_t max_steps = 50;
  std::int64_t max_tokens = 200000;
  std::chrono::milliseconds max_wall{std::chrono::hours(1)};
  std::size_t max_concurrent_runs_per_tenant = 16;
  std::size_t max_graph_tasks = 200;
  std::size_t max_graph_concurrency = 32;
  std::chrono::milliseconds approval_timeout{std::chrono::hours(24)};
  // Context compaction: when a run's prompt passes this share of the model's window...
  double compaction_threshold = 0.7;
  std::int64_t context_window_tokens = 32768;  // assumed window of every alias
  // ...older turns are summarised by this alias ("" = observations are masked, nothing is
  // summarised).
  Located summary_model{"", 0, 0, "agents.summary_model"};
  std::size_t keep_recent_steps =
      2;  // the last model steps (with their tool results) stay verbatim
};

// [memory]: pinned blocks and archival records injected into prompts on request.
struct MemorySettings {
  std::size_t default_block_chars = 2000;  // a block's limit when it sets none
  std::size_t max_block_chars = 20000;     // the largest limit a block may set
  std::size_t max_record_chars = 4000;
  std::size_t max_injected_records = 20;  // upper bound of a request's top_k
  // Automatic extraction after a turn: the alias that reads the turn and returns facts; "" = off.
  Located extraction_model{"", 0, 0, "memory.extraction_model"};
  std::int64_t extraction_max_output_tokens = 512;  // the extraction's own token budget: its
  std::size_t extraction_max_input_chars = 16000;   // answer, and how much of the turn it reads
};

enum class RuleAction { kDeny, kRedact, kRestrict, kRequireApproval, kLog };
enum class RuleMode { kEnforce, kShadow };
std::string_view to_string(RuleAction action);
std::string_view to_string(RuleMode mode);

struct RuleSettings {
  Located name;
  RuleAction action = RuleAction::kLog;
  RuleMode mode = RuleMode::kEnforce;
  // Conditions; an empty list or unset optional places no condition.
  std::vector<Located> detectors;
  std::optional<Located> label_at_least;
  std::vector<std::string> tenants;
  std::vector<std::string> keys;
  std::vector<std::string> models;
  std::vector<std::string> tools;
  std::vector<Tier> backend_tiers;
  std::vector<std::string> backend_jurisdictions;
  // Effects.
  std::vector<Located> redact;
  std::vector<Tier> restrict_tiers;
  std::vector<std::string> restrict_jurisdictions;
  std::vector<std::string> restrict_backends;
  std::chrono::milliseconds approval_timeout{60000};
  std::string message;
};

struct ServedModel {
  std::string name;           // as referenced by alias targets
  std::string upstream_name;  // sent to the backend; equals name unless configured
};

struct Backend {
  std::string name;
  std::string base_url;     // as written, e.g. "https://api.openai.com/v1"
  bool tls = false;         // scheme is https
  std::string host;         // from base_url, IPv6 without brackets
  std::uint16_t port = 0;   // from base_url, default 80 / 443
  std::string base_path;    // path of base_url without trailing slash, e.g. "/v1" ("" if none)
  std::string api_key_env;  // name of the env var holding the key ("" = none)
  std::string api_key;      // resolved from the environment at load time, never from the file
  Tier tier = Tier::kCloud;
  std::string region;               // free text, e.g. "eu-west-1"
  double price_input_per_mtok = 0;  // USD per million tokens
  double price_output_per_mtok = 0;
  int max_concurrency = 64;
  double weight = 1.0;
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds first_byte_timeout{60000};
  std::chrono::milliseconds idle_timeout{30000};
  std::chrono::milliseconds request_timeout{600000};
  std::string ca_file;  // PEM bundle for TLS verification ("" = system store); readable at load
  std::string health_path = "/models";  // GET base_path + health_path; "" disables active checks
  std::chrono::milliseconds health_interval{5000};
  std::vector<ServedModel> models;        // at least one, names unique
  Located clearance{"PUBLIC", 0, 0, ""};  // the highest label this backend may receive
  std::string jurisdiction;               // country or region code, e.g. "DE"; "" = unknown
  std::string operator_name;              // who runs it, e.g. "acme-gpu"

  const ServedModel* find_model(std::string_view name) const;
};

struct AliasTarget {
  std::string backend;  // a Backend.name
  std::string model;    // a ServedModel.name of that backend
};

struct ModelAlias {
  std::string name;  // what clients send as "model"
  Strategy strategy = Strategy::kLeastLoad;
  std::vector<AliasTarget> targets;          // at least one
  std::vector<std::string> fallbacks;        // other aliases tried in order; never cyclic
  std::chrono::milliseconds max_latency{0};  // latency bound of the cost strategy (> 0 for cost)
  std::string owned_by = "redline";          // shown in /v1/models
  // Output tokens reserved against budgets and limits when a request sets no max_tokens.
  std::int64_t max_output_tokens = 4096;
};

// A Config returned by a load is valid: every cross-reference (alias → backend → model, alias →
// fallback alias) resolves, so consumers need not re-check them.
struct Config {
  std::string source;  // file path it came from
  ServerSettings server;
  RoutingSettings routing;
  std::vector<Backend> backends;
  std::vector<ModelAlias> models;
  AuthSettings auth;
  StoreSettings store;
  LabelSettings labels;
  std::vector<DetectorSettings> detectors;
  std::vector<TenantSettings> tenants;
  std::vector<RuleSettings> rules;
  AuditSettings audit;
  std::vector<LimitSettings> limits;
  std::vector<BudgetSettings> budgets;
  SessionSettings sessions;
  MemorySettings memory;
  AgentSettings agents;
  std::vector<McpServerSettings> mcp_servers;

  const Backend* find_backend(std::string_view name) const;
  const ModelAlias* find_alias(std::string_view name) const;
  const McpServerSettings* find_mcp_server(std::string_view name) const;
  // Every backend a request for `alias` may reach: its targets, then its fallbacks' (depth
  // first), each once. Empty for an unknown alias.
  std::vector<std::string> backends_for(std::string_view alias) const;
};

struct ConfigError {
  std::string source;  // file name
  int line = 0;        // 1-based; 0 when unknown
  int column = 0;
  std::string key;      // dotted path, e.g. "backends[1].max_concurrency"; "" for syntax errors
  std::string message;  // e.g. "must be a positive integer (found -3)"

  static ConfigError at(const std::string& source, const Located& where, std::string message) {
    return {source, where.line, where.column, where.key, std::move(message)};
  }

  // "quickstart.toml:12:3: backends[1].max_concurrency: must be a positive integer (found -3)"
  std::string to_string() const;
};

// One error per line, each ending in '\n'; "" for no errors.
std::string format_errors(const std::vector<ConfigError>& errors);

// Looks up an environment variable; injected so tests need not touch the process environment.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
EnvLookup process_environment();  // std::getenv

struct LoadResult {
  std::optional<Config> config;     // set only when errors is empty
  std::vector<ConfigError> errors;  // every error found, in file order
};

LoadResult load_config_file(const std::string& path, const EnvLookup& env = process_environment());
// source_name is used in error messages and as the base for relative paths.
LoadResult load_config_string(std::string_view toml_text, std::string source_name,
                              const EnvLookup& env = process_environment());

}  // namespace redline::config
