// The numeric built-in detectors (payment cards, US SSNs, IBANs, IPv4 and IPv6 addresses, North
// American phone numbers) as hand-written passes. As regexes they start with a digit, letter or
// hex class, which defeats vectorscan's literal prefilter: together they cost more than every
// other detector combined. Prose has few digits and colons, so skipping to the next digit (8
// bytes at a time) or colon (memchr) and parsing the token around it is several times faster.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace redline::policy::detail {

inline bool is_digit(char c) { return c >= '0' && c <= '9'; }
inline bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }
inline bool is_lower(char c) { return c >= 'a' && c <= 'z'; }
inline bool is_alnum(char c) { return is_digit(c) || is_upper(c) || is_lower(c); }
inline bool is_hex(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
inline char to_upper(char c) { return is_lower(c) ? static_cast<char>(c - 'a' + 'A') : c; }

// 13-19 digits (separators ignored) whose Luhn checksum is 0.
bool luhn_valid(std::string_view candidate);
// ISO 13616 mod-97 over 15-34 characters (spaces ignored, any case), two letters first.
bool iban_valid(std::string_view candidate);
// AAA-GG-SSSS without area 000, 666 or 9xx, group 00 or serial 0000 (separators ignored).
bool ssn_valid(std::string_view candidate);
// text[begin, end) is four decimal octets ≤ 255 without leading zeros, not part of a longer
// dotted number and not introduced by "version"/"ver".
bool ipv4_valid(std::string_view text, std::size_t begin, std::size_t end);
// text[begin, end) is a whole RFC 4291 address: eight groups of 1-4 hex digits, or two to seven
// with exactly one "::" ("::1" alone is too short to tell from prose and is not reported).
bool ipv6_valid(std::string_view text, std::size_t begin, std::size_t end);

enum class NumericKind : std::uint8_t { kPaymentCard, kUsSsn, kIban, kIpv4, kIpv6, kPhoneNanp };
constexpr unsigned kNumericKinds = 6;

struct NumericCandidate {
  NumericKind kind;
  std::uint32_t begin;
  std::uint32_t end;
};

// Appends to `out` every validated candidate of the kinds whose bit (1 << kind) is set in
// `kinds`: per kind non-overlapping, leftmost first and longest at one start.
//   card: 13-19 digits in groups separated by single ' ' or '-', first digit 2-6, whole groups;
//   SSN: three groups 3-2-4 joined by the same '-' or ' ';
//   IPv4: a run of exactly four '.'-joined groups;
//   IBAN: two letters, two digits, then 11-30 letters or digits with single spaces between;
//   IPv6: the whole hex-and-colon token around a ':';
//   NANP phone: 3-3-4 digits joined by '-', '.' or ' ', or "(415) 555-0132", first digits 2-9.
// Every candidate starts and ends on a word boundary.
void find_numeric(std::string_view text, unsigned kinds, std::vector<NumericCandidate>& out);

}  // namespace redline::policy::detail
