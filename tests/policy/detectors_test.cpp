#include "policy/detectors.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <utility>

#include "policy/detector_numeric.h"

namespace redline::policy {
namespace {

class DetectorsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string error;
    set_ = DetectorSet::compile(LabelLattice::defaults(),
                                builtin_detector_specs(LabelLattice::defaults()), &error);
    ASSERT_NE(set_, nullptr) << error;
  }
  static void TearDownTestSuite() { set_.reset(); }

  static std::uint16_t id(std::string_view name) {
    for (std::uint16_t i = 0; i < set_->size(); ++i) {
      if (set_->spec(i).name == name) return i;
    }
    ADD_FAILURE() << "no detector " << name;
    return 0;
  }

  // The original substrings `detector` matched in `text`.
  static std::vector<std::string> found(std::string_view detector, std::string_view text) {
    std::vector<DetectorMatch> matches;
    EXPECT_TRUE(set_->scan(text, matches));
    std::vector<std::string> out;
    for (const auto& m : matches) {
      EXPECT_LT(m.begin, m.end);
      EXPECT_LE(m.end, text.size());
      if (m.detector == id(detector)) out.emplace_back(text.substr(m.begin, m.end - m.begin));
    }
    return out;
  }

  static Label label_of(std::string_view text) { return set_->classify(text).label; }
  static Label parse(std::string_view label) {
    return LabelLattice::defaults().parse(label).value();
  }

  static std::shared_ptr<const DetectorSet> set_;
};

std::shared_ptr<const DetectorSet> DetectorsTest::set_;

using Strings = std::vector<std::string>;

TEST_F(DetectorsTest, Email) {
  EXPECT_EQ(found("email", "mail jane.doe+tag@example.co.uk today"),
            Strings{"jane.doe+tag@example.co.uk"});
  EXPECT_EQ(found("email", "Jane.DOE@Example.COM"), Strings{"Jane.DOE@Example.COM"});
  EXPECT_EQ(found("email", "ｊａｎｅ＠ｅｘａｍｐｌｅ．ｃｏｍ"),
            Strings{"ｊａｎｅ＠ｅｘａｍｐｌｅ．ｃｏｍ"});
  EXPECT_EQ(found("email", "ja\u200bne@exam\u200bple.com"),
            Strings{"ja\u200bne@exam\u200bple.com"});
  // Cyrillic а and е inside the address.
  EXPECT_EQ(found("email", "j\u0430n\u0435@example.com"), Strings{"j\u0430n\u0435@example.com"});
  EXPECT_TRUE(found("email", "not an address: user@ or @example.com or a@b").empty());
}

TEST_F(DetectorsTest, PhoneInInternationalFormats) {
  EXPECT_EQ(found("phone", "call +44 20 7946 0958 now"), Strings{"+44 20 7946 0958"});
  EXPECT_EQ(found("phone", "call +1 (415) 555-0132."), Strings{"+1 (415) 555-0132"});
  EXPECT_EQ(found("phone", "Berlin: +49 30 901820"), Strings{"+49 30 901820"});
  EXPECT_EQ(found("phone", "dial 0044 20 7946 0958"), Strings{"0044 20 7946 0958"});
  EXPECT_EQ(found("phone", "office (415) 555-0132 or 415-555-0133"),
            (Strings{"(415) 555-0132", "415-555-0133"}));
  EXPECT_EQ(found("phone", "＋４４ ２０ ７９４６ ０９５８"),
            Strings{"＋４４ ２０ ７９４６ ０９５８"});
  EXPECT_EQ(found("phone", "+44\u00a020\u20117946\u20130958"),
            Strings{"+44\u00a020\u20117946\u20130958"});
}

TEST_F(DetectorsTest, PhoneIgnoresDatesVersionsTimesAndIds) {
  for (const char* text :
       {"released 2024-01-15 at 12:30:45", "version 1.2.3.4 and v10.0.19041.1288",
        "order 20240115-0042 shipped", "id 550e8400-e29b-41d4-a716-446655440000",
        "2+2=4 and 10+123", "ticket #12345678", "total 1,234,567.89"}) {
    EXPECT_TRUE(found("phone", text).empty()) << text;
  }
}

