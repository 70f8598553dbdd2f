// Fuzzes the body of POST /v1/agent/runs: a body either parses into a spec that reads back from
// its stored JSON (as text, too) to the same JSON, or is a 400 that names why.
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "agents/run_spec.h"

namespace {

void check(bool condition) {
  if (!condition) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  redline::agents::RunSpecParse parsed = redline::agents::parse_run_spec(body);
  if (!parsed.spec) {
    check(parsed.error.status == 400);
    check(!parsed.error.message.empty());
    return 0;
  }
  check(!parsed.spec->model.empty());
  check(!parsed.spec->input.empty());
  const boost::json::value stored = redline::agents::to_json(*parsed.spec);
  boost::system::error_code ec;
  const boost::json::value text = boost::json::parse(boost::json::serialize(stored), ec);
  check(!ec);
  const std::optional<redline::agents::RunSpec> read = redline::agents::run_spec_from_json(text);
  check(read.has_value());
  check(boost::json::value(redline::agents::to_json(*read)) == stored);
  return 0;
}
