#pragma once
// Server-sent events (text/event-stream) framing, per the WHATWG HTML "server-sent events"
// section: events are separated by blank lines; "data:" lines join with '\n'; lines may end in
// \n, \r\n or \r; lines starting with ':' are comments.
#include <string>
#include <string_view>

namespace redline::net {

struct SseEvent {
  std::string_view event;  // "" when the event has no "event:" field
  std::string_view data;
};

// Incremental parser: feed() any split of the stream; each complete event is passed to the
// callback once. Bytes of an unfinished event are kept until the rest arrives, up to
// `max_event_bytes` (a larger event is an error: feed() returns false and the parser stops).
class SseParser {
 public:
  explicit SseParser(std::size_t max_event_bytes = 1 << 20) : max_event_bytes_(max_event_bytes) {}

  template <class OnEvent>
  bool feed(std::string_view bytes, OnEvent&& on_event) {
    if (failed_) return false;
    for (char c : bytes) {
      if (skip_lf_) {
        skip_lf_ = false;
        if (c == '\n') continue;
      }
      if (c == '\r' || c == '\n') {
        skip_lf_ = (c == '\r');
        if (line_.empty()) {
          if (has_data_) on_event(SseEvent{event_, data_});
          event_.clear();
          data_.clear();
          has_data_ = false;
        } else {
          take_line();
        }
        continue;
      }
      line_.push_back(c);
      if (line_.size() + data_.size() > max_event_bytes_) {
        failed_ = true;
        return false;
      }
    }
    return true;
  }

  // True when bytes of an event have been fed but its terminating blank line has not.
  bool in_event() const { return !line_.empty() || has_data_; }

 private:
  void take_line();

  std::size_t max_event_bytes_;
  std::string line_;
  std::string event_;
  std::string data_;
  bool has_data_ = false;
  bool skip_lf_ = false;
  bool failed_ = false;
};

// "data: <payload>\n\n"
std::string sse_data(std::string_view payload);

}  // namespace redline::net