TEST_F(DetectorsTest, UsSsnExcludesInvalidRanges) {
  EXPECT_EQ(found("us_ssn", "SSN 123-45-6789."), Strings{"123-45-6789"});
  EXPECT_EQ(found("us_ssn", "ssn １２３－４５－６７８９"), Strings{"１２３－４５－６７８９"});
  for (const char* text :
       {"000-12-3456", "666-12-3456", "912-34-5678", "123-00-4567", "123-45-0000", "2024-01-15"}) {
    EXPECT_TRUE(found("us_ssn", text).empty()) << text;
  }
}

TEST_F(DetectorsTest, PaymentCardNeedsLuhn) {
  EXPECT_EQ(found("payment_card", "card 4111 1111 1111 1111 exp"), Strings{"4111 1111 1111 1111"});
  EXPECT_EQ(found("payment_card", "4111-1111-1111-1111"), Strings{"4111-1111-1111-1111"});
  EXPECT_EQ(found("payment_card", "amex 378282246310005"), Strings{"378282246310005"});
  EXPECT_EQ(found("payment_card", "5555\u200b5555\u200b5555\u200b4444"),
            Strings{"5555\u200b5555\u200b5555\u200b4444"});
  EXPECT_EQ(found("payment_card", "４１１１ １１１１ １１１１ １１１１"),
            Strings{"４１１１ １１１１ １１１１ １１１１"});
  for (const char* text : {"4111 1111 1111 1112", "order 1234567890123456", "2024-01-15",
                           "uuid 123e4567-e89b-12d3-a456-426614174000", "4111 1111"}) {
    EXPECT_TRUE(found("payment_card", text).empty()) << text;
  }
}

TEST_F(DetectorsTest, IbanNeedsMod97) {
  EXPECT_EQ(found("iban", "pay GB82 WEST 1234 5698 7654 32 please"),
            Strings{"GB82 WEST 1234 5698 7654 32"});
  EXPECT_EQ(found("iban", "DE89370400440532013000"), Strings{"DE89370400440532013000"});
  EXPECT_EQ(found("iban", "gb82west12345698765432"), Strings{"gb82west12345698765432"});
  EXPECT_TRUE(found("iban", "GB82 WEST 1234 5698 7654 33").empty());
  EXPECT_TRUE(found("iban", "DE89370400440532013001").empty());
}

TEST_F(DetectorsTest, IbanNeedsItsCountrysLengthAndGroupsOfFour) {
  // Words and a number that pass mod 97 by chance (1 in 97 do) are not an IBAN.
  EXPECT_TRUE(
      found("iban", "record window request = bc587341 Looks a key up; answers one").empty());
  // The right check digits at the wrong length for Germany (22).
  EXPECT_FALSE(detail::iban_valid("DE8937040044053201300"));
  // No such country.
  EXPECT_FALSE(detail::iban_valid("QQ82WEST12345698765432"));
  // Spaced, but not in groups of four.
  EXPECT_FALSE(detail::iban_valid("GB82 WEST 12345698 765432"));
  EXPECT_EQ(found("iban", "NO93 8601 1117 947 ok"), Strings{"NO93 8601 1117 947"});
}

TEST_F(DetectorsTest, IpAddresses) {
  EXPECT_EQ(found("ip_address", "host 192.168.1.20 up"), Strings{"192.168.1.20"});
  EXPECT_EQ(found("ip_address", "via 2001:db8::8a2e:370:7334."),
            Strings{"2001:db8::8a2e:370:7334"});
  EXPECT_EQ(found("ip_address", "FE80::1FF:FE23:4567:890A"), Strings{"FE80::1FF:FE23:4567:890A"});
  EXPECT_EQ(found("ip_address", "2001:0db8:0000:0000:0000:ff00:0042:8329"),
            Strings{"2001:0db8:0000:0000:0000:ff00:0042:8329"});
  for (const char* text : {"999.1.1.1", "256.0.0.1", "version 1.2.3.4", "1.2.3.4.5", "at 12:30:45",
                           "mac 00:1a:2b:3c:4d:5e", "std::vector<int>", "01.02.03.04"}) {
    EXPECT_EQ(found("ip_address", text), Strings{}) << text;
  }
}

