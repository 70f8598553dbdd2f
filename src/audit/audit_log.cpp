#include "audit/audit_log.h"

#include <cassert>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "audit/audit_record.h"
#include "audit/body_cipher.h"
#include "audit/signing_key.h"
#include "store/sqlite_database.h"

namespace redline::audit {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::string_view kSchemaV1 = R"sql(
CREATE TABLE audit_records (
  seq INTEGER PRIMARY KEY,
  time_ms INTEGER NOT NULL,
  kind TEXT NOT NULL,
  tenant TEXT NOT NULL,
  key_id TEXT NOT NULL,
  model TEXT NOT NULL,
  backend TEXT NOT NULL,
  tokens_in INTEGER NOT NULL,
  tokens_out INTEGER NOT NULL,
  cost_micro_usd INTEGER NOT NULL,
  record TEXT NOT NULL,
  hash TEXT NOT NULL
);
CREATE INDEX audit_records_time ON audit_records(time_ms);
CREATE TABLE audit_checkpoints (
  seq INTEGER PRIMARY KEY,
  hash TEXT NOT NULL,
  time_ms INTEGER NOT NULL,
  key_id TEXT NOT NULL,
  signature TEXT NOT NULL
);
CREATE TABLE audit_bodies (
  seq INTEGER PRIMARY KEY,
  time_ms INTEGER NOT NULL,
  request BLOB,
  response BLOB
);
CREATE INDEX audit_bodies_time ON audit_bodies(time_ms);
)sql";

// A full queue is written in several transactions, so one commit never holds the write lock
// (and the callers' durability callbacks) for long.
constexpr std::size_t kMaxBatch = 8192;
constexpr std::chrono::seconds kPurgeInterval{60};

std::int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct StatementFinalizer {
  void operator()(sqlite3_stmt* statement) const { sqlite3_finalize(statement); }
};
using Statement = std::unique_ptr<sqlite3_stmt, StatementFinalizer>;

Statement prepare(sqlite3* db, std::string_view sql, std::string* error) {
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT,
                         &raw, nullptr) != SQLITE_OK) {
    if (error) *error = std::string("cannot prepare audit statement: ") + sqlite3_errmsg(db);
    return nullptr;
  }
  return Statement(raw);
}

void bind_text(sqlite3_stmt* statement, int index, std::string_view text) {
  sqlite3_bind_text(statement, index, text.data(), static_cast<int>(text.size()), SQLITE_STATIC);
}

void bind_blob(sqlite3_stmt* statement, int index, const std::optional<std::string>& blob) {
  if (blob) {
    sqlite3_bind_blob(statement, index, blob->data(), static_cast<int>(blob->size()),
                      SQLITE_STATIC);
  } else {
    sqlite3_bind_null(statement, index);
  }
}

bool exec(sqlite3* db, const char* sql) {
  return sqlite3_exec(db, sql, nullptr, nullptr, nullptr) == SQLITE_OK;
}

bool keeps_bodies(BodyRetention retention, const AuditEvent& event) {
  if (!event.request_body && !event.response_body) return false;
  switch (retention) {
    case BodyRetention::kNone:
      return false;
    case BodyRetention::kFlagged:
      return event.decision != "allow" || !event.detectors.empty();
    case BodyRetention::kAll:
      return true;
  }
  return false;
}

// One queued append: the canonical tail is built on the caller's thread, since it does not
// depend on the chain, leaving only prefixing and hashing for the writer.
struct PendingRecord {
  AuditEvent event;
  std::string tail;
  std::function<void(bool)> on_durable;
};

}  // namespace

class AuditLog::Impl {
 public:
  Impl(AuditOptions options, store::SqliteConnection writer, store::SqliteConnection reader,
       EvpKey signing_key)
      : options_(std::move(options)),
        db_(std::move(writer)),
        reader_(std::move(reader)),
        signing_key_(std::move(signing_key)),
        key_id_(key_id_of(signing_key_.get())),
        public_key_pem_(audit::public_key_pem(signing_key_.get())) {}

