#include "net/query_string.h"

#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>
#include <charconv>

namespace redline::net {

std::optional<std::string> query_param(std::string_view target, std::string_view name) {
  auto url = boost::urls::parse_origin_form(target);
  if (!url) return std::nullopt;
  // HTML forms and most clients write spaces as '+'.
  boost::urls::encoding_opts options;
  options.space_as_plus = true;
  for (const auto& param : url->params(options)) {
    if (param.key == name) return std::string(param.value);
  }
  return std::nullopt;
}

std::optional<std::int64_t> integer_query_param(std::string_view target, std::string_view name,
                                                bool& bad) {
  const auto text = query_param(target, name);
  if (!text || text->empty()) return std::nullopt;
  std::int64_t value = 0;
  auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
  if (ec != std::errc() || end != text->data() + text->size() || value < 0) {
    bad = true;
    return std::nullopt;
  }
  return value;
}

}  // namespace redline::net