TEST_F(DetectorsTest, Secrets) {
  EXPECT_EQ(found("aws_access_key", "key=AKIAIOSFODNN7EXAMPLE;"), Strings{"AKIAIOSFODNN7EXAMPLE"});
  EXPECT_EQ(found("aws_access_key", "ＡＫＩＡIOSFODNN7EXAMPLE"),
            Strings{"ＡＫＩＡIOSFODNN7EXAMPLE"});
  const std::string pem =
      "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\nabc=\n-----END RSA PRIVATE KEY-----";
  EXPECT_EQ(found("private_key", "here:\n" + pem + "\nthanks"), Strings{pem});
  const std::string ec_pem = "-----BEGIN EC PRIVATE KEY-----\nMHcC\n-----END EC PRIVATE KEY-----";
  EXPECT_EQ(found("private_key", pem + "\nand\n" + ec_pem), (Strings{pem, ec_pem}));
  EXPECT_EQ(found("private_key", "-----BEGIN PRIVATE KEY-----\nMIIE (truncated"),
            Strings{"-----BEGIN PRIVATE KEY-----"});
  const std::string jwt =
      "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_"
      "XgL0n3I9PlFUP0THsR8U";
  EXPECT_EQ(found("jwt", "Bearer " + jwt + " ok"), Strings{jwt});
  for (const std::string token :
       {"ghp_0123456789abcdefABCDEF0123456789abcd",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnop", "xoxb-1234567890-abcdefghij",
        "sk-proj-abcdefghijklmnopqrstuvwxyz012345", "sk-ant-api03-abcdefghijklmnopqrstuvwx",
        "AIzaSyA1234567890abcdefghijklmnopqrstuv", "glpat-abcdefghij0123456789"}) {
    EXPECT_EQ(found("provider_token", "token " + token + " end"), Strings{token}) << token;
  }
  EXPECT_TRUE(found("provider_token", "task-based sk-learn and ghp_short").empty());
}

TEST_F(DetectorsTest, BannersRaiseTheLabelTheyName) {
  EXPECT_EQ(found("classification_banner", "SECRET//NOFORN\nbody"), Strings{"SECRET//NOFORN"});
  EXPECT_EQ(label_of("SECRET//NOFORN\nbody"), parse("SECRET//NOFORN"));
  EXPECT_EQ(found("classification_banner", "TOP SECRET//SCI"), Strings{"TOP SECRET//SCI"});
  EXPECT_EQ(label_of("TOP SECRET//SCI"), parse("TOP_SECRET"));
  EXPECT_EQ(found("classification_banner", "CONFIDENTIAL//REL TO USA, GBR\nText"),
            Strings{"CONFIDENTIAL//REL TO USA, GBR"});
  EXPECT_EQ(label_of("CONFIDENTIAL//REL TO USA, GBR"), parse("CONFIDENTIAL"));
  EXPECT_EQ(found("classification_banner", "S E C R E T // N O F O R N"),
            Strings{"S E C R E T // N O F O R N"});
  EXPECT_EQ(label_of("S E C R E T // N O F O R N"), parse("SECRET//NOFORN"));
  EXPECT_EQ(label_of("ＳＥＣＲＥＴ／／ＮＯＦＯＲＮ"), parse("SECRET//NOFORN"));
  EXPECT_EQ(label_of("\u0405\u0415\u0421R\u0415\u0422//NOFORN"), parse("SECRET//NOFORN"));
  EXPECT_EQ(label_of("SEC\u200bRET//NO\u200bFORN"), parse("SECRET//NOFORN"));
  // The banner stops before the following sentence.
  EXPECT_EQ(found("classification_banner", "SECRET//NOFORN The plan"), Strings{"SECRET//NOFORN"});
}