  bool prepare_statements(std::string* error) {
    insert_record_ = prepare(db_.get(),
                             "INSERT INTO audit_records(seq, time_ms, kind, tenant, key_id, "
                             "model, backend, tokens_in, tokens_out, cost_micro_usd, record, "
                             "hash) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)",
                             error);
    insert_body_ =
        prepare(db_.get(),
                "INSERT INTO audit_bodies(seq, time_ms, request, response) VALUES(?,?,?,?)", error);
    select_head_ =
        prepare(db_.get(), "SELECT seq, hash FROM audit_records ORDER BY seq DESC LIMIT 1", error);
    select_last_checkpoint_ = prepare(db_.get(), "SELECT MAX(seq) FROM audit_checkpoints", error);
    insert_checkpoint_ = prepare(db_.get(),
                                 "INSERT INTO audit_checkpoints(seq, hash, time_ms, key_id, "
                                 "signature) VALUES(?,?,?,?,?)",
                                 error);
    purge_bodies_ = prepare(db_.get(), "DELETE FROM audit_bodies WHERE time_ms < ?", error);
    return insert_record_ && insert_body_ && select_head_ && select_last_checkpoint_ &&
           insert_checkpoint_ && purge_bodies_;
  }

  void start() {
    writer_ = std::thread([this] { run(); });
  }

