#include "audit/body_cipher.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <memory>

namespace redline::audit {
namespace {

constexpr std::size_t kNonceSize = 12;
constexpr std::size_t kTagSize = 16;

struct CipherContextFree {
  void operator()(EVP_CIPHER_CTX* context) const { EVP_CIPHER_CTX_free(context); }
};
using CipherContext = std::unique_ptr<EVP_CIPHER_CTX, CipherContextFree>;

std::string associated_data(std::int64_t seq, std::string_view role) {
  return "redline-audit-body-v1\n" + std::to_string(seq) + "\n" + std::string(role);
}

const unsigned char* bytes(std::string_view text) {
  return reinterpret_cast<const unsigned char*>(text.data());
}

}  // namespace

std::optional<std::string> encrypt_body(std::string_view key, std::int64_t seq,
                                        std::string_view role, std::string_view plaintext) {
  if (key.size() != kBodyKeySize) return std::nullopt;
  std::string blob(kNonceSize + plaintext.size() + kTagSize, '\0');
  auto* out = reinterpret_cast<unsigned char*>(blob.data());
  if (RAND_bytes(out, kNonceSize) != 1) return std::nullopt;
  CipherContext context(EVP_CIPHER_CTX_new());
  const std::string aad = associated_data(seq, role);
  int length = 0;
  if (EVP_EncryptInit_ex(context.get(), EVP_aes_256_gcm(), nullptr, bytes(key), out) != 1 ||
      EVP_EncryptUpdate(context.get(), nullptr, &length, bytes(aad),
                        static_cast<int>(aad.size())) != 1 ||
      EVP_EncryptUpdate(context.get(), out + kNonceSize, &length, bytes(plaintext),
                        static_cast<int>(plaintext.size())) != 1 ||
      EVP_EncryptFinal_ex(context.get(), out + kNonceSize + length, &length) != 1 ||
      EVP_CIPHER_CTX_ctrl(context.get(), EVP_CTRL_GCM_GET_TAG, kTagSize,
                          out + kNonceSize + plaintext.size()) != 1) {
    return std::nullopt;
  }
  return blob;
}

std::optional<std::string> decrypt_body(std::string_view key, std::int64_t seq,
                                        std::string_view role, std::string_view blob) {
  if (key.size() != kBodyKeySize || blob.size() < kNonceSize + kTagSize) return std::nullopt;
  const std::size_t size = blob.size() - kNonceSize - kTagSize;
  std::string plaintext(size, '\0');
  auto* out = reinterpret_cast<unsigned char*>(plaintext.data());
  CipherContext context(EVP_CIPHER_CTX_new());
  const std::string aad = associated_data(seq, role);
  std::string tag(blob.substr(kNonceSize + size));
  int length = 0;
  if (EVP_DecryptInit_ex(context.get(), EVP_aes_256_gcm(), nullptr, bytes(key), bytes(blob)) != 1 ||
      EVP_DecryptUpdate(context.get(), nullptr, &length, bytes(aad),
                        static_cast<int>(aad.size())) != 1 ||
      EVP_DecryptUpdate(context.get(), out, &length, bytes(blob.substr(kNonceSize)),
                        static_cast<int>(size)) != 1 ||
      EVP_CIPHER_CTX_ctrl(context.get(), EVP_CTRL_GCM_SET_TAG, kTagSize, tag.data()) != 1 ||
      EVP_DecryptFinal_ex(context.get(), out + length, &length) != 1) {
    return std::nullopt;
  }
  return plaintext;
}

}  // namespace redline::audit
