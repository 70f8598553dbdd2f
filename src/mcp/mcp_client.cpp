#include "mcp/mcp_client.h"

#include <algorithm>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>
#include <utility>

#include "common/ids.h"
#include "mcp/http_transport.h"
#include "mcp/mcp_session.h"
#include "mcp/stdio_transport.h"

namespace redline::mcp {

namespace asio = boost::asio;
namespace json = boost::json;

namespace {

std::unique_ptr<Transport> make_transport(asio::io_context& home,
                                          const asio::any_io_executor& strand,
                                          const config::McpServerSettings& settings,
                                          const std::string& label,
                                          const McpClientOptions& options) {
  if (settings.transport == config::McpTransport::kHttp) {
    return make_http_transport(home, {settings.url, settings.timeout, options.max_message_bytes});
  }
  return make_stdio_transport(
      strand, {{settings.command, settings.args, settings.env}, label, options.max_message_bytes});
}

Result<json::object> parse_arguments(std::string_view text) {
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) return json::object();
  boost::system::error_code ec;
  json::value parsed = json::parse(text, ec);
  if (ec || !parsed.is_object()) {
    return McpError{McpErrorKind::kInvalidArgument, "tool arguments must be a JSON object"};
  }
  return std::move(parsed.get_object());
}

}  // namespace

struct McpClient::Impl {
  Impl(asio::io_context& home, config::McpServerSettings server, const McpClientOptions& options)
      : strand(asio::make_strand(home)),
        settings(std::move(server)),
        label("MCP server \"" + settings.name + "\""),
        session(strand, make_transport(home, strand, settings, label, options),
                {label, settings.protocol, settings.timeout, {"redline", options.client_version}}) {
  }

  // Runs `work(session)` on the strand and returns its result to the caller's executor.
  template <typename T, typename Work>
  static asio::awaitable<T> run(std::shared_ptr<Impl> impl, Work work) {
    auto on_strand = [impl, work = std::move(work)]() mutable -> asio::awaitable<std::optional<T>> {
      T result = co_await work(impl->session);
      if (auto revision = impl->session.revision()) impl->revision = static_cast<int>(*revision);
      co_return std::move(result);
    };
    // co_spawn's completion needs a default-constructible value; a Result is not one.
    std::optional<T> value =
        co_await asio::co_spawn(impl->strand, std::move(on_strand), asio::use_awaitable);
    co_return std::move(*value);
  }

  asio::strand<asio::io_context::executor_type> strand;
  config::McpServerSettings settings;
  std::string label;
  McpSession session;
  std::atomic<int> revision{-1};  // an McpRevision once agreed, for revision() on any thread
};

McpClient::McpClient(asio::io_context& home, config::McpServerSettings settings,
                     McpClientOptions options)
    : impl_(std::make_shared<Impl>(home, std::move(settings), options)) {}

McpClient::~McpClient() = default;

const config::McpServerSettings& McpClient::settings() const { return impl_->settings; }
const std::string& McpClient::name() const { return impl_->settings.name; }

bool McpClient::allows_tenant(std::string_view tenant) const {
  return tenant_allowed(impl_->settings, tenant);
}

asio::awaitable<Result<McpNegotiated>> McpClient::connect() {
  return Impl::run<Result<McpNegotiated>>(impl_,
                                          [](McpSession& session) { return session.connect(); });
}

asio::awaitable<Result<std::vector<McpTool>>> McpClient::list_tools() {
  return Impl::run<Result<std::vector<McpTool>>>(
      impl_, [](McpSession& session) { return session.list_tools(); });
}

asio::awaitable<Result<McpToolResult>> McpClient::call_tool(std::string name,
                                                            std::string arguments_json,
                                                            std::string idempotency_key) {
  auto parsed = parse_arguments(arguments_json);
  if (!parsed) co_return std::move(parsed).error();
  if (idempotency_key.empty()) idempotency_key = new_object_id("call");
  // Named, and built outside the co_await: g++ 12 miscompiles init-captures made inside a
  // coroutine's co_await operand, or named like one of the coroutine's locals.
  auto call = [name = std::move(name), arguments = std::move(parsed).value(),
               key = std::move(idempotency_key)](McpSession& session) mutable {
    return session.call_tool(std::move(name), std::move(arguments), std::move(key));
  };
  co_return co_await Impl::run<Result<McpToolResult>>(impl_, std::move(call));
}

asio::awaitable<void> McpClient::shutdown() {
  co_await Impl::run<Result<void>>(impl_, [](McpSession& session) -> asio::awaitable<Result<void>> {
    co_await session.close();
    co_return Result<void>();
  });
}

std::optional<McpRevision> McpClient::revision() const {
  int revision = impl_->revision.load();
  if (revision < 0) return std::nullopt;
  return static_cast<McpRevision>(revision);
}

bool tenant_allowed(const config::McpServerSettings& server, std::string_view tenant) {
  return server.tenants.empty() ||
         std::find(server.tenants.begin(), server.tenants.end(), tenant) != server.tenants.end();
}

McpClients::McpClients(asio::io_context& home, const config::Config& config,
                       McpClientOptions options) {
  for (const config::McpServerSettings& server : config.mcp_servers) {
    clients_.push_back(std::make_unique<McpClient>(home, server, options));
  }
}

McpClient* McpClients::find(std::string_view name) const {
  for (const auto& client : clients_) {
    if (client->name() == name) return client.get();
  }
  return nullptr;
}

McpClient* McpClients::find_for_tenant(std::string_view name, std::string_view tenant) const {
  McpClient* client = find(name);
  return client != nullptr && client->allows_tenant(tenant) ? client : nullptr;
}

asio::awaitable<void> McpClients::shutdown() {
  for (const auto& client : clients_) co_await client->shutdown();
}

}  // namespace redline::mcp