TEST_F(DetectorsTest, PortionMarks) {
  EXPECT_EQ(found("portion_mark", "(TS//SCI) The source."), Strings{"(TS//SCI)"});
  EXPECT_EQ(label_of("(TS//SCI) The source."), parse("TOP_SECRET"));
  EXPECT_EQ(label_of("(S//NF) Troop movements."), parse("SECRET//NOFORN"));
  EXPECT_EQ(label_of("Intro.\n(C) The meeting was held."), parse("CONFIDENTIAL"));
  EXPECT_EQ(label_of("(U//FOUO) Routine."), Label{});
  EXPECT_TRUE(found("portion_mark", "(U) Routine.").empty());
  // Bare single letters away from a line start, or as a copyright sign, are not marks.
  EXPECT_TRUE(found("portion_mark", "options (A), (B) or (C) apply").empty());
  EXPECT_TRUE(found("portion_mark", "(C) 2024 Acme Corp").empty());
  EXPECT_TRUE(found("portion_mark", "(C) Copyright Acme").empty());
}

TEST_F(DetectorsTest, ClassificationWordsOnlyInCapitals) {
  EXPECT_EQ(found("classification_word", "This is SECRET material."), Strings{"SECRET"});
  EXPECT_EQ(label_of("This is SECRET material."), parse("SECRET"));
  EXPECT_EQ(label_of("stamped TOP SECRET"), parse("TOP_SECRET"));
  EXPECT_EQ(label_of("marked CONFIDENTIAL"), parse("CONFIDENTIAL"));
  EXPECT_EQ(found("classification_word", "it is S-E-C-R-E-T ok"), Strings{"S-E-C-R-E-T"});
  EXPECT_EQ(found("classification_word", "it is 𝐒𝐄𝐂𝐑𝐄𝐓"), Strings{"𝐒𝐄𝐂𝐑𝐄𝐓"});
  // Prose use of the words, and identifiers that contain them, do not raise.
  for (const char* text :
       {"the secret to good bread is time", "a Secret Santa party", "keep it confidential",
        "export AWS_SECRET_ACCESS_KEY=x", "client_secret and SECRETARY", "top secret recipe"}) {
    EXPECT_EQ(label_of(text), Label{}) << text;
  }
}

TEST_F(DetectorsTest, OffsetsAreOriginalBytesWithMultiByteInput) {
  const std::string text =
      "h\u00e9llo w\u00f6rld \uff33\uff25\uff23\uff32\uff25\uff34 and "
      "j\u0430ne@example.com \u2014 4111\u00a01111 1111 1111.";
  std::vector<DetectorMatch> matches;
  ASSERT_TRUE(set_->scan(text, matches));
  std::vector<std::pair<std::string, std::string>> seen;
  for (const auto& m : matches) {
    seen.emplace_back(set_->spec(m.detector).name, text.substr(m.begin, m.end - m.begin));
  }
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"email", "j\u0430ne@example.com"},
      {"payment_card", "4111\u00a01111 1111 1111"},
      {"classification_word", "\uff33\uff25\uff23\uff32\uff25\uff34"},
  };
  EXPECT_EQ(seen, expected);
  EXPECT_EQ(text.find("\uff33"), matches.back().begin);
}

TEST_F(DetectorsTest, ScanIsDeterministicAndAppends) {
  const std::string text = "a@b.com SECRET 4111 1111 1111 1111 a@b.com";
  std::vector<DetectorMatch> first;
  std::vector<DetectorMatch> second = {DetectorMatch{0, 0, 1, Label{}}};
  ASSERT_TRUE(set_->scan(text, first));
  ASSERT_TRUE(set_->scan(text, second));
  ASSERT_EQ(second.size(), first.size() + 1);
  EXPECT_TRUE(std::equal(first.begin(), first.end(), second.begin() + 1));
  const ScanSummary summary = set_->classify(text);
  EXPECT_TRUE(summary.scanned);
  EXPECT_EQ(summary.hits[id("email")], 2U);
  EXPECT_EQ(summary.hits[id("payment_card")], 1U);
  EXPECT_EQ(summary.label, parse("SECRET//PII/PCI"));
}

