// Tenants and API keys at rest. The storage sits behind KeyStore so the embedded SQLite store
// and a shared PostgreSQL store are interchangeable; the key service (quota/api_keys.h) is the
// only intended caller on the request path.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "store/status.h"

namespace redline::store {

struct TenantRecord {
  std::string name;
  std::int64_t created_at = 0;  // unix seconds
  friend bool operator==(const TenantRecord&, const TenantRecord&) = default;
};

struct ApiKeyRecord {
  std::string id;             // public key id, e.g. "k_7f3a9c2e1b0d": safe to show and log
  std::string tenant;         // tenant name; the tenant must exist before the key is inserted
  std::string secret_hash;    // lowercase hex SHA-256 of the full presented key, never the key
  std::string default_label;  // label text as given; "" = the lattice bottom
  std::string max_label;      // label text as given; "" = no maximum below the lattice top
  std::vector<std::string> models;         // allowed model aliases, in the order given; empty = all
  std::optional<std::int64_t> expires_at;  // unix seconds
  std::optional<std::int64_t> revoked_at;  // unix seconds
  std::int64_t created_at = 0;             // unix seconds
  std::string description;
  friend bool operator==(const ApiKeyRecord&, const ApiKeyRecord&) = default;
};

// Thread-safe: every method may be called from any thread at any time. Errors (I/O, a locked
// database past the busy timeout, constraint violations) come back as values.
class KeyStore {
 public:
  virtual ~KeyStore() = default;

  // Creates the tenant, stamped with the current time, unless it exists already.
  virtual Status ensure_tenant(std::string_view name) = 0;
  // All tenants, ordered by name.
  virtual Result<std::vector<TenantRecord>> list_tenants() = 0;

  // Fails when the id is taken or the tenant does not exist.
  virtual Status insert_key(const ApiKeyRecord& key) = 0;
  // nullopt when no key has this id; an error only when the store could not answer.
  virtual Result<std::optional<ApiKeyRecord>> find_key(std::string_view id) = 0;
  // Keys of one tenant, or of all tenants when `tenant` is nullopt; oldest first.
  virtual Result<std::vector<ApiKeyRecord>> list_keys(std::optional<std::string_view> tenant) = 0;
  // Marks the key revoked at `at`. Revoking a revoked key succeeds and keeps the first time;
  // an unknown id is an error.
  virtual Status revoke_key(std::string_view id, std::int64_t at) = 0;
};

// Opens (creating when missing; the parent directory must exist) the SQLite database at `path`
// and brings the "keys" schema up to date. ":memory:" gives a private in-memory database.
// Returns null and sets `*error` (when not null) on failure.
std::unique_ptr<KeyStore> open_sqlite_store(const std::string& path, std::string* error);

}  // namespace redline::store
