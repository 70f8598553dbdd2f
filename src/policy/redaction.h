#pragma once
// Reversible redaction: values a red-line rule says must not reach an upstream are replaced by
// stable placeholders ("[REDACTED_EMAIL_1]"), and the vault that maps them back stays inside the
// gateway. The vault holds the very values the rules protect, so nothing here logs or prints it.
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace redline::policy {

// The placeholders of one request. Not thread-safe: one request's pipeline owns it.
class RedactionVault {
 public:
  // Not copyable: the maps point into each other. Moving keeps their nodes, so it is safe.
  RedactionVault() = default;
  RedactionVault(const RedactionVault&) = delete;
  RedactionVault& operator=(const RedactionVault&) = delete;
  RedactionVault(RedactionVault&&) = default;
  RedactionVault& operator=(RedactionVault&&) = default;

  // The same (category, value) gets the same placeholder for the vault's life; distinct values of
  // one category get distinct numbers. The category is upper-cased and every byte outside
  // [A-Z0-9_] becomes '_' (an empty one becomes "VALUE"), so a placeholder is plain ASCII that
  // JSON never escapes and that survives any JSON string a model writes it into. The view stays
  // valid as long as the vault.
  std::string_view placeholder_for(std::string_view category, std::string_view value);

  // The value behind a placeholder of this vault; nullopt for anything else, including
  // well-formed placeholders this vault never issued.
  std::optional<std::string_view> original_of(std::string_view placeholder) const;

  // True when `fragment` is a proper prefix of a placeholder of this vault, i.e. more model
  // output could complete it. Streams hold such a fragment back until they know.
  bool could_begin_placeholder(std::string_view fragment) const;

  // Every (category, value) the vault has issued a placeholder for, in the order it issued them.
  // Replaying them through placeholder_for() on an empty vault gives each value the same
  // placeholder again: that is how a conversation keeps its placeholders across turns.
  struct Entry {
    std::string category;
    std::string value;
  };
  std::vector<Entry> entries() const;

  bool empty() const { return original_by_placeholder_.empty(); }
  std::size_t size() const { return original_by_placeholder_.size(); }
  std::size_t longest_placeholder() const { return longest_placeholder_; }

 private:
  // Ordered, so could_begin_placeholder is one lower_bound; std::map keys never move, so the
  // views handed out stay valid.
  std::map<std::string, std::string, std::less<>> original_by_placeholder_;
  // "CATEGORY\0value" -> its placeholder (a key of original_by_placeholder_).
  std::unordered_map<std::string, const std::string*> placeholder_by_value_;
  std::unordered_map<std::string, std::size_t> issued_by_category_;
  // Keys of placeholder_by_value_ ("CATEGORY\0value"), in issue order.
  std::vector<const std::string*> issue_order_;
  std::size_t longest_placeholder_ = 0;
};

// A detector match: bytes [begin, end) of one text.
struct Span {
  std::size_t begin = 0;
  std::size_t end = 0;
  std::string_view category;
};

// `text` with every span replaced by its placeholder. Spans may come in any order; spans that
// overlap are merged into one (their union, with the category of the one starting first, the
// longest on a tie), so no fragment of a value survives next to its placeholder. Empty spans are
// ignored and spans reaching past the text end at it.
std::string redact_text(std::string_view text, std::vector<Span> spans, RedactionVault& vault);

// `text` with every placeholder of the vault replaced by its original value. With `escape_json`
// the value is written JSON-escaped (without quotes): for text that is itself JSON, such as
// tool-call arguments, where a value with quotes or backslashes must stay inside its string.
// Anything that is not a placeholder of this vault is copied unchanged.
std::string restore_text(std::string_view text, const RedactionVault& vault, bool escape_json);

}  // namespace redline::policy
