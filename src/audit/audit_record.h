// The canonical text of one audit record, and the digests the chain is made of.
//
// A record is stored and exported as the exact bytes it was hashed from, so nothing is ever
// re-serialised: hash = SHA-256(canonical text). The text is a JSON object whose fields come in
// a fixed order and start with `{"seq":<n>,"prev":"<64 hex>",`, which lets the verifier find
// the chain fields by position instead of parsing JSON. An export line is the canonical text
// with `,"hash":"<64 hex>"}` in place of its final `}`.
//
// Field order and meaning (all present in every record):
//   seq, prev, time_ms, kind, request_id, tenant, key_id, model, backend, label, decision,
//   detectors, rules, action, target, error, status, tokens_in, tokens_out,
//   cost_micro_usd (integer micro-USD: exact, so the text is canonical), latency_us, ttft_us,
//   request_sha256, response_sha256.
#pragma once

#include <openssl/evp.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace redline::audit {

struct AuditEvent;

inline constexpr std::string_view kZeroHash =
    "0000000000000000000000000000000000000000000000000000000000000000";

// Lowercase hex SHA-256 of `data`.
std::string sha256_hex(std::string_view data);

// SHA-256 of a body that arrives in pieces (a stream): update(...) as pieces arrive, then hex().
// hex() ends the digest; call it once.
class BodyDigest {
 public:
  BodyDigest();
  ~BodyDigest();
  BodyDigest(const BodyDigest&) = delete;
  BodyDigest& operator=(const BodyDigest&) = delete;

  void update(std::string_view piece);
  std::string hex();

 private:
  EVP_MD_CTX* context_;
};

// Everything of the canonical text after `"prev":"<hex>",`, i.e. from `"time_ms"` to the final
// `}`. It does not depend on the chain, so it can be built on the caller's thread.
std::string canonical_record_tail(const AuditEvent& event);

// The full canonical text of record `seq` whose predecessor's hash is `prev_hex`.
std::string canonical_record(std::int64_t seq, std::string_view prev_hex, std::string_view tail);

// The chain fields found by position in a canonical text; nullopt when the text does not start
// with `{"seq":<n>,"prev":"<64 lowercase hex>",` or does not end with `}`.
struct RecordHead {
  std::int64_t seq = 0;
  std::string_view prev;  // 64 hex, a view into the text
};
std::optional<RecordHead> parse_record_head(std::string_view text);

// Micro-USD as stored in the chain: rounded to the nearest integer.
std::int64_t micro_usd(double usd);

bool is_lower_hex_digest(std::string_view text);

}  // namespace redline::audit
