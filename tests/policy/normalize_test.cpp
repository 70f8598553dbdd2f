#include "policy/normalize.h"

#include <gtest/gtest.h>

#include <string>

namespace redline::policy {
namespace {

NormalizedText run(std::string_view input) {
  NormalizedText out;
  normalize(input, out);
  return out;
}

// The original bytes a normalised range [b, e) came from.
std::string_view original_of(std::string_view input, const NormalizedText& n, std::size_t b,
                             std::size_t e) {
  return input.substr(n.source_begin[b], n.source_end[e - 1] - n.source_begin[b]);
}

TEST(IsAsciiTest, ChecksEveryByteIncludingTheTail) {
  EXPECT_TRUE(is_ascii(""));
  EXPECT_TRUE(is_ascii(std::string(1000, 'a')));
  for (std::size_t pos : {0U, 7U, 8U, 15U, 16U, 17U, 31U, 40U}) {
    std::string text(41, 'x');
    text[pos] = static_cast<char>(0x80);
    EXPECT_FALSE(is_ascii(text)) << pos;
  }
}

TEST(NormalizeTest, AsciiIsUnchanged) {
  const auto n = run("plain ASCII prompt with SECRET//NOFORN and 4111-1111-1111-1111");
  EXPECT_FALSE(n.changed);
  EXPECT_TRUE(n.text.empty());
  EXPECT_TRUE(n.source_begin.empty());
}

TEST(NormalizeTest, OrdinaryNonAsciiLettersAreUnchanged) {
  EXPECT_FALSE(run("café naïve 東京 λάδα").changed);
}

TEST(NormalizeTest, FoldsFullWidthAndMathematicalForms) {
  EXPECT_EQ(run("ＳＥＣＲＥＴ／／ＮＯＦＯＲＮ").text, "SECRET//NOFORN");
  EXPECT_EQ(run("𝐒𝐄𝐂𝐑𝐄𝐓 𝟒𝟏𝟏𝟏").text, "SECRET 4111");
  EXPECT_EQ(run("𝓈𝑒𝒸𝓇𝑒𝓉").text, "secret");
  EXPECT_EQ(run("Ⓢⓔⓒ").text, "Sec");
}

TEST(NormalizeTest, FoldsCyrillicAndGreekHomoglyphs) {
  // Cyrillic Ѕ Е С Т, Greek Ρ Ε; Cyrillic lower-case а е о р с х у і ј ѕ, Greek ο.
  EXPECT_EQ(run("\u0405\u0415\u0421R\u0395\u0422").text, "SECRET");
  EXPECT_EQ(run("\u0430\u0435\u043e\u0440\u0441\u0445\u0443\u0456\u0458\u0455\u03bf").text,
            "aeopcxyijso");
  EXPECT_EQ(
      run("\u0391\u0392\u0396\u0397\u0399\u039a\u039c\u039d\u039f\u03a1\u03a4\u03a5\u03a7").text,
      "ABZHIKMNOPTYX");
}

TEST(NormalizeTest, RemovesInvisiblesAndMapsSpacesAndDashes) {
  EXPECT_EQ(run("SEC\u200bRE\u00adT\u2060\ufeff").text, "SECRET");
  EXPECT_EQ(run("a\u00a0b\u2003c\u202fd\u3000e").text, "a b c d e");
  EXPECT_EQ(run("4111\u20131111\u22121111\u20101111\uff0d1").text, "4111-1111-1111-1111-1");
}

TEST(NormalizeTest, OffsetsPointAtTheOriginalBytes) {
  const std::string input = "é x ＳＥＣ\u200bＲＥＴ y";
  const auto n = run(input);
  ASSERT_TRUE(n.changed);
  ASSERT_EQ(n.text, "é x SECRET y");
  ASSERT_EQ(n.source_begin.size(), n.text.size());
  ASSERT_EQ(n.source_end.size(), n.text.size());
  const std::size_t b = n.text.find("SECRET");
  EXPECT_EQ(original_of(input, n, b, b + 6), "ＳＥＣ\u200bＲＥＴ");
  EXPECT_EQ(original_of(input, n, 0, 2), "é");           // untouched multi-byte char
  EXPECT_EQ(original_of(input, n, b + 3, b + 4), "Ｒ");  // the zero-width space is not included
  EXPECT_EQ(original_of(input, n, n.text.size() - 1, n.text.size()), "y");
}

TEST(NormalizeTest, InvalidUtf8BytesStayAsThemselves) {
  const std::string input = std::string("\xff\xc0\x80\xed\xa0\x80 \xe2\x80", 10) + "ＡＢ";
  const auto n = run(input);
  ASSERT_TRUE(n.changed);
  EXPECT_EQ(n.text, std::string("\xff\xc0\x80\xed\xa0\x80 \xe2\x80", 10) + "AB");
  for (std::size_t i = 0; i < n.text.size(); ++i) {
    EXPECT_LT(n.source_begin[i], n.source_end[i]);
    EXPECT_LE(n.source_end[i], input.size());
    if (i > 0) {
      EXPECT_LE(n.source_end[i - 1], n.source_begin[i]);
    }
  }
  // A truncated sequence at the very end is kept byte for byte, too.
  EXPECT_FALSE(run("abc\xe2\x80").changed);
}

TEST(NormalizeTest, ReuseClearsPreviousResult) {
  NormalizedText n;
  normalize("ＡＢ", n);
  EXPECT_TRUE(n.changed);
  normalize("AB", n);
  EXPECT_FALSE(n.changed);
  EXPECT_TRUE(n.text.empty());
  EXPECT_TRUE(n.source_end.empty());
}

}  // namespace
}  // namespace redline::policy
