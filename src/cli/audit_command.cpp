#include "cli/audit_command.h"

#include <charconv>
#include <ctime>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include "audit/audit_log.h"
#include "audit/signing_key.h"
#include "audit/verify.h"
#include "cli/serve.h"
#include "config/config.h"

namespace redline::cli {
namespace {

constexpr int kNotVerified = 1;
constexpr int kUsageError = 2;

[[noreturn]] void fail(const std::string& message, int exit_code = kUsageError) {
  std::cerr << "redline audit: " << message << "\n";
  throw CLI::RuntimeError(exit_code);
}

audit::AuditOptions load_audit_options(const std::string& config_path) {
  if (config_path.empty()) fail("pass --config FILE");
  auto loaded = config::load_config_file(config_path);
  if (!loaded.config) fail(config::format_errors(loaded.errors));
  return audit_options_from(*loaded.config);
}

std::string read_file(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) fail("cannot read " + path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

// The public key of the configured signing key; the key must exist already.
std::string configured_public_key(const audit::AuditOptions& options) {
  std::string error;
  auto key = audit::load_signing_key(options.signing_key_path, &error);
  if (!key) fail(error);
  return audit::public_key_pem(key.get());
}

struct AuditCommandOptions {
  std::string verify_config, verify_export, verify_pubkey;
  std::string export_config, since, until, out;
  std::string pubkey_config;
};

void run_verify(const AuditCommandOptions& options) {
  store::Result<audit::VerifyReport> report = store::Status::error("nothing to verify");
  if (!options.verify_export.empty()) {
    std::string key;
    if (!options.verify_pubkey.empty()) {
      key = read_file(options.verify_pubkey);
    } else if (!options.verify_config.empty()) {
      key = configured_public_key(load_audit_options(options.verify_config));
    } else {
      fail("verifying an export needs --pubkey PEMFILE (or --config FILE)");
    }
    report = audit::verify_export_file(options.verify_export, key);
  } else {
    if (options.verify_config.empty()) fail("pass --config FILE, or --export FILE --pubkey PEM");
    const auto audit_options = load_audit_options(options.verify_config);
    const std::string key = options.verify_pubkey.empty() ? configured_public_key(audit_options)
                                                          : read_file(options.verify_pubkey);
    report = audit::verify_store(audit_options.sqlite_path, key);
  }
  if (!report) fail(report.error());
  std::cout << report->summary();
  if (!report->ok()) throw CLI::RuntimeError(kNotVerified);
}

void run_export(const AuditCommandOptions& options) {
  const auto audit_options = load_audit_options(options.export_config);
  audit::ExportRange range;
  for (auto [text, target, name] : {std::tuple{&options.since, &range.since_ms, "--since"},
                                    std::tuple{&options.until, &range.until_ms, "--until"}}) {
    if (text->empty()) continue;
    const auto time = parse_audit_time(*text);
    if (!time) fail(std::string(name) + " \"" + *text + "\" is neither RFC 3339 nor unix seconds");
    *target = *time;
  }
  {
    // Opening and closing the log signs the head, so the export ends on a checkpoint even when
    // the gateway has not signed its latest records yet.
    std::string error;
    auto log = audit::AuditLog::open(audit_options, &error);
    if (!log) fail(error);
  }
  std::ofstream file;
  if (!options.out.empty()) {
    file.open(options.out, std::ios::binary | std::ios::trunc);
    if (!file) fail("cannot write " + options.out);
  }
  std::ostream& out = options.out.empty() ? std::cout : file;
  auto summary = audit::export_records(audit_options.sqlite_path, range, out);
  if (!summary) fail(summary.error());
  std::cerr << "exported " << summary->records << " records (" << summary->first_seq << ".."
            << summary->last_seq << ") and " << summary->checkpoints << " checkpoints\n";
}

void run_pubkey(const AuditCommandOptions& options) {
  const auto audit_options = load_audit_options(options.pubkey_config);
  std::string error;
  auto key = audit::load_or_create_signing_key(audit_options.signing_key_path, &error);
  if (!key) fail(error);
  std::cout << audit::public_key_pem(key.get());
}

}  // namespace

std::optional<std::int64_t> parse_audit_time(std::string_view text) {
  if (text.empty()) return std::nullopt;
  std::int64_t seconds = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), seconds);
  if (ec == std::errc() && end == text.data() + text.size()) return seconds * 1000;

