#include "agents/json_input.h"

#include <algorithm>
#include <boost/json/parse.hpp>
#include <cmath>

namespace redline::agents::json_input {

namespace json = boost::json;

namespace {

constexpr std::size_t kMaxJsonDepth = 64;

std::string_view type_name(const json::value& value) {
  switch (value.kind()) {
    case json::kind::object:
      return "an object";
    case json::kind::array:
      return "an array";
    case json::kind::string:
      return "a string";
    case json::kind::bool_:
      return "a boolean";
    case json::kind::null:
      return "null";
    default:
      return "a number";
  }
}

}  // namespace

json::value parse_json(std::string_view text) {
  json::parse_options options;
  options.max_depth = kMaxJsonDepth;
  boost::system::error_code ec;
  json::value parsed = json::parse(text, ec, {}, options);
  if (ec) return nullptr;
  return parsed;
}

void reject(std::string message, std::string param, std::string code) {
  throw JsonRejection{make_error(400, std::move(message), std::move(param), std::move(code))};
}

void reject_type(const std::string& param, std::string_view expected, const json::value& got) {
  reject(fmt::format("Invalid type for '{}': expected {}, but got {} instead.", param, expected,
                     type_name(got)),
         param, "invalid_type");
}

void reject_missing(const std::string& param) {
  reject(fmt::format("Missing required parameter: '{}'.", param), param,
         "missing_required_parameter");
}

void reject_value(const std::string& param, std::string_view value,
                  std::initializer_list<std::string_view> supported) {
  std::string list;
  std::size_t written = 0;
  for (std::string_view option : supported) {
    if (written > 0) list += supported.size() > 2 ? ", " : " ";
    if (written > 0 && written + 1 == supported.size()) list += "and ";
    list += fmt::format("'{}'", option);
    ++written;
  }
  reject(fmt::format("Invalid value: '{}'. Supported values are: {}.", value, list), param,
         "invalid_value");
}

void require_one_of(const std::string& param, std::string_view value,
                    std::initializer_list<std::string_view> supported) {
  if (std::find(supported.begin(), supported.end(), value) == supported.end()) {
    reject_value(param, value, supported);
  }
}

std::string element_param(std::string_view array_param, std::size_t index) {
  return fmt::format("{}[{}]", array_param, index);
}

const json::object& require_object(const json::value& value, const std::string& param) {
  if (!value.is_object()) reject_type(param, "an object", value);
  return value.get_object();
}

std::size_t utf8_length(std::string_view text) {
  return std::count_if(text.begin(), text.end(),
                       [](char byte) { return (static_cast<unsigned char>(byte) & 0xC0) != 0x80; });
}

std::string Members::param(std::string_view key) const {
  return path_.empty() ? std::string(key) : fmt::format("{}.{}", path_, key);
}

const json::value* Members::given(std::string_view key) const {
  const json::value* value = object_.if_contains(key);
  return value == nullptr || value->is_null() ? nullptr : value;
}

const json::value& Members::required(std::string_view key) const {
  const json::value* value = given(key);
  if (value == nullptr) reject_missing(param(key));
  return *value;
}

const json::string* Members::string(std::string_view key) const {
  const json::value* value = given(key);
  if (value != nullptr && !value->is_string()) reject_type(param(key), "a string", *value);
  return value != nullptr ? &value->get_string() : nullptr;
}

std::string_view Members::required_string(std::string_view key) const {
  const json::string* value = string(key);
  if (value == nullptr) reject_missing(param(key));
  return *value;
}

std::string_view Members::required_nonempty_string(std::string_view key) const {
  std::string_view value = required_string(key);
  if (value.empty()) {
    reject(fmt::format("Invalid '{}': empty string. Expected a string with minimum length 1, "
                       "but got an empty string instead.",
                       param(key)),
           param(key), "empty_string");
  }
  return value;
}

std::optional<std::string> Members::optional_string(std::string_view key) const {
  const json::string* value = string(key);
  return value != nullptr ? std::optional<std::string>(*value) : std::nullopt;
}

const json::object* Members::object(std::string_view key) const {
  const json::value* value = given(key);
  return value != nullptr ? &require_object(*value, param(key)) : nullptr;
}

const json::array* Members::array(std::string_view key) const {
  const json::value* value = given(key);
  if (value != nullptr && !value->is_array()) reject_type(param(key), "an array", *value);
  return value != nullptr ? &value->get_array() : nullptr;
}

std::optional<bool> Members::boolean(std::string_view key) const {
  const json::value* value = given(key);
  if (value != nullptr && !value->is_bool()) reject_type(param(key), "a boolean", *value);
  return value != nullptr ? std::optional<bool>(value->get_bool()) : std::nullopt;
}

std::optional<double> Members::number(std::string_view key, double min, double max) const {
  const json::value* value = given(key);
  if (value == nullptr) return std::nullopt;
  if (!value->is_number()) reject_type(param(key), "a number", *value);
  double number = value->to_number<double>();
  if (number < min) {
    reject_bound(param(key), "decimal below minimum value", "decimal_below_min_value", ">=", min,
                 number);
  }
  if (number > max) {
    reject_bound(param(key), "decimal above maximum value", "decimal_above_max_value", "<=", max,
                 number);
  }
  return number;
}

std::optional<double> Members::positive_number(std::string_view key) const {
  const json::value* value = given(key);
  if (value == nullptr) return std::nullopt;
  if (!value->is_number()) reject_type(param(key), "a number", *value);
  double number = value->to_number<double>();
  if (!std::isfinite(number)) reject_type(param(key), "a finite number", *value);
  if (number <= 0) {
    reject_bound(param(key), "decimal below minimum value", "decimal_below_min_value", ">", 0.0,
                 number);
  }
  return number;
}

std::optional<std::int64_t> Members::integer(std::string_view key, std::int64_t min,
                                             std::int64_t max) const {
  const json::value* value = given(key);
  if (value == nullptr) return std::nullopt;
  if (value->is_uint64() &&
      value->get_uint64() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    reject(fmt::format("Invalid '{}': integer above maximum value. Expected a value <= {}, but "
                       "got {} instead.",
                       param(key), max, value->get_uint64()),
           param(key), "integer_above_max_value");
  }
  boost::system::error_code ec;
  std::int64_t number = value->is_number() ? value->to_number<std::int64_t>(ec) : 0;
  if (!value->is_number() || ec) reject_type(param(key), "an integer", *value);
  if (number < min) {
    reject_bound(param(key), "integer below minimum value", "integer_below_min_value", ">=", min,
                 number);
  }
  if (number > max) {
    reject_bound(param(key), "integer above maximum value", "integer_above_max_value", "<=", max,
                 number);
  }
  return number;
}

}  // namespace redline::agents::json_input
