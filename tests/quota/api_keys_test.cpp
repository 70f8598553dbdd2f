#include "quota/api_keys.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <regex>
#include <thread>

#include "../store/temp_dir.h"

namespace redline::quota {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

class ManualClock final : public Clock {
 public:
  std::int64_t unix_seconds() const override { return seconds_.load(); }
  std::chrono::steady_clock::time_point monotonic() const override {
    return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(nanos_.load()));
  }
  // Moves both readings, as real time does.
  void advance(std::chrono::nanoseconds by) {
    nanos_ += by.count();
    seconds_ = 1'700'000'000 + std::chrono::duration_cast<std::chrono::seconds>(
                                   std::chrono::nanoseconds(nanos_.load()) - kStart)
                                   .count();
  }

 private:
  static constexpr std::chrono::nanoseconds kStart = std::chrono::hours(1);
  std::atomic<std::int64_t> seconds_{1'700'000'000};
  std::atomic<std::int64_t> nanos_{kStart.count()};
};

// Counts look-ups, and can be told to fail them, around a real store.
class ObservedStore final : public store::KeyStore {
 public:
  explicit ObservedStore(std::shared_ptr<store::KeyStore> inner) : inner_(std::move(inner)) {}
  store::Status ensure_tenant(std::string_view name) override {
    return inner_->ensure_tenant(name);
  }
  store::Result<std::vector<store::TenantRecord>> list_tenants() override {
    return inner_->list_tenants();
  }
  store::Status insert_key(const store::ApiKeyRecord& key) override {
    return inner_->insert_key(key);
  }
  store::Result<std::optional<store::ApiKeyRecord>> find_key(std::string_view id) override {
    ++finds;
    if (fail_finds) return store::Status::error("database is locked");
    return inner_->find_key(id);
  }
  store::Result<std::vector<store::ApiKeyRecord>> list_keys(
      std::optional<std::string_view> tenant) override {
    return inner_->list_keys(tenant);
  }
  store::Status revoke_key(std::string_view id, std::int64_t at) override {
    return inner_->revoke_key(id, at);
  }

  std::atomic<int> finds{0};
  std::atomic<bool> fail_finds{false};

 private:
  std::shared_ptr<store::KeyStore> inner_;
};

std::shared_ptr<store::KeyStore> open_store(const std::string& path) {
  std::string error;
  std::shared_ptr<store::KeyStore> store = store::open_sqlite_store(path, &error);
  EXPECT_TRUE(store) << error;
  return store;
}

std::string sha256_hex(std::string_view text) {
  unsigned char digest[32];
  unsigned int length = 0;
  EVP_Digest(text.data(), text.size(), digest, &length, EVP_sha256(), nullptr);
  std::string hex;
  for (unsigned char byte : digest) {
    constexpr char kDigits[] = "0123456789abcdef";
    hex += kDigits[byte >> 4];
    hex += kDigits[byte & 0xf];
  }
  return hex;
}

KeyRequest for_tenant(std::string tenant) {
  KeyRequest request;
  request.tenant = std::move(tenant);
  return request;
}

class ApiKeyServiceTest : public ::testing::Test {
 protected:
  ApiKeyServiceTest()
      : store_(std::make_shared<ObservedStore>(open_store(":memory:"))),
        clock_(std::make_shared<ManualClock>()),
        service_(store_, clock_) {}

  CreatedKey create_key(KeyRequest request = {}) {
    if (request.tenant.empty()) request.tenant = "acme";
    auto created = service_.create(request);
    EXPECT_TRUE(created.ok()) << created.error();
    return created.ok() ? *created : CreatedKey{};
  }

  std::shared_ptr<ObservedStore> store_;
  std::shared_ptr<ManualClock> clock_;
  ApiKeyService service_;
};

