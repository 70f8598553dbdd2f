#include "mcp/http_transport.h"

#include <boost/url/parse.hpp>
#include <charconv>
#include <optional>
#include <utility>
#include <vector>

#include "net/sse.h"
#include "net/upstream_client.h"

namespace redline::mcp {

namespace asio = boost::asio;

namespace {

// Error bodies are read only to find a JSON-RPC error in them.
constexpr std::size_t kMaxErrorBody = 64 * 1024;
constexpr std::chrono::milliseconds kMaxConnectTimeout{5000};
constexpr std::chrono::milliseconds kSessionEndTimeout{2000};

struct Target {
  net::UpstreamEndpoint endpoint;
  std::string path;  // origin-form, query included
};

std::optional<Target> parse_url(const HttpOptions& options) {
  auto parsed = boost::urls::parse_absolute_uri(options.url);
  if (!parsed) return std::nullopt;
  const boost::urls::url_view& url = *parsed;
  bool tls = url.scheme_id() == boost::urls::scheme::https;
  if (!tls && url.scheme_id() != boost::urls::scheme::http) return std::nullopt;
  if (url.encoded_host().empty()) return std::nullopt;
  Target target;
  target.endpoint.host = url.host_address();
  target.endpoint.tls = tls;
  target.endpoint.port = tls ? 443 : 80;
  if (url.has_port()) {
    std::string_view text = url.port();
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), target.endpoint.port);
    if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  }
  target.endpoint.connect_timeout = std::min(options.timeout, kMaxConnectTimeout);
  // Each request's own deadline is what bounds a slow tool; these only must not cut it short.
  target.endpoint.first_byte_timeout = options.timeout;
  target.endpoint.idle_timeout = options.timeout;
  target.endpoint.max_idle_connections = 16;
  target.path = url.encoded_path().empty() ? "/" : std::string(url.encoded_path());
  if (url.has_query()) target.path += "?" + std::string(url.encoded_query());
  return target;
}

McpError from_upstream(net::UpstreamError error, const std::string& url) {
  switch (error) {
    case net::UpstreamError::kTimeout:
      return {McpErrorKind::kTimeout, "no answer in time"};
    case net::UpstreamError::kConnect:
      return {McpErrorKind::kTransport, "cannot connect to " + url};
    default:
      return {McpErrorKind::kTransport,
              "the HTTP exchange failed (" + std::string(net::to_string(error)) + ")"};
  }
}

