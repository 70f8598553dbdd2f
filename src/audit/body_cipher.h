// AES-256-GCM for stored bodies. The associated data binds a ciphertext to its record and
// role, so a body cannot be moved to another record without failing to decrypt.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace redline::audit {

inline constexpr std::size_t kBodyKeySize = 32;

// nonce (12 random bytes) | ciphertext | tag (16 bytes). `key` must be 32 bytes.
std::optional<std::string> encrypt_body(std::string_view key, std::int64_t seq,
                                        std::string_view role, std::string_view plaintext);
// nullopt when the key, seq or role differ from encryption, or the blob was altered.
std::optional<std::string> decrypt_body(std::string_view key, std::int64_t seq,
                                        std::string_view role, std::string_view blob);

}  // namespace redline::audit
