// Shared fixtures for the audit tests: a fresh directory per test, an event factory, and raw
// SQL on the audit file for tampering.
#pragma once

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "audit/audit_log.h"

namespace redline::audit::testing {

class AuditDirectory : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::temp_directory_path() /
           ("redline-audit-" + std::to_string(::getpid()) + "-" + info->test_suite_name() + "-" +
            info->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  AuditOptions options() const {
    AuditOptions options;
    options.sqlite_path = (dir_ / "redline.db").string();
    options.signing_key_path = (dir_ / "redline-audit.key").string();
    return options;
  }

  static AuditEvent request_event(int n) {
    AuditEvent event;
    event.time_ms = 1'700'000'000'000 + n;
    event.request_id = "req-" + std::to_string(n);
    event.tenant = n % 2 ? "acme" : "globex";
    event.key_id = "k_" + std::to_string(n % 3);
    event.model = "chat";
    event.backend = "edge-1";
    event.label = "INTERNAL";
    event.decision = "allow";
    event.status = 200;
    event.tokens_in = 10;
    event.tokens_out = 20;
    event.cost_usd = 0.000125;
    return event;
  }

  // Appends `count` request events (numbered from 1) and closes the log.
  void write_records(int count, AuditOptions opts) {
    std::string error;
    auto log = AuditLog::open(opts, &error);
    ASSERT_TRUE(log) << error;
    for (int n = 1; n <= count; ++n) log->append(request_event(n));
  }
  void write_records(int count) { write_records(count, options()); }

  std::string public_key() const {
    std::string error;
    auto log = AuditLog::open(options(), &error);
    EXPECT_TRUE(log) << error;
    return log ? log->public_key_pem() : "";
  }

  void sql(const std::string& statement) const {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(options().sqlite_path.c_str(), &db), SQLITE_OK);
    char* error = nullptr;
    const int rc = sqlite3_exec(db, statement.c_str(), nullptr, nullptr, &error);
    EXPECT_EQ(rc, SQLITE_OK) << statement << ": " << (error ? error : "");
    sqlite3_free(error);
    sqlite3_close(db);
  }

  std::int64_t count(const std::string& query) const {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open(options().sqlite_path.c_str(), &db), SQLITE_OK);
    sqlite3_stmt* statement = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, query.c_str(), -1, &statement, nullptr), SQLITE_OK);
    std::int64_t value = -1;
    if (sqlite3_step(statement) == SQLITE_ROW) value = sqlite3_column_int64(statement, 0);
    sqlite3_finalize(statement);
    sqlite3_close(db);
    return value;
  }

  std::filesystem::path dir_;
};

}  // namespace redline::audit::testing
