#include "cli/mcp_command.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/serialize.hpp>
#include <iomanip>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "mcp/mcp_client.h"

namespace redline::cli {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;

constexpr int kFailed = 1;
constexpr int kUsageError = 2;

[[noreturn]] void fail(const std::string& message, int exit_code) {
  std::cerr << "redline mcp: " << message << "\n";
  throw CLI::RuntimeError(exit_code);
}

struct McpCommandOptions {
  std::string config_path;
  std::string server;
  bool json = false;
  bool verbose = false;
  // call: the n-th arguments and idempotency key go with the n-th tool.
  std::vector<std::string> tools;
  std::vector<std::string> arguments;
  std::vector<std::string> idempotency_keys;
};

// The configured server, or exit 2 saying why not.
config::McpServerSettings find_server(const McpCommandOptions& options) {
  if (options.config_path.empty()) fail("pass --config FILE", kUsageError);
  if (options.server.empty()) fail("pass --server NAME", kUsageError);
  auto loaded = config::load_config_file(options.config_path);
  if (!loaded.config) fail(config::format_errors(loaded.errors), kUsageError);
  if (const auto* server = loaded.config->find_mcp_server(options.server)) return *server;
  std::string known;
  for (const auto& server : loaded.config->mcp_servers) {
    known += (known.empty() ? "" : ", ") + server.name;
  }
  fail("no [[mcp_servers]] entry named \"" + options.server + "\"" +
           (known.empty() ? std::string(" (none configured)") : " (configured: " + known + ")"),
       kUsageError);
}

// Logs go to stderr, so stdout carries only the answer.
void set_up_logging(bool verbose) {
  spdlog::set_default_logger(spdlog::stderr_color_st("redline"));
  spdlog::set_level(verbose ? spdlog::level::debug : spdlog::level::warn);
}

// Runs `work(client)` on a client of the configured server, shuts the client down, and exits
// with work's exit code.
template <typename Work>
[[noreturn]] void run_with_client(const McpCommandOptions& options, Work work) {
  config::McpServerSettings server = find_server(options);
  set_up_logging(options.verbose);
  asio::io_context context;
  int exit_code = kFailed;
  {
    mcp::McpClient client(context, std::move(server));
    asio::co_spawn(
        context,
        [&]() -> asio::awaitable<void> {
          exit_code = co_await work(client);
          co_await client.shutdown();
        },
        asio::detached);
    context.run();
  }
  if (exit_code == 0) throw CLI::Success();
  throw CLI::RuntimeError(exit_code);
}

json::object describe(const mcp::McpTool& tool) {
  json::object out{{"name", tool.name}};
  if (!tool.title.empty()) out["title"] = tool.title;
  out["description"] = tool.description;
  out["inputSchema"] = tool.input_schema;
  if (!tool.output_schema.empty()) out["outputSchema"] = tool.output_schema;
  if (!tool.annotations.empty()) out["annotations"] = tool.annotations;
  return out;
}

// (The JSON below is built outside coroutines: g++ 12 miscompiles braced initializer lists in
// them.)
json::object listing(const mcp::McpClient& client, const mcp::McpNegotiated& negotiated,
                     const std::vector<mcp::McpTool>& tools) {
  json::array list;
  for (const mcp::McpTool& tool : tools) list.push_back(describe(tool));
  return {{"server", client.name()},
          {"protocol", negotiated.protocol_version},
          {"tools", std::move(list)}};
}

// {"error": {"kind": ..., "message": ...[, "code": ...][, "httpStatus": ...]}}
json::object error_line(const mcp::McpError& error) {
  json::object described{{"kind", mcp::to_string(error.kind)}, {"message", error.message}};
  if (error.kind == mcp::McpErrorKind::kServer) described["code"] = error.code;
  if (error.http_status != 0) described["httpStatus"] = error.http_status;
  return {{"error", std::move(described)}};
}

void print_error(const mcp::McpError& error) {
  std::cerr << "redline mcp: " << error.to_string() << "\n";
}

void run_tools(const McpCommandOptions& options) {
  run_with_client(options, [&](mcp::McpClient& client) -> asio::awaitable<int> {
    auto negotiated = co_await client.connect();
    if (!negotiated) {
      print_error(negotiated.error());
      co_return kFailed;
    }
    auto tools = co_await client.list_tools();
    if (!tools) {
      print_error(tools.error());
      co_return kFailed;
    }
    if (options.json) {
      std::cout << json::serialize(listing(client, *negotiated, *tools)) << "\n";
      co_return 0;
    }
    std::cout << "MCP server \"" << client.name() << "\" speaks protocol "
              << negotiated->protocol_version << "; " << tools->size() << " tool(s)\n";
    std::size_t width = 0;
    for (const mcp::McpTool& tool : *tools) width = std::max(width, tool.name.size());
    for (const mcp::McpTool& tool : *tools) {
      std::cout << "  " << std::left << std::setw(static_cast<int>(width)) << tool.name << "  "
                << tool.description << "\n";
    }
    co_return 0;
  });
}

void run_call(const McpCommandOptions& options) {
  if (options.tools.empty()) fail("pass --tool NAME", kUsageError);
  if (options.arguments.size() > options.tools.size() ||
      options.idempotency_keys.size() > options.tools.size()) {
    fail("more --arguments or --idempotency-key than --tool", kUsageError);
  }
  run_with_client(options, [&](mcp::McpClient& client) -> asio::awaitable<int> {
    int exit_code = 0;
    for (std::size_t i = 0; i < options.tools.size(); ++i) {
      auto at = [&](const std::vector<std::string>& values) {
        return i < values.size() ? values[i] : std::string();
      };
      auto result = co_await client.call_tool(options.tools[i], at(options.arguments),
                                              at(options.idempotency_keys));
      if (!result) {
        print_error(result.error());
        std::cout << json::serialize(error_line(result.error())) << "\n";
        exit_code = kFailed;
        continue;
      }
      std::cout << json::serialize(result->to_json()) << "\n";
      if (result->is_error) exit_code = kFailed;
    }
    co_return exit_code;
  });
}

}  // namespace

