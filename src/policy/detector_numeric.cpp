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
  // Word ends where the IBAN could stop; validated longest first, so a real IBAN costs one check.
  std::uint32_t ends[30];
  std::size_t end_count = 0;
  while (pos < text.size() && count < 30) {
    if (is_alnum(text[pos])) {
      ++pos;
      ++count;
      if (count >= 11 && boundary_after(text, pos))
        ends[end_count++] = static_cast<std::uint32_t>(pos);
    } else if (text[pos] == ' ' && pos + 1 < text.size() && is_alnum(text[pos + 1])) {
      ++pos;
    } else {
      break;
    }
  }
  while (end_count > 0) {
    const std::uint32_t end = ends[--end_count];
    if (iban_valid(text.substr(begin, end - begin))) {
      out.push_back({NumericKind::kIban, static_cast<std::uint32_t>(begin), end});
      return;
    }
  }
}

bool is_hex_or_colon(char c) { return is_hex(c) || c == ':'; }

void find_ipv6(std::string_view text, std::vector<NumericCandidate>& out) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    const void* colon = std::memchr(text.data() + pos, ':', text.size() - pos);
    if (colon == nullptr) return;
    const std::size_t at = static_cast<const char*>(colon) - text.data();
    std::size_t begin = at;
    while (begin > 0 && is_hex_or_colon(text[begin - 1])) --begin;
    std::size_t end = at;
    while (end < text.size() && is_hex_or_colon(text[end])) ++end;
    if (ipv6_valid(text, begin, end)) {
      out.push_back(
          {NumericKind::kIpv6, static_cast<std::uint32_t>(begin), static_cast<std::uint32_t>(end)});
    }
    pos = end;
  }
}

bool nanp_leading(char c) { return c >= '2' && c <= '9'; }

// Not glued to a longer number or expression: "+1-415-555-0132" is the international detector's.
bool nanp_free_before(std::string_view text, std::size_t begin) {
  if (begin == 0) return true;
  const char c = text[begin - 1];
  return !is_alnum(c) && c != '-' && c != '.' && c != '+';
}

