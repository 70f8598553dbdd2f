#include "policy/redaction.h"

#include <algorithm>
#include <cassert>

#include "common/json_text.h"

namespace redline::policy {

namespace {

constexpr std::string_view kPlaceholderStart = "[REDACTED_";

std::string placeholder_category(std::string_view category) {
  if (category.empty()) return "VALUE";
  std::string normalized;
  normalized.reserve(category.size());
  for (char c : category) {
    if (c >= 'a' && c <= 'z') {
      normalized.push_back(static_cast<char>(c - 'a' + 'A'));
    } else if ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_') {
      normalized.push_back(c);
    } else {
      normalized.push_back('_');
    }
  }
  return normalized;
}

void append_original(std::string& out, std::string_view original, bool escape_json) {
  if (!escape_json) {
    out.append(original);
    return;
  }
  const std::string quoted = json_string(original);
  out.append(quoted, 1, quoted.size() - 2);
}

}  // namespace

std::string_view RedactionVault::placeholder_for(std::string_view category,
                                                 std::string_view value) {
  std::string normalized = placeholder_category(category);
  std::string key = normalized;
  key.push_back('\0');
  key.append(value);
  auto [slot, inserted] = placeholder_by_value_.try_emplace(std::move(key), nullptr);
  if (!inserted) return *slot->second;

  // Numbers are per category; the number is the last '_'-separated part and holds no '_', so two
  // categories can never produce the same placeholder.
  const std::size_t number = ++issued_by_category_[normalized];
  std::string placeholder;
  placeholder.reserve(kPlaceholderStart.size() + normalized.size() + 22);
  placeholder.append(kPlaceholderStart).append(normalized).push_back('_');
  placeholder.append(std::to_string(number)).push_back(']');
  auto [entry, fresh] = original_by_placeholder_.emplace(std::move(placeholder), value);
  assert(fresh);
  slot->second = &entry->first;
  issue_order_.push_back(&slot->first);
  longest_placeholder_ = std::max(longest_placeholder_, entry->first.size());
  return entry->first;
}

std::vector<RedactionVault::Entry> RedactionVault::entries() const {
  std::vector<Entry> out;
  out.reserve(issue_order_.size());
  for (const std::string* key : issue_order_) {
    const std::size_t separator = key->find('\0');
    out.push_back({key->substr(0, separator), key->substr(separator + 1)});
  }
  return out;
}

std::optional<std::string_view> RedactionVault::original_of(std::string_view placeholder) const {
  auto entry = original_by_placeholder_.find(placeholder);
  if (entry == original_by_placeholder_.end()) return std::nullopt;
  return std::string_view(entry->second);
}

bool RedactionVault::could_begin_placeholder(std::string_view fragment) const {
  // The first placeholder not less than `fragment` is the only candidate that starts with it.
  auto candidate = original_by_placeholder_.lower_bound(fragment);
  return candidate != original_by_placeholder_.end() && candidate->first.size() > fragment.size() &&
         std::string_view(candidate->first).starts_with(fragment);
}

std::string redact_text(std::string_view text, std::vector<Span> spans, RedactionVault& vault) {
  std::erase_if(spans, [&](Span& span) {
    span.end = std::min(span.end, text.size());
    return span.begin >= span.end;
  });
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end > b.end;
  });
  std::string out;
  out.reserve(text.size());
  std::size_t copied = 0;
  for (std::size_t i = 0; i < spans.size();) {
    Span merged = spans[i];
    for (++i; i < spans.size() && spans[i].begin < merged.end; ++i) {
      merged.end = std::max(merged.end, spans[i].end);
    }
    out.append(text.substr(copied, merged.begin - copied));
    out.append(vault.placeholder_for(merged.category,
                                     text.substr(merged.begin, merged.end - merged.begin)));
    copied = merged.end;
  }
  out.append(text.substr(copied));
  return out;
}

std::string restore_text(std::string_view text, const RedactionVault& vault, bool escape_json) {
  std::string out;
  out.reserve(text.size());
  std::size_t copied = 0;
  std::size_t search_from = 0;
  while (!vault.empty()) {
    const std::size_t start = text.find(kPlaceholderStart, search_from);
    if (start == std::string_view::npos) break;
    // Only as far as the longest placeholder reaches, so text full of "[REDACTED_" without a
    // closing bracket stays linear.
    const std::size_t close =
        text.substr(start, vault.longest_placeholder()).find(']', kPlaceholderStart.size());
    std::optional<std::string_view> original;
    if (close != std::string_view::npos)
      original = vault.original_of(text.substr(start, close + 1));
    if (!original) {
      search_from = start + 1;
      continue;
    }
    out.append(text.substr(copied, start - copied));
    append_original(out, *original, escape_json);
    copied = search_from = start + close + 1;
  }
  out.append(text.substr(copied));
  return out;
}

}  // namespace redline::policy
