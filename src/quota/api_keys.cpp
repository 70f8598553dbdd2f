#include "quota/api_keys.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <array>
#include <cassert>
#include <functional>
#include <mutex>
#include <unordered_map>

namespace redline::quota {
namespace {

using Digest = std::array<unsigned char, 32>;

constexpr std::string_view kKeyPrefix = "rl_";
constexpr std::string_view kIdPrefix = "k_";
constexpr std::size_t kIdHexLength = 12;
constexpr std::size_t kSecretBytes = 32;
constexpr std::size_t kSecretLength = 43;  // base64url of 32 bytes, unpadded
constexpr std::size_t kKeyLength = kKeyPrefix.size() + kIdHexLength + 1 + kSecretLength;
constexpr std::size_t kMaxTenantLength = 64;
constexpr std::size_t kMaxDescriptionLength = 1024;
constexpr char kHexDigits[] = "0123456789abcdef";
constexpr char kBase64UrlDigits[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

bool is_hex_digit(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }
bool is_base64url_digit(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

std::string hex(const unsigned char* bytes, std::size_t size) {
  std::string text(size * 2, '\0');
  for (std::size_t i = 0; i < size; ++i) {
    text[2 * i] = kHexDigits[bytes[i] >> 4];
    text[2 * i + 1] = kHexDigits[bytes[i] & 0xf];
  }
  return text;
}

std::optional<Digest> digest_from_hex(std::string_view text) {
  if (text.size() != 64) return std::nullopt;
  Digest digest;
  for (std::size_t i = 0; i < digest.size(); ++i) {
    unsigned value = 0;
    for (char c : text.substr(2 * i, 2)) {
      if (c >= '0' && c <= '9') {
        value = value * 16 + static_cast<unsigned>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        value = value * 16 + static_cast<unsigned>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        value = value * 16 + static_cast<unsigned>(c - 'A' + 10);
      } else {
        return std::nullopt;
      }
    }
    digest[i] = static_cast<unsigned char>(value);
  }
  return digest;
}

std::string base64url(const unsigned char* bytes, std::size_t size) {
  std::string text;
  text.reserve((size * 4 + 2) / 3);
  std::size_t i = 0;
  for (; i + 3 <= size; i += 3) {
    const std::uint32_t group = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    for (int shift = 18; shift >= 0; shift -= 6) text += kBase64UrlDigits[(group >> shift) & 63];
  }
  if (size - i == 1) {
    const std::uint32_t group = bytes[i] << 16;
    text += kBase64UrlDigits[(group >> 18) & 63];
    text += kBase64UrlDigits[(group >> 12) & 63];
  } else if (size - i == 2) {
    const std::uint32_t group = (bytes[i] << 16) | (bytes[i + 1] << 8);
    text += kBase64UrlDigits[(group >> 18) & 63];
    text += kBase64UrlDigits[(group >> 12) & 63];
    text += kBase64UrlDigits[(group >> 6) & 63];
  }
  return text;
}

// Fetched once: OpenSSL 3 otherwise looks the algorithm up (under a lock) on every digest.
const EVP_MD* sha256() {
  static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  assert(md != nullptr);
  return md;
}

Digest sha256_of(std::string_view text) {
  Digest digest;
  unsigned int length = 0;
  [[maybe_unused]] const int ok =
      EVP_Digest(text.data(), text.size(), digest.data(), &length, sha256(), nullptr);
  assert(ok == 1 && length == digest.size());
  return digest;
}

std::string_view trim_blanks(std::string_view text) {
  const auto first = text.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t");
  return text.substr(first, last - first + 1);
}

bool valid_tenant_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxTenantLength) return false;
  for (char c : name) {
    const bool allowed = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                         (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!allowed) return false;
  }
  return true;
}

}  // namespace

// A key record with its hash decoded once, so each authentication compares raw bytes.
struct ApiKeyService::KnownKey {
  store::ApiKeyRecord record;
  std::optional<Digest> secret_hash;  // nullopt when the stored hash is corrupt: nothing matches
};

// Key id → record, for at most `ttl`. Sharded so concurrent requests for different keys rarely
// meet on one mutex, and each lock covers only a map look-up and a shared_ptr copy. Absent ids
// are cached too, so a flood of made-up ids costs the store one look-up per id per TTL.
//
// Each shard counts forget() calls; a loader notes the count before reading the store and
// drops its result if the count moved, so a record read just before a revocation can never be
// cached after revoke() has returned.
class ApiKeyService::Cache {
 public:
  struct Entry {
    std::shared_ptr<const KnownKey> key;  // null: the store has no key with this id
    std::chrono::steady_clock::time_point loaded_at;
  };

  explicit Cache(std::chrono::milliseconds ttl) : ttl_(ttl) {}

