// Fuzzes the inbound request parser for every API kind, and checks that splicing an upstream
// model name into an accepted body changes only the model token.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "gateway/request_parse.h"
#include "quota/token_estimate.h"

namespace {

using redline::gateway::ApiKind;
using redline::gateway::ParsedRequest;

// Needs escaping, so the splice must write a proper JSON string.
constexpr std::string_view kUpstreamModel = "up\"stream\\model\n";

void check(bool condition) {
  if (!condition) __builtin_trap();
}

void fuzz_kind(ApiKind kind, std::string_view input) {
  std::string body(input);
  auto result = redline::gateway::parse_request(kind, body, 2048);
  check(body == input);  // the parser may grow capacity, never content
  if (!result.request) {
    check(result.error.status == 400);
    return;
  }
  const ParsedRequest& request = *result.request;
  // Budgets reserve with this estimate before anything else reads the body.
  check(redline::quota::estimate_input_tokens(body) >= 0);
  // A stream that did not ask for usage is sent with it requested; the result must still parse
  // and ask for it.
  if (kind != ApiKind::kEmbeddings) {
    std::string with_usage = redline::gateway::with_usage_requested(body);
    auto reparsed = redline::gateway::parse_request(kind, with_usage, 0);
    check(reparsed.request.has_value() && reparsed.request->include_usage);
  }
  check(request.model_length >= 2);
  check(request.model_offset + request.model_length <= body.size());
  check(body[request.model_offset] == '"');
  check(body[request.model_offset + request.model_length - 1] == '"');

  std::string spliced = redline::gateway::with_model(body, request, kUpstreamModel);
  std::string_view prefix = std::string_view(body).substr(0, request.model_offset);
  std::string_view suffix =
      std::string_view(body).substr(request.model_offset + request.model_length);
  check(std::string_view(spliced).substr(0, prefix.size()) == prefix);
  check(spliced.size() > prefix.size() + suffix.size());
  check(std::string_view(spliced).substr(spliced.size() - suffix.size()) == suffix);

  // The spliced body is still a valid request that differs only in its model.
  std::string respliced = spliced;
  auto again = redline::gateway::parse_request(kind, respliced, 2048);
  check(again.request.has_value());
  check(again.request->model == kUpstreamModel);
  check(again.request->model_offset == request.model_offset);
  check(again.request->stream == request.stream);
  check(again.request->include_usage == request.include_usage);
  check(again.request->max_tokens == request.max_tokens);
  check(again.request->affinity_hash == request.affinity_hash);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  fuzz_kind(ApiKind::kChatCompletions, input);
  fuzz_kind(ApiKind::kCompletions, input);
  fuzz_kind(ApiKind::kEmbeddings, input);
  return 0;
}
