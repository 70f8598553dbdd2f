// API keys: minting, authenticating and revoking them. Every request authenticates here, so
// authenticate() is built for many concurrent callers: records are cached per key id for at
// most `cache_ttl`, which also bounds how long a revocation made by another process (the
// `redline keys` CLI, another replica) takes to reach this one.
//
// Key format: "rl_" + 12 lowercase hex digits (the key id without its "k_" prefix) + "_" +
// 43 base64url characters (32 random bytes). The id is public ("k_7f3a9c2e1b0d"); the store
// keeps only the SHA-256 of the whole key.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "quota/clock.h"
#include "store/key_store.h"
#include "store/status.h"

namespace redline::quota {

struct KeyRequest {
  std::string tenant;         // created when missing; [A-Za-z0-9._-], 1..64 characters
  std::string default_label;  // label text; validated by the caller against the lattice
  std::string max_label;
  std::vector<std::string> models;         // allowed model aliases; empty = all; no empty names
  std::optional<std::int64_t> expires_at;  // unix seconds; must lie in the future
  std::string description;                 // at most 1024 bytes
};

struct CreatedKey {
  store::ApiKeyRecord record;
  std::string secret;  // the full key: shown to the operator once, never stored
};

enum class AuthFailure {
  kMissing,      // no key was presented
  kMalformed,    // not shaped like a Redline key; the store was not consulted
  kUnknown,      // no such key, or the secret does not match (indistinguishable on purpose)
  kRevoked,      // the secret matches, but the key was revoked
  kExpired,      // the secret matches, but the key has expired
  kUnavailable,  // the store could not be read: not the client's fault (answer 503)
};

std::string_view to_string(AuthFailure failure);

struct AuthResult {
  std::shared_ptr<const store::ApiKeyRecord> key;  // set exactly when authentication succeeded
  AuthFailure failure = AuthFailure::kMissing;     // meaningful only when `key` is null
  bool ok() const { return key != nullptr; }
};

// The key a request presents: the token of "Authorization: Bearer <key>" (scheme matched
// case-insensitively) when there is one, else the x-api-key value; surrounding blanks trimmed.
// Pass "" for an absent header. Empty when neither header carries a key. The result views one
// of the arguments.
std::string_view presented_key(std::string_view authorization, std::string_view x_api_key);

// The key id ("k_" + 12 hex digits) of a well-formed key; nullopt otherwise.
std::optional<std::string> key_id_of(std::string_view presented_key);

class ApiKeyService {
 public:
  static constexpr std::chrono::milliseconds kDefaultCacheTtl{500};

  ApiKeyService(std::shared_ptr<store::KeyStore> store, std::shared_ptr<const Clock> clock,
                std::chrono::milliseconds cache_ttl = kDefaultCacheTtl);
  ~ApiKeyService();
  ApiKeyService(const ApiKeyService&) = delete;
  ApiKeyService& operator=(const ApiKeyService&) = delete;

  // Mints a key for `request.tenant`, creating the tenant when missing.
  store::Result<CreatedKey> create(const KeyRequest& request);

  // Thread-safe and cheap on a cache hit: a shard lock held for a map look-up, one SHA-256 and
  // a constant-time compare. The presented key is not logged or kept.
  AuthResult authenticate(std::string_view presented_key);

  // The key with this id, checked like authenticate() checks a presented key except for the
  // secret, which Redline never keeps: for work it resumes on a key's behalf after the request
  // that started it is gone (a durable agent run after a restart). A key revoked or expired
  // since fails here too.
  AuthResult resume(std::string_view key_id);

  // Revokes in the store and forgets the cached record at once, so this replica refuses the key
  // from the moment this returns. Unknown id → error.
  store::Status revoke(std::string_view id);

  store::Result<std::vector<store::ApiKeyRecord>> list(std::optional<std::string_view> tenant);

 private:
  class Cache;
  struct KnownKey;
  // The cached record of a key id (loaded from the store on a miss); null when unknown.
  std::shared_ptr<const KnownKey> lookup(std::string_view id, AuthFailure& failure);
  // Fails a key that is revoked or expired.
  AuthResult checked(std::shared_ptr<const KnownKey> known);

  std::shared_ptr<store::KeyStore> store_;
  std::shared_ptr<const Clock> clock_;
  std::unique_ptr<Cache> cache_;
};

}  // namespace redline::quota
