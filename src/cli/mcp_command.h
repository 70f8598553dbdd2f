// `redline mcp tools|call`: talk to a configured MCP server from the command line, to check a
// [[mcp_servers]] entry before agents rely on it.
#pragma once

#include <CLI/CLI.hpp>

namespace redline::cli {

// Adds the `mcp` subcommand to `app`. Like `audit`, the chosen command runs while `app` parses
// and ends the parse with CLI::Success (exit 0) or CLI::RuntimeError: exit 1 when a call fails
// or a tool reports an error, 2 on usage or configuration errors.
void add_mcp_command(CLI::App& app);

}  // namespace redline::cli
