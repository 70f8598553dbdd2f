#include "gateway/model_call.h"

#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <vector>

#include "gateway/gateway.h"
#include "net/sse.h"
#include "policy/label.h"
#include "policy/red_line_policy.h"

namespace redline::gateway {

namespace asio = boost::asio;

void CallCancellation::cancel() {
  if (cancelled_.exchange(true)) return;
  std::lock_guard lock(mutex_);
  // The handler is looked up when it runs, on the call's own thread: by then the call may have
  // stopped watching, and must not be called back.
  if (executor_) asio::post(*executor_, [self = shared_from_this()] { self->run_on_cancel(); });
}

void CallCancellation::run_on_cancel() {
  std::function<void()> on_cancel;
  {
    std::lock_guard lock(mutex_);
    on_cancel = on_cancel_;
  }
  if (on_cancel) on_cancel();
}

void CallCancellation::watch(asio::any_io_executor executor, std::function<void()> on_cancel) {
  std::lock_guard lock(mutex_);
  if (executor) executor_ = std::move(executor);
  on_cancel_ = std::move(on_cancel);
}

namespace {

// The error an OpenAI-style error body describes; a generic one for anything else.
ApiError error_from_body(int status, std::string_view body) {
  boost::system::error_code ec;
  const boost::json::value parsed = boost::json::parse(body, ec);
  const boost::json::object* error = nullptr;
  if (!ec && parsed.is_object()) {
    if (const auto* member = parsed.as_object().if_contains("error");
        member && member->is_object()) {
      error = &member->as_object();
    }
  }
  auto text = [&](std::string_view key) -> std::string {
    if (error == nullptr) return {};
    const auto* value = error->if_contains(key);
    return value && value->is_string() ? std::string(value->as_string()) : std::string();
  };
  ApiError result = make_error(status, text("message"), text("param"), text("code"));
  if (result.message.empty()) {
    result.message = "The model call failed with status " + std::to_string(status) + ".";
  }
  if (auto type = text("type"); !type.empty()) result.type = std::move(type);
  return result;
}

// The gateway writes to this instead of a socket: whole answers are kept, stream events are
// handed to the sink one payload at a time.
class CapturingWriter : public net::ResponseWriter {
 public:
  CapturingWriter(ModelCallResult& result, ChatChunkSink* sink,
                  std::shared_ptr<CallCancellation> cancellation)
      : result_(result), sink_(sink), cancellation_(std::move(cancellation)) {}

  asio::awaitable<bool> send(net::HttpResponse response) override {
    started_ = true;
    result_.status = response.status;
    result_.headers = std::move(response.headers);
    result_.body = std::move(response.body);
    co_return !client_gone();
  }

  asio::awaitable<bool> begin_stream(int status, net::Headers headers) override {
    started_ = true;
    result_.status = status;
    result_.headers = std::move(headers);
    result_.streamed = true;
    if (sink_ != nullptr) sink_->on_headers(result_.headers);
    co_return !client_gone();
  }

  asio::awaitable<bool> write_chunk(std::string_view data) override {
    std::vector<std::string> payloads;
    const bool framed = parser_.feed(data, [&](const net::SseEvent& event) {
      if (event.data == "[DONE]") {
        saw_done_ = true;
      } else if (event.data.starts_with("{\"error\"")) {
        stream_error_ = std::string(event.data);
      } else {
        payloads.emplace_back(event.data);
      }
    });
    if (!framed) {
      sink_gone_ = true;
      co_return false;
    }
    for (const std::string& payload : payloads) {
      if (sink_ == nullptr || !co_await sink_->on_chunk(payload)) {
        sink_gone_ = true;
        fire_disconnect();
        co_return false;
      }
    }
    co_return !client_gone();
  }

  asio::awaitable<bool> end_stream() override { co_return !client_gone(); }
  bool started() const override { return started_; }
  bool client_gone() const override {
    return sink_gone_ || (cancellation_ && cancellation_->cancelled());
  }

  void watch_disconnect(std::function<void()> on_disconnect) override {
    on_disconnect_ = std::move(on_disconnect);
  }

