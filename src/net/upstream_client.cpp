#include "net/upstream_client.h"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <optional>
#include <vector>

namespace redline::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
// Upstream response heads are small; bounding the read buffer bounds memory per stream.
constexpr std::size_t kMaxBufferedBytes = 64 * 1024;
constexpr std::size_t kReadChunk = 16 * 1024;

std::string_view to_string(UpstreamError error) {
  switch (error) {
    case UpstreamError::kNone:
      return "none";
    case UpstreamError::kConnect:
      return "connect";
    case UpstreamError::kTimeout:
      return "timeout";
    case UpstreamError::kProtocol:
      return "protocol";
    case UpstreamError::kClosed:
      return "closed";
    case UpstreamError::kCancelled:
      return "cancelled";
  }
  return "unknown";
}

namespace {

struct Connection {
  std::optional<beast::tcp_stream> plain;
  std::optional<beast::ssl_stream<beast::tcp_stream>> secure;
  beast::flat_buffer buffer{kMaxBufferedBytes};
  std::chrono::steady_clock::time_point idle_since;
  bool reused = false;

  beast::tcp_stream& lowest() { return secure ? beast::get_lowest_layer(*secure) : *plain; }
};

// Runs `op` on whichever stream the connection has.
template <class Op>
auto with_stream(Connection& c, Op&& op) {
  return c.secure ? op(*c.secure) : op(*c.plain);
}

UpstreamError classify(const boost::system::error_code& ec) {
  if (ec == beast::error::timeout) return UpstreamError::kTimeout;
  if (ec == asio::error::operation_aborted) return UpstreamError::kCancelled;
  if (ec == http::error::end_of_stream || ec == asio::error::eof ||
      ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
      ec == http::error::partial_message || ec == ssl::error::stream_truncated) {
    return UpstreamError::kClosed;
  }
  return UpstreamError::kProtocol;
}

}  // namespace

struct UpstreamPool::State {
  asio::io_context& context;
  UpstreamEndpoint endpoint;
  std::optional<ssl::context> tls;
  std::vector<tcp::endpoint> resolved;
  std::vector<std::unique_ptr<Connection>> idle;
  std::string host_header;

  State(asio::io_context& c, UpstreamEndpoint e) : context(c), endpoint(std::move(e)) {
    host_header = endpoint.host;
    bool default_port = endpoint.port == (endpoint.tls ? 443 : 80);
    if (!default_port) host_header += ":" + std::to_string(endpoint.port);
    if (endpoint.tls) {
      tls.emplace(ssl::context::tls_client);
      tls->set_verify_mode(ssl::verify_peer);
      boost::system::error_code ec;
      if (endpoint.ca_file.empty()) {
        tls->set_default_verify_paths(ec);
      } else {
        tls->load_verify_file(endpoint.ca_file, ec);
      }
    }
  }

  std::unique_ptr<Connection> take_idle() {
    auto now = std::chrono::steady_clock::now();
    while (!idle.empty()) {
      auto connection = std::move(idle.back());
      idle.pop_back();
      // The upstream may have closed a long-idle connection; do not bet a request on it.
      if (now - connection->idle_since < endpoint.idle_timeout) {
        connection->reused = true;
        return connection;
      }
    }
    return nullptr;
  }

  void give_back(std::unique_ptr<Connection> connection) {
    if (idle.size() >= endpoint.max_idle_connections) return;
    connection->idle_since = std::chrono::steady_clock::now();
    connection->lowest().expires_never();
    idle.push_back(std::move(connection));
  }

