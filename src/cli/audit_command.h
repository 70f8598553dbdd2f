// `redline audit verify|export|pubkey`: operator commands on the hash-chained audit log.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <optional>
#include <string_view>

namespace redline::cli {

// Adds the `audit` subcommand to `app`. Like `keys`, the chosen command runs while `app`
// parses and ends the parse with CLI::Success (exit 0) or CLI::RuntimeError: exit 1 when the
// chain does not verify (after printing the report), 2 on usage or I/O errors.
void add_audit_command(CLI::App& app);

// Unix milliseconds from RFC 3339 ("2024-05-01T12:00:00Z", "…+02:00", fractions allowed) or
// unix seconds ("1714564800"); nullopt for anything else.
std::optional<std::int64_t> parse_audit_time(std::string_view text);

}  // namespace redline::cli
