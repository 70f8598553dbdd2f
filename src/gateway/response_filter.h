#pragma once
// What happens to a model's answer on its way back when red lines apply: placeholders of a
// redacted request are replaced by the caller's original values, and output whose label is above
// what the caller's key may receive is stopped. Inactive (and skipped by the relay) when neither
// applies, so the common stream path stays a byte copy.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/label.h"
#include "policy/stream_restore.h"

namespace redline::policy {
class RedLinePolicy;
class RedactionVault;
}  // namespace redline::policy

namespace redline::gateway {

class ResponseFilter {
 public:
  // `vault`: the placeholders sent upstream (null or empty = nothing to restore).
  // `output_limit`: the highest label the caller may receive (nullopt = no limit).
  ResponseFilter(const policy::RedLinePolicy& policy, const policy::RedactionVault* vault,
                 std::optional<policy::Label> output_limit);

  bool active() const { return restorer_.has_value() || output_limit_.has_value(); }

  // A complete JSON response: restored, or left as is; blocked() tells whether it may be sent.
  std::string filter_body(std::string body);

  // One SSE event's data payload; appends the SSE bytes to send to `out`. Returns false once the
  // output is blocked: the caller then ends the stream with an error event.
  bool on_event(std::string_view payload, std::string& out);
  // The stream ended without [DONE]: flushes what restoration still holds.
  void finish(std::string& out);

  bool blocked() const { return blocked_; }
  // The label the output reached (meaningful when blocked).
  const policy::Label& output_label() const { return output_label_; }

 private:
  // Scans a piece of model output together with the end of the previous piece, so a match split
  // across stream chunks is still seen.
  void scan_output(std::string_view text);

  const policy::RedLinePolicy& policy_;
  std::optional<policy::StreamRestorer> restorer_;
  const policy::RedactionVault* vault_;
  std::optional<policy::Label> output_limit_;
  policy::Label output_label_;
  std::string tail_;
  bool blocked_ = false;
  std::vector<std::string> payloads_;
};

}  // namespace redline::gateway
