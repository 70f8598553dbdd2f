// Fuzzes the Responses API translation: a request body that parses must build a chat completions
// body that is a JSON object, and any sequence of upstream chunk payloads (the input split at
// newlines) must translate into well-framed events whose data is JSON naming the event's type,
// numbered from 0 with no gaps.
#include <boost/json/parse.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "agents/responses_format.h"

namespace {

using redline::agents::IdSource;
using redline::agents::ResponsesRequest;

void check(bool condition) {
  if (!condition) __builtin_trap();
}

IdSource counting_ids() {
  auto counter = std::make_shared<int>(0);
  return [counter](std::string_view prefix) {
    return std::string(prefix) + "_" + std::to_string(++*counter);
  };
}

bool is_json_object(std::string_view text) {
  boost::system::error_code ec;
  boost::json::value value = boost::json::parse(text, ec);
  return !ec && value.is_object();
}

void fuzz_request(std::string_view body) {
  auto parsed = redline::agents::parse_responses_request(body, counting_ids());
  if (!parsed.request) {
    check(parsed.error.status == 400 && !parsed.error.message.empty());
    return;
  }
  const ResponsesRequest& request = *parsed.request;
  check(is_json_object(redline::agents::build_chat_body(request, request.input, "", false)));
  check(is_json_object(redline::agents::build_chat_body(request, request.input, "memory", true)));
}

// "event: <type>\ndata: <json>\n\n" blocks, the data an object of that type, numbered in order.
void check_events(std::string_view sse, std::int64_t next_sequence) {
  while (!sse.empty()) {
    std::size_t end = sse.find("\n\n");
    check(end != std::string_view::npos);
    std::string_view block = sse.substr(0, end);
    sse.remove_prefix(end + 2);
    std::size_t newline = block.find('\n');
    check(newline != std::string_view::npos && block.substr(0, 7) == "event: ");
    std::string_view type = block.substr(7, newline - 7);
    std::string_view data = block.substr(newline + 1);
    check(data.substr(0, 6) == "data: ");
    boost::system::error_code ec;
    boost::json::value event = boost::json::parse(data.substr(6), ec);
    check(!ec && event.is_object());
    const boost::json::value* event_type = event.get_object().if_contains("type");
    check(event_type != nullptr && event_type->is_string() && event_type->get_string() == type);
    const boost::json::value* sequence = event.get_object().if_contains("sequence_number");
    check(sequence != nullptr && sequence->is_int64() && sequence->get_int64() == next_sequence);
    ++next_sequence;
  }
}

void fuzz_stream(std::string_view input) {
  static const ResponsesRequest request =
      *redline::agents::parse_responses_request(R"({"model":"m","input":"hi","stream":true})",
                                                counting_ids())
           .request;
  redline::agents::ResponseState state;
  state.id = "resp_1";
  redline::agents::ResponsesStreamTranslator translator(request, state, counting_ids());
  // The input's length picks how the stream ends, so both endings see every kind of history.
  bool fails = input.size() % 2 == 1;
  std::string out;
  translator.begin(out);
  while (!input.empty()) {
    std::size_t newline = input.find('\n');
    translator.on_chunk(input.substr(0, newline), out);
    input.remove_prefix(newline == std::string_view::npos ? input.size() : newline + 1);
  }
  if (fails) {
    translator.fail(redline::make_error(502, "upstream failed"), out);
  } else {
    translator.finish(out);
  }
  check_events(out, 0);
  const std::string& status = translator.state().status;
  check(fails ? status == "failed" : status == "completed" || status == "incomplete");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  fuzz_request(input);
  fuzz_stream(input);
  redline::agents::output_from_chat_completion(input, counting_ids());
  return 0;
}
