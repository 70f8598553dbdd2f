#include "policy/normalize.h"

#include <cassert>
#include <cstring>
#include <limits>

namespace redline::policy {
namespace {

// What one code point becomes: kept as it is, removed, or replaced by one ASCII byte.
constexpr int kKeep = -1;
constexpr int kRemove = 0;

int fold_code_point(std::uint32_t cp) {
  if (cp >= 0xFF01 && cp <= 0xFF5E) return static_cast<int>(cp - 0xFF01 + 0x21);  // full-width
  if (cp >= 0x1D400 && cp <= 0x1D6A3) {  // 13 mathematical Latin alphabets of A-Z then a-z
    const std::uint32_t letter = (cp - 0x1D400) % 52;
    return letter < 26 ? static_cast<int>('A' + letter) : static_cast<int>('a' + letter - 26);
  }
  if (cp == 0x1D6A4) return 'i';  // dotless i
  if (cp == 0x1D6A5) return 'j';  // dotless j
  if (cp >= 0x1D7CE && cp <= 0x1D7FF) return static_cast<int>('0' + (cp - 0x1D7CE) % 10);
  if (cp >= 0x24B6 && cp <= 0x24CF) return static_cast<int>('A' + cp - 0x24B6);  // circled A-Z
  if (cp >= 0x24D0 && cp <= 0x24E9) return static_cast<int>('a' + cp - 0x24D0);  // circled a-z
  if ((cp >= 0x200B && cp <= 0x200F) || (cp >= 0x2060 && cp <= 0x2064) || cp == 0xFEFF ||
      cp == 0x00AD || cp == 0x180E) {
    return kRemove;
  }
  if (cp == 0x00A0 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x202F || cp == 0x205F ||
      cp == 0x3000) {
    return ' ';
  }
  if ((cp >= 0x2010 && cp <= 0x2015) || cp == 0x2212 || cp == 0xFE63) return '-';
  switch (cp) {
    // Cyrillic look-alikes of Latin letters.
    case 0x0430:
      return 'a';
    case 0x0435:
      return 'e';
    case 0x043E:
      return 'o';
    case 0x0440:
      return 'p';
    case 0x0441:
      return 'c';
    case 0x0443:
      return 'y';
    case 0x0445:
      return 'x';
    case 0x0455:
      return 's';
    case 0x0456:
      return 'i';
    case 0x0458:
      return 'j';
    case 0x0405:
      return 'S';
    case 0x0406:
      return 'I';
    case 0x0408:
      return 'J';
    case 0x0410:
      return 'A';
    case 0x0412:
      return 'B';
    case 0x0415:
      return 'E';
    case 0x041A:
      return 'K';
    case 0x041C:
      return 'M';
    case 0x041D:
      return 'H';
    case 0x041E:
      return 'O';
    case 0x0420:
      return 'P';
    case 0x0421:
      return 'C';
    case 0x0422:
      return 'T';
    case 0x0425:
      return 'X';
    // Greek look-alikes.
    case 0x0391:
      return 'A';
    case 0x0392:
      return 'B';
    case 0x0395:
      return 'E';
    case 0x0396:
      return 'Z';
    case 0x0397:
      return 'H';
    case 0x0399:
      return 'I';
    case 0x039A:
      return 'K';
    case 0x039C:
      return 'M';
    case 0x039D:
      return 'N';
    case 0x039F:
      return 'O';
    case 0x03A1:
      return 'P';
    case 0x03A4:
      return 'T';
    case 0x03A5:
      return 'Y';
    case 0x03A7:
      return 'X';
    case 0x03BF:
      return 'o';
    default:
      return kKeep;
  }
}

bool is_continuation(unsigned char c) { return (c & 0xC0) == 0x80; }

// Decodes one well-formed UTF-8 sequence at `p` (at most `avail` bytes). Returns its length and
// sets `cp`, or returns 0 when the bytes are not a valid, shortest-form, non-surrogate sequence.
std::size_t decode_utf8(const unsigned char* p, std::size_t avail, std::uint32_t& cp) {
  const unsigned char lead = p[0];
  std::size_t length;
  std::uint32_t min;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2, cp = lead & 0x1F, min = 0x80;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3, cp = lead & 0x0F, min = 0x800;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4, cp = lead & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (avail < length) return 0;
  for (std::size_t k = 1; k < length; ++k) {
    if (!is_continuation(p[k])) return 0;
    cp = (cp << 6) | (p[k] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return length;
}

// The first index at or after `from` holding a byte >= 0x80 (or the size).
std::size_t skip_ascii(std::string_view text, std::size_t from) {
  constexpr std::uint64_t kHighBits = 0x8080808080808080ULL;
  while (from + 8 <= text.size()) {
    std::uint64_t word;
    std::memcpy(&word, text.data() + from, 8);
    if ((word & kHighBits) != 0) break;
    from += 8;
  }
  while (from < text.size() && static_cast<unsigned char>(text[from]) < 0x80) ++from;
  return from;
}

}  // namespace

void NormalizedText::clear() {
  changed = false;
  text.clear();
  source_begin.clear();
  source_end.clear();
}

bool is_ascii(std::string_view text) {
  const char* p = text.data();
  std::size_t n = text.size();
  constexpr std::uint64_t kHighBits = 0x8080808080808080ULL;
  // Two words per step: the OR-reduction vectorises, and one branch per 16 bytes is cheap.
  while (n >= 16) {
    std::uint64_t a;
    std::uint64_t b;
    std::memcpy(&a, p, 8);
    std::memcpy(&b, p + 8, 8);
    if (((a | b) & kHighBits) != 0) return false;
    p += 16;
    n -= 16;
  }
  unsigned char rest = 0;
  for (std::size_t i = 0; i < n; ++i) rest |= static_cast<unsigned char>(p[i]);
  return (rest & 0x80) == 0;
}

void normalize(std::string_view original, NormalizedText& out) {
  assert(original.size() < std::numeric_limits<std::uint32_t>::max());
  out.clear();
  const auto* bytes = reinterpret_cast<const unsigned char*>(original.data());
  const std::size_t size = original.size();

  // Until the first fold the output would equal the input, so find it before copying anything:
  // text whose only non-ASCII characters are ordinary letters (accents, CJK) stays "unchanged".
  std::size_t i = skip_ascii(original, 0);
  std::uint32_t cp = 0;
  std::size_t length = 0;
  int folded = kKeep;
  while (i < size) {
    length = decode_utf8(bytes + i, size - i, cp);
    if (length != 0) {
      folded = fold_code_point(cp);
      if (folded != kKeep) break;
      i += length;
    } else {
      ++i;
    }
    i = skip_ascii(original, i);
  }
  if (i >= size) return;

  // Every fold shrinks or keeps a character's length, so the input size bounds the output.
  out.changed = true;
  out.text.resize(size);
  out.source_begin.resize(size);
  out.source_end.resize(size);
  char* text = out.text.data();
  std::uint32_t* begin = out.source_begin.data();
  std::uint32_t* end = out.source_end.data();
  std::size_t written = 0;
  auto keep = [&](std::size_t from, std::size_t count) {
    std::memcpy(text + written, original.data() + from, count);
    for (std::size_t k = 0; k < count; ++k) {
      begin[written + k] = static_cast<std::uint32_t>(from + k);
      end[written + k] = static_cast<std::uint32_t>(from + k + 1);
    }
    written += count;
  };
  keep(0, i);
  // Invariant at the top: `folded`/`length` describe the character at i, which folds.
  for (;;) {
    if (folded != kRemove) {
      text[written] = static_cast<char>(folded);
      begin[written] = static_cast<std::uint32_t>(i);
      end[written] = static_cast<std::uint32_t>(i + length);
      ++written;
    }
    i += length;
    // Copy everything up to the next folding character.
    std::size_t run = i;
    for (;;) {
      run = skip_ascii(original, run);
      if (run >= size) break;
      length = decode_utf8(bytes + run, size - run, cp);
      if (length == 0) {
        ++run;
        continue;
      }
      folded = fold_code_point(cp);
      if (folded != kKeep) break;
      run += length;
    }
    keep(i, run - i);
    i = run;
    if (i >= size) break;
  }
  out.text.resize(written);
  out.source_begin.resize(written);
  out.source_end.resize(written);
}

}  // namespace redline::policy