  void stop() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    work_.notify_one();
    if (writer_.joinable()) writer_.join();
  }

  void append(AuditEvent event, std::function<void(bool)> on_durable) {
    if (event.time_ms == 0) event.time_ms = unix_ms_now();
    PendingRecord record{std::move(event), {}, std::move(on_durable)};
    record.tail = canonical_record_tail(record.event);
    bool was_empty = false;
    {
      std::lock_guard lock(mutex_);
      was_empty = queue_.empty();
      if (was_empty) first_queued_at_ = Clock::now();
      queue_.push_back(std::move(record));
      ++appended_;
    }
    // The writer only sleeps on an empty queue or on the group-commit timer, so waking it for
    // the first record (and in before_response mode, for every record) is enough.
    if (was_empty || options_.durability == Durability::kBeforeResponse) work_.notify_one();
  }

  void flush() {
    std::unique_lock lock(mutex_);
    const std::int64_t target = appended_;
    ++flush_waiters_;
    work_.notify_one();
    done_.wait(lock, [&] { return written_ >= target; });
    --flush_waiters_;
  }

  store::Result<std::vector<UsageRow>> usage(const UsageQuery& query) {
    std::lock_guard lock(reader_mutex_);
    return query_usage(reader_.get(), query);
  }

  const std::string& public_key_pem() const { return public_key_pem_; }
  std::int64_t failed_records() const {
    std::lock_guard lock(mutex_);
    return failed_;
  }

 private:
  void run() {
    std::unique_lock lock(mutex_);
    while (true) {
      if (queue_.empty() && !stopping_) {
        if (unsigned_since_) {
          work_.wait_until(lock, *unsigned_since_ + options_.checkpoint_interval,
                           [&] { return !queue_.empty() || stopping_; });
        } else {
          work_.wait(lock, [&] { return !queue_.empty() || stopping_; });
        }
      }
      if (!queue_.empty() && options_.durability == Durability::kBatched) {
        work_.wait_until(lock, first_queued_at_ + options_.flush_interval, [&] {
          return stopping_ || flush_waiters_ > 0 || queue_.size() >= kMaxBatch;
        });
      }
      std::vector<PendingRecord> batch;
      const std::size_t take = std::min(queue_.size(), kMaxBatch);
      batch.reserve(take);
      for (std::size_t i = 0; i < take; ++i) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      if (!queue_.empty()) first_queued_at_ = Clock::now();
      const bool last_round = stopping_ && queue_.empty();
      const auto now = Clock::now();
      if (!batch.empty() && !unsigned_since_) unsigned_since_ = now;
      const bool sign =
          last_round || (unsigned_since_ && now >= *unsigned_since_ + options_.checkpoint_interval);
      lock.unlock();

      bool signed_head = false;
      if (!batch.empty() || sign) signed_head = write(batch, sign);

      lock.lock();
      if (signed_head) unsigned_since_.reset();
      written_ += static_cast<std::int64_t>(batch.size());
      done_.notify_all();
      if (last_round) return;
    }
  }

  // Runs one group-commit transaction: the batch's records, their kept bodies and, when
  // `sign`, a checkpoint of the head. Calls every on_durable. True when a checkpoint now
  // covers the head.
  bool write(std::vector<PendingRecord>& batch, bool sign) {
    sqlite3* db = db_.get();
    bool ok = exec(db, "BEGIN IMMEDIATE");
    bool in_transaction = ok;
    // The head is read inside the write transaction: another connection may have appended
    // since our last batch, and the lock keeps anyone from appending until we commit.
    std::int64_t seq = 0;
    std::string prev(kZeroHash);
    if (ok) {
      sqlite3_stmt* head = select_head_.get();
      const int rc = sqlite3_step(head);
      if (rc == SQLITE_ROW) {
        seq = sqlite3_column_int64(head, 0);
        prev.assign(reinterpret_cast<const char*>(sqlite3_column_text(head, 1)),
                    static_cast<std::size_t>(sqlite3_column_bytes(head, 1)));
      }
      ok = rc == SQLITE_ROW || rc == SQLITE_DONE;
      sqlite3_reset(head);
    }
    std::string text;
    for (auto& record : batch) {
      if (!ok) break;
      ++seq;
      text = canonical_record(seq, prev, record.tail);
      prev = sha256_hex(text);
      ok = insert(seq, record.event, text, prev);
    }
    bool signed_head = false;
    if (ok && sign) {
      ok = checkpoint(seq, prev);
      signed_head = ok;
    }
    if (ok && Clock::now() >= next_purge_) {
      ok = purge_bodies();
      next_purge_ = Clock::now() + kPurgeInterval;
    }
    if (ok) {
      ok = exec(db, "COMMIT");
      in_transaction = !ok;
    }
    if (in_transaction) exec(db, "ROLLBACK");
    if (!ok) {
      std::lock_guard lock(mutex_);
      failed_ += static_cast<std::int64_t>(batch.size());
    }
    for (auto& record : batch) {
      if (record.on_durable) record.on_durable(ok);
    }
    return ok && signed_head;
  }

  bool insert(std::int64_t seq, const AuditEvent& event, std::string_view text,
              std::string_view hash) {
    sqlite3_stmt* statement = insert_record_.get();
    sqlite3_bind_int64(statement, 1, seq);
    sqlite3_bind_int64(statement, 2, event.time_ms);
    bind_text(statement, 3, event.kind);
    bind_text(statement, 4, event.tenant);
    bind_text(statement, 5, event.key_id);
    bind_text(statement, 6, event.model);
    bind_text(statement, 7, event.backend);
    sqlite3_bind_int64(statement, 8, event.tokens_in);
    sqlite3_bind_int64(statement, 9, event.tokens_out);
    sqlite3_bind_int64(statement, 10, micro_usd(event.cost_usd));
    bind_text(statement, 11, text);
    bind_text(statement, 12, hash);
    bool ok = sqlite3_step(statement) == SQLITE_DONE;
    sqlite3_reset(statement);
    if (!ok || !keeps_bodies(options_.bodies, event)) return ok;

    std::optional<std::string> request, response;
    if (event.request_body) {
      request = encrypt_body(options_.body_key, seq, "request", *event.request_body);
      if (!request) return false;
    }
    if (event.response_body) {
      response = encrypt_body(options_.body_key, seq, "response", *event.response_body);
      if (!response) return false;
    }
    statement = insert_body_.get();
    sqlite3_bind_int64(statement, 1, seq);
    sqlite3_bind_int64(statement, 2, event.time_ms);
    bind_blob(statement, 3, request);
    bind_blob(statement, 4, response);
    ok = sqlite3_step(statement) == SQLITE_DONE;
    sqlite3_reset(statement);
    sqlite3_clear_bindings(statement);
    return ok;
  }

  // Signs the head `seq`/`hash` unless it is already signed (by us or another writer).
  bool checkpoint(std::int64_t seq, std::string_view hash) {
    if (seq == 0) return true;
    sqlite3_stmt* last = select_last_checkpoint_.get();
    const int rc = sqlite3_step(last);
    const std::int64_t signed_seq = rc == SQLITE_ROW ? sqlite3_column_int64(last, 0) : 0;
    sqlite3_reset(last);
    if (rc != SQLITE_ROW) return false;
    if (signed_seq >= seq) return true;
    const std::string signature = sign(signing_key_.get(), checkpoint_message(seq, hash));
    if (signature.empty()) return false;
    sqlite3_stmt* statement = insert_checkpoint_.get();
    sqlite3_bind_int64(statement, 1, seq);
    bind_text(statement, 2, hash);
    sqlite3_bind_int64(statement, 3, unix_ms_now());
    bind_text(statement, 4, key_id_);
    bind_text(statement, 5, signature);
    const bool ok = sqlite3_step(statement) == SQLITE_DONE;
    sqlite3_reset(statement);
    return ok;
  }

  bool purge_bodies() {
    const auto retention =
        std::chrono::duration_cast<std::chrono::milliseconds>(options_.body_retention);
    sqlite3_stmt* statement = purge_bodies_.get();
    sqlite3_bind_int64(statement, 1, unix_ms_now() - retention.count());
    const bool ok = sqlite3_step(statement) == SQLITE_DONE;
    sqlite3_reset(statement);
    return ok;
  }

  const AuditOptions options_;
  store::SqliteConnection db_;  // the writer thread's alone
  Statement insert_record_, insert_body_, select_head_, select_last_checkpoint_, insert_checkpoint_,
      purge_bodies_;
  std::mutex reader_mutex_;
  store::SqliteConnection reader_;
  const EvpKey signing_key_;
  const std::string key_id_;
  const std::string public_key_pem_;

  mutable std::mutex mutex_;
  std::condition_variable work_;  // the writer waits for records, stop or a flush
  std::condition_variable done_;  // flush() waits for written_
  std::deque<PendingRecord> queue_;
  Clock::time_point first_queued_at_;
  std::int64_t appended_ = 0, written_ = 0, failed_ = 0;
  int flush_waiters_ = 0;
  bool stopping_ = false;
  std::optional<Clock::time_point> unsigned_since_;  // first record not yet under a checkpoint
  Clock::time_point next_purge_{};                   // writer thread only
  std::thread writer_;
};