TEST_F(DetectorsTest, CleanProseRaisesNothing) {
  const ScanSummary summary = set_->classify(
      "Please summarise the quarterly report. Revenue grew 12% to $4.5M in Q3 2024, "
      "see section 2.1.3; the meeting is at 10:30 on 2024-01-15. Keep the secret sauce secret.");
  EXPECT_EQ(summary.label, Label{});
  for (auto hits : summary.hits) EXPECT_EQ(hits, 0U);
}

TEST_F(DetectorsTest, NumbersAmongOtherNumbers) {
  EXPECT_EQ(found("phone", "call 415-555-0132 2 times"), Strings{"415-555-0132"});
  EXPECT_EQ(found("phone", "fax:(212)555-0199."), Strings{"(212)555-0199"});
  EXPECT_TRUE(found("phone", "id 1-415-555-0132-7").empty());
  EXPECT_TRUE(found("phone", "(415) 555-0132-9").empty());
  EXPECT_EQ(found("payment_card", "in 2024 4111 1111 1111 1111 was used"),
            Strings{"4111 1111 1111 1111"});
  EXPECT_EQ(found("us_ssn", "ids 12 123-45-6789 and 078-05-1120"),
            (Strings{"123-45-6789", "078-05-1120"}));
  EXPECT_EQ(found("ip_address", "fe80::1 and 10.0.0.1, not ::1 or a:b"),
            (Strings{"fe80::1", "10.0.0.1"}));
}

TEST(NumericValidatorsTest, ChecksumsAndRanges) {
  EXPECT_TRUE(detail::luhn_valid("4111 1111 1111 1111"));
  EXPECT_FALSE(detail::luhn_valid("4111 1111 1111 1112"));
  EXPECT_FALSE(detail::luhn_valid("0000 0000 0000"));  // 12 digits: too short
  EXPECT_TRUE(detail::iban_valid("GB82 WEST 1234 5698 7654 32"));
  EXPECT_TRUE(detail::iban_valid("fr1420041010050500013m02606"));
  EXPECT_FALSE(detail::iban_valid("GB82 WEST 1234 5698 7654 33"));
  EXPECT_FALSE(detail::iban_valid("1282 WEST 1234 5698 7654 32"));
  EXPECT_TRUE(detail::ssn_valid("078-05-1120"));
  EXPECT_FALSE(detail::ssn_valid("078-05-112"));
  EXPECT_TRUE(detail::ipv6_valid("::ffff:0:1", 0, 10));
  EXPECT_FALSE(detail::ipv6_valid(":1:2", 0, 4));
  EXPECT_FALSE(detail::ipv6_valid("1::2::3", 0, 7));
  EXPECT_FALSE(detail::ipv6_valid("12345::1", 0, 8));
  EXPECT_FALSE(detail::ipv6_valid("1:2:3:4:5:6:7", 0, 13));
  EXPECT_TRUE(detail::ipv6_valid("1:2:3:4:5:6:7:8", 0, 15));
  EXPECT_TRUE(detail::ipv4_valid("255.255.255.0", 0, 13));
  EXPECT_FALSE(detail::ipv4_valid("255.256.255.0", 0, 13));
}

TEST(DetectorSetCompileTest, CustomPatternsKeywordsAndValidators) {
  std::vector<DetectorSpec> specs(3);
  specs[0].name = "project_codename";
  specs[0].keywords = {"Blue Harvest", "c++"};
  specs[0].raises = Label{2, 0};
  specs[1].name = "employee_id";
  specs[1].patterns = {"\\bEMP-[0-9]{6}\\b"};
  specs[1].raises = Label{1, 2};
  specs[2].name = "visa_only";
  specs[2].patterns = {"\\b4[0-9]{15}\\b"};
  specs[2].validator = Validator::kLuhn;
  std::string error;
  auto set = DetectorSet::compile(LabelLattice::defaults(), specs, &error);
  ASSERT_NE(set, nullptr) << error;
  const std::string text =
      "BLUE HARVEST for EMP-123456 not emp-123456; 4111111111111111 4111111111111112 "
      "blue harvesting, C++";
  std::vector<DetectorMatch> matches;
  ASSERT_TRUE(set->scan(text, matches));
  std::vector<std::pair<int, std::string>> seen;
  for (const auto& m : matches)
    seen.emplace_back(m.detector, text.substr(m.begin, m.end - m.begin));
  const std::vector<std::pair<int, std::string>> expected = {
      {0, "BLUE HARVEST"}, {0, "C++"}, {1, "EMP-123456"}, {2, "4111111111111111"}};
  EXPECT_EQ(seen, expected);
  EXPECT_EQ(set->classify(text).label, (Label{2, 2}));
}