// "text/event-stream; charset=utf-8" → "text/event-stream"
std::string media_type(std::string_view content_type) {
  content_type = content_type.substr(0, content_type.find(';'));
  while (!content_type.empty() && content_type.back() == ' ') content_type.remove_suffix(1);
  std::string out(content_type);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// (Plain functions: g++ 12 miscompiles braced initializer lists inside coroutines.)
net::Headers session_headers(const std::string& session_id) {
  return {{"Mcp-Session-Id", session_id}};
}

// A POST's headers: JSON in, JSON or SSE out, the session when there is one, and the message's.
net::Headers post_headers(const std::string& session_id, const net::Headers& message_headers) {
  net::Headers headers{{"Content-Type", "application/json"},
                       {"Accept", "application/json, text/event-stream"}};
  if (!session_id.empty()) headers.push_back({"Mcp-Session-Id", session_id});
  headers.insert(headers.end(), message_headers.begin(), message_headers.end());
  return headers;
}

bool answers(const JsonRpcMessage& message, RequestId id) {
  return message.is_response() && message.request_id() == id;
}

class HttpTransport final : public Transport {
 public:
  HttpTransport(asio::io_context& context, HttpOptions options)
      : options_(std::move(options)), target_(parse_url(options_)) {
    if (target_) pool_.emplace(context, target_->endpoint);
  }

  Result<void> open() override {
    if (!pool_) return McpError{McpErrorKind::kTransport, "invalid URL " + options_.url};
    return {};
  }
  bool is_open() const override { return pool_.has_value(); }
  std::uint64_t epoch() const override { return epoch_; }
  bool per_request_stream() const override { return true; }

  asio::awaitable<Result<JsonRpcMessage>> request(RequestId id, OutgoingMessage message,
                                                  Deadline deadline) override {
    auto posted = co_await post(message, deadline);
    if (!posted) co_return std::move(posted).error();
    net::UpstreamExchange& exchange = **posted;
    if (exchange.status() == 202) {
      co_return McpError{McpErrorKind::kProtocol,
                         "the server accepted the request without answering it (HTTP 202)"};
    }
    std::string type = media_type(net::find_header(exchange.headers(), "Content-Type"));
    if (type == "application/json") co_return co_await read_json(exchange, id);
    if (type == "text/event-stream") co_return co_await read_events(exchange, id, message);
    co_return McpError{McpErrorKind::kProtocol,
                       "the server answered with Content-Type \"" + type + "\""};
  }

  asio::awaitable<Result<void>> notify(OutgoingMessage message) override {
    auto posted = co_await post(message, std::chrono::steady_clock::now() + options_.timeout);
    if (!posted) co_return std::move(posted).error();
    std::string ignored;  // read to the end, so the connection can be reused
    co_await (*posted)->read_all(ignored, kMaxErrorBody);
    co_return Result<void>();
  }

  // Ends the session, as a 2025-11-25 client should when it is done.
  asio::awaitable<void> close() override {
    if (!pool_ || session_id_.empty()) co_return;
    net::Headers headers = session_headers(session_id_);
    session_id_.clear();
    auto exchange = pool_->exchange();
    net::UpstreamRequest request{"DELETE", target_->path, &headers, "",
                                 std::chrono::steady_clock::now() + kSessionEndTimeout};
    co_await exchange->start(request);
  }

 private:
  // POSTs one message; on success the exchange has a 2xx head and its body is unread.
  asio::awaitable<Result<std::unique_ptr<net::UpstreamExchange>>> post(
      const OutgoingMessage& message, Deadline deadline) {
    if (!pool_) co_return McpError{McpErrorKind::kTransport, "invalid URL " + options_.url};
    const bool handshake = message.method == "initialize";
    const bool in_session = !handshake && !session_id_.empty();
    net::Headers headers = post_headers(in_session ? session_id_ : "", message.headers);

    auto exchange = pool_->exchange();
    net::UpstreamRequest request{"POST", target_->path, &headers, message.body, deadline};
    if (auto error = co_await exchange->start(request); error != net::UpstreamError::kNone) {
      co_return from_upstream(error, options_.url);
    }
    const int status = exchange->status();
    if (status >= 200 && status < 300) {
      if (handshake) {
        session_id_ = std::string(net::find_header(exchange->headers(), "Mcp-Session-Id"));
      }
      co_return std::move(exchange);
    }
    if (status == 404 && in_session) {
      session_id_.clear();
      ++epoch_;
      co_return McpError{McpErrorKind::kTransport, "the server no longer knows the session", 0,
                         status};
    }
    co_return co_await error_status(*exchange, status);
  }

  // An error status, with the JSON-RPC error its body may carry (a 2026-07-28 server rejects
  // a request it cannot serve with 4xx and a JSON-RPC error).
  static asio::awaitable<McpError> error_status(net::UpstreamExchange& exchange, int status) {
    std::string body;
    co_await exchange.read_all(body, kMaxErrorBody);
    if (auto message = parse_json_rpc(body);
        message && message->kind == JsonRpcMessage::Kind::kError) {
      co_return McpError{McpErrorKind::kServer, message->error.message, message->error.code,
                         status};
    }
    co_return McpError{
        McpErrorKind::kTransport,
        "HTTP " + std::to_string(status) + (body.empty() ? "" : ": " + body.substr(0, 200)), 0,
        status};
  }

  asio::awaitable<Result<JsonRpcMessage>> read_json(net::UpstreamExchange& exchange, RequestId id) {
    std::string body;
    if (auto error = co_await exchange.read_all(body, options_.max_message_bytes);
        error != net::UpstreamError::kNone) {
      co_return from_upstream(error, options_.url);
    }
    auto message = parse_json_rpc(body);
    if (!message) co_return std::move(message).error();
    if (!answers(*message, id)) {
      co_return McpError{McpErrorKind::kProtocol, "the answer is not the response to the request"};
    }
    co_return std::move(message).value();
  }

  asio::awaitable<Result<JsonRpcMessage>> read_events(net::UpstreamExchange& exchange, RequestId id,
                                                      const OutgoingMessage& request) {
    net::SseParser parser(options_.max_message_bytes);
    std::optional<JsonRpcMessage> answer;
    std::vector<JsonRpcMessage> server_requests;
    std::string chunk;
    while (!answer && !exchange.done()) {
      chunk.clear();
      if (auto error = co_await exchange.read_some(chunk); error != net::UpstreamError::kNone) {
        co_return from_upstream(error, options_.url);
      }
      bool ok = parser.feed(chunk, [&](const net::SseEvent& event) {
        if (answer || (!event.event.empty() && event.event != "message")) return;
        auto message = parse_json_rpc(event.data);
        if (!message) return;
        if (answers(*message, id)) {
          answer = std::move(message).value();
        } else if (message->kind == JsonRpcMessage::Kind::kRequest) {
          server_requests.push_back(std::move(message).value());
        }
      });
      if (!ok) {
        co_return McpError{McpErrorKind::kProtocol, "the server sent an event longer than " +
                                                        std::to_string(options_.max_message_bytes) +
                                                        " bytes"};
      }
      for (const JsonRpcMessage& server_request : server_requests) {
        co_await answer_server(server_request, request);
      }
      server_requests.clear();
    }
    if (!answer) {
      co_return McpError{McpErrorKind::kTransport, "the event stream ended before the answer"};
    }
    co_return std::move(*answer);
  }

  // The client offers no capabilities, so a ping is the one request a server may send; the
  // answer goes in a POST of its own, with the headers of the request being answered.
  asio::awaitable<void> answer_server(const JsonRpcMessage& server_request,
                                      const OutgoingMessage& request) {
    OutgoingMessage answer{
        "",
        server_request.method == "ping"
            ? json_rpc_result(server_request.id, {})
            : json_rpc_error(server_request.id, kMethodNotFound,
                             "this client does not offer " + server_request.method),
        request.headers};
    co_await notify(std::move(answer));
  }

  HttpOptions options_;
  std::optional<Target> target_;
  std::optional<net::UpstreamPool> pool_;
  std::string session_id_;
  std::uint64_t epoch_ = 0;
};

}  // namespace

std::unique_ptr<Transport> make_http_transport(asio::io_context& context, HttpOptions options) {
  return std::make_unique<HttpTransport>(context, std::move(options));
}

}  // namespace redline::mcp
