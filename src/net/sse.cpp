#include "net/sse.h"

namespace redline::net {

void SseParser::take_line() {
  std::string_view line = line_;
  if (line.front() != ':') {
    std::string_view field = line.substr(0, line.find(':'));
    std::string_view value;
    if (field.size() < line.size()) {
      value = line.substr(field.size() + 1);
      if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    }
    if (field == "data") {
      if (has_data_) data_.push_back('\n');
      data_.append(value);
      has_data_ = true;
    } else if (field == "event") {
      event_.assign(value);
    }
    // "id" and "retry" do not change how Redline relays a stream.
  }
  line_.clear();
}

std::string sse_data(std::string_view payload) {
  std::string out;
  out.reserve(payload.size() + 8);
  out.append("data: ").append(payload).append("\n\n");
  return out;
}

}  // namespace redline::net