void add_mcp_command(CLI::App& app) {
  auto* mcp = app.add_subcommand("mcp", "Talk to a configured MCP tool server");
  mcp->require_subcommand(1);
  auto options = std::make_shared<McpCommandOptions>();

  auto add_common = [&](CLI::App* command) {
    command->add_option("-c,--config", options->config_path, "Gateway configuration (TOML)");
    command->add_option("-s,--server", options->server, "[[mcp_servers]] name");
    command->add_flag("-v,--verbose", options->verbose, "Log the exchange and the server's stderr");
  };

  auto* tools =
      mcp->add_subcommand("tools", "List the server's tools and the protocol revision it speaks");
  add_common(tools);
  tools->add_flag("--json", options->json, "Print JSON: {server, protocol, tools}");

  auto* call = mcp->add_subcommand(
      "call",
      "Call a tool and print its result as one JSON line; repeat --tool to make several calls "
      "in order on one connection (the n-th --arguments and --idempotency-key go with the n-th "
      "--tool). A failed call prints {\"error\": {kind, message}}");
  add_common(call);
  // One value per occurrence, so each --tool pairs with the options that follow it.
  call->add_option("-t,--tool", options->tools, "Tool name")->allow_extra_args(false);
  call->add_option("-a,--arguments", options->arguments, "Arguments as a JSON object (default {})")
      ->allow_extra_args(false);
  call->add_option("--idempotency-key", options->idempotency_keys,
                   "Key a deduplicating server recognises a retry by (default: a fresh one)")
      ->allow_extra_args(false);

  tools->callback([options] { run_tools(*options); });
  call->callback([options] { run_call(*options); });
}

}  // namespace redline::cli