  // The entry for `id` if it is younger than the TTL; otherwise nullopt and `*generation` set
  // to pass back to put() after reading the store.
  std::optional<Entry> get(std::string_view id, std::chrono::steady_clock::time_point now,
                           std::uint64_t* generation) {
    Shard& shard = shard_for(id);
    std::lock_guard lock(shard.mutex);
    if (auto found = shard.entries.find(id); found != shard.entries.end()) {
      if (now - found->second.loaded_at < ttl_) return found->second;
    }
    *generation = shard.generation;
    return std::nullopt;
  }

  void put(std::string_view id, Entry entry, std::uint64_t generation) {
    Shard& shard = shard_for(id);
    std::lock_guard lock(shard.mutex);
    if (shard.generation != generation) return;
    if (auto found = shard.entries.find(id); found != shard.entries.end()) {
      found->second = std::move(entry);
      return;
    }
    if (shard.entries.size() >= kMaxEntriesPerShard) {
      std::erase_if(shard.entries, [&](const auto& item) {
        return entry.loaded_at - item.second.loaded_at >= ttl_;
      });
      // Still full of live entries: serve this one uncached rather than grow without bound.
      if (shard.entries.size() >= kMaxEntriesPerShard) return;
    }
    shard.entries.emplace(std::string(id), std::move(entry));
  }

  void forget(std::string_view id) {
    Shard& shard = shard_for(id);
    std::lock_guard lock(shard.mutex);
    ++shard.generation;
    if (auto found = shard.entries.find(id); found != shard.entries.end()) {
      shard.entries.erase(found);
    }
  }

 private:
  static constexpr std::size_t kShards = 16;
  static constexpr std::size_t kMaxEntriesPerShard = 4096;

  // Heterogeneous look-up: the hot path finds entries by string_view without allocating.
  struct IdHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view id) const { return std::hash<std::string_view>{}(id); }
  };
  struct Shard {
    std::mutex mutex;
    std::unordered_map<std::string, Entry, IdHash, std::equal_to<>> entries;
    std::uint64_t generation = 0;
  };

  Shard& shard_for(std::string_view id) {
    // The map hashes the same id; the shard takes the high bits so the two don't correlate.
    const std::size_t hash = std::hash<std::string_view>{}(id);
    return shards_[(hash >> (sizeof(std::size_t) * 8 - 4)) % kShards];
  }

  const std::chrono::milliseconds ttl_;
  std::array<Shard, kShards> shards_;
};

std::string_view to_string(AuthFailure failure) {
  switch (failure) {
    case AuthFailure::kMissing:
      return "missing";
    case AuthFailure::kMalformed:
      return "malformed";
    case AuthFailure::kUnknown:
      return "unknown";
    case AuthFailure::kRevoked:
      return "revoked";
    case AuthFailure::kExpired:
      return "expired";
    case AuthFailure::kUnavailable:
      return "unavailable";
  }
  return "unknown";
}

std::string_view presented_key(std::string_view authorization, std::string_view x_api_key) {
  constexpr std::string_view kBearer = "bearer";
  const auto credentials = trim_blanks(authorization);
  if (credentials.size() > kBearer.size() &&
      (credentials[kBearer.size()] == ' ' || credentials[kBearer.size()] == '\t')) {
    bool is_bearer = true;
    for (std::size_t i = 0; i < kBearer.size(); ++i) {
      const char c = credentials[i];
      is_bearer = is_bearer && (c | 0x20) == kBearer[i];
    }
    if (is_bearer) {
      const auto token = trim_blanks(credentials.substr(kBearer.size()));
      if (!token.empty()) return token;
    }
  }
  return trim_blanks(x_api_key);
}

std::optional<std::string> key_id_of(std::string_view key) {
  if (key.size() != kKeyLength || !key.starts_with(kKeyPrefix)) return std::nullopt;
  const auto id_hex = key.substr(kKeyPrefix.size(), kIdHexLength);
  const auto separator = kKeyPrefix.size() + kIdHexLength;
  if (key[separator] != '_') return std::nullopt;
  for (char c : id_hex) {
    if (!is_hex_digit(c)) return std::nullopt;
  }
  for (char c : key.substr(separator + 1)) {
    if (!is_base64url_digit(c)) return std::nullopt;
  }
  std::string id(kIdPrefix);
  id += id_hex;
  return id;
}

ApiKeyService::ApiKeyService(std::shared_ptr<store::KeyStore> store,
                             std::shared_ptr<const Clock> clock,
                             std::chrono::milliseconds cache_ttl)
    : store_(std::move(store)),
      clock_(std::move(clock)),
      cache_(std::make_unique<Cache>(cache_ttl)) {
  assert(store_ && clock_);
}

ApiKeyService::~ApiKeyService() = default;