TEST(DetectorSetCompileTest, DisabledDetectorsKeepTheirIdsButDoNotMatch) {
  auto specs = builtin_detector_specs(LabelLattice::defaults());
  for (auto& spec : specs) spec.enabled = spec.name == "payment_card";
  std::string error;
  auto set = DetectorSet::compile(LabelLattice::defaults(), specs, &error);
  ASSERT_NE(set, nullptr) << error;
  EXPECT_EQ(set->size(), specs.size());
  std::vector<DetectorMatch> matches;
  ASSERT_TRUE(set->scan("a@b.com SECRET//NOFORN 4111 1111 1111 1111", matches));
  ASSERT_EQ(matches.size(), 1U);
  EXPECT_EQ(set->spec(matches[0].detector).name, "payment_card");

  for (auto& spec : specs) spec.enabled = false;
  set = DetectorSet::compile(LabelLattice::defaults(), specs, &error);
  ASSERT_NE(set, nullptr) << error;
  matches.clear();
  EXPECT_TRUE(set->scan("a@b.com", matches));
  EXPECT_TRUE(matches.empty());
}

TEST(DetectorSetCompileTest, ErrorsNameTheDetector) {
  std::string error;
  std::vector<DetectorSpec> specs(1);
  specs[0].name = "mystery";
  EXPECT_EQ(DetectorSet::compile(LabelLattice::defaults(), specs, &error), nullptr);
  EXPECT_NE(error.find("mystery"), std::string::npos) << error;

  specs[0].patterns = {"(unclosed"};
  EXPECT_EQ(DetectorSet::compile(LabelLattice::defaults(), specs, &error), nullptr);
  EXPECT_NE(error.find("mystery"), std::string::npos) << error;
  EXPECT_NE(error.find("(unclosed"), std::string::npos) << error;

  specs[0].patterns = {"(?<=a)b"};  // look-behind: not supported by vectorscan
  EXPECT_EQ(DetectorSet::compile(LabelLattice::defaults(), specs, &error), nullptr);
  EXPECT_NE(error.find("mystery"), std::string::npos) << error;

  specs[0].patterns.clear();
  specs[0].keywords = {""};
  EXPECT_EQ(DetectorSet::compile(LabelLattice::defaults(), specs, &error), nullptr);
  EXPECT_NE(error.find("empty keyword"), std::string::npos) << error;
}

TEST(DetectorSetCompileTest, MarkingsFollowACustomLattice) {
  auto lattice = LabelLattice::make({"OPEN", "SECRET"}, {"LEGAL", "NOFORN"}, nullptr).value();
  std::string error;
  auto set = DetectorSet::compile(lattice, builtin_detector_specs(lattice), &error);
  ASSERT_NE(set, nullptr) << error;
  // SECRET exists, NOFORN is bit 1; CONFIDENTIAL and PII do not exist here.
  EXPECT_EQ(set->classify("SECRET//NOFORN").label, (Label{1, 2}));
  EXPECT_EQ(set->classify("CONFIDENTIAL").label, Label{});
  EXPECT_EQ(set->classify("mail a@b.com").label, Label{});
  EXPECT_EQ(set->classify("mail a@b.com").hits[0], 1U);
}

TEST(DetectorSetCompileTest, ThreadsScanOneSetConcurrently) {
  std::string error;
  auto set = DetectorSet::compile(LabelLattice::defaults(),
                                  builtin_detector_specs(LabelLattice::defaults()), &error);
  ASSERT_NE(set, nullptr) << error;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        if (set->classify("SECRET//NOFORN a@b.com").label != Label{3, 3}) ++failures;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
}

}  // namespace
}  // namespace redline::policy
