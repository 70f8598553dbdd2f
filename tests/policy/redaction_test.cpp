#include "policy/redaction.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace redline::policy {
namespace {

TEST(RedactionVaultTest, SameValueKeepsItsPlaceholderAndNumbersCountPerCategory) {
  RedactionVault vault;
  EXPECT_TRUE(vault.empty());
  EXPECT_EQ(vault.placeholder_for("email", "a@example.com"), "[REDACTED_EMAIL_1]");
  EXPECT_EQ(vault.placeholder_for("email", "b@example.com"), "[REDACTED_EMAIL_2]");
  EXPECT_EQ(vault.placeholder_for("phone", "+1 555 0100"), "[REDACTED_PHONE_1]");
  EXPECT_EQ(vault.placeholder_for("EMAIL", "a@example.com"), "[REDACTED_EMAIL_1]");
  EXPECT_EQ(vault.size(), 3u);
  EXPECT_FALSE(vault.empty());
  EXPECT_EQ(vault.longest_placeholder(), std::string("[REDACTED_EMAIL_1]").size());
}

TEST(RedactionVaultTest, SameValueInAnotherCategoryGetsItsOwnPlaceholder) {
  RedactionVault vault;
  EXPECT_EQ(vault.placeholder_for("name", "Ada"), "[REDACTED_NAME_1]");
  EXPECT_EQ(vault.placeholder_for("person", "Ada"), "[REDACTED_PERSON_1]");
}

TEST(RedactionVaultTest, CategoryBecomesPlainUpperCaseAscii) {
  RedactionVault vault;
  EXPECT_EQ(vault.placeholder_for("credit-card no.", "4111"), "[REDACTED_CREDIT_CARD_NO__1]");
  EXPECT_EQ(vault.placeholder_for("", "x"), "[REDACTED_VALUE_1]");
  EXPECT_EQ(vault.placeholder_for("\"quoted\\\"", "y"), "[REDACTED__QUOTED___1]");
}

TEST(RedactionVaultTest, PlaceholderViewsStayValidAsTheVaultGrows) {
  RedactionVault vault;
  std::string_view first = vault.placeholder_for("email", "first@example.com");
  for (int i = 0; i < 1000; ++i) vault.placeholder_for("email", std::to_string(i));
  EXPECT_EQ(first, "[REDACTED_EMAIL_1]");
  EXPECT_EQ(vault.placeholder_for("email", "999"), "[REDACTED_EMAIL_1001]");
  EXPECT_EQ(vault.longest_placeholder(), std::string("[REDACTED_EMAIL_1001]").size());
}

TEST(RedactionVaultTest, ReplayingEntriesGivesEveryValueItsPlaceholderAgain) {
  RedactionVault first;
  first.placeholder_for("email", "b@example.com");
  first.placeholder_for("iban", "DE89370400440532013000");
  first.placeholder_for("email", "a@example.com");
  first.placeholder_for("email", "b@example.com");  // already issued: not a new entry

  const auto entries = first.entries();
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[0].category, "EMAIL");
  EXPECT_EQ(entries[0].value, "b@example.com");
  EXPECT_EQ(entries[2].value, "a@example.com");

  RedactionVault replayed;
  for (const auto& entry : entries) replayed.placeholder_for(entry.category, entry.value);
  // A value met first in a later turn must not take over an earlier value's number.
  EXPECT_EQ(replayed.placeholder_for("email", "a@example.com"), "[REDACTED_EMAIL_2]");
  EXPECT_EQ(replayed.placeholder_for("email", "b@example.com"), "[REDACTED_EMAIL_1]");
  EXPECT_EQ(replayed.placeholder_for("email", "c@example.com"), "[REDACTED_EMAIL_3]");
  EXPECT_EQ(replayed.placeholder_for("iban", "DE89370400440532013000"), "[REDACTED_IBAN_1]");
}

TEST(RedactionVaultTest, OriginalOfKnowsOnlyIssuedPlaceholders) {
  RedactionVault vault;
  vault.placeholder_for("email", "a@example.com");
  EXPECT_EQ(vault.original_of("[REDACTED_EMAIL_1]"), "a@example.com");
  EXPECT_EQ(vault.original_of("[REDACTED_EMAIL_99]"), std::nullopt);
  EXPECT_EQ(vault.original_of("[REDACTED_EMAIL_1"), std::nullopt);
  EXPECT_EQ(vault.original_of(""), std::nullopt);
}

TEST(RedactionVaultTest, CouldBeginPlaceholderOnlyForProperPrefixes) {
  RedactionVault vault;
  EXPECT_FALSE(vault.could_begin_placeholder("["));
  vault.placeholder_for("email", "a@example.com");
  vault.placeholder_for("phone", "555");
  EXPECT_TRUE(vault.could_begin_placeholder("["));
  EXPECT_TRUE(vault.could_begin_placeholder("[RED"));
  EXPECT_TRUE(vault.could_begin_placeholder("[REDACTED_P"));
  EXPECT_TRUE(vault.could_begin_placeholder("[REDACTED_EMAIL_1"));
  EXPECT_FALSE(vault.could_begin_placeholder("[REDACTED_EMAIL_1]"));
  EXPECT_FALSE(vault.could_begin_placeholder("[REDACTED_EMAIL_2"));
  EXPECT_FALSE(vault.could_begin_placeholder("[Re"));
  EXPECT_FALSE(vault.could_begin_placeholder("x"));
}