  asio::awaitable<std::pair<UpstreamError, std::unique_ptr<Connection>>> connect() {
    auto connection = std::make_unique<Connection>();
    if (resolved.empty()) {
      tcp::resolver resolver(context);
      auto [ec, results] =
          co_await resolver.async_resolve(endpoint.host, std::to_string(endpoint.port), kNoThrow);
      if (ec) co_return std::pair{UpstreamError::kConnect, nullptr};
      for (const auto& entry : results) resolved.push_back(entry.endpoint());
    }
    beast::tcp_stream* lowest;
    if (tls) {
      connection->secure.emplace(context, *tls);
      lowest = &beast::get_lowest_layer(*connection->secure);
    } else {
      connection->plain.emplace(context);
      lowest = &*connection->plain;
    }
    lowest->expires_after(endpoint.connect_timeout);
    auto [ec, ep] = co_await lowest->async_connect(resolved, kNoThrow);
    if (ec) {
      resolved.clear();  // resolve again next time: the address may have changed
      co_return std::pair{
          ec == beast::error::timeout ? UpstreamError::kTimeout : UpstreamError::kConnect, nullptr};
    }
    lowest->socket().set_option(tcp::no_delay(true));
    if (tls) {
      auto& stream = *connection->secure;
      SSL_set_tlsext_host_name(stream.native_handle(), endpoint.host.c_str());
      stream.set_verify_callback(ssl::host_name_verification(endpoint.host));
      auto [hs_ec] = co_await stream.async_handshake(ssl::stream_base::client, kNoThrow);
      if (hs_ec) {
        co_return std::pair{
            hs_ec == beast::error::timeout ? UpstreamError::kTimeout : UpstreamError::kConnect,
            nullptr};
      }
    }
    co_return std::pair{UpstreamError::kNone, std::move(connection)};
  }
};

namespace {

class PooledExchange final : public UpstreamExchange {
 public:
  explicit PooledExchange(std::shared_ptr<UpstreamPool::State> pool) : pool_(std::move(pool)) {}

  ~PooledExchange() override {
    if (connection_ && parser_ && parser_->is_done() && parser_->keep_alive() && !cancelled_) {
      pool_->give_back(std::move(connection_));
    }
  }

  asio::awaitable<UpstreamError> start(const UpstreamRequest& request) override {
    deadline_ = request.deadline;
    std::string head = serialize_head(request);
    // A pooled connection the upstream has quietly closed fails before any response byte;
    // that request never reached the upstream, so one fresh connection may try again.
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (cancelled_) co_return UpstreamError::kCancelled;
      connection_ = pool_->take_idle();
      if (!connection_) {
        auto [error, fresh] = co_await pool_->connect();
        if (cancelled_) co_return UpstreamError::kCancelled;
        if (error != UpstreamError::kNone) co_return error;
        connection_ = std::move(fresh);
      }
      bool reused = connection_->reused;
      UpstreamError error = co_await send_and_read_head(head, request.body);
      if (error == UpstreamError::kClosed && reused) {
        connection_.reset();
        continue;
      }
      co_return error;
    }
    co_return UpstreamError::kClosed;
  }

  int status() const override { return status_; }
  const Headers& headers() const override { return headers_; }
  bool done() const override { return parser_ && parser_->is_done(); }

  asio::awaitable<UpstreamError> read_some(std::string& out) override {
    if (cancelled_) co_return UpstreamError::kCancelled;
    if (!parser_ || parser_->is_done()) co_return UpstreamError::kNone;
    // Size the read to what is expected: growing `out` by a fixed large chunk would zero-fill
    // and allocate far more than a typical answer needs.
    std::size_t want = kReadChunk;
    if (auto remaining = parser_->content_length_remaining(); remaining && *remaining > 0) {
      want = std::min<std::size_t>(*remaining, kReadChunk);
    } else {
      want = std::clamp<std::size_t>(connection_->buffer.size(), 2048, kReadChunk);
    }
    std::size_t old_size = out.size();
    out.resize(old_size + want);
    auto& body = parser_->get().body();
    body.data = out.data() + old_size;
    body.size = want;
    arm_timer(pool_->endpoint.idle_timeout);
    auto [ec, n] = co_await with_stream(*connection_, [&](auto& stream) {
      return http::async_read_some(stream, connection_->buffer, *parser_, kNoThrow);
    });
    out.resize(old_size + (want - body.size));
    if (ec == http::error::need_buffer) ec = {};
    if (cancelled_) co_return UpstreamError::kCancelled;
    if (ec) co_return classify(ec);
    co_return UpstreamError::kNone;
  }

