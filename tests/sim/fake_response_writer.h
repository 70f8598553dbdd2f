#pragma once
// A ResponseWriter that records what a handler does, for driving handlers without sockets.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "net/http_server.h"

namespace redline::sim::testing {

class FakeResponseWriter : public net::ResponseWriter {
 public:
  boost::asio::awaitable<bool> send(net::HttpResponse response) override {
    ++calls;
    if (gone) co_return false;
    this->response = std::move(response);
    co_return true;
  }
  boost::asio::awaitable<bool> begin_stream(int status, net::Headers headers) override {
    ++calls;
    if (gone) co_return false;
    stream_status = status;
    stream_headers = std::move(headers);
    co_return true;
  }
  boost::asio::awaitable<bool> write_chunk(std::string_view data) override {
    ++calls;
    if (gone) co_return false;
    if (chunks_before_client_leaves == 0) {
      disconnect();
      co_return false;
    }
    if (chunks_before_client_leaves > 0) --chunks_before_client_leaves;
    chunks.emplace_back(data);
    co_return true;
  }
  boost::asio::awaitable<bool> end_stream() override {
    ++calls;
    if (gone) co_return false;
    ended = true;
    co_return true;
  }
  bool started() const override { return response.has_value() || stream_status != 0; }
  bool client_gone() const override { return gone; }
  void watch_disconnect(std::function<void()> callback) override {
    on_disconnect = std::move(callback);
  }

  // The client closes its connection.
  void disconnect() {
    gone = true;
    if (on_disconnect) {
      auto callback = on_disconnect;
      callback();
    }
  }

  std::string stream_text() const {
    std::string text;
    for (const auto& chunk : chunks) text += chunk;
    return text;
  }

  std::optional<net::HttpResponse> response;
  int stream_status = 0;
  net::Headers stream_headers;
  std::vector<std::string> chunks;
  bool ended = false;
  bool gone = false;
  int calls = 0;
  int chunks_before_client_leaves = -1;  // >= 0: write_chunk fails after that many chunks
  std::function<void()> on_disconnect;
};

}  // namespace redline::sim::testing
