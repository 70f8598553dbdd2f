// The simulator behind a real HttpServer, driven over loopback TCP.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <chrono>
#include <thread>

#include "net/http_server.h"
#include "net/io_pool.h"
#include "sim/simulator.h"

namespace redline::sim {
namespace {

namespace json = boost::json;
using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// A blocking loopback client; every read times out, so a broken server fails the test.
class Client {
 public:
  explicit Client(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    timeval timeout{5, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  }
  ~Client() { ::close(fd_); }

  bool connected() const { return connected_; }

  void send_request(std::string_view method, std::string_view target, std::string_view body,
                    std::string_view extra_headers = {}) {
    std::string request = std::string(method) + " " + std::string(target) +
                          " HTTP/1.1\r\nHost: sim\r\nConnection: close\r\n" +
                          std::string(extra_headers);
    if (!body.empty() || method == "POST") {
      request +=
          "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
          "\r\n";
    }
    request += "\r\n";
    request += body;
    ASSERT_EQ(::send(fd_, request.data(), request.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(request.size()));
  }

  // Everything until the server closes the connection.
  std::string read_all() {
    std::string data;
    char buffer[4096];
    for (;;) {
      ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
      if (n <= 0) break;
      data.append(buffer, static_cast<std::size_t>(n));
    }
    return data;
  }

  std::string read_some() {
    char buffer[4096];
    ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
    return n > 0 ? std::string(buffer, static_cast<std::size_t>(n)) : std::string();
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

std::string body_of(const std::string& response) {
  std::size_t end = response.find("\r\n\r\n");
  return end == std::string::npos ? std::string() : response.substr(end + 4);
}

class SimServerTest : public ::testing::Test {
 protected:
  void start(ModelProfile profile) {
    SimConfig config;
    config.name = "e2e";
    profile.name = "*";
    config.models.push_back(profile);
    simulator_ = std::make_unique<Simulator>(config);
    pool_ = std::make_unique<net::IoPool>(2);
    server_ = std::make_unique<net::HttpServer>(*pool_, net::ServerLimits{}, simulator_->handler());
    server_->listen("127.0.0.1", 0);
    port_ = server_->bound_port();
    runner_ = std::thread([this] { pool_->run(); });
  }

  void TearDown() override {
    if (pool_) pool_->stop();
    if (runner_.joinable()) runner_.join();
    server_.reset();
    pool_.reset();
  }

  std::string exchange(std::string_view method, std::string_view target, std::string_view body = {},
                       std::string_view headers = {}) {
    Client client(port_);
    EXPECT_TRUE(client.connected());
    client.send_request(method, target, body, headers);
    return client.read_all();
  }

  // Stats change on the server's threads; wait a little for them.
  bool wait_for(const std::function<bool(const SimStats&)>& condition) {
    for (int i = 0; i < 200; ++i) {
      if (condition(simulator_->stats())) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
  }

  std::unique_ptr<Simulator> simulator_;
  std::unique_ptr<net::IoPool> pool_;
  std::unique_ptr<net::HttpServer> server_;
  std::thread runner_;
  std::uint16_t port_ = 0;
};

constexpr std::string_view kChat =
    R"({"model":"m","messages":[{"role":"user","content":"Hello over TCP"}]})";
constexpr std::string_view kStreamChat =
    R"({"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Hello over TCP"}]})";

TEST_F(SimServerTest, ChatCompletionOverHttp) {
  start({});
  std::string response = exchange("POST", "/v1/chat/completions", kChat);
  EXPECT_THAT(response, StartsWith("HTTP/1.1 200"));
  json::value body = json::parse(body_of(response));
  EXPECT_EQ(body.at("object"), "chat.completion");
  EXPECT_EQ(body.at("usage").at("completion_tokens"), 16);
  // The same request again gets the same content.
  json::value again = json::parse(body_of(exchange("POST", "/v1/chat/completions", kChat)));
  EXPECT_EQ(again.at("choices"), body.at("choices"));

  json::value stats = json::parse(body_of(exchange("GET", "/sim/stats")));
  EXPECT_EQ(stats.at("completed"), 2);
  EXPECT_EQ(stats.at("by_model").at("m"), 2);
}

TEST_F(SimServerTest, StreamOverHttpEndsWithDone) {
  ModelProfile profile;
  profile.tokens_per_second = 2000;
  start(profile);
  std::string response = exchange("POST", "/v1/chat/completions", kStreamChat);
  EXPECT_THAT(response, StartsWith("HTTP/1.1 200"));
  EXPECT_THAT(response, HasSubstr("text/event-stream"));
  EXPECT_THAT(response, HasSubstr(R"("delta":{"role":"assistant")"));
  EXPECT_THAT(response, HasSubstr(R"("choices":[],"usage":)"));
  EXPECT_THAT(response, HasSubstr("data: [DONE]\n\n"));
  // The chunked body is complete.
  EXPECT_THAT(response, EndsWith("0\r\n\r\n"));
}

TEST_F(SimServerTest, DisconnectMidStreamBreaksTheConnection) {
  ModelProfile profile;
  profile.output_tokens = 20;
  profile.failures.disconnect_mid_stream = 1.0;
  start(profile);
  std::string response = exchange("POST", "/v1/chat/completions", kStreamChat);
  EXPECT_THAT(response, StartsWith("HTTP/1.1 200"));
  EXPECT_THAT(response, HasSubstr(R"("delta":{"content":)"));
  EXPECT_THAT(response, Not(HasSubstr("[DONE]")));
  EXPECT_THAT(response, Not(EndsWith("0\r\n\r\n")));

  // Non-streaming: headers of a body that never completes, then the connection closes.
  std::string whole = exchange("POST", "/v1/chat/completions", kChat);
  EXPECT_THAT(whole, Not(HasSubstr("chat.completion")));
  EXPECT_THAT(whole, Not(EndsWith("0\r\n\r\n")));
  EXPECT_EQ(simulator_->stats().failures_disconnect, 2u);
}

TEST_F(SimServerTest, RateLimitOverHttpCarriesRetryAfter) {
  ModelProfile profile;
  profile.failures.rate_limit_429 = 1.0;
  profile.failures.retry_after_s = 4;
  start(profile);
  std::string response = exchange("POST", "/v1/chat/completions", kChat);
  EXPECT_THAT(response, StartsWith("HTTP/1.1 429"));
  EXPECT_THAT(response, HasSubstr("Retry-After: 4\r\n"));
  EXPECT_EQ(json::parse(body_of(response)).at("error").at("type"), "rate_limit_error");
}

TEST_F(SimServerTest, ClientHangingUpCancelsTheRequest) {
  ModelProfile profile;
  profile.ttft = {10000, 0};
  start(profile);
  {
    Client client(port_);
    ASSERT_TRUE(client.connected());
    client.send_request("POST", "/v1/chat/completions", kChat);
    ASSERT_TRUE(wait_for([](const SimStats& stats) { return stats.in_flight == 1; }));
  }
  EXPECT_TRUE(
      wait_for([](const SimStats& stats) { return stats.cancelled == 1 && stats.in_flight == 0; }));
}

TEST_F(SimServerTest, TimeoutNeverAnswers) {
  ModelProfile profile;
  profile.failures.timeout = 1.0;
  start(profile);
  Client client(port_);
  ASSERT_TRUE(client.connected());
  client.send_request("POST", "/v1/chat/completions", kChat);
  ASSERT_TRUE(wait_for([](const SimStats& stats) { return stats.failures_timeout == 1; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(simulator_->stats().in_flight, 1u);
}

}  // namespace
}  // namespace redline::sim
