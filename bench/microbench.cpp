// Micro-benchmarks of the two parsers every proxied request goes through: the inbound chat body
// (gateway::parse_request) and the upstream SSE stream (net::SseParser).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "gateway/request_parse.h"
#include "net/sse.h"

namespace {

std::string read_payload(const char* name) {
  const std::string path = std::string(REDLINE_BENCH_PAYLOADS) + "/" + name;
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    std::fprintf(stderr, "cannot read %s\n", path.c_str());
    std::abort();
  }
  return {std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
}

// A ~1 KiB chat completion body (system prompt, a short exchange, a question), as clients send.
void BM_ParseChatRequest(benchmark::State& state) {
  const std::string original = read_payload("chat.json");
  std::string body = original;
  for (auto _ : state) {
    auto result =
        redline::gateway::parse_request(redline::gateway::ApiKind::kChatCompletions, body, 2048);
    if (!result.request) state.SkipWithError("the benchmark body did not parse");
    benchmark::DoNotOptimize(result);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * original.size()));
}
BENCHMARK(BM_ParseChatRequest);

// The same body with the prompt-prefix hash off, to show what that hash costs.
void BM_ParseChatRequestNoAffinity(benchmark::State& state) {
  const std::string original = read_payload("chat.json");
  std::string body = original;
  for (auto _ : state) {
    auto result =
        redline::gateway::parse_request(redline::gateway::ApiKind::kChatCompletions, body, 0);
    if (!result.request) state.SkipWithError("the benchmark body did not parse");
    benchmark::DoNotOptimize(result);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * original.size()));
}
BENCHMARK(BM_ParseChatRequestNoAffinity);

// A streamed chat completion as an upstream sends it: one role chunk, then one event per token,
// then [DONE], arriving in reads of `state.range(0)` bytes that split events anywhere.
std::string chat_stream(int tokens) {
  const std::string prefix =
      R"(data: {"id":"chatcmpl-8da43c3625bd45dc","object":"chat.completion.chunk",)"
      R"("created":1795430485,"model":"m","choices":[{"index":0,"delta":{)";
  const std::string suffix = R"(},"logprobs":null,"finish_reason":null}]})";
  std::string stream = prefix + R"("role":"assistant","content":"")" + suffix + "\n\n";
  for (int i = 0; i < tokens; ++i) {
    stream += prefix + R"("content":" token)" + std::to_string(i) + "\"" + suffix + "\n\n";
  }
  stream += "data: [DONE]\n\n";
  return stream;
}

void BM_SseParseStream(benchmark::State& state) {
  const std::string stream = chat_stream(64);
  const auto read_size = static_cast<std::size_t>(state.range(0));
  std::size_t events = 0;
  for (auto _ : state) {
    redline::net::SseParser parser;
    for (std::size_t at = 0; at < stream.size(); at += read_size) {
      const bool ok = parser.feed(std::string_view(stream).substr(at, read_size),
                                  [&](const redline::net::SseEvent& event) {
                                    benchmark::DoNotOptimize(event.data.data());
                                    ++events;
                                  });
      if (!ok) state.SkipWithError("the benchmark stream did not parse");
    }
  }
  if (events != static_cast<std::size_t>(state.iterations()) * 66) {
    state.SkipWithError("wrong number of events");
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * stream.size()));
  state.counters["events/s"] =
      benchmark::Counter(static_cast<double>(events), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_SseParseStream)->Arg(256)->Arg(4096)->Arg(65536);

}  // namespace

BENCHMARK_MAIN();
