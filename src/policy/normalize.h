// Normalisation of text before detectors scan it, so that easy evasions (full-width letters,
// Cyrillic and Greek look-alikes, zero-width characters, exotic spaces and dashes) do not hide a
// match, while every match can still be reported in offsets of the ORIGINAL text.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace redline::policy {

// The result of normalize(). When `changed` is false the original text is already normal (the
// common case: pure ASCII) and must be scanned as it is, with identity offsets; `text`,
// `source_begin` and `source_end` are then empty.
//
// When `changed` is true, byte i of `text` stands for the original bytes
// [source_begin[i], source_end[i]). Both maps are non-decreasing, so a normalised range [b, e)
// (e > b) maps to the original range [source_begin[b], source_end[e - 1]).
struct NormalizedText {
  bool changed = false;
  std::string text;
  std::vector<std::uint32_t> source_begin;
  std::vector<std::uint32_t> source_end;

  // Clears the result but keeps capacity, so a thread can reuse one instance across scans.
  void clear();
};

// True when every byte is < 0x80 (checked 16 bytes at a time).
bool is_ascii(std::string_view text);

// Normalises `original` into `out` (which is cleared first). The input is UTF-8 but may be
// invalid: a byte that does not start a valid sequence is kept as itself, never rejected.
// Folds: full-width forms U+FF01..FF5E, mathematical alphanumerics U+1D400..1D7FF (Latin letters
// and digits), circled Latin letters, common Cyrillic and Greek homoglyphs of Latin letters, to
// ASCII; removes zero-width and invisible characters (U+200B..200F, U+2060..2064, U+FEFF, U+00AD,
// U+180E); maps Unicode spaces to ' ' and Unicode hyphens and minus signs to '-'. Case is kept.
// `original` must be shorter than 4 GiB.
void normalize(std::string_view original, NormalizedText& out);

}  // namespace redline::policy
