#pragma once
// Blocking loopback client sockets for driving the server and client under test over real TCP.
// Every read has a timeout, so a test that goes wrong fails instead of hanging.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

namespace redline::net::testing {

inline void set_read_timeout(int fd, std::chrono::milliseconds timeout) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

// A connected client socket; closes on destruction.
class ClientSocket {
 public:
  explicit ClientSocket(std::uint16_t port,
                        std::chrono::milliseconds timeout = std::chrono::milliseconds(2000)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    set_read_timeout(fd_, timeout);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  }
  ClientSocket(const ClientSocket&) = delete;
  ClientSocket& operator=(const ClientSocket&) = delete;
  ~ClientSocket() { close(); }

  bool connected() const { return connected_; }
  int fd() const { return fd_; }

  bool send(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  void shutdown_write() { ::shutdown(fd_, SHUT_WR); }

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  // Reads more bytes into the buffer; false on EOF, error or timeout.
  bool fill() {
    char chunk[4096];
    ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) {
      eof_ = (n == 0);
      return false;
    }
    buffer_.append(chunk, static_cast<std::size_t>(n));
    return true;
  }

  // Everything until the peer closes (or the read times out).
  std::string read_to_end() {
    while (fill()) {
    }
    std::string all = std::move(buffer_);
    buffer_.clear();
    return all;
  }

  // The next `count` bytes, or nullopt when the connection ends first.
  std::optional<std::string> read_exactly(std::size_t count) {
    while (buffer_.size() < count) {
      if (!fill()) return std::nullopt;
    }
    std::string out = buffer_.substr(0, count);
    buffer_.erase(0, count);
    return out;
  }

  // Bytes up to and including `delimiter`.
  std::optional<std::string> read_until(std::string_view delimiter) {
    for (;;) {
      auto at = buffer_.find(delimiter);
      if (at != std::string::npos) return read_exactly(at + delimiter.size());
      if (!fill()) return std::nullopt;
    }
  }

  // True when the last failed read saw an orderly close.
  bool saw_eof() const { return eof_; }
  const std::string& buffered() const { return buffer_; }

 private:
  int fd_ = -1;
  bool connected_ = false;
  bool eof_ = false;
  std::string buffer_;
};

// A response as the client saw it; body already de-chunked.
struct ClientResponse {
  int status = 0;
  std::string head;
  std::string body;
  bool chunked = false;
  bool complete = false;  // the body ended as framed (Content-Length reached or 0-chunk seen)

  bool has_header_line(std::string_view line) const {
    return head.find(std::string(line) + "\r\n") != std::string::npos;
  }
};

inline std::optional<std::size_t> content_length_of(std::string_view head) {
  constexpr std::string_view kName = "\r\nContent-Length: ";
  auto at = head.find(kName);
  if (at == std::string_view::npos) return std::nullopt;
  return std::strtoull(head.data() + at + kName.size(), nullptr, 10);
}

// Reads one response: the head, then a Content-Length or chunked body.
inline std::optional<ClientResponse> read_response(ClientSocket& socket) {
  auto head = socket.read_until("\r\n\r\n");
  if (!head || head->rfind("HTTP/1.1 ", 0) != 0 || head->size() < 12) return std::nullopt;
  ClientResponse response;
  response.head = *head;
  response.status = std::atoi(head->c_str() + 9);
  if (head->find("\r\nTransfer-Encoding: chunked\r\n") != std::string::npos) {
    response.chunked = true;
    for (;;) {
      auto size_line = socket.read_until("\r\n");
      if (!size_line) return response;
      std::size_t size = std::strtoull(size_line->c_str(), nullptr, 16);
      if (size == 0) {
        response.complete = socket.read_exactly(2).has_value();
        return response;
      }
      auto data = socket.read_exactly(size + 2);
      if (!data) return response;
      response.body.append(*data, 0, size);
    }
  }
  std::size_t length = content_length_of(*head).value_or(0);
  auto body = socket.read_exactly(length);
  if (!body) return response;
  response.body = *body;
  response.complete = true;
  return response;
}

}  // namespace redline::net::testing
