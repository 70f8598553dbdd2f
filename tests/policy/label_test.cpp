#include "policy/label.h"

#include <gtest/gtest.h>

namespace redline::policy {
namespace {

class LabelLatticeTest : public ::testing::Test {
 protected:
  LabelLattice lattice = LabelLattice::defaults();
  std::uint64_t caveat(std::string_view name) { return lattice.find_caveat(name).value(); }
  std::uint8_t level(std::string_view name) { return lattice.find_level(name).value(); }
};

TEST_F(LabelLatticeTest, DefaultsHaveTheDocumentedOrder) {
  EXPECT_EQ(lattice.levels(), (std::vector<std::string>{"PUBLIC", "INTERNAL", "CONFIDENTIAL",
                                                        "SECRET", "TOP_SECRET"}));
  EXPECT_EQ(lattice.caveats(),
            (std::vector<std::string>{"NOFORN", "PII", "PHI", "PCI", "EXPORT_CONTROLLED"}));
  EXPECT_EQ(level("public"), 0);
  EXPECT_EQ(level("Top_Secret"), 4);
  EXPECT_EQ(caveat("noforn"), 1U);
  EXPECT_EQ(caveat("PCI"), 8U);
  EXPECT_FALSE(lattice.find_level("NOFORN"));
  EXPECT_FALSE(lattice.find_caveat("SECRET"));
}

TEST_F(LabelLatticeTest, ParsesEveryDocumentedForm) {
  EXPECT_EQ(lattice.parse("SECRET"), (Label{3, 0}));
  EXPECT_EQ(lattice.parse("secret//noforn"), (Label{3, caveat("NOFORN")}));
  EXPECT_EQ(lattice.parse("CONFIDENTIAL//PII/PHI"), (Label{2, caveat("PII") | caveat("PHI")}));
  EXPECT_EQ(lattice.parse("CONFIDENTIAL//PII,PHI"), (Label{2, caveat("PII") | caveat("PHI")}));
  EXPECT_EQ(lattice.parse("INTERNAL//PII//PCI"), (Label{1, caveat("PII") | caveat("PCI")}));
  EXPECT_EQ(lattice.parse(" top secret // pii "), (Label{4, caveat("PII")}));
  EXPECT_EQ(lattice.parse("TOP_SECRET"), (Label{4, 0}));
}

TEST_F(LabelLatticeTest, ParseErrorsNameTheUnknownWord) {
  std::string error;
  EXPECT_FALSE(lattice.parse("SECRTE//NOFORN", &error));
  EXPECT_NE(error.find("SECRTE"), std::string::npos) << error;
  EXPECT_FALSE(lattice.parse("SECRET//NOFRON", &error));
  EXPECT_NE(error.find("NOFRON"), std::string::npos) << error;
  // A caveat alone is not a label: the level comes first.
  EXPECT_FALSE(lattice.parse("NOFORN", &error));
  EXPECT_NE(error.find("NOFORN"), std::string::npos) << error;
  EXPECT_FALSE(lattice.parse("", &error));
  EXPECT_FALSE(lattice.parse("//", &error));
  EXPECT_FALSE(lattice.parse("SECRET//BOGUS"));  // a null error pointer is allowed
  EXPECT_TRUE(lattice.parse("SECRET//NOFORN"));
}

TEST_F(LabelLatticeTest, FormatListsCaveatsInLatticeOrderAndRoundTrips) {
  EXPECT_EQ(lattice.format(Label{}), "PUBLIC");
  EXPECT_EQ(lattice.format(Label{3, caveat("PII") | caveat("NOFORN")}), "SECRET//NOFORN/PII");
  EXPECT_EQ(lattice.format(lattice.top()), "TOP_SECRET//NOFORN/PII/PHI/PCI/EXPORT_CONTROLLED");
  for (std::uint8_t lvl = 0; lvl < 5; ++lvl) {
    for (std::uint64_t cav = 0; cav < 32; ++cav) {
      const Label label{lvl, cav};
      EXPECT_EQ(lattice.parse(lattice.format(label)), label) << lattice.format(label);
    }
  }
}

TEST(LabelOrderTest, DominatesNeedsLevelAndEveryCaveat) {
  EXPECT_TRUE(dominates(Label{3, 0b11}, Label{2, 0b01}));
  EXPECT_TRUE(dominates(Label{3, 0b11}, Label{3, 0b11}));
  EXPECT_FALSE(dominates(Label{2, 0b11}, Label{3, 0}));
  EXPECT_FALSE(dominates(Label{4, 0b01}, Label{0, 0b10}));
  EXPECT_TRUE(dominates(Label{0, 0}, Label{}));
}

TEST(LabelOrderTest, LeastUpperBoundIsMaxLevelAndCaveatUnion) {
  const Label a{1, 0b0101};
  const Label b{3, 0b0011};
  const Label lub = least_upper_bound(a, b);
  EXPECT_EQ(lub, (Label{3, 0b0111}));
  EXPECT_TRUE(dominates(lub, a));
  EXPECT_TRUE(dominates(lub, b));
  EXPECT_EQ(least_upper_bound(a, a), a);
  EXPECT_EQ(least_upper_bound(a, b), least_upper_bound(b, a));
}

TEST(LabelLatticeMakeTest, CustomLatticeUpperCasesNames) {
  std::string error;
  auto lattice = LabelLattice::make({"open", "restricted"}, {"legal", "hr_only"}, &error);
  ASSERT_TRUE(lattice) << error;
  EXPECT_EQ(lattice->levels(), (std::vector<std::string>{"OPEN", "RESTRICTED"}));
  EXPECT_EQ(lattice->caveats(), (std::vector<std::string>{"LEGAL", "HR_ONLY"}));
  EXPECT_EQ(lattice->parse("restricted//hr_only"), (Label{1, 2}));
  EXPECT_EQ(lattice->top(), (Label{1, 3}));
  const LabelLattice copy = *lattice;
  EXPECT_EQ(copy.format(Label{1, 3}), "RESTRICTED//LEGAL/HR_ONLY");
}

TEST(LabelLatticeMakeTest, RejectsBadNames) {
  std::string error;
  EXPECT_FALSE(LabelLattice::make({"x y"}, {}, &error));
  EXPECT_EQ(error, "level name \"x y\" is not [A-Z0-9_]+");
  EXPECT_FALSE(LabelLattice::make({"OPEN"}, {"a/b"}, &error));
  EXPECT_EQ(error, "caveat name \"a/b\" is not [A-Z0-9_]+");
  EXPECT_FALSE(LabelLattice::make({"OPEN"}, {""}, &error));
  EXPECT_FALSE(LabelLattice::make({}, {}, &error));
  EXPECT_FALSE(LabelLattice::make({"open", "OPEN"}, {}, &error));
  EXPECT_NE(error.find("OPEN"), std::string::npos) << error;
  EXPECT_FALSE(LabelLattice::make({"OPEN"}, {"open"}, &error));
  std::vector<std::string> many;
  for (int i = 0; i < 33; ++i) many.push_back("L" + std::to_string(i));
  EXPECT_FALSE(LabelLattice::make(many, {}, &error));
  many.resize(32);
  EXPECT_TRUE(LabelLattice::make(many, {}, &error));
}

TEST(LabelLatticeMakeTest, SixtyFourCaveatsFillEveryBit) {
  std::vector<std::string> caveats;
  for (int i = 0; i < 64; ++i) caveats.push_back("C" + std::to_string(i));
  auto lattice = LabelLattice::make({"L"}, caveats, nullptr);
  ASSERT_TRUE(lattice);
  EXPECT_EQ(lattice->top().caveats, ~std::uint64_t{0});
  EXPECT_EQ(lattice->find_caveat("c63"), std::uint64_t{1} << 63);
  caveats.push_back("C64");
  EXPECT_FALSE(LabelLattice::make({"L"}, caveats, nullptr));
}

}  // namespace
}  // namespace redline::policy
