#pragma once
// Model calls Redline makes on a client's behalf: a Responses API turn, a memory extraction, an
// agent's step. Each runs through Gateway::proxy exactly as the client's own POST
// /v1/chat/completions would — the same key, classification, red lines, admission, routing,
// redaction, output checks, settlement and audit record — so no model call made by Redline can
// bypass any of them. Only the answer goes to Redline instead of a socket.
#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "common/openai_error.h"
#include "gateway/caller.h"
#include "net/http_message.h"

namespace redline::policy {
class RedactionVault;
}

namespace redline::gateway {

class Gateway;

// Receives a streamed call's chat.completion.chunk payloads as they arrive.
class ChatChunkSink {
 public:
  virtual ~ChatChunkSink() = default;
  // The stream begins: the gateway's response headers (x-redline-label, x-redline-backend,
  // x-ratelimit-*), before the first chunk.
  virtual void on_headers(const net::Headers& headers) {}
  // One SSE data payload ("[DONE]" and error events are not passed). Returning false ends the
  // call as if its client had left: the upstream request is cancelled.
  virtual boost::asio::awaitable<bool> on_chunk(std::string_view payload) = 0;
};

// Lets another task (a cancel request, a shutdown) stop a call in flight, from any thread.
// Always held by a shared_ptr.
class CallCancellation : public std::enable_shared_from_this<CallCancellation> {
 public:
  // Idempotent. The call stops at its next step: an upstream exchange is cancelled at once.
  void cancel();
  bool cancelled() const { return cancelled_.load(); }

  // Used by the call itself: `on_cancel` runs on `executor` when cancel() is called. Pass {} to
  // stop watching; a cancel already on its way then finds nothing to run.
  void watch(boost::asio::any_io_executor executor, std::function<void()> on_cancel);

 private:
  void run_on_cancel();

  std::atomic<bool> cancelled_{false};
  std::mutex mutex_;
  std::optional<boost::asio::any_io_executor> executor_;
  std::function<void()> on_cancel_;
};

struct ModelCall {
  // The client request the call is made for: its credentials (Authorization, x-api-key), its
  // X-Redline-Classification and its x-request-id are carried over.
  const net::HttpRequest* origin = nullptr;
  // Who the call is for, when established already (a run resuming under its key); then the
  // origin's credentials are not read.
  std::optional<Caller> caller;
  std::string body;        // a chat completions request body
  std::string_view route;  // the route label in metrics and the access log ("responses")
  // Raises the call's classification to at least this label text ("" = no floor), e.g. the label
  // of memory injected into the prompt. Combined with the client's own declaration.
  std::string label_floor;
  ChatChunkSink* sink = nullptr;                   // streamed calls; null = not streamed
  policy::RedactionVault* vault = nullptr;         // a conversation's placeholders, or null
  std::shared_ptr<CallCancellation> cancellation;  // may be null
};

struct ModelCallResult {
  int status = 0;                 // the answer's HTTP status; 499 when cancelled or the sink left
  std::string body;               // the JSON answer or error body (not streamed)
  bool streamed = false;          // a stream began: its chunks went to the sink
  bool completed = false;         // status 200 and, when streamed, the stream ended with [DONE]
  std::optional<ApiError> error;  // why it did not complete, as the client would have seen it
  net::Headers headers;           // the answer's headers (x-redline-label, x-ratelimit-*, ...)
  std::string label;              // the classification the gateway gave the call
  std::string backend;            // who answered
  long tokens_in = 0;
  long tokens_out = 0;
  double cost_usd = 0;  // what the serving backend charges for it
};

// Runs one model call through `gateway`, settles it (usage, budgets, metrics, access log, audit)
// and returns what the client would have received.
boost::asio::awaitable<ModelCallResult> call_model(Gateway& gateway, ModelCall call);

}  // namespace redline::gateway