TEST_F(ApiKeyServiceTest, CreatedKeyAuthenticates) {
  KeyRequest request;
  request.tenant = "acme";
  request.default_label = "INTERNAL";
  request.max_label = "SECRET";
  request.models = {"gpt-4o", "llama"};
  request.description = "billing service";
  const auto created = create_key(request);

  EXPECT_TRUE(std::regex_match(created.secret, std::regex("rl_[0-9a-f]{12}_[A-Za-z0-9_-]{43}")))
      << created.secret;
  EXPECT_EQ(created.record.id, "k_" + created.secret.substr(3, 12));
  EXPECT_EQ(created.record.secret_hash, sha256_hex(created.secret));
  EXPECT_EQ(created.record.created_at, clock_->unix_seconds());

  auto result = service_.authenticate(created.secret);
  ASSERT_TRUE(result.ok()) << to_string(result.failure);
  EXPECT_EQ(result.key->id, created.record.id);
  EXPECT_EQ(result.key->tenant, "acme");
  EXPECT_EQ(result.key->default_label, "INTERNAL");
  EXPECT_EQ(result.key->max_label, "SECRET");
  EXPECT_THAT(result.key->models, ::testing::ElementsAre("gpt-4o", "llama"));

  // The store holds the hash only, and the tenant now exists.
  auto stored = store_->find_key(created.record.id);
  ASSERT_TRUE(stored.ok() && stored->has_value());
  EXPECT_EQ(**stored, created.record);
  auto tenants = store_->list_tenants();
  ASSERT_TRUE(tenants.ok());
  ASSERT_EQ(tenants->size(), 1u);
  EXPECT_EQ((*tenants)[0].name, "acme");
}

TEST_F(ApiKeyServiceTest, KeysAreDistinct) {
  const auto first = create_key();
  const auto second = create_key();
  EXPECT_NE(first.secret, second.secret);
  EXPECT_NE(first.record.id, second.record.id);
  EXPECT_EQ(service_.authenticate(second.secret).key->id, second.record.id);
}

TEST_F(ApiKeyServiceTest, WrongSecretForRealIdIsUnknown) {
  const auto created = create_key();
  std::string forged = created.secret;
  forged.back() = forged.back() == 'A' ? 'B' : 'A';
  auto result = service_.authenticate(forged);
  EXPECT_FALSE(result.ok());
  EXPECT_EQ(result.failure, AuthFailure::kUnknown);
  // The failure did not poison the cache either way.
  EXPECT_TRUE(service_.authenticate(created.secret).ok());
  EXPECT_EQ(service_.authenticate(forged).failure, AuthFailure::kUnknown);
}

TEST_F(ApiKeyServiceTest, UnknownIdIsUnknownAndCachedAsAbsent) {
  const std::string made_up = "rl_0123456789ab_" + std::string(43, 'x');
  EXPECT_EQ(service_.authenticate(made_up).failure, AuthFailure::kUnknown);
  EXPECT_EQ(service_.authenticate(made_up).failure, AuthFailure::kUnknown);
  EXPECT_EQ(store_->finds.load(), 1);
  clock_->advance(500ms);
  EXPECT_EQ(service_.authenticate(made_up).failure, AuthFailure::kUnknown);
  EXPECT_EQ(store_->finds.load(), 2);
}

TEST_F(ApiKeyServiceTest, MalformedKeysNeverReachTheStore) {
  const auto created = create_key();
  const std::string good = created.secret;
  const std::vector<std::string> malformed = {
      "sk-abc",
      good.substr(0, good.size() - 1),                       // one short
      good + "A",                                            // one long
      "xx" + good.substr(2),                                 // wrong prefix
      good.substr(0, 3) + "0123456789AB" + good.substr(15),  // upper-case id
      good.substr(0, 15) + "." + good.substr(16),            // wrong separator
      good.substr(0, 20) + "+" + good.substr(21),            // not base64url
      good.substr(0, 20) + std::string(1, '\0') + good.substr(21),
  };
  for (const auto& key : malformed) {
    EXPECT_EQ(service_.authenticate(key).failure, AuthFailure::kMalformed) << key;
  }
  EXPECT_EQ(store_->finds.load(), 0);
  EXPECT_EQ(service_.authenticate("").failure, AuthFailure::kMissing);
}

TEST_F(ApiKeyServiceTest, CacheHitsSkipTheStoreUntilTheTtl) {
  const auto created = create_key();
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(service_.authenticate(created.secret).ok());
  EXPECT_EQ(store_->finds.load(), 1);
  clock_->advance(499ms);
  ASSERT_TRUE(service_.authenticate(created.secret).ok());
  EXPECT_EQ(store_->finds.load(), 1);
  clock_->advance(1ms);
  ASSERT_TRUE(service_.authenticate(created.secret).ok());
  EXPECT_EQ(store_->finds.load(), 2);
}

TEST_F(ApiKeyServiceTest, RevokeThroughTheServiceTakesEffectAtOnce) {
  const auto created = create_key();
  ASSERT_TRUE(service_.authenticate(created.secret).ok());  // now cached
  ASSERT_TRUE(service_.revoke(created.record.id).ok);
  EXPECT_EQ(service_.authenticate(created.secret).failure, AuthFailure::kRevoked);
  auto stored = store_->find_key(created.record.id);
  EXPECT_EQ((*stored)->revoked_at, clock_->unix_seconds());

  auto unknown = service_.revoke("k_ffffffffffff");
  EXPECT_FALSE(unknown.ok);
}