void find_nanp(std::string_view text, const std::vector<Group>& groups,
               std::vector<NumericCandidate>& out) {
  auto length = [](const Group& g) { return g.end - g.begin; };
  // "(415) 555-0132": the area code is a whole number of its own, inside brackets.
  if (groups.size() == 1 && length(groups[0]) == 3 && nanp_leading(text[groups[0].begin]) &&
      groups[0].begin > 0 && text[groups[0].begin - 1] == '(' && groups[0].end < text.size() &&
      text[groups[0].end] == ')') {
    std::size_t p = groups[0].end + 1;
    if (p < text.size() && text[p] == ' ') ++p;
    auto digits_at = [&](std::size_t from, std::size_t n) {
      if (from + n > text.size()) return false;
      for (std::size_t k = 0; k < n; ++k) {
        if (!is_digit(text[from + k])) return false;
      }
      return true;
    };
    if (digits_at(p, 3) && nanp_leading(text[p]) && p + 3 < text.size() &&
        (text[p + 3] == '-' || text[p + 3] == '.' || text[p + 3] == ' ') && digits_at(p + 4, 4) &&
        boundary_after(text, p + 8) &&
        !(p + 9 < text.size() && (text[p + 8] == '-' || text[p + 8] == '.') &&
          is_digit(text[p + 9]))) {
      out.push_back({NumericKind::kPhoneNanp, static_cast<std::uint32_t>(groups[0].begin - 1),
                     static_cast<std::uint32_t>(p + 8)});
    }
    return;
  }
  // "415-555-0132": three groups 3-3-4, standing alone or between space-separated numbers.
  for (std::size_t j = 0; j + 2 < groups.size(); ++j) {
    const Group& area = groups[j];
    const Group& exchange = groups[j + 1];
    const Group& line = groups[j + 2];
    if (length(area) != 3 || length(exchange) != 3 || length(line) != 4) continue;
    if (!nanp_leading(text[area.begin]) || !nanp_leading(text[exchange.begin])) continue;
    const bool free_before =
        j == 0 ? nanp_free_before(text, area.begin) : area.separator_before == ' ';
    const bool free_after = j + 3 == groups.size() ? boundary_after(text, line.end)
                                                   : groups[j + 3].separator_before == ' ';
    if (!free_before || !free_after) continue;
    out.push_back({NumericKind::kPhoneNanp, area.begin, line.end});
    j += 2;
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
namespace {

// IBAN lengths by country (the SWIFT IBAN registry). Checking the length of the country an IBAN
// names, besides its check digits, keeps a word and a number that happen to pass mod 97 (1 in
// 97 of them) from being taken for one.
struct IbanCountry {
  char code[3];
  std::uint8_t length;
};
constexpr IbanCountry kIbanCountries[] = {
    {"AD", 24}, {"AE", 23}, {"AL", 28}, {"AT", 20}, {"AZ", 28}, {"BA", 20}, {"BE", 16}, {"BG", 22},
    {"BH", 22}, {"BI", 27}, {"BR", 29}, {"BY", 28}, {"CH", 21}, {"CR", 22}, {"CY", 28}, {"CZ", 24},
    {"DE", 22}, {"DJ", 27}, {"DK", 18}, {"DO", 28}, {"EE", 20}, {"EG", 29}, {"ES", 24}, {"FI", 18},
    {"FK", 18}, {"FO", 18}, {"FR", 27}, {"GB", 22}, {"GE", 22}, {"GI", 23}, {"GL", 18}, {"GR", 27},
    {"GT", 28}, {"HR", 21}, {"HU", 28}, {"IE", 22}, {"IL", 23}, {"IQ", 23}, {"IS", 26}, {"IT", 27},
    {"JO", 30}, {"KW", 30}, {"KZ", 20}, {"LB", 28}, {"LC", 32}, {"LI", 21}, {"LT", 20}, {"LU", 20},
    {"LV", 21}, {"LY", 25}, {"MC", 27}, {"MD", 24}, {"ME", 22}, {"MK", 19}, {"MN", 20}, {"MR", 27},
    {"MT", 31}, {"MU", 30}, {"NI", 28}, {"NL", 18}, {"NO", 15}, {"OM", 23}, {"PK", 24}, {"PL", 28},
    {"PS", 29}, {"PT", 25}, {"QA", 29}, {"RO", 24}, {"RS", 22}, {"RU", 33}, {"SA", 24}, {"SC", 31},
    {"SD", 18}, {"SE", 24}, {"SI", 19}, {"SK", 24}, {"SM", 27}, {"SO", 23}, {"ST", 25}, {"SV", 28},
    {"TL", 23}, {"TN", 24}, {"TR", 26}, {"UA", 29}, {"VA", 22}, {"VG", 24}, {"XK", 20}, {"YE", 30},
};

std::size_t iban_length_of(char first, char second) {
  for (const IbanCountry& country : kIbanCountries) {
    if (country.code[0] == first && country.code[1] == second) return country.length;
  }
  return 0;
}

}  // namespace

bool iban_valid(std::string_view candidate) {
  std::size_t length = 0;
  char country[2] = {0, 0};
  // Printed IBANs are grouped by four: every group but the last has four characters.
  std::size_t group = 0;
  for (char c : candidate) {
    if (c == ' ') {
      if (group != 4) return false;
      group = 0;
      continue;
    }
    if (!is_alnum(c)) return false;
    if (length < 2) {
      if (!is_upper(to_upper(c))) return false;
      country[length] = to_upper(c);
    }
    ++length;
    ++group;
  }
  if (length != iban_length_of(country[0], country[1])) return false;
  // Reads the characters after the first four, then the first four, without copying.
  int remainder = 0;
  auto add = [&remainder](char c) {
    c = to_upper(c);
    remainder =
        is_digit(c) ? (remainder * 10 + (c - '0')) % 97 : (remainder * 100 + (c - 'A' + 10)) % 97;
  };
  std::size_t seen = 0;
  for (char c : candidate) {
    if (c == ' ') continue;
    if (seen++ >= 4) add(c);
  }
  seen = 0;
  for (char c : candidate) {
    if (c == ' ') continue;
    if (seen++ < 4) add(c);
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

bool ipv6_valid(std::string_view text, std::size_t begin, std::size_t end) {
  if (begin > 0 && (is_hex(text[begin - 1]) || text[begin - 1] == ':')) return false;
  if (end < text.size() && (is_alnum(text[end]) || text[end] == ':')) return false;
  const std::string_view candidate = text.substr(begin, end - begin);
  if (candidate.empty()) return false;
  const std::size_t gap = candidate.find("::");
  if (gap != std::string_view::npos && candidate.find("::", gap + 1) != std::string_view::npos) {
    return false;
  }
  // A single ':' at either end is malformed ("fe80:", ":1").
  if (candidate.front() == ':' && !candidate.starts_with("::")) return false;
  if (candidate.back() == ':' && !candidate.ends_with("::")) return false;
  int groups = 0;
  std::size_t pos = 0;
  while (pos < candidate.size()) {
    if (candidate[pos] == ':') {
      ++pos;
      continue;
    }
    std::size_t len = 0;
    while (pos + len < candidate.size() && candidate[pos + len] != ':') {
      if (!is_hex(candidate[pos + len])) return false;
      ++len;
    }
    if (len > 4) return false;
    ++groups;
    pos += len;
  }
  return gap == std::string_view::npos ? groups == 8 : (groups >= 2 && groups <= 7);
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
    if (wants(NumericKind::kPhoneNanp)) find_nanp(text, groups, out);
    pos = next_digit(text, end);
  }
  if (wants(NumericKind::kIpv6)) find_ipv6(text, out);
}

}  // namespace redline::policy::detail
