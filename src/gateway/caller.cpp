#include "gateway/caller.h"

#include <algorithm>

#include "quota/api_keys.h"

namespace redline::gateway {
namespace {

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

ApiError unauthorized(std::string message, std::string code) {
  return make_error(401, std::move(message), "", std::move(code));
}

}  // namespace

bool Caller::may_use(std::string_view alias) const {
  return models.empty() || std::find(models.begin(), models.end(), alias) != models.end();
}

CallerResult identify_caller(const net::HttpRequest& request, quota::ApiKeyService* keys,
                             const policy::LabelLattice& lattice, bool key_required) {
  CallerResult result;
  const std::string_view presented =
      quota::presented_key(request.header("authorization"), request.header("x-api-key"));
  if (presented.empty()) {
    if (key_required) {
      result.error = unauthorized(
          "You didn't provide an API key. Provide it in the Authorization header "
          "(Authorization: Bearer YOUR_KEY).",
          "missing_api_key");
      return result;
    }
    result.caller = Caller{std::string(kAnonymousTenant), "", {}, lattice.top(), {}};
    return result;
  }
  if (keys == nullptr) {
    result.error = unauthorized("API keys are not enabled on this gateway.", "invalid_api_key");
    return result;
  }
  return caller_from(keys->authenticate(presented), lattice);
}

CallerResult resume_caller(std::string_view key_id, quota::ApiKeyService* keys,
                           const policy::LabelLattice& lattice) {
  if (key_id.empty()) {
    CallerResult result;
    result.caller = Caller{std::string(kAnonymousTenant), "", {}, lattice.top(), {}};
    return result;
  }
  if (keys == nullptr) {
    CallerResult result;
    result.error = unauthorized("API keys are not enabled on this gateway.", "invalid_api_key");
    return result;
  }
  return caller_from(keys->resume(key_id), lattice);
}

CallerResult caller_from(const quota::AuthResult& auth, const policy::LabelLattice& lattice) {
  CallerResult result;
  if (!auth.key) {
    switch (auth.failure) {
      case quota::AuthFailure::kRevoked:
        result.error = unauthorized("This API key has been revoked.", "revoked_api_key");
        break;
      case quota::AuthFailure::kExpired:
        result.error = unauthorized("This API key has expired.", "expired_api_key");
        break;
      case quota::AuthFailure::kUnavailable:
        result.error = make_error(503, "API keys cannot be checked right now; try again.", "",
                                  "key_store_unavailable");
        break;
      default:
        result.error = unauthorized("Incorrect API key provided.", "invalid_api_key");
        break;
    }
    return result;
  }
  const store::ApiKeyRecord& key = *auth.key;
  Caller caller{key.tenant, key.id, {}, lattice.top(), key.models};
  // Labels are kept on keys as text: a lattice change that drops a name shows up here.
  auto read_label = [&](const std::string& text, std::string_view which,
                        policy::Label& out) -> bool {
    if (text.empty()) return true;
    std::string problem;
    auto label = lattice.parse(text, &problem);
    if (!label) {
      result.error = make_error(403,
                                "The " + std::string(which) + " label of API key " + key.id +
                                    " is not in this gateway's label lattice: " + problem,
                                "", "key_label_invalid");
      return false;
    }
    out = *label;
    return true;
  };
  if (!read_label(key.default_label, "default", caller.default_label) ||
      !read_label(key.max_label, "maximum", caller.max_label)) {
    return result;
  }
  result.caller = std::move(caller);
  return result;
}

std::optional<std::string> check_key_labels(const policy::LabelLattice& lattice,
                                            std::string_view default_label,
                                            std::string_view max_label) {
  std::string problem;
  policy::Label low;
  policy::Label high = lattice.top();
  if (!default_label.empty()) {
    auto parsed = lattice.parse(default_label, &problem);
    if (!parsed) return "invalid default label '" + std::string(default_label) + "': " + problem;
    low = *parsed;
  }
  if (!max_label.empty()) {
    auto parsed = lattice.parse(max_label, &problem);
    if (!parsed) return "invalid maximum label '" + std::string(max_label) + "': " + problem;
    high = *parsed;
  }
  if (!policy::dominates(high, low)) {
    return "the default label " + lattice.format(low) + " is above the maximum " +
           lattice.format(high);
  }
  return std::nullopt;
}

std::optional<policy::Label> declared_label(const net::HttpRequest& request,
                                            const policy::LabelLattice& lattice,
                                            std::optional<ApiError>& error) {
  const std::string_view text = trim(request.header("x-redline-classification"));
  if (text.empty()) return std::nullopt;
  std::string problem;
  auto label = lattice.parse(text, &problem);
  if (!label) {
    error = make_error(400, "Invalid X-Redline-Classification header: " + problem,
                       "x-redline-classification", "invalid_classification");
  }
  return label;
}

}  // namespace redline::gateway
