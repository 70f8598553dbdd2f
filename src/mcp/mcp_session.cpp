#include "mcp/mcp_session.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <set>
#include <utility>

namespace redline::mcp {

namespace asio = boost::asio;
namespace json = boost::json;

// g++ 12 miscompiles some temporaries inside coroutines: braced initializer lists, and objects
// made by conversion inside a co_await operand, get destroyed twice. So coroutines here build
// messages through plain functions (protocol.h) and pass named values to what they await.

namespace {

// A server that keeps handing out new cursors is broken, not large.
constexpr int kMaxToolPages = 100;

McpError protocol_error(std::string message) {
  return {McpErrorKind::kProtocol, std::move(message)};
}

}  // namespace

// One negotiation; callers that arrive while it runs wait on `done` and share `outcome`.
struct McpSession::Flight {
  explicit Flight(const asio::any_io_executor& executor)
      : done(executor, std::chrono::steady_clock::time_point::max()) {}
  asio::steady_timer done;
  std::optional<Result<void>> outcome;
};

McpSession::McpSession(asio::any_io_executor executor, std::unique_ptr<Transport> transport,
                       SessionOptions options)
    : executor_(std::move(executor)),
      transport_(std::move(transport)),
      options_(std::move(options)) {
  dialect_.client = options_.client;
}

McpSession::~McpSession() = default;

std::optional<McpRevision> McpSession::revision() const { return agreed_; }

asio::awaitable<Result<McpNegotiated>> McpSession::connect() {
  auto ready = co_await ensure_ready();
  if (!ready) co_return std::move(ready).error();
  co_return McpNegotiated{dialect_.revision, dialect_.revision == McpRevision::k20260728
                                                 ? std::string(kVersion20260728)
                                                 : dialect_.protocol_version};
}

asio::awaitable<Result<void>> McpSession::ensure_ready() {
  if (closed_) {
    co_return in_context("connect", {McpErrorKind::kTransport, "the client is shut down"});
  }
  if (!negotiation_ && transport_->is_open() && ready_epoch_ == transport_->epoch()) {
    co_return Result<void>();
  }
  if (std::shared_ptr<Flight> flight = negotiation_) {
    co_await flight->done.async_wait(asio::as_tuple(asio::use_awaitable));
    co_return *flight->outcome;
  }
  auto flight = std::make_shared<Flight>(executor_);
  negotiation_ = flight;
  Result<void> outcome = co_await negotiate();
  negotiation_.reset();
  flight->outcome = outcome;
  flight->done.cancel();
  co_return outcome;
}

asio::awaitable<Result<void>> McpSession::negotiate() {
  if (auto opened = transport_->open(); !opened) {
    co_return in_context("connect", std::move(opened).error());
  }
  auto revision = co_await choose_revision();
  if (!revision) co_return std::move(revision).error();
  dialect_.revision = *revision;
  if (*revision == McpRevision::k20251125) {
    // The probe may have cost a stdio server its life (some exit on anything before
    // initialize): this starts the next one.
    if (auto opened = transport_->open(); !opened) {
      co_return in_context("connect", std::move(opened).error());
    }
    if (auto initialized = co_await initialize(); !initialized) co_return initialized;
  }
  if (agreed_ != *revision) {
    spdlog::debug("{}: speaking MCP {}", options_.label, to_string(*revision));
  }
  agreed_ = *revision;
  ready_epoch_ = transport_->epoch();
  co_return Result<void>();
}

asio::awaitable<Result<McpRevision>> McpSession::choose_revision() {
  // A server that needed the handshake before a restart needs it after: probing it again would
  // cost a round trip, or its life (some exit on anything before initialize). A new connection
  // to a 2026-07-28 server is probed again: that doubles as its handshake, whose longer timeout
  // covers a restarted process's start-up.
  if (agreed_ == McpRevision::k20251125 || options_.protocol == config::McpProtocol::k20251125) {
    co_return McpRevision::k20251125;
  }

  // server/discover, in the newer revision: its answer says whether the server speaks it.
  Dialect modern = dialect_;
  modern.revision = McpRevision::k20260728;
  json::object no_params;
  auto outcome =
      co_await exchange(modern, "server/discover", std::move(no_params), Phase::kHandshake);
  ProbeVerdict verdict = classify_probe(outcome);
  if (verdict == ProbeVerdict::kModern) co_return McpRevision::k20260728;
  if (options_.protocol == config::McpProtocol::k20260728) {
    if (!outcome) co_return std::move(outcome).error();
    co_return in_context("server/discover",
                         protocol_error("the server does not offer protocol version " +
                                        std::string(kVersion20260728)));
  }
  if (verdict == ProbeVerdict::kFailed) co_return std::move(outcome).error();
  spdlog::debug("{}: server/discover unanswered ({}), trying initialize", options_.label,
                outcome ? "no 2026-07-28" : outcome.error().message);
  co_return McpRevision::k20251125;
}

asio::awaitable<Result<void>> McpSession::initialize() {
  Dialect handshake = dialect_;
  handshake.revision = McpRevision::k20251125;
  handshake.protocol_version.clear();  // no MCP-Protocol-Version header before the answer
  json::object params = initialize_params(options_.client);
  auto result = co_await exchange(handshake, "initialize", std::move(params), Phase::kHandshake);
  if (!result) co_return std::move(result).error();
  auto version = read_initialize_result(*result);
  if (!version) co_return in_context("initialize", std::move(version).error());
  dialect_.protocol_version = std::move(version).value();
  OutgoingMessage initialized{"notifications/initialized",
                              json_rpc_notification("notifications/initialized", {}),
                              dialect_.http_headers("notifications/initialized", {}, false)};
  if (auto sent = co_await transport_->notify(std::move(initialized)); !sent) {
    co_return in_context("notifications/initialized", std::move(sent).error());
  }
  co_return Result<void>();
}

asio::awaitable<Result<json::value>> McpSession::request(std::string_view method,
                                                         json::object params) {
  for (int attempt = 0;; ++attempt) {
    if (auto ready = co_await ensure_ready(); !ready) co_return std::move(ready).error();
    const std::uint64_t epoch = transport_->epoch();
    auto result = co_await exchange(dialect_, method, params, Phase::kRequest);
    // The server forgot the session before it saw the request: initialize again, once.
    bool forgotten =
        !result && result.error().kind == McpErrorKind::kTransport && transport_->epoch() != epoch;
    if (!forgotten || attempt > 0) co_return result;
  }
}

asio::awaitable<Result<json::value>> McpSession::exchange(Dialect dialect, std::string_view method,
                                                          json::object params, Phase phase) {
  const RequestId id = next_id_++;
  dialect.dress(params);
  OutgoingMessage message{method, json_rpc_request(id, method, params),
                          dialect.http_headers(method, params, true)};
  const std::chrono::milliseconds timeout = phase == Phase::kHandshake
                                                ? std::max(options_.timeout, kMinHandshakeTimeout)
                                                : options_.timeout;
  auto reply = co_await transport_->request(id, std::move(message),
                                            std::chrono::steady_clock::now() + timeout);
  if (!reply) {
    McpError error = std::move(reply).error();
    if (error.kind == McpErrorKind::kTimeout) {
      error.message = "no answer within " + std::to_string(timeout.count()) + " ms";
      // The handshake is never cancelled (2025-11-25 forbids cancelling initialize).
      if (phase == Phase::kRequest) co_await cancel(dialect, id);
    }
    co_return in_context(method, std::move(error));
  }
  if (reply->kind == JsonRpcMessage::Kind::kError) {
    co_return in_context(
        method, McpError{McpErrorKind::kServer, reply->error.message, reply->error.code, 0});
  }
  co_return std::move(reply->result);
}

asio::awaitable<void> McpSession::cancel(const Dialect& dialect, RequestId id) {
  // A 2026-07-28 server over HTTP took the closed stream as the cancellation.
  if (dialect.revision == McpRevision::k20260728 && transport_->per_request_stream()) co_return;
  json::object params = cancelled_params(id);
  dialect.dress(params);
  OutgoingMessage message{"notifications/cancelled",
                          json_rpc_notification("notifications/cancelled", params),
                          dialect.http_headers("notifications/cancelled", params, false)};
  if (auto sent = co_await transport_->notify(std::move(message)); !sent) {
    spdlog::debug("{}: could not cancel request {}: {}", options_.label, id, sent.error().message);
  }
}

asio::awaitable<Result<std::vector<McpTool>>> McpSession::list_tools() {
  std::vector<McpTool> tools;
  std::set<std::string> cursors;
  std::string cursor;
  for (int page = 0; page < kMaxToolPages; ++page) {
    json::object params;
    if (!cursor.empty()) params["cursor"] = cursor;
    auto result = co_await request("tools/list", std::move(params));
    if (!result) co_return std::move(result).error();
    auto read = read_tools_page(*result);
    if (!read) co_return in_context("tools/list", std::move(read).error());
    ToolsPage& tools_page = read.value();
    std::move(tools_page.tools.begin(), tools_page.tools.end(), std::back_inserter(tools));
    if (tools_page.next_cursor.empty()) co_return tools;
    if (!cursors.insert(tools_page.next_cursor).second) {
      co_return in_context("tools/list", protocol_error("the server repeated a cursor"));
    }
    cursor = std::move(tools_page.next_cursor);
  }
  co_return in_context("tools/list", protocol_error("more than " + std::to_string(kMaxToolPages) +
                                                    " pages of tools"));
}

asio::awaitable<Result<McpToolResult>> McpSession::call_tool(std::string name,
                                                             json::object arguments,
                                                             std::string idempotency_key) {
  json::object params = tool_call_params(name, std::move(arguments), idempotency_key);
  auto result = co_await request("tools/call", std::move(params));
  if (!result) co_return std::move(result).error();
  auto read = read_tool_result(*result);
  if (!read) co_return in_context("tools/call", std::move(read).error());
  co_return std::move(read).value();
}

asio::awaitable<void> McpSession::close() {
  closed_ = true;
  co_await transport_->close();
}

McpError McpSession::in_context(std::string_view method, McpError error) const {
  error.message = options_.label + ": " + std::string(method) + ": " + error.message;
  return error;
}

}  // namespace redline::mcp
