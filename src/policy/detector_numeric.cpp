#include "policy/detector_numeric.h"

#include <algorithm>
#include <cstring>
#include <string>

namespace redline::policy::detail {
namespace {

struct Group {
  std::uint32_t begin;
  std::uint32_t end;
  char separator_before;  // '\0' for the first group of a number
};

bool preceded_by_word(std::string_view text, std::size_t begin, std::string_view word) {
  std::size_t i = begin;
  while (i > 0 && text[i - 1] == ' ') --i;
  if (i < word.size()) return false;
  for (std::size_t k = 0; k < word.size(); ++k) {
    if (to_upper(text[i - word.size() + k]) != to_upper(word[k])) return false;
  }
  return i == word.size() || !is_alnum(text[i - word.size() - 1]);
}

// True when any of the 8 bytes is an ASCII digit: after xor with '0' a digit is a byte < 10
// (the "has byte less than n" bit trick; exact as a yes/no answer for n <= 128).
bool word_has_digit(std::uint64_t word) {
  constexpr std::uint64_t kOnes = 0x0101010101010101ULL;
  constexpr std::uint64_t kHigh = 0x8080808080808080ULL;
  const std::uint64_t x = word ^ (kOnes * '0');
  return ((x - kOnes * 10) & ~x & kHigh) != 0;
}

std::size_t next_digit(std::string_view text, std::size_t from) {
  const std::size_t size = text.size();
  while (from + 8 <= size) {
    std::uint64_t word;
    std::memcpy(&word, text.data() + from, 8);
    if (word_has_digit(word)) break;
    from += 8;
  }
  while (from < size && !is_digit(text[from])) ++from;
  return from;
}

bool boundary_before(std::string_view text, std::size_t begin) {
  return begin == 0 || !is_alnum(text[begin - 1]);
}
bool boundary_after(std::string_view text, std::size_t end) {
  return end >= text.size() || !is_alnum(text[end]);
}

void find_cards(std::string_view text, const std::vector<Group>& groups,
                std::vector<NumericCandidate>& out) {
  std::size_t j = 0;
  while (j < groups.size()) {
    std::size_t best = groups.size();
    const char first = text[groups[j].begin];
    if (first >= '2' && first <= '6' && boundary_before(text, groups[j].begin)) {
      std::size_t digits = 0;
      for (std::size_t k = j; k < groups.size(); ++k) {
        if (k > j && groups[k].separator_before == '.') break;
        digits += groups[k].end - groups[k].begin;
        if (digits > 19) break;
        if (digits >= 13 && boundary_after(text, groups[k].end) &&
            luhn_valid(text.substr(groups[j].begin, groups[k].end - groups[j].begin))) {
          best = k;
        }
      }
    }
    if (best == groups.size()) {
      ++j;
      continue;
    }
    out.push_back({NumericKind::kPaymentCard, groups[j].begin, groups[best].end});
    j = best + 1;
  }
}

void find_ssns(std::string_view text, const std::vector<Group>& groups,
               std::vector<NumericCandidate>& out) {
  for (std::size_t j = 0; j + 2 < groups.size(); ++j) {
    const Group& area = groups[j];
    const Group& group = groups[j + 1];
    const Group& serial = groups[j + 2];
    const char separator = group.separator_before;
    if ((separator != '-' && separator != ' ') || serial.separator_before != separator) continue;
    if (area.end - area.begin != 3 || group.end - group.begin != 2 ||
        serial.end - serial.begin != 4) {
      continue;
    }
    if (!boundary_before(text, area.begin) || !boundary_after(text, serial.end)) continue;
    if (!ssn_valid(text.substr(area.begin, serial.end - area.begin))) continue;
    out.push_back({NumericKind::kUsSsn, area.begin, serial.end});
    j += 2;
  }
}

void find_ipv4(std::string_view text, const std::vector<Group>& groups,
               std::vector<NumericCandidate>& out) {
  std::size_t j = 0;
  while (j < groups.size()) {
    std::size_t k = j + 1;
    while (k < groups.size() && groups[k].separator_before == '.') ++k;
    // groups[j, k) is a maximal dotted run.
    if (k - j == 4 && boundary_before(text, groups[j].begin) &&
        boundary_after(text, groups[k - 1].end) &&
        ipv4_valid(text, groups[j].begin, groups[k - 1].end)) {
      out.push_back({NumericKind::kIpv4, groups[j].begin, groups[k - 1].end});
    }
    j = k;
  }
}

// An IBAN's check digits start a number right after two letters that start a word.
void find_iban_at(std::string_view text, std::size_t digits_begin,
                  std::vector<NumericCandidate>& out) {
  if (digits_begin < 2 || !is_upper(to_upper(text[digits_begin - 1])) ||
      !is_upper(to_upper(text[digits_begin - 2])) || !boundary_before(text, digits_begin - 2)) {
    return;
  }
  if (digits_begin + 2 > text.size() || !is_digit(text[digits_begin + 1])) return;
  const std::size_t begin = digits_begin - 2;
  std::size_t pos = digits_begin + 2;
  std::size_t count = 0;
  std::size_t best_end = 0;
  while (pos < text.size() && count < 30) {
    if (is_alnum(text[pos])) {
      ++pos;
      ++count;
      if (count >= 11 && boundary_after(text, pos) && iban_valid(text.substr(begin, pos - begin))) {
        best_end = pos;
      }
    } else if (text[pos] == ' ' && pos + 1 < text.size() && is_alnum(text[pos + 1])) {
      ++pos;
    } else {
      break;
    }
  }
  if (best_end != 0) {
    out.push_back({NumericKind::kIban, static_cast<std::uint32_t>(begin),
                   static_cast<std::uint32_t>(best_end)});
  }
}

}  // namespace

bool luhn_valid(std::string_view candidate) {
  int sum = 0;
  int digits = 0;
  for (auto it = candidate.rbegin(); it != candidate.rend(); ++it) {
    if (!is_digit(*it)) continue;
    int d = *it - '0';
    if (digits % 2 == 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    ++digits;
  }
  return digits >= 13 && digits <= 19 && sum % 10 == 0;
}

// Move the first four characters to the end, letters become 10..35, and the number must be 1
// modulo 97.
bool iban_valid(std::string_view candidate) {
  std::string compact;
  for (char c : candidate) {
    if (c != ' ') compact.push_back(to_upper(c));
  }
  if (compact.size() < 15 || compact.size() > 34) return false;
  if (!is_upper(compact[0]) || !is_upper(compact[1])) return false;
  std::rotate(compact.begin(), compact.begin() + 4, compact.end());
  int remainder = 0;
  for (char c : compact) {
    if (is_digit(c)) {
      remainder = (remainder * 10 + (c - '0')) % 97;
    } else if (is_upper(c)) {
      remainder = (remainder * 100 + (c - 'A' + 10)) % 97;
    } else {
      return false;
    }
  }
  return remainder == 1;
}

bool ssn_valid(std::string_view candidate) {
  std::string digits;
  for (char c : candidate) {
    if (is_digit(c)) digits.push_back(c);
  }
  if (digits.size() != 9) return false;
  const std::string_view area = std::string_view(digits).substr(0, 3);
  if (area == "000" || area == "666" || area[0] == '9') return false;
  return digits.compare(3, 2, "00") != 0 && digits.compare(5, 4, "0000") != 0;
}

bool ipv4_valid(std::string_view text, std::size_t begin, std::size_t end) {
  const std::string_view candidate = text.substr(begin, end - begin);
  std::size_t pos = 0;
  for (int octet = 0; octet < 4; ++octet) {
    const std::size_t dot = std::min(candidate.find('.', pos), candidate.size());
    const std::string_view part = candidate.substr(pos, dot - pos);
    if (part.empty() || part.size() > 3 || (part.size() > 1 && part[0] == '0')) return false;
    int value = 0;
    for (char c : part) {
      if (!is_digit(c)) return false;
      value = value * 10 + (c - '0');
    }
    if (value > 255) return false;
    pos = dot + 1;
  }
  if (pos != candidate.size() + 1) return false;  // a fifth part: a longer dotted number
  if (begin > 0 && text[begin - 1] == '.') return false;
  if (end + 1 < text.size() && text[end] == '.' && is_digit(text[end + 1])) return false;
  return !preceded_by_word(text, begin, "version") && !preceded_by_word(text, begin, "ver");
}

void find_numeric(std::string_view text, unsigned kinds, std::vector<NumericCandidate>& out) {
  auto wants = [kinds](NumericKind kind) { return (kinds >> static_cast<unsigned>(kind)) & 1U; };
  thread_local std::vector<Group> groups;
  std::size_t pos = next_digit(text, 0);
  while (pos < text.size()) {
    // One number: digit runs joined by single separators, "4111 1111", "10.0.0.1", "123-45-6789".
    groups.clear();
    std::size_t end = pos;
    char separator = '\0';
    for (;;) {
      const std::size_t begin = end;
      while (end < text.size() && is_digit(text[end])) ++end;
      groups.push_back(
          {static_cast<std::uint32_t>(begin), static_cast<std::uint32_t>(end), separator});
      if (end + 1 < text.size() && (text[end] == ' ' || text[end] == '-' || text[end] == '.') &&
          is_digit(text[end + 1])) {
        separator = text[end];
        ++end;
        continue;
      }
      break;
    }
    if (wants(NumericKind::kPaymentCard)) find_cards(text, groups, out);
    if (wants(NumericKind::kUsSsn)) find_ssns(text, groups, out);
    if (wants(NumericKind::kIpv4)) find_ipv4(text, groups, out);
    if (wants(NumericKind::kIban)) find_iban_at(text, pos, out);
    pos = next_digit(text, end);
  }
}

}  // namespace redline::policy::detail
