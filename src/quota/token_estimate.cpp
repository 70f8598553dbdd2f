#include "quota/token_estimate.h"

#include <algorithm>

namespace redline::quota {
namespace {

constexpr std::string_view kImageTypes[] = {"\"image_url\"", "\"input_image\""};
constexpr std::string_view kDataImage = "\"data:image/";

bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::size_t skip_blanks(std::string_view text, std::size_t at) {
  while (at < text.size() && is_blank(text[at])) ++at;
  return at;
}

// The character before `at`, ignoring blanks; '\0' at the start.
char previous_non_blank(std::string_view text, std::size_t at) {
  while (at > 0 && is_blank(text[at - 1])) --at;
  return at == 0 ? '\0' : text[at - 1];
}

// Whether `text` at `at` starts with `literal`, and where it ends.
bool consume(std::string_view text, std::size_t& at, std::string_view literal) {
  if (text.substr(at, literal.size()) != literal) return false;
  at += literal.size();
  return true;
}

// For a key "image_url" whose colon is at or after `at`: the byte length of an inline image
// payload ("data:image/..." up to its closing quote), either as the key's string value or as
// the "url" of its object value; 0 when the value is anything else. Outside a JSON string a
// quote cannot be escaped, so `"url"` followed by a colon is a key, never text.
std::size_t inline_image_length(std::string_view body, std::size_t at) {
  at = skip_blanks(body, at);
  if (!consume(body, at, ":")) return 0;
  at = skip_blanks(body, at);
  if (consume(body, at, "{")) {
    at = skip_blanks(body, at);
    if (!consume(body, at, "\"url\"")) return 0;
    at = skip_blanks(body, at);
    if (!consume(body, at, ":")) return 0;
    at = skip_blanks(body, at);
  }
  const std::size_t start = at;
  if (!consume(body, at, kDataImage)) return 0;
  const std::size_t end = body.find('"', at);
  // An escaped quote would mean the string goes on: count it as text rather than guess.
  if (end == std::string_view::npos || body[end - 1] == '\\') return 0;
  return end + 1 - start;
}

}  // namespace

std::int64_t estimate_input_tokens(std::string_view request_body, std::int64_t tokens_per_image) {
  std::int64_t images = 0;
  std::size_t inline_image_bytes = 0;
  for (std::string_view type : kImageTypes) {
    for (std::size_t at = request_body.find(type); at != std::string_view::npos;
         at = request_body.find(type, at + type.size())) {
      // A value ("type": "image_url") names one image part; the key "image_url" carries it.
      if (previous_non_blank(request_body, at) == ':') {
        ++images;
      } else if (type == kImageTypes[0]) {
        inline_image_bytes += inline_image_length(request_body, at + type.size());
      }
    }
  }
  const auto text_bytes = static_cast<std::int64_t>(request_body.size() - inline_image_bytes);
  return text_bytes + images * std::max<std::int64_t>(tokens_per_image, 0);
}

std::int64_t worst_case_output_tokens(std::optional<std::int64_t> max_tokens,
                                      std::int64_t model_cap) {
  if (max_tokens) {
    const std::int64_t requested = std::max<std::int64_t>(*max_tokens, 0);
    return model_cap > 0 ? std::min(requested, model_cap) : requested;
  }
  return std::max<std::int64_t>(model_cap, 0);
}

}  // namespace redline::quota
