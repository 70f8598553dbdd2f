#include "audit/verify.h"

#include <fstream>
#include <sstream>
#include <vector>

#include "audit/audit_log.h"
#include "audit/audit_record.h"
#include "audit/signing_key.h"
#include "audit_test_support.h"

namespace redline::audit {
namespace {

using testing::AuditDirectory;

// 30 records in three sessions, so checkpoints sit at 10, 20 and 30.
class VerifyTest : public AuditDirectory {
 protected:
  void SetUp() override {
    AuditDirectory::SetUp();
    for (int i = 0; i < 3; ++i) write_records(10);
    key_ = public_key();
  }

  VerifyReport verify() {
    auto report = verify_store(options().sqlite_path, key_);
    EXPECT_TRUE(report) << report.error();
    return report ? *report : VerifyReport{};
  }

  static void expect_problem(const VerifyReport& report, std::int64_t seq, ProblemKind kind) {
    ASSERT_FALSE(report.ok()) << report.summary();
    EXPECT_EQ(report.problem->seq, seq) << report.problem->message;
    EXPECT_EQ(problem_kind_name(report.problem->kind), problem_kind_name(kind))
        << report.problem->message;
    EXPECT_NE(report.problem->message.find(std::string(problem_kind_name(kind))),
              std::string::npos);
  }

  std::vector<std::string> export_lines(ExportRange range = {}) {
    std::ostringstream out;
    auto summary = export_records(options().sqlite_path, range, out);
    EXPECT_TRUE(summary) << summary.error();
    std::vector<std::string> lines;
    std::istringstream in(out.str());
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  }

  VerifyReport verify_lines(const std::vector<std::string>& lines, const std::string& key = "") {
    std::string text;
    for (const auto& line : lines) text += line + "\n";
    std::istringstream in(text);
    auto report = verify_export(in, key.empty() ? key_ : key);
    EXPECT_TRUE(report) << report.error();
    return report ? *report : VerifyReport{};
  }

  // Index of the export line holding record `seq`.
  static std::size_t line_of(const std::vector<std::string>& lines, std::int64_t seq) {
    const std::string prefix = "{\"seq\":" + std::to_string(seq) + ",";
    for (std::size_t i = 0; i < lines.size(); ++i) {
      if (lines[i].starts_with(prefix)) return i;
    }
    ADD_FAILURE() << "no record " << seq;
    return 0;
  }

