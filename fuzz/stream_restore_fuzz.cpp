// Fuzzes placeholder restoration in streams. Model output containing placeholders, prefixes of
// them and look-alikes is cut into SSE chunks at fuzzer-chosen points; whatever the cuts, the
// client must read exactly the output with the vault's placeholders restored, in valid JSON
// chunks. The raw input is also fed as an arbitrary payload, which must never crash.
#include <boost/json.hpp>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "policy/stream_restore.h"

namespace {

namespace json = boost::json;
using redline::policy::RedactionVault;
using redline::policy::StreamRestorer;

enum class Channel { kContent, kToolArguments, kText };

const RedactionVault& test_vault() {
  static const RedactionVault vault = [] {
    RedactionVault built;
    built.placeholder_for("email", "ada@example.com");
    built.placeholder_for("secret", "q\"\\ \xc3\xa9\n");
    built.placeholder_for("n", "x");
    return built;
  }();
  return vault;
}

// Output text with many placeholders, near-misses and brackets, from the fuzzer's bytes.
std::string model_output(std::string_view bytes) {
  std::string text;
  for (unsigned char byte : bytes) {
    switch (byte % 16) {
      case 0:
        text += "[REDACTED_EMAIL_1]";
        break;
      case 1:
        text += "[REDACTED_SECRET_1]";
        break;
      case 2:
        text += "[REDACTED_N_1]";
        break;
      case 3:
        text += "[REDACTED_EMAIL_99]";
        break;
      case 4:
        text += "[REDACTED_";
        break;
      case 5:
        text += "[";
        break;
      case 6:
        text += "]";
        break;
      case 7:
        text += (byte & 0x10) ? "\xc3\xa9" : "\n";
        break;
      default:
        text.push_back(byte >= 0x20 && byte < 0x7f ? static_cast<char>(byte) : 'R');
    }
  }
  return text;
}

std::string chunk(Channel channel, std::int64_t choice, std::string_view text,
                  bool finish = false) {
  json::object entry{{"index", choice}};
  switch (channel) {
    case Channel::kContent:
      entry["delta"] = json::object{{"content", text}};
      break;
    case Channel::kToolArguments:
      entry["delta"] = json::object{
          {"tool_calls",
           json::array{json::object{{"index", 0}, {"function", {{"arguments", text}}}}}}};
      break;
    case Channel::kText:
      entry["text"] = text;
      break;
  }
  entry["finish_reason"] = finish ? json::value("stop") : json::value(nullptr);
  return json::serialize(json::object{
      {"id", "c1"},
      {"object", channel == Channel::kText ? "text_completion" : "chat.completion.chunk"},
      {"created", 1},
      {"model", "m"},
      {"choices", json::array{std::move(entry)}}});
}

// What the client reads on one choice of one channel, concatenated over the payloads.
std::string client_text(const std::vector<std::string>& payloads, Channel channel,
                        std::int64_t choice) {
  std::string text;
  for (const std::string& payload : payloads) {
    if (payload == "[DONE]") continue;
    json::error_code error;
    const json::value parsed = json::parse(payload, error);
    if (error) __builtin_trap();
    for (const json::value& entry : parsed.at("choices").as_array()) {
      if (entry.at("index").as_int64() != choice) continue;
      const json::object& object = entry.as_object();
      if (channel == Channel::kText) {
        if (const json::value* piece = object.if_contains("text")) text += piece->as_string();
        continue;
      }
      const json::value* delta = object.if_contains("delta");
      if (delta == nullptr) continue;
      if (channel == Channel::kContent) {
        if (const json::value* piece = delta->as_object().if_contains("content")) {
          text += piece->as_string();
        }
      } else if (const json::value* calls = delta->as_object().if_contains("tool_calls")) {
        for (const json::value& call : calls->as_array()) {
          text += call.at("function").at("arguments").as_string();
        }
      }
    }
  }
  return text;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const RedactionVault& vault = test_vault();

  // Arbitrary bytes as a payload, with output already held back, and as a whole body.
  {
    StreamRestorer restorer(vault);
    std::vector<std::string> out;
    restorer.on_event(R"({"choices":[{"index":0,"delta":{"content":"a [REDAC"}}]})", out);
    restorer.on_event(input, out);
    const std::size_t before_finish = out.size();
    restorer.finish(out);
    // A chunk Redline adds must be valid JSON whatever the upstream sent before it.
    if (out.size() > before_finish) {
      json::error_code error;
      json::parse(out.back(), error);
      if (error) __builtin_trap();
    }
    redline::policy::restore_response_body(input, vault);
    redline::policy::for_each_output_text(input, [](std::string_view) {});
  }

  if (size < 2) return 0;
  const std::uint8_t mode = data[0];
  const std::size_t cut_count = data[1] % 16;
  if (size < 2 + cut_count) return 0;
  const Channel channel = static_cast<Channel>(mode % 3);
  const bool two_choices = mode & 0x04;
  const bool finish_reason = mode & 0x08;
  const bool done = mode & 0x10;
  const std::string text = model_output(input.substr(2 + cut_count));
  const std::string expected =
      redline::policy::restore_text(text, vault, channel == Channel::kToolArguments);

  // Each cut byte advances the previous cut; choice 1 gets the fragments in reverse order.
  std::vector<std::string> fragments{""};
  std::size_t position = 0;
  for (std::size_t i = 0; i < cut_count; ++i) {
    std::size_t next = std::min(text.size(), position + data[2 + i]);
    // Upstream chunks carry whole UTF-8 characters.
    while (next < text.size() && (static_cast<unsigned char>(text[next]) & 0xc0) == 0x80) ++next;
    fragments.back() = text.substr(position, next - position);
    fragments.emplace_back();
    position = next;
  }
  fragments.back() = text.substr(position);

  StreamRestorer restorer(vault);
  std::vector<std::string> out;
  for (std::size_t i = 0; i < fragments.size(); ++i) {
    restorer.on_event(chunk(channel, 0, fragments[i]), out);
    if (two_choices) restorer.on_event(chunk(channel, 1, fragments[fragments.size() - 1 - i]), out);
  }
  if (finish_reason) {
    restorer.on_event(chunk(channel, 0, "", true), out);
    if (two_choices) restorer.on_event(chunk(channel, 1, "", true), out);
  }
  if (done) {
    restorer.on_event("[DONE]", out);
    if (out.back() != "[DONE]") __builtin_trap();
  } else {
    restorer.finish(out);
  }
  if (client_text(out, channel, 0) != expected) __builtin_trap();
  if (two_choices) {
    std::string reversed;
    for (auto fragment = fragments.rbegin(); fragment != fragments.rend(); ++fragment) {
      reversed += *fragment;
    }
    if (client_text(out, channel, 1) !=
        redline::policy::restore_text(reversed, vault, channel == Channel::kToolArguments)) {
      __builtin_trap();
    }
  }
  return 0;
}