  asio::awaitable<UpstreamError> read_all(std::string& out, std::size_t limit) override {
    while (!done()) {
      UpstreamError error = co_await read_some(out);
      if (error != UpstreamError::kNone) co_return error;
      if (out.size() > limit) co_return UpstreamError::kProtocol;
    }
    co_return UpstreamError::kNone;
  }

  void cancel() override {
    cancelled_ = true;
    if (connection_) {
      boost::system::error_code ignored;
      connection_->lowest().socket().cancel(ignored);
      connection_->lowest().socket().close(ignored);
    }
  }

 private:
  // The next operation's timeout, never past the exchange's overall deadline.
  void arm_timer(std::chrono::milliseconds timeout) {
    auto now = std::chrono::steady_clock::now();
    auto until = deadline_ - now > timeout ? now + timeout : deadline_;
    connection_->lowest().expires_at(until);
  }

  std::string serialize_head(const UpstreamRequest& request) const {
    std::string head;
    head.reserve(512);
    head.append(request.method).append(" ").append(request.target).append(" HTTP/1.1\r\n");
    head.append("Host: ").append(pool_->host_header).append("\r\n");
    if (request.headers) {
      for (const auto& h : *request.headers) {
        head.append(h.name).append(": ").append(h.value).append("\r\n");
      }
    }
    if (!request.body.empty() || request.method == "POST") {
      head.append("Content-Length: ").append(std::to_string(request.body.size())).append("\r\n");
    }
    head.append("\r\n");
    return head;
  }

  asio::awaitable<UpstreamError> send_and_read_head(const std::string& head,
                                                    std::string_view body) {
    arm_timer(pool_->endpoint.first_byte_timeout);
    std::array<asio::const_buffer, 2> buffers{asio::buffer(head), asio::buffer(body)};
    auto [write_ec, written] = co_await with_stream(
        *connection_, [&](auto& stream) { return asio::async_write(stream, buffers, kNoThrow); });
    if (cancelled_) co_return UpstreamError::kCancelled;
    if (write_ec) co_return classify(write_ec);

    parser_.emplace();
    parser_->body_limit(boost::none);
    parser_->header_limit(32 * 1024);
    auto [read_ec, n] = co_await with_stream(*connection_, [&](auto& stream) {
      return http::async_read_header(stream, connection_->buffer, *parser_, kNoThrow);
    });
    if (cancelled_) co_return UpstreamError::kCancelled;
    if (read_ec) co_return classify(read_ec);
    const auto& message = parser_->get();
    status_ = static_cast<int>(message.result_int());
    headers_.clear();
    for (const auto& field : message) {
      headers_.push_back({std::string(field.name_string()), std::string(field.value())});
    }
    co_return UpstreamError::kNone;
  }

  std::shared_ptr<UpstreamPool::State> pool_;
  std::unique_ptr<Connection> connection_;
  std::optional<http::response_parser<http::buffer_body>> parser_;
  int status_ = 0;
  Headers headers_;
  bool cancelled_ = false;
  std::chrono::steady_clock::time_point deadline_ = std::chrono::steady_clock::time_point::max();
};

}  // namespace

UpstreamPool::UpstreamPool(asio::io_context& context, UpstreamEndpoint endpoint)
    : state_(std::make_shared<State>(context, std::move(endpoint))) {}

UpstreamPool::~UpstreamPool() = default;

std::unique_ptr<UpstreamExchange> UpstreamPool::exchange() {
  return std::make_unique<PooledExchange>(state_);
}

const UpstreamEndpoint& UpstreamPool::endpoint() const { return state_->endpoint; }
std::size_t UpstreamPool::idle_connections() const { return state_->idle.size(); }

}  // namespace redline::net