  // A signature over `hash` at `seq` by a key other than the log's.
  static std::string foreign_signature(std::int64_t seq, const std::string& hash) {
    EvpKey other(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
    return sign(other.get(), checkpoint_message(seq, hash));
  }

  std::string key_;
};

TEST_F(VerifyTest, IntactStoreAndExportVerify) {
  const auto report = verify();
  EXPECT_TRUE(report.ok()) << report.summary();
  EXPECT_EQ(report.records_checked, 30);
  EXPECT_EQ(report.checkpoints_checked, 3);
  EXPECT_EQ(report.last_checkpoint_seq, 30);
  const auto lines = export_lines();
  ASSERT_EQ(lines.size(), 33u);
  const auto exported = verify_lines(lines);
  EXPECT_TRUE(exported.ok()) << exported.summary();
  EXPECT_EQ(exported.records_checked, 30);
  EXPECT_EQ(exported.checkpoints_checked, 3);
}

TEST_F(VerifyTest, StoreEditedFieldIsModified) {
  sql("UPDATE audit_records SET record = replace(record, '\"tenant\":\"acme\"', "
      "'\"tenant\":\"evil\"') WHERE seq = 7");
  expect_problem(verify(), 7, ProblemKind::kModified);
}

TEST_F(VerifyTest, StoreRehashedEditIsModified) {
  // The attacker fixes the stored hash too: the next record's link and the checkpoint differ.
  sql("UPDATE audit_records SET record = replace(record, '\"status\":200', '\"status\":201') "
      "WHERE seq = 7");
  sql("UPDATE audit_records SET hash = lower(hex(randomblob(32))) WHERE seq = 7");
  const auto report = verify();
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.problem->kind, ProblemKind::kModified);
}

TEST_F(VerifyTest, StoreDeletedRecord) {
  sql("DELETE FROM audit_records WHERE seq = 12");
  expect_problem(verify(), 12, ProblemKind::kDeleted);
  sql("DELETE FROM audit_records WHERE seq = 1");
  expect_problem(verify(), 1, ProblemKind::kDeleted);
}

TEST_F(VerifyTest, StoreSwappedRecordsAreReordered) {
  sql("UPDATE audit_records SET seq = -1 WHERE seq = 5;"
      "UPDATE audit_records SET seq = 5 WHERE seq = 6;"
      "UPDATE audit_records SET seq = 6 WHERE seq = -1;");
  expect_problem(verify(), 5, ProblemKind::kReordered);
}

TEST_F(VerifyTest, StoreInsertedRecord) {
  // Make room after record 14 and insert a self-consistent record that does not link.
  sql("UPDATE audit_records SET seq = seq + 1000 WHERE seq > 14;"
      "UPDATE audit_records SET seq = seq - 999 WHERE seq > 1000;");
  AuditEvent forged = request_event(99);
  const std::string text = canonical_record(15, kZeroHash, canonical_record_tail(forged));
  sql("INSERT INTO audit_records(seq, time_ms, kind, tenant, key_id, model, backend, tokens_in, "
      "tokens_out, cost_micro_usd, record, hash) VALUES(15, 0, 'request', '', '', '', '', 0, 0, "
      "0, '" +
      text + "', '" + sha256_hex(text) + "')");
  expect_problem(verify(), 15, ProblemKind::kInserted);
}

TEST_F(VerifyTest, StoreTruncatedTailAgainstCheckpoint) {
  sql("DELETE FROM audit_records WHERE seq > 27");
  expect_problem(verify(), 28, ProblemKind::kTruncated);
}

TEST_F(VerifyTest, StoreTailAfterLastCheckpointIsOnlyCounted) {
  sql("DELETE FROM audit_checkpoints WHERE seq = 30");
  auto report = verify();
  EXPECT_TRUE(report.ok()) << report.summary();
  EXPECT_EQ(report.unsigned_tail, 10);
  EXPECT_EQ(report.last_checkpoint_seq, 20);
}

TEST_F(VerifyTest, StoreForgedSignatures) {
  sql("UPDATE audit_checkpoints SET signature = '" + base64_encode(std::string(64, 'x')) +
      "' WHERE seq = 20");
  expect_problem(verify(), 20, ProblemKind::kBadSignature);
}

TEST_F(VerifyTest, StoreSignedWithAnotherKey) {
  // A valid signature over the true head at 10, by a key that is not the log's.
  const auto lines = export_lines();
  const std::string& record = lines[line_of(lines, 10)];
  const std::string hash = record.substr(record.size() - 66, 64);
  sql("UPDATE audit_checkpoints SET signature = '" + foreign_signature(10, hash) +
      "' WHERE seq = 10");
  expect_problem(verify(), 10, ProblemKind::kBadSignature);
  // Verifying with a key that did not sign anything fails at the first checkpoint.
  EvpKey other(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  auto report = verify_store(options().sqlite_path, public_key_pem(other.get()));
  ASSERT_TRUE(report);
  expect_problem(*report, 10, ProblemKind::kBadSignature);
}

TEST_F(VerifyTest, StoreCheckpointOverRewrittenChain) {
  sql("UPDATE audit_checkpoints SET hash = '" + std::string(64, 'a') + "' WHERE seq = 20");
  // The signature no longer matches the hash either; the lowest seq names it.
  expect_problem(verify(), 20, ProblemKind::kBadSignature);
}

TEST_F(VerifyTest, ExportEditedField) {
  auto lines = export_lines();
  const auto at = line_of(lines, 9);
  lines[at].replace(lines[at].find("\"status\":200"), 12, "\"status\":500");
  expect_problem(verify_lines(lines), 9, ProblemKind::kModified);
}

TEST_F(VerifyTest, ExportDeletedRecord) {
  auto lines = export_lines();
  lines.erase(lines.begin() + line_of(lines, 4));
  expect_problem(verify_lines(lines), 4, ProblemKind::kDeleted);
}

TEST_F(VerifyTest, ExportSwappedRecords) {
  auto lines = export_lines();
  std::swap(lines[line_of(lines, 3)], lines[line_of(lines, 4)]);
  expect_problem(verify_lines(lines), 3, ProblemKind::kReordered);
}

TEST_F(VerifyTest, ExportInsertedRecord) {
  auto lines = export_lines();
  // A copy of record 17 with changed contents but a correct self-hash, placed after 17.
  const auto at = line_of(lines, 17);
  std::string text = lines[at].substr(0, lines[at].size() - 75) + "}";
  text.replace(text.find("\"status\":200"), 12, "\"status\":299");
  const std::string forged =
      text.substr(0, text.size() - 1) + ",\"hash\":\"" + sha256_hex(text) + "\"}";
  lines.insert(lines.begin() + at + 1, forged);
  expect_problem(verify_lines(lines), 17, ProblemKind::kInserted);
}

TEST_F(VerifyTest, ExportTruncatedTail) {
  auto lines = export_lines();
  // Drop records 28..30 but keep the checkpoint line naming 30.
  lines.erase(lines.begin() + line_of(lines, 28), lines.begin() + line_of(lines, 30) + 1);
  expect_problem(verify_lines(lines), 28, ProblemKind::kTruncated);
}

TEST_F(VerifyTest, ExportForgedAndForeignSignatures) {
  auto lines = export_lines();
  const auto at = line_of(lines, 10) + 1;
  ASSERT_TRUE(lines[at].starts_with("{\"checkpoint\":"));
  auto forged = lines;
  const auto signature = forged[at].find("\"signature\":\"") + 13;
  forged[at][signature] = forged[at][signature] == 'A' ? 'B' : 'A';
  expect_problem(verify_lines(forged), 10, ProblemKind::kBadSignature);

  EvpKey other(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  expect_problem(verify_lines(lines, public_key_pem(other.get())), 10, ProblemKind::kBadSignature);
}

TEST_F(VerifyTest, ExportMalformedLine) {
  auto lines = export_lines();
  lines[line_of(lines, 6)] = "{\"seq\":6}";
  expect_problem(verify_lines(lines), 6, ProblemKind::kMalformed);
}

TEST_F(VerifyTest, PartialExportExtendsToTheNextCheckpoint) {
  ExportRange range;
  range.since_ms = 1'700'000'000'000 + 3;  // session 1 records 3..
  range.until_ms = 1'700'000'000'000 + 5;  // ..4 (until is exclusive)
  std::ostringstream out;
  auto summary = export_records(options().sqlite_path, range, out);
  ASSERT_TRUE(summary);
  // Times repeat per session (1..10 each): the first time >= since is seq 3, the last
  // time < until is seq 24, and the next checkpoint after it is 30.
  EXPECT_EQ(summary->first_seq, 3);
  EXPECT_EQ(summary->last_seq, 30);
  std::istringstream in(out.str());
  auto report = verify_export(in, key_);
  ASSERT_TRUE(report);
  EXPECT_TRUE(report->ok()) << report->summary();
  EXPECT_EQ(report->unsigned_tail, 0);
}

}  // namespace
}  // namespace redline::audit