  const std::string value(text);
  std::tm parts{};
  int consumed = 0;
  if (std::sscanf(value.c_str(), "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%2d%n", &parts.tm_year, &parts.tm_mon,
                  &parts.tm_mday, &parts.tm_hour, &parts.tm_min, &parts.tm_sec, &consumed) != 6 ||
      consumed != 19) {
    return std::nullopt;
  }
  if (parts.tm_mon < 1 || parts.tm_mon > 12 || parts.tm_mday < 1 || parts.tm_mday > 31 ||
      parts.tm_hour > 23 || parts.tm_min > 59 || parts.tm_sec > 60) {
    return std::nullopt;
  }
  parts.tm_year -= 1900;
  parts.tm_mon -= 1;
  std::int64_t millis = static_cast<std::int64_t>(timegm(&parts)) * 1000;
  std::string_view rest = text.substr(19);
  if (rest.starts_with('.')) {
    std::size_t digits = 1;
    std::int64_t scale = 100;
    while (digits < rest.size() && rest[digits] >= '0' && rest[digits] <= '9') {
      millis += (rest[digits] - '0') * scale;
      scale /= 10;
      ++digits;
    }
    if (digits == 1) return std::nullopt;
    rest.remove_prefix(digits);
  }
  if (rest == "Z" || rest == "z") return millis;
  int hours = 0, minutes = 0;
  if (rest.size() == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':' &&
      std::sscanf(std::string(rest.substr(1)).c_str(), "%2d:%2d", &hours, &minutes) == 2 &&
      hours <= 23 && minutes <= 59) {
    const std::int64_t offset = (hours * 60 + minutes) * 60'000;
    return rest[0] == '+' ? millis - offset : millis + offset;
  }
  return std::nullopt;
}

void add_audit_command(CLI::App& app) {
  auto* audit =
      app.add_subcommand("audit", "The tamper-evident audit log (verify, export, pubkey)");
  audit->require_subcommand(1);
  auto options = std::make_shared<AuditCommandOptions>();

  auto* verify = audit->add_subcommand(
      "verify", "Check the whole chain and every signature; exit 1 naming the first problem");
  verify->add_option("-c,--config", options->verify_config, "Gateway configuration (TOML)");
  verify->add_option("--export", options->verify_export, "Verify this JSONL export instead");
  verify->add_option("--pubkey", options->verify_pubkey, "Public key (PEM) to verify with");

  auto* exporter = audit->add_subcommand("export", "Write records as JSONL that verifies alone");
  exporter->add_option("-c,--config", options->export_config, "Gateway configuration (TOML)")
      ->required();
  exporter->add_option("--since", options->since, "From this time (RFC 3339 or unix seconds)");
  exporter->add_option("--until", options->until, "Before this time (RFC 3339 or unix seconds)");
  exporter->add_option("--out", options->out, "Output file (default: stdout)");

  auto* pubkey = audit->add_subcommand("pubkey", "Print the public key that verifies the log");
  pubkey->add_option("-c,--config", options->pubkey_config, "Gateway configuration (TOML)")
      ->required();

  for (auto [command, run] : {std::pair{verify, &run_verify}, std::pair{exporter, &run_export},
                              std::pair{pubkey, &run_pubkey}}) {
    command->callback([run, options] {
      run(*options);
      throw CLI::Success();
    });
  }
}

}  // namespace redline::cli
