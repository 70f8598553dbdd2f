// `redline keys create|list|revoke`: operator commands on the tenants and API keys in the store.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "policy/label.h"

namespace redline::cli {

// Returns an error message for a label text that is not valid, nullopt for a valid one.
using LabelValidator = std::function<std::optional<std::string>(std::string_view label)>;

// Accepts exactly the labels `lattice` can parse.
LabelValidator lattice_label_validator(policy::LabelLattice lattice);

// Adds the `keys` subcommand to `app`. The chosen command runs while `app` parses and ends the
// parse with CLI::Success (exit 0) or CLI::RuntimeError (exit 1, after a one-line error on
// stderr), so CLI11_PARSE returns the command's exit status and the caller needs no dispatch.
// Non-empty --default-label/--max-label values are checked with `validate_label`.
void add_keys_command(CLI::App& app, LabelValidator validate_label);

}  // namespace redline::cli