TEST_F(ApiKeyServiceTest, ExpiryFollowsTheInjectedClock) {
  KeyRequest request;
  request.expires_at = clock_->unix_seconds() + 3600;
  const auto created = create_key(request);
  ASSERT_TRUE(service_.authenticate(created.secret).ok());
  clock_->advance(3599s);
  ASSERT_TRUE(service_.authenticate(created.secret).ok());
  clock_->advance(1s);
  EXPECT_EQ(service_.authenticate(created.secret).failure, AuthFailure::kExpired);

  // Only the holder of the secret learns that the key expired.
  std::string forged = created.secret;
  forged.back() = forged.back() == 'A' ? 'B' : 'A';
  EXPECT_EQ(service_.authenticate(forged).failure, AuthFailure::kUnknown);
}

TEST_F(ApiKeyServiceTest, ResumeChecksAKeyByIdWithoutItsSecret) {
  KeyRequest request;
  request.expires_at = clock_->unix_seconds() + 60;
  const auto created = create_key(request);
  auto resumed = service_.resume(created.record.id);
  ASSERT_TRUE(resumed.ok()) << to_string(resumed.failure);
  EXPECT_EQ(resumed.key->tenant, "acme");
  EXPECT_EQ(service_.resume("k_ffffffffffff").failure, AuthFailure::kUnknown);

  // A key revoked or expired since the work began stops it.
  clock_->advance(60s);
  EXPECT_EQ(service_.resume(created.record.id).failure, AuthFailure::kExpired);
  const auto other = create_key();
  ASSERT_TRUE(service_.revoke(other.record.id).ok);
  EXPECT_EQ(service_.resume(other.record.id).failure, AuthFailure::kRevoked);
  store_->fail_finds = true;
  EXPECT_EQ(service_.resume("k_eeeeeeeeeeee").failure, AuthFailure::kUnavailable);
}

TEST_F(ApiKeyServiceTest, CreateValidatesItsRequest) {
  KeyRequest request;
  request.tenant = "bad tenant!";
  EXPECT_FALSE(service_.create(request).ok());
  request.tenant = std::string(65, 'a');
  EXPECT_FALSE(service_.create(request).ok());
  request.tenant = "acme";
  request.expires_at = clock_->unix_seconds();
  EXPECT_FALSE(service_.create(request).ok());
  request.expires_at.reset();
  request.models = {"gpt-4o", ""};
  EXPECT_FALSE(service_.create(request).ok());
  request.models.clear();
  request.description = std::string(1025, 'd');
  EXPECT_FALSE(service_.create(request).ok());
  auto keys = service_.list(std::nullopt);
  ASSERT_TRUE(keys.ok());
  EXPECT_TRUE(keys->empty());
}

TEST_F(ApiKeyServiceTest, StoreOutageIsUnavailableNotUnknown) {
  const auto created = create_key();
  store_->fail_finds = true;
  EXPECT_EQ(service_.authenticate(created.secret).failure, AuthFailure::kUnavailable);
  store_->fail_finds = false;
  EXPECT_TRUE(service_.authenticate(created.secret).ok());  // the failure was not cached
}

TEST_F(ApiKeyServiceTest, ListFiltersByTenant) {
  KeyRequest request;
  request.tenant = "acme";
  create_key(request);
  request.tenant = "beta";
  const auto beta = create_key(request);
  auto keys = service_.list("beta");
  ASSERT_TRUE(keys.ok());
  ASSERT_EQ(keys->size(), 1u);
  EXPECT_EQ((*keys)[0].id, beta.record.id);
  EXPECT_EQ(service_.list(std::nullopt)->size(), 2u);
}

TEST(PresentedKey, ReadsBearerTokenThenXApiKey) {
  EXPECT_EQ(presented_key("Bearer rl_abc", ""), "rl_abc");
  EXPECT_EQ(presented_key("bearer   rl_abc  ", ""), "rl_abc");
  EXPECT_EQ(presented_key("BEARER\trl_abc", "other"), "rl_abc");
  EXPECT_EQ(presented_key("", " rl_xyz "), "rl_xyz");
  EXPECT_EQ(presented_key("Basic dXNlcjpwYXNz", "rl_xyz"), "rl_xyz");
  EXPECT_EQ(presented_key("Bearer ", "rl_xyz"), "rl_xyz");
  EXPECT_EQ(presented_key("Bearerrl_abc", ""), "");
  EXPECT_EQ(presented_key("Basic dXNlcjpwYXNz", ""), "");
  EXPECT_EQ(presented_key("", ""), "");
}