  // Arms the cancellation: cancel() runs the gateway's disconnect handler on this call's thread.
  void arm(asio::any_io_executor executor) {
    if (!cancellation_) return;
    cancellation_->watch(std::move(executor), [this] { fire_disconnect(); });
  }
  void disarm() {
    if (cancellation_) cancellation_->watch(asio::any_io_executor(), {});
  }

  bool saw_done() const { return saw_done_; }
  const std::string& stream_error() const { return stream_error_; }

 private:
  void fire_disconnect() {
    if (!on_disconnect_) return;
    auto callback = on_disconnect_;
    callback();
  }

  ModelCallResult& result_;
  ChatChunkSink* sink_;
  std::shared_ptr<CallCancellation> cancellation_;
  net::SseParser parser_;
  std::function<void()> on_disconnect_;
  std::string stream_error_;
  bool started_ = false;
  bool saw_done_ = false;
  bool sink_gone_ = false;
};

// The internal request: the client's credentials and declarations, the call's body.
net::HttpRequest internal_request(const ModelCall& call, const policy::LabelLattice& lattice) {
  net::HttpRequest request;
  request.method = "POST";
  request.target = "/v1/chat/completions";
  request.body = call.body;
  if (call.origin != nullptr) request.remote_address = call.origin->remote_address;
  std::string declared;
  if (call.origin != nullptr) {
    for (const net::Header& header : call.origin->headers) {
      if (net::iequals(header.name, "authorization") || net::iequals(header.name, "x-api-key") ||
          net::iequals(header.name, "x-request-id")) {
        request.headers.push_back(header);
      } else if (net::iequals(header.name, "x-redline-classification")) {
        declared = header.value;
      }
    }
  }
  if (!call.label_floor.empty()) {
    // A floor that does not parse is the caller's bug; a declaration that does not parse is the
    // client's, and stays for the gateway to answer with a 400.
    auto floor = lattice.parse(call.label_floor);
    auto client =
        declared.empty() ? std::optional<policy::Label>(policy::Label{}) : lattice.parse(declared);
    if (floor && client) declared = lattice.format(policy::least_upper_bound(*floor, *client));
  }
  if (!declared.empty()) request.headers.push_back({"X-Redline-Classification", declared});
  request.headers.push_back({"Content-Type", "application/json"});
  return request;
}

}  // namespace

asio::awaitable<ModelCallResult> call_model(Gateway& gateway, ModelCall call) {
  ModelCallResult result;
  net::HttpRequest request = internal_request(call, gateway.table()->policy().lattice());
  RequestContext context;
  context.request_id = std::string(request.header("x-request-id"));
  if (context.request_id.empty()) context.request_id = new_request_id();
  context.route = call.route;
  context.session_vault = call.vault;
  context.caller = std::move(call.caller);

  CapturingWriter writer(result, call.sink, call.cancellation);
  writer.arm(co_await asio::this_coro::executor);
  if (call.cancellation && call.cancellation->cancelled()) {
    context.status = 499;
    context.error = "cancelled before the call started";
  } else {
    co_await gateway.proxy(ApiKind::kChatCompletions, request, writer, context);
  }
  writer.disarm();
  gateway.settle(request, context);

  result.label = context.label;
  result.backend = context.backend;
  result.tokens_in = context.tokens_in;
  result.tokens_out = context.tokens_out;
  result.cost_usd = context.cost_usd;
  if (context.status == 499 || writer.client_gone()) {
    result.status = 499;
    result.error = make_error(499, "The call was cancelled.", "", "cancelled");
    co_return result;
  }
  if (!result.streamed) {
    result.completed = result.status == 200;
    if (!result.completed) result.error = error_from_body(result.status, result.body);
    co_return result;
  }
  if (!writer.stream_error().empty()) {
    const int status = context.status >= 400 ? context.status : 502;
    result.error = error_from_body(status, writer.stream_error());
  } else if (!writer.saw_done()) {
    result.error = make_error(502, "The model's stream ended before it was complete.", "",
                              "upstream_stream_interrupted");
  }
  result.completed = result.status == 200 && !result.error;
  co_return result;
}

}  // namespace redline::gateway
