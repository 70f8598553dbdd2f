#include "audit/audit_record.h"

#include <openssl/sha.h>

#include <cassert>
#include <charconv>
#include <cmath>

#include "audit/audit_log.h"
#include "common/json_text.h"

namespace redline::audit {
namespace {

constexpr char kHexDigits[] = "0123456789abcdef";

std::string to_hex(const unsigned char* bytes, std::size_t size) {
  std::string hex(size * 2, '0');
  for (std::size_t i = 0; i < size; ++i) {
    hex[2 * i] = kHexDigits[bytes[i] >> 4];
    hex[2 * i + 1] = kHexDigits[bytes[i] & 0xf];
  }
  return hex;
}

void append_int(std::string& out, std::int64_t value) {
  char digits[24];
  const auto result = std::to_chars(digits, digits + sizeof digits, value);
  out.append(digits, result.ptr);
}

void field(std::string& out, std::string_view name, std::string_view value) {
  out += '"';
  out += name;
  out += "\":";
  append_json_string(out, value);
  out += ',';
}

void field(std::string& out, std::string_view name, std::int64_t value) {
  out += '"';
  out += name;
  out += "\":";
  append_int(out, value);
  out += ',';
}

}  // namespace

std::string sha256_hex(std::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return to_hex(digest, sizeof digest);
}

BodyDigest::BodyDigest() : context_(EVP_MD_CTX_new()) {
  const int ok = EVP_DigestInit_ex(context_, EVP_sha256(), nullptr);
  assert(ok == 1);
  (void)ok;
}

BodyDigest::~BodyDigest() { EVP_MD_CTX_free(context_); }

void BodyDigest::update(std::string_view piece) {
  EVP_DigestUpdate(context_, piece.data(), piece.size());
}

std::string BodyDigest::hex() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_DigestFinal_ex(context_, digest, &size);
  return to_hex(digest, size);
}

std::int64_t micro_usd(double usd) { return std::llround(usd * 1e6); }

std::string canonical_record_tail(const AuditEvent& event) {
  std::string out;
  out.reserve(384 + event.request_id.size() + event.detectors.size() + event.rules.size() +
              event.error.size());
  field(out, "time_ms", event.time_ms);
  field(out, "kind", event.kind);
  field(out, "request_id", event.request_id);
  field(out, "tenant", event.tenant);
  field(out, "key_id", event.key_id);
  field(out, "model", event.model);
  field(out, "backend", event.backend);
  field(out, "label", event.label);
  field(out, "decision", event.decision);
  field(out, "detectors", event.detectors);
  field(out, "rules", event.rules);
  field(out, "action", event.action);
  field(out, "target", event.target);
  field(out, "error", event.error);
  field(out, "status", static_cast<std::int64_t>(event.status));
  field(out, "tokens_in", event.tokens_in);
  field(out, "tokens_out", event.tokens_out);
  field(out, "cost_micro_usd", micro_usd(event.cost_usd));
  field(out, "latency_us", event.latency_us);
  field(out, "ttft_us", event.ttft_us);
  field(out, "request_sha256", event.request_sha256);
  field(out, "response_sha256", event.response_sha256);
  out.back() = '}';
  return out;
}

std::string canonical_record(std::int64_t seq, std::string_view prev_hex, std::string_view tail) {
  std::string text;
  text.reserve(100 + tail.size());
  text += "{\"seq\":";
  append_int(text, seq);
  text += ",\"prev\":\"";
  text += prev_hex;
  text += "\",";
  text += tail;
  return text;
}

bool is_lower_hex_digest(std::string_view text) {
  if (text.size() != 64) return false;
  for (const char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::optional<RecordHead> parse_record_head(std::string_view text) {
  constexpr std::string_view kSeq = "{\"seq\":";
  constexpr std::string_view kPrev = ",\"prev\":\"";
  if (!text.starts_with(kSeq) || !text.ends_with('}')) return std::nullopt;
  RecordHead head;
  const char* begin = text.data() + kSeq.size();
  const char* end = text.data() + text.size();
  const auto [after_seq, ec] = std::from_chars(begin, end, head.seq);
  if (ec != std::errc() || after_seq == begin || *begin == '-' || head.seq <= 0) {
    return std::nullopt;
  }
  std::string_view rest(after_seq, end - after_seq);
  if (!rest.starts_with(kPrev) || rest.size() < kPrev.size() + 64 + 3) return std::nullopt;
  head.prev = rest.substr(kPrev.size(), 64);
  if (!is_lower_hex_digest(head.prev) || rest.substr(kPrev.size() + 64, 2) != "\",") {
    return std::nullopt;
  }
  return head;
}

}  // namespace redline::audit
