#include "gateway/response_filter.h"

#include "policy/red_line_policy.h"
#include "policy/redaction.h"

namespace redline::gateway {
namespace {

// Long enough to hold any single detector match split across two deltas (a PEM header, a JWT
// prefix, an IBAN); longer matches are still seen whole in non-streaming answers.
constexpr std::size_t kScanOverlap = 256;

void append_event(std::string& out, std::string_view payload) {
  out += "data: ";
  out += payload;
  out += "\n\n";
}

}  // namespace

ResponseFilter::ResponseFilter(const policy::RedLinePolicy& policy,
                               const policy::RedactionVault* vault,
                               std::optional<policy::Label> output_limit)
    : policy_(policy), vault_(vault), output_limit_(output_limit) {
  if (vault_ != nullptr && !vault_->empty()) restorer_.emplace(*vault_);
}

void ResponseFilter::scan_output(std::string_view text) {
  if (!output_limit_ || blocked_ || text.empty()) return;
  std::string window = tail_;
  window.append(text);
  const policy::Findings findings = policy_.scan_text(window);
  output_label_ = policy::least_upper_bound(output_label_, findings.raised);
  if (!policy::dominates(*output_limit_, output_label_)) blocked_ = true;
  tail_ = window.size() > kScanOverlap ? window.substr(window.size() - kScanOverlap) : window;
}

std::string ResponseFilter::filter_body(std::string body) {
  if (output_limit_) {
    // The whole answer is at hand: scan it in one piece.
    std::string text;
    policy::for_each_output_text(body, [&](std::string_view piece) {
      text.append(piece);
      text.push_back('\n');
    });
    scan_output(text);
  }
  if (restorer_ && !blocked_) return policy::restore_response_body(body, *vault_);
  return body;
}

bool ResponseFilter::on_event(std::string_view payload, std::string& out) {
  if (blocked_) return false;
  if (output_limit_) {
    policy::for_each_output_text(payload, [&](std::string_view piece) { scan_output(piece); });
    if (blocked_) return false;
  }
  if (!restorer_) {
    append_event(out, payload);
    return true;
  }
  payloads_.clear();
  restorer_->on_event(payload, payloads_);
  for (const auto& restored : payloads_) append_event(out, restored);
  return true;
}

void ResponseFilter::finish(std::string& out) {
  if (!restorer_ || blocked_) return;
  payloads_.clear();
  restorer_->finish(payloads_);
  for (const auto& restored : payloads_) append_event(out, restored);
}

}  // namespace redline::gateway