TEST(RedactTextTest, ReplacesUnsortedSpansAndReusesPlaceholders) {
  RedactionVault vault;
  const std::string text = "mail a@x.io or b@y.io, again a@x.io";
  std::vector<Span> spans = {{15, 21, "email"}, {5, 11, "email"}, {29, 35, "email"}};
  EXPECT_EQ(redact_text(text, spans, vault),
            "mail [REDACTED_EMAIL_1] or [REDACTED_EMAIL_2], again [REDACTED_EMAIL_1]");
  EXPECT_EQ(vault.original_of("[REDACTED_EMAIL_1]"), "a@x.io");
  EXPECT_EQ(vault.original_of("[REDACTED_EMAIL_2]"), "b@y.io");
}

TEST(RedactTextTest, NestedSpansKeepTheOutermost) {
  RedactionVault vault;
  // "card 4111 1111" inside a longer account match.
  const std::string text = "id ACCT-4111-1111 end";
  std::vector<Span> spans = {{8, 12, "card"}, {3, 17, "account"}, {13, 17, "card"}};
  EXPECT_EQ(redact_text(text, spans, vault), "id [REDACTED_ACCOUNT_1] end");
  EXPECT_EQ(vault.size(), 1u);
  EXPECT_EQ(vault.original_of("[REDACTED_ACCOUNT_1]"), "ACCT-4111-1111");
}

TEST(RedactTextTest, PartlyOverlappingSpansMergeIntoTheirUnion) {
  RedactionVault vault;
  const std::string text = "abcdefghij";
  std::vector<Span> spans = {{4, 8, "b"}, {2, 6, "a"}};
  EXPECT_EQ(redact_text(text, spans, vault), "ab[REDACTED_A_1]ij");
  EXPECT_EQ(vault.original_of("[REDACTED_A_1]"), "cdefgh");
}

TEST(RedactTextTest, AdjacentSpansStaySeparate) {
  RedactionVault vault;
  std::vector<Span> spans = {{0, 2, "a"}, {2, 4, "b"}};
  EXPECT_EQ(redact_text("xxyy", spans, vault), "[REDACTED_A_1][REDACTED_B_1]");
}

TEST(RedactTextTest, EmptySpansIgnoredAndSpansClampedToTheText) {
  RedactionVault vault;
  std::vector<Span> spans = {{3, 3, "a"}, {5, 4, "a"}, {4, 100, "tail"}, {50, 60, "far"}};
  EXPECT_EQ(redact_text("abcdefg", spans, vault), "abcd[REDACTED_TAIL_1]");
  EXPECT_EQ(vault.size(), 1u);
  EXPECT_EQ(redact_text("abc", {}, vault), "abc");
}

TEST(RestoreTextTest, RoundTripsRedactedText) {
  RedactionVault vault;
  const std::string text = "Write to ada@example.com or call +44 20 7946 0958 today.";
  const std::string redacted = redact_text(text, {{9, 24, "email"}, {33, 49, "phone"}}, vault);
  EXPECT_EQ(redacted, "Write to [REDACTED_EMAIL_1] or call [REDACTED_PHONE_1] today.");
  EXPECT_EQ(restore_text(redacted, vault, false), text);
}

TEST(RestoreTextTest, LeavesUnknownAndIncompletePlaceholdersAlone) {
  RedactionVault vault;
  vault.placeholder_for("email", "a@example.com");
  const std::string text =
      "[REDACTED_EMAIL_99] [REDACTED_EMAIL_1 [REDACTED_[REDACTED_EMAIL_1]] [REDACTED_EMAIL_1";
  EXPECT_EQ(restore_text(text, vault, false),
            "[REDACTED_EMAIL_99] [REDACTED_EMAIL_1 [REDACTED_a@example.com] [REDACTED_EMAIL_1");
  EXPECT_EQ(restore_text(text, RedactionVault(), false), text);
}

TEST(RestoreTextTest, EscapesValuesForJsonText) {
  RedactionVault vault;
  const std::string value = "say \"hi\" \\ back\nZo\xc3\xab \xe2\x82\xac";
  vault.placeholder_for("secret", value);
  const std::string arguments = R"({"note":"[REDACTED_SECRET_1]"})";
  EXPECT_EQ(restore_text(arguments, vault, true),
            "{\"note\":\"say \\\"hi\\\" \\\\ back\\nZo\xc3\xab \xe2\x82\xac\"}");
  EXPECT_EQ(restore_text(arguments, vault, false), "{\"note\":\"" + value + "\"}");
}

}  // namespace
}  // namespace redline::policy