TEST(KeyIdOf, ParsesOnlyWellFormedKeys) {
  const std::string secret(43, 'Q');
  EXPECT_EQ(key_id_of("rl_7f3a9c2e1b0d_" + secret), "k_7f3a9c2e1b0d");
  EXPECT_EQ(key_id_of("rl_7f3a9c2e1b0g_" + secret), std::nullopt);
  EXPECT_EQ(key_id_of("rl_7f3a9c2e1b0d-" + secret), std::nullopt);
  EXPECT_EQ(key_id_of(""), std::nullopt);
}

using testing::TempDir;

// The CLI revoking in its own process is a second store on the same file: this replica may
// serve its cached record until the TTL runs out, then must refuse the key.
TEST(ApiKeyServiceSharedFile, RevocationByAnotherStoreLandsWithinTheTtl) {
  TempDir dir;
  const auto path = dir.file("redline.db");
  auto clock = std::make_shared<ManualClock>();
  ApiKeyService gateway(open_store(path), clock);
  ApiKeyService cli(open_store(path), clock);

  auto created = cli.create(for_tenant("acme"));
  ASSERT_TRUE(created.ok()) << created.error();
  ASSERT_TRUE(gateway.authenticate(created->secret).ok());
  ASSERT_TRUE(cli.revoke(created->record.id).ok);

  clock->advance(499ms);
  EXPECT_TRUE(gateway.authenticate(created->secret).ok());  // still the cached record
  clock->advance(1ms);
  EXPECT_EQ(gateway.authenticate(created->secret).failure, AuthFailure::kRevoked);
}

TEST(ApiKeyServiceSharedFile, RevocationByAnotherStoreLandsWithinASecondOfRealTime) {
  TempDir dir;
  const auto path = dir.file("redline.db");
  ApiKeyService gateway(open_store(path), system_clock());
  auto cli_store = open_store(path);
  ApiKeyService cli(cli_store, system_clock());

  auto created = cli.create(for_tenant("acme"));
  ASSERT_TRUE(created.ok()) << created.error();
  ASSERT_TRUE(gateway.authenticate(created->secret).ok());
  const auto revoked_at = std::chrono::steady_clock::now();
  ASSERT_TRUE(cli_store->revoke_key(created->record.id, 1).ok);
  while (gateway.authenticate(created->secret).ok()) {
    ASSERT_LT(std::chrono::steady_clock::now() - revoked_at, 1s);
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(gateway.authenticate(created->secret).failure, AuthFailure::kRevoked);
}

// Many threads authenticate two keys while one of them is revoked. Every call that starts after
// revoke() returned must refuse the revoked key; the other key keeps working throughout.
TEST(ApiKeyServiceConcurrency, RevokeInTheMiddleOfConcurrentAuthentication) {
  TempDir dir;
  auto store = open_store(dir.file("redline.db"));
  ApiKeyService service(store, system_clock());
  auto doomed = service.create(for_tenant("acme"));
  auto survivor = service.create(for_tenant("beta"));
  ASSERT_TRUE(doomed.ok() && survivor.ok());

  constexpr int kThreads = 8;
  std::atomic<bool> revoked{false};
  std::atomic<bool> stop{false};
  std::atomic<int> late_successes{0};
  std::atomic<int> survivor_failures{0};
  std::atomic<long> calls{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      while (!stop.load()) {
        const bool after_revoke = revoked.load();
        if (service.authenticate(doomed->secret).ok() && after_revoke) ++late_successes;
        if (!service.authenticate(survivor->secret).ok()) ++survivor_failures;
        calls += 2;
      }
    });
  }
  std::this_thread::sleep_for(100ms);
  ASSERT_TRUE(service.revoke(doomed->record.id).ok);
  revoked = true;
  std::this_thread::sleep_for(700ms);  // past a TTL, so the store is read again meanwhile
  stop = true;
  for (auto& thread : threads) thread.join();

  EXPECT_EQ(late_successes.load(), 0);
  EXPECT_EQ(survivor_failures.load(), 0);
  EXPECT_GT(calls.load(), 1000);
}

}  // namespace
}  // namespace redline::quota