const std::vector<std::string_view>& audit_migrations() {
  static const std::vector<std::string_view> scripts{kSchemaV1};
  return scripts;
}

std::unique_ptr<AuditLog> AuditLog::open(const AuditOptions& options, std::string* error) {
  auto fail = [&](std::string message) {
    if (error) *error = std::move(message);
    return std::unique_ptr<AuditLog>();
  };
  if (options.sqlite_path.empty() || options.sqlite_path == ":memory:") {
    return fail("the audit log needs a database file");
  }
  if (options.bodies != BodyRetention::kNone && options.body_key.size() != kBodyKeySize) {
    return fail("the audit body key must be 32 bytes, not " +
                std::to_string(options.body_key.size()));
  }
  std::string message;
  auto writer = store::open_sqlite_database(options.sqlite_path, &message);
  if (!writer) return fail(message);
  if (auto status = store::apply_migrations(writer.get(), "audit", audit_migrations()); !status) {
    return fail(status.message);
  }
  if (options.durability == Durability::kBeforeResponse &&
      !exec(writer.get(), "PRAGMA synchronous=FULL")) {
    return fail(std::string("cannot configure the audit store: ") + sqlite3_errmsg(writer.get()));
  }
  auto reader = store::open_sqlite_database(options.sqlite_path, &message);
  if (!reader) return fail(message);
  auto key = load_or_create_signing_key(options.signing_key_path, &message);
  if (!key) return fail(message);
  auto impl = std::make_unique<Impl>(options, std::move(writer), std::move(reader), std::move(key));
  if (!impl->prepare_statements(&message)) return fail(message);
  impl->start();
  return std::unique_ptr<AuditLog>(new AuditLog(std::move(impl)));
}

AuditLog::AuditLog(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

AuditLog::~AuditLog() { impl_->stop(); }

void AuditLog::append(AuditEvent event, std::function<void(bool ok)> on_durable) {
  impl_->append(std::move(event), std::move(on_durable));
}

void AuditLog::flush() { impl_->flush(); }

std::string AuditLog::public_key_pem() const { return impl_->public_key_pem(); }

std::int64_t AuditLog::failed_records() const { return impl_->failed_records(); }

store::Result<std::vector<UsageRow>> AuditLog::usage(const UsageQuery& query) {
  return impl_->usage(query);
}

store::Result<StoredBodies> read_bodies(sqlite3* db, std::int64_t seq, std::string_view body_key) {
  std::string error;
  auto statement = prepare(db, "SELECT request, response FROM audit_bodies WHERE seq = ?", &error);
  if (!statement) return store::Status::error(error);
  sqlite3_bind_int64(statement.get(), 1, seq);
  const int rc = sqlite3_step(statement.get());
  StoredBodies bodies;
  if (rc == SQLITE_DONE) return bodies;
  if (rc != SQLITE_ROW) {
    return store::Status::error(std::string("cannot read audit bodies: ") + sqlite3_errmsg(db));
  }
  auto column = [&](int index, std::string_view role) -> std::optional<std::string> {
    if (sqlite3_column_type(statement.get(), index) == SQLITE_NULL) return std::nullopt;
    const auto* data = static_cast<const char*>(sqlite3_column_blob(statement.get(), index));
    const auto size = static_cast<std::size_t>(sqlite3_column_bytes(statement.get(), index));
    return decrypt_body(body_key, seq, role, std::string_view(data, size));
  };
  bodies.request = column(0, "request");
  bodies.response = column(1, "response");
  return bodies;
}

}  // namespace redline::audit