store::Result<CreatedKey> ApiKeyService::create(const KeyRequest& request) {
  using store::Status;
  if (!valid_tenant_name(request.tenant)) {
    return Status::error("tenant name \"" + request.tenant +
                         "\" must be 1-64 characters of A-Z a-z 0-9 . _ -");
  }
  for (const auto& model : request.models) {
    if (model.empty()) return Status::error("model names must not be empty");
  }
  if (request.description.size() > kMaxDescriptionLength) {
    return Status::error("description is longer than 1024 bytes");
  }
  const std::int64_t now = clock_->unix_seconds();
  if (request.expires_at && *request.expires_at <= now) {
    return Status::error("expiry lies in the past");
  }
  if (auto status = store_->ensure_tenant(request.tenant); !status) return status;

  unsigned char id_bytes[kIdHexLength / 2];
  unsigned char secret_bytes[kSecretBytes];
  if (RAND_bytes(id_bytes, sizeof id_bytes) != 1 ||
      RAND_bytes(secret_bytes, sizeof secret_bytes) != 1) {
    return Status::error("the random number generator failed");
  }
  const std::string id_hex = hex(id_bytes, sizeof id_bytes);
  CreatedKey created;
  created.secret = std::string(kKeyPrefix) + id_hex + "_" + base64url(secret_bytes, kSecretBytes);
  OPENSSL_cleanse(secret_bytes, sizeof secret_bytes);
  assert(created.secret.size() == kKeyLength);

  const Digest digest = sha256_of(created.secret);
  auto& record = created.record;
  record.id = std::string(kIdPrefix) + id_hex;
  record.tenant = request.tenant;
  record.secret_hash = hex(digest.data(), digest.size());
  record.default_label = request.default_label;
  record.max_label = request.max_label;
  record.models = request.models;
  record.expires_at = request.expires_at;
  record.created_at = now;
  record.description = request.description;
  // A clash of 48-bit ids fails the insert (primary key) rather than replacing a key.
  if (auto status = store_->insert_key(record); !status) return status;
  cache_->forget(record.id);  // someone may have probed the id before it existed
  return created;
}

AuthResult ApiKeyService::authenticate(std::string_view presented) {
  AuthResult result;
  if (presented.empty()) {
    result.failure = AuthFailure::kMissing;
    return result;
  }
  const auto id = key_id_of(presented);
  if (!id) {
    result.failure = AuthFailure::kMalformed;
    return result;
  }
  auto known = lookup(*id, result.failure);
  if (result.failure == AuthFailure::kUnavailable) return result;
  const Digest digest = sha256_of(presented);
  if (!known || !known->secret_hash ||
      CRYPTO_memcmp(digest.data(), known->secret_hash->data(), digest.size()) != 0) {
    result.failure = AuthFailure::kUnknown;
    return result;
  }
  // Only a holder of the secret learns that the key was revoked or has expired.
  return checked(std::move(known));
}

AuthResult ApiKeyService::resume(std::string_view key_id) {
  AuthResult result;
  auto known = lookup(key_id, result.failure);
  if (result.failure == AuthFailure::kUnavailable) return result;
  if (!known) {
    result.failure = AuthFailure::kUnknown;
    return result;
  }
  return checked(std::move(known));
}

std::shared_ptr<const ApiKeyService::KnownKey> ApiKeyService::lookup(std::string_view id,
                                                                     AuthFailure& failure) {
  const auto now = clock_->monotonic();
  std::uint64_t generation = 0;
  auto entry = cache_->get(id, now, &generation);
  if (!entry) {
    auto found = store_->find_key(id);
    if (!found) {
      failure = AuthFailure::kUnavailable;
      return nullptr;
    }
    entry.emplace();
    entry->loaded_at = now;
    if (found->has_value()) {
      auto known = std::make_shared<KnownKey>();
      known->secret_hash = digest_from_hex((*found)->secret_hash);
      known->record = std::move(**found);
      entry->key = std::move(known);
    }
    cache_->put(id, *entry, generation);
  }
  return entry->key;
}

AuthResult ApiKeyService::checked(std::shared_ptr<const KnownKey> known) {
  AuthResult result;
  if (known->record.revoked_at) {
    result.failure = AuthFailure::kRevoked;
    return result;
  }
  if (known->record.expires_at && clock_->unix_seconds() >= *known->record.expires_at) {
    result.failure = AuthFailure::kExpired;
    return result;
  }
  result.key = std::shared_ptr<const store::ApiKeyRecord>(known, &known->record);
  return result;
}

store::Status ApiKeyService::revoke(std::string_view id) {
  auto status = store_->revoke_key(id, clock_->unix_seconds());
  if (status) cache_->forget(id);
  return status;
}

store::Result<std::vector<store::ApiKeyRecord>> ApiKeyService::list(
    std::optional<std::string_view> tenant) {
  return store_->list_keys(tenant);
}

}  // namespace redline::quota
