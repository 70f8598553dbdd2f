#include "audit/audit_log.h"

#include <sys/stat.h>
#include <sys/wait.h>

#include <atomic>
#include <future>
#include <thread>

#include "audit/audit_record.h"
#include "audit/body_cipher.h"
#include "audit/signing_key.h"
#include "audit/verify.h"
#include "audit_test_support.h"
#include "store/sqlite_database.h"

namespace redline::audit {
namespace {

using testing::AuditDirectory;

class AuditLogTest : public AuditDirectory {};

TEST(AuditRecordTest, CanonicalTextHasFixedShapeAndEscapes) {
  AuditEvent event;
  event.time_ms = 5;
  event.tenant = "a\"b\\c\n\x01";
  event.model = std::string("caf\xc3\xa9 \xff");  // valid UTF-8, then an invalid byte
  event.cost_usd = 0.0000125;
  const std::string text = canonical_record(7, kZeroHash, canonical_record_tail(event));
  EXPECT_TRUE(text.starts_with("{\"seq\":7,\"prev\":\"" + std::string(kZeroHash) +
                               "\",\"time_ms\":5,\"kind\":\"request\","));
  EXPECT_NE(text.find(R"("tenant":"a\"b\\c\n\u0001")"), std::string::npos) << text;
  EXPECT_NE(text.find("\"model\":\"caf\xc3\xa9 \\ufffd\""), std::string::npos) << text;
  EXPECT_NE(text.find("\"cost_micro_usd\":13,"), std::string::npos) << text;
  EXPECT_TRUE(text.ends_with("\"response_sha256\":\"\"}"));
  const auto head = parse_record_head(text);
  ASSERT_TRUE(head);
  EXPECT_EQ(head->seq, 7);
  EXPECT_EQ(head->prev, kZeroHash);
  EXPECT_FALSE(parse_record_head("{\"seq\":-1,\"prev\":\"x\"}"));
  EXPECT_FALSE(parse_record_head(text.substr(0, text.size() - 1)));
}

TEST(AuditRecordTest, BodyDigestOfPiecesEqualsDigestOfWhole) {
  BodyDigest digest;
  digest.update("hello ");
  digest.update("world");
  EXPECT_EQ(digest.hex(), sha256_hex("hello world"));
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(AuditRecordTest, BodyCipherBindsKeySeqAndRole) {
  const std::string key(32, 'k');
  const auto blob = encrypt_body(key, 9, "request", "secret prompt");
  ASSERT_TRUE(blob);
  EXPECT_EQ(blob->find("secret"), std::string::npos);
  EXPECT_EQ(decrypt_body(key, 9, "request", *blob), "secret prompt");
  EXPECT_FALSE(decrypt_body(key, 10, "request", *blob));
  EXPECT_FALSE(decrypt_body(key, 9, "response", *blob));
  EXPECT_FALSE(decrypt_body(std::string(32, 'x'), 9, "request", *blob));
  std::string altered = *blob;
  altered[14] ^= 1;
  EXPECT_FALSE(decrypt_body(key, 9, "request", altered));
  EXPECT_FALSE(encrypt_body("short", 1, "request", "x"));
}

TEST_F(AuditLogTest, ChainVerifiesAndSigningKeyIsPrivate) {
  write_records(50);
  EXPECT_EQ(count("SELECT COUNT(*) FROM audit_records"), 50);
  EXPECT_EQ(count("SELECT MAX(seq) FROM audit_checkpoints"), 50);  // signed at close
  struct stat info {};
  ASSERT_EQ(::stat(options().signing_key_path.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600);
  const auto report = verify_store(options().sqlite_path, public_key());
  ASSERT_TRUE(report) << report.error();
  EXPECT_TRUE(report->ok()) << report->summary();
  EXPECT_EQ(report->records_checked, 50);
  EXPECT_EQ(report->first_seq, 1);
  EXPECT_EQ(report->last_seq, 50);
  EXPECT_EQ(report->unsigned_tail, 0);
}

TEST_F(AuditLogTest, KeyIsCreatedOnceAndReused) {
  const std::string first = public_key();
  EXPECT_NE(first.find("BEGIN PUBLIC KEY"), std::string::npos);
  EXPECT_EQ(public_key(), first);
}

TEST_F(AuditLogTest, SequentialInstancesContinueOneChain) {
  for (int round = 0; round < 3; ++round) write_records(20);
  const auto report = verify_store(options().sqlite_path, public_key());
  ASSERT_TRUE(report);
  EXPECT_TRUE(report->ok()) << report->summary();
  EXPECT_EQ(report->last_seq, 60);
  EXPECT_EQ(report->checkpoints_checked, 3);
}

TEST_F(AuditLogTest, ConcurrentConnectionsFormOneChain) {
  std::string error;
  auto opts = options();
  opts.flush_interval = std::chrono::milliseconds(1);
  auto first = AuditLog::open(opts, &error);
  ASSERT_TRUE(first) << error;
  auto second = AuditLog::open(opts, &error);
  ASSERT_TRUE(second) << error;
  std::thread a([&] {
    for (int n = 0; n < 2000; ++n) first->append(request_event(n));
  });
  std::thread b([&] {
    for (int n = 0; n < 2000; ++n) second->append(request_event(n));
  });
  a.join();
  b.join();
  first.reset();
  second.reset();
  const auto report = verify_store(options().sqlite_path, public_key());
  ASSERT_TRUE(report);
  EXPECT_TRUE(report->ok()) << report->summary();
  EXPECT_EQ(report->records_checked, 4000);
}

TEST_F(AuditLogTest, TwoProcessesFormOneChain) {
  write_records(1);  // schema and key exist before the fork
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    std::string error;
    auto log = AuditLog::open(options(), &error);
    if (!log) ::_exit(3);
    for (int n = 0; n < 3000; ++n) log->append(request_event(n));
    log->flush();
    const bool ok = log->failed_records() == 0;
    log.reset();
    ::_exit(ok ? 0 : 4);
  }
  write_records(3000);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  const auto report = verify_store(options().sqlite_path, public_key());
  ASSERT_TRUE(report);
  EXPECT_TRUE(report->ok()) << report->summary();
  EXPECT_EQ(report->records_checked, 6001);
}

TEST_F(AuditLogTest, BeforeResponseCallbackRunsAfterCommit) {
  auto opts = options();
  opts.durability = Durability::kBeforeResponse;
  std::string error;
  auto log = AuditLog::open(opts, &error);
  ASSERT_TRUE(log) << error;
  std::promise<bool> durable;
  log->append(request_event(1), [&](bool ok) { durable.set_value(ok); });
  auto future = durable.get_future();
  ASSERT_EQ(future.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_TRUE(future.get());
  // Committed means another connection sees it, before any flush or close.
  EXPECT_EQ(count("SELECT COUNT(*) FROM audit_records"), 1);
}

TEST_F(AuditLogTest, CallbackReportsFailure) {
  std::string error;
  auto log = AuditLog::open(options(), &error);
  ASSERT_TRUE(log) << error;
  // Another connection holds the write lock past the busy timeout: the batch must fail.
  sqlite3* blocker = nullptr;
  ASSERT_EQ(sqlite3_open(options().sqlite_path.c_str(), &blocker), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(blocker, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  std::promise<bool> durable;
  log->append(request_event(1), [&](bool ok) { durable.set_value(ok); });
  auto future = durable.get_future();
  ASSERT_EQ(future.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  EXPECT_FALSE(future.get());
  EXPECT_EQ(log->failed_records(), 1);
  sqlite3_exec(blocker, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(blocker);
}

TEST_F(AuditLogTest, AppendDoesNotWaitForTheDisk) {
  std::string error;
  auto log = AuditLog::open(options(), &error);
  ASSERT_TRUE(log) << error;
  sqlite3* blocker = nullptr;
  ASSERT_EQ(sqlite3_open(options().sqlite_path.c_str(), &blocker), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(blocker, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  const auto start = std::chrono::steady_clock::now();
  for (int n = 0; n < 1000; ++n) log->append(request_event(n));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(500));
  sqlite3_exec(blocker, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(blocker);
  log->flush();
}

TEST_F(AuditLogTest, PeriodicCheckpointSignsTheHeadWhileRunning) {
  auto opts = options();
  opts.checkpoint_interval = std::chrono::milliseconds(20);
  std::string error;
  auto log = AuditLog::open(opts, &error);
  ASSERT_TRUE(log) << error;
  log->append(request_event(1));
  log->append(request_event(2));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (count("SELECT COUNT(*) FROM audit_checkpoints") < 1 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(count("SELECT MAX(seq) FROM audit_checkpoints"), 2);
}

TEST_F(AuditLogTest, BodiesAreKeptEncryptedOnlyWhenFlagged) {
  auto opts = options();
  opts.bodies = BodyRetention::kFlagged;
  opts.body_key = std::string(32, 'b');
  std::string error;
  {
    auto log = AuditLog::open(opts, &error);
    ASSERT_TRUE(log) << error;
    // Bodies older than the retention are purged as they are written: stamp these as new.
    auto clean = request_event(1);
    clean.time_ms = 0;
    clean.request_body = "hello";
    log->append(clean);
    auto flagged = request_event(2);
    flagged.time_ms = 0;
    flagged.detectors = "email=1";
    flagged.request_body = "mail bob@example.com";
    flagged.response_body = "ok";
    log->append(flagged);
  }
  EXPECT_EQ(count("SELECT COUNT(*) FROM audit_bodies"), 1);
  EXPECT_EQ(count("SELECT COUNT(*) FROM audit_bodies WHERE instr(request, 'bob') > 0"), 0);
  std::string message;
  auto db = store::open_sqlite_database(opts.sqlite_path, &message);
  ASSERT_TRUE(db) << message;
  auto bodies = read_bodies(db.get(), 2, opts.body_key);
  ASSERT_TRUE(bodies) << bodies.error();
  EXPECT_EQ(bodies->request, "mail bob@example.com");
  EXPECT_EQ(bodies->response, "ok");
  auto none = read_bodies(db.get(), 1, opts.body_key);
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->request);
  auto wrong_key = read_bodies(db.get(), 2, std::string(32, 'x'));
  ASSERT_TRUE(wrong_key);
  EXPECT_FALSE(wrong_key->request);
}

TEST_F(AuditLogTest, OldBodiesArePurgedWithoutBreakingTheChain) {
  auto opts = options();
  opts.bodies = BodyRetention::kAll;
  opts.body_key = std::string(32, 'b');
  opts.body_retention = std::chrono::hours(24);
  const std::int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                  std::chrono::system_clock::now().time_since_epoch())
                                  .count();
  std::string error;
  {
    auto log = AuditLog::open(opts, &error);
    ASSERT_TRUE(log) << error;
    auto old_event = request_event(1);
    old_event.time_ms = now_ms - 48 * 3600 * 1000;
    old_event.request_body = "old";
    log->append(old_event);
    auto recent = request_event(2);
    recent.time_ms = now_ms;
    recent.request_body = "recent";
    log->append(recent);
  }
  EXPECT_EQ(count("SELECT COUNT(*) FROM audit_bodies"), 1);
  EXPECT_EQ(count("SELECT seq FROM audit_bodies"), 2);
  const auto report = verify_store(opts.sqlite_path, public_key());
  ASSERT_TRUE(report);
  EXPECT_TRUE(report->ok()) << report->summary();
}

TEST_F(AuditLogTest, RejectsBadOptions) {
  std::string error;
  auto opts = options();
  opts.bodies = BodyRetention::kAll;
  opts.body_key = "short";
  EXPECT_FALSE(AuditLog::open(opts, &error));
  EXPECT_NE(error.find("32 bytes"), std::string::npos);
  opts = options();
  opts.sqlite_path = ":memory:";
  EXPECT_FALSE(AuditLog::open(opts, &error));
}

TEST_F(AuditLogTest, UsageCountsRequestsOnlyAndGroups) {
  std::string error;
  auto log = AuditLog::open(options(), &error);
  ASSERT_TRUE(log) << error;
  for (int n = 1; n <= 6; ++n) log->append(request_event(n));  // acme: 1,3,5; globex: 2,4,6
  AuditEvent admin;
  admin.kind = "admin";
  admin.tenant = "acme";
  admin.action = "keys.create";
  admin.tokens_in = 1000;
  log->append(admin);
  auto late = request_event(7);
  late.time_ms = 1'700'000'000'000 + 3'600'000;  // an hour later
  late.model = "big";
  late.cost_usd = 1.5;
  log->append(late);
  log->flush();

  UsageQuery by_tenant;
  by_tenant.group_by = {"tenant"};
  auto rows = log->usage(by_tenant);
  ASSERT_TRUE(rows) << rows.error();
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0].group,
            (std::vector<std::pair<std::string, std::string>>{{"tenant", "acme"}}));
  EXPECT_EQ((*rows)[0].requests, 4);
  EXPECT_EQ((*rows)[0].tokens_in, 40);
  EXPECT_NEAR((*rows)[0].cost_usd, 1.5 + 3 * 0.000125, 1e-9);
  EXPECT_EQ((*rows)[1].requests, 3);

  UsageQuery filtered;
  filtered.model = "chat";
  filtered.since_ms = 1'700'000'000'002;
  filtered.group_by = {"hour", "backend"};
  rows = log->usage(filtered);
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].group[0], (std::pair<std::string, std::string>{"hour", "2023-11-14T22"}));
  EXPECT_EQ((*rows)[0].requests, 5);

  UsageQuery total;
  rows = log->usage(total);
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].tokens_out, 140);

  UsageQuery nothing;
  nothing.tenant = "nobody";
  rows = log->usage(nothing);
  ASSERT_TRUE(rows);
  EXPECT_TRUE(rows->empty());

  UsageQuery bad;
  bad.group_by = {"colour"};
  EXPECT_FALSE(log->usage(bad));

  // A separate read-only connection answers the same.
  sqlite3* reader = nullptr;
  ASSERT_EQ(sqlite3_open_v2(options().sqlite_path.c_str(), &reader, SQLITE_OPEN_READONLY, nullptr),
            SQLITE_OK);
  rows = query_usage(reader, by_tenant);
  sqlite3_close(reader);
  ASSERT_TRUE(rows) << rows.error();
  EXPECT_EQ(rows->size(), 2u);
}

}  // namespace
}  // namespace redline::audit
