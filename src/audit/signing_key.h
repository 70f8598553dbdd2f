// Ed25519 keys that sign the chain head, and the checkpoint message they sign.
#pragma once

#include <openssl/evp.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace redline::audit {

struct EvpKeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using EvpKey = std::unique_ptr<EVP_PKEY, EvpKeyFree>;

// The signed message: domain-separated so a signature cannot be replayed for another purpose.
// "redline-audit-checkpoint-v1\n<seq>\n<hash hex>"
std::string checkpoint_message(std::int64_t seq, std::string_view hash_hex);

std::string base64_encode(std::string_view bytes);
// False on characters outside the standard alphabet or bad padding.
bool base64_decode(std::string_view text, std::string* bytes);

// Loads the private key (PEM) at `path`; when the file does not exist, creates a new key there
// with mode 0600 (atomically: when two processes race, both end up with the winner's key).
EvpKey load_or_create_signing_key(const std::string& path, std::string* error);
// Loads an existing private key without creating one.
EvpKey load_signing_key(const std::string& path, std::string* error);
// A public key from PEM text ("-----BEGIN PUBLIC KEY-----"); null when it is not Ed25519.
EvpKey public_key_from_pem(std::string_view pem, std::string* error);

std::string public_key_pem(EVP_PKEY* key);
// 16 hex digits of SHA-256 over the raw 32-byte public key: names the key in checkpoints.
std::string key_id_of(EVP_PKEY* key);

// Base64 Ed25519 signature of `message`; "" on failure (not expected with a valid key).
std::string sign(EVP_PKEY* private_key, std::string_view message);
bool verify_signature(EVP_PKEY* public_key, std::string_view message,
                      std::string_view signature_base64);

}  // namespace redline::audit
