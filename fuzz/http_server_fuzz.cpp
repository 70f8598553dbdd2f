// Fuzzes the HTTP server's request head and body parsing through a real loopback connection:
// whatever the client sends, the server must not crash, and whatever it answers must start
// with an HTTP/1.1 status line.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <boost/asio/awaitable.hpp>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "net/http_server.h"
#include "net/io_pool.h"

namespace {

using redline::net::HttpRequest;
using redline::net::ResponseWriter;

boost::asio::awaitable<void> answer_body_length(HttpRequest& request, ResponseWriter& writer) {
  redline::net::HttpResponse response;
  response.headers.push_back({"Content-Type", "text/plain"});
  response.body = std::to_string(request.body.size());
  co_await writer.send(std::move(response));
}

// One server for the whole run, on its own thread; it is never torn down (the process exits).
// Held by a static so leak checking sees it as reachable.
struct Fixture {
  redline::net::IoPool pool{1};
  std::unique_ptr<redline::net::HttpServer> server;
  std::uint16_t port = 0;
};

std::uint16_t server_port() {
  static Fixture* fixture = [] {
    auto* created = new Fixture;
    redline::net::ServerLimits limits;
    limits.max_body_bytes = 64 * 1024;
    limits.max_header_bytes = 8 * 1024;
    limits.header_timeout = std::chrono::milliseconds(300);
    limits.body_timeout = std::chrono::milliseconds(300);
    limits.idle_timeout = std::chrono::milliseconds(300);
    limits.write_timeout = std::chrono::milliseconds(300);
    created->server =
        std::make_unique<redline::net::HttpServer>(created->pool, limits, answer_body_length);
    created->server->listen("127.0.0.1", 0);
    created->port = created->server->bound_port();
    std::thread([created] { created->pool.run(); }).detach();
    return created;
  }();
  return fixture->port;
}

void set_timeout(int fd, int option, int millis) {
  timeval tv{};
  tv.tv_sec = millis / 1000;
  tv.tv_usec = (millis % 1000) * 1000;
  setsockopt(fd, SOL_SOCKET, option, &tv, sizeof tv);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::uint16_t port = server_port();
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  set_timeout(fd, SO_RCVTIMEO, 200);
  set_timeout(fd, SO_SNDTIMEO, 200);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    ::close(fd);
    return 0;
  }
  std::size_t sent = 0;
  while (sent < size) {
    ssize_t n = ::send(fd, data + sent, size - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may answer and close before reading everything
    sent += static_cast<std::size_t>(n);
  }
  // End of input: an incomplete request is judged now instead of after the head timeout.
  ::shutdown(fd, SHUT_WR);

  std::string reply;
  char buffer[4096];
  for (;;) {
    ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) break;  // closed, reset or timed out
    reply.append(buffer, static_cast<std::size_t>(n));
    if (reply.size() > (1u << 20)) break;
  }
  ::close(fd);

  if (!reply.empty()) {
    // A partial first read still has to be a prefix of a status line.
    constexpr std::string_view kVersion = "HTTP/1.1 ";
    std::size_t checked = std::min(reply.size(), kVersion.size());
    if (reply.compare(0, checked, kVersion.substr(0, checked)) != 0) __builtin_trap();
    for (std::size_t i = kVersion.size(); i < kVersion.size() + 3 && i < reply.size(); ++i) {
      if (!std::isdigit(static_cast<unsigned char>(reply[i]))) __builtin_trap();
    }
  }
  return 0;
}
