#pragma once
// Validating a client's JSON body the way OpenAI's API words it: every check names the member it
// is about ("input[2].content[0].text", "tasks[1].limits.max_steps"), and a failure throws
// JsonRejection with the 400 to answer. Checks nest deep inside items, tasks and content parts,
// and threading an error back through every level would bury the rules they enforce, so a
// parser catches JsonRejection once, at its public entry point, and returns the error as a value.
#include <fmt/format.h>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/string.hpp>
#include <boost/json/value.hpp>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "common/openai_error.h"

namespace redline::agents::json_input {

struct JsonRejection {
  ApiError error;
};

// A client's body as a value; null when it is not JSON (or not UTF-8). Never throws. Nesting is
// allowed deeper than Boost.JSON's default of 32: tool parameter schemas nest, and a body must
// not be refused for a schema OpenAI accepts.
boost::json::value parse_json(std::string_view text);

[[noreturn]] void reject(std::string message, std::string param, std::string code);
// "Invalid type for 'p': expected an object, but got a string instead."
[[noreturn]] void reject_type(const std::string& param, std::string_view expected,
                              const boost::json::value& got);
// "Missing required parameter: 'p'."
[[noreturn]] void reject_missing(const std::string& param);
// "Invalid value: 'x'. Supported values are: 'a', 'b', and 'c'."
[[noreturn]] void reject_value(const std::string& param, std::string_view value,
                               std::initializer_list<std::string_view> supported);
void require_one_of(const std::string& param, std::string_view value,
                    std::initializer_list<std::string_view> supported);
// "Invalid 'p': integer below minimum value. Expected a value >= 1, but got 0 instead."
template <typename Number>
[[noreturn]] void reject_bound(const std::string& param, std::string_view problem, std::string code,
                               std::string_view relation, Number bound, Number got) {
  reject(fmt::format("Invalid '{}': {}. Expected a value {} {}, but got {} instead.", param,
                     problem, relation, bound, got),
         param, std::move(code));
}

// "tools[3]"
std::string element_param(std::string_view array_param, std::size_t index);
const boost::json::object& require_object(const boost::json::value& value,
                                          const std::string& param);
// Limits are in characters, as OpenAI counts them, not bytes.
std::size_t utf8_length(std::string_view text);

// An object of the body and where it sits ("input[2]"), so that every error names the member.
// A member that is null counts as not given, as in OpenAI's API.
class Members {
 public:
  Members(const boost::json::object& object, std::string path)
      : object_(object), path_(std::move(path)) {}

  std::string param(std::string_view key) const;
  const boost::json::value* given(std::string_view key) const;
  const boost::json::value& required(std::string_view key) const;

  const boost::json::string* string(std::string_view key) const;
  std::string_view required_string(std::string_view key) const;
  std::string_view required_nonempty_string(std::string_view key) const;
  std::optional<std::string> optional_string(std::string_view key) const;
  const boost::json::object* object(std::string_view key) const;
  const boost::json::array* array(std::string_view key) const;
  std::optional<bool> boolean(std::string_view key) const;
  // A number in [min, max].
  std::optional<double> number(std::string_view key, double min, double max) const;
  // A finite number above zero.
  std::optional<double> positive_number(std::string_view key) const;
  // An integer in [min, max]; a number with a fraction is not one, 2.0 is.
  std::optional<std::int64_t> integer(
      std::string_view key, std::int64_t min,
      std::int64_t max = std::numeric_limits<std::int64_t>::max()) const;

 private:
  const boost::json::object& object_;
  std::string path_;
};

}  // namespace redline::agents::json_input
