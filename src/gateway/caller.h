#pragma once
// Who is calling: the API key a request presents, resolved to its tenant, labels and allowed
// models, and the classification the client declares. Failures are OpenAI-style errors (401,
// 403, 400) that never echo the presented key.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/openai_error.h"
#include "net/http_message.h"
#include "policy/label.h"

namespace redline::quota {
class ApiKeyService;
struct AuthResult;
}  // namespace redline::quota

namespace redline::gateway {

struct Caller {
  std::string tenant;
  std::string key_id;  // "" when anonymous
  policy::Label default_label;
  policy::Label max_label;
  std::vector<std::string> models;  // allowed aliases; empty = all

  bool may_use(std::string_view alias) const;
};

struct CallerResult {
  std::optional<Caller> caller;
  ApiError error;  // meaningful when !caller
};

// The tenant requests run as when [auth] required = false and no key is presented.
inline constexpr std::string_view kAnonymousTenant = "anonymous";

// Reads "Authorization: Bearer <key>" or "x-api-key: <key>". A key that is presented is always
// checked, even when keys are optional.
CallerResult identify_caller(const net::HttpRequest& request, quota::ApiKeyService* keys,
                             const policy::LabelLattice& lattice, bool key_required);

// The caller a key id stands for, for work Redline resumes on that key's behalf without its
// secret (a durable agent run after a restart): "" is the anonymous caller. A key revoked or
// expired since fails like a presented one.
CallerResult resume_caller(std::string_view key_id, quota::ApiKeyService* keys,
                           const policy::LabelLattice& lattice);

// The caller an authentication result stands for, or the error it answers.
CallerResult caller_from(const quota::AuthResult& auth, const policy::LabelLattice& lattice);

// Checks the labels a new key is given: each must parse ("" means the lattice's bottom for the
// default, its top for the maximum) and the default must not be above the maximum. Returns the
// problem, if any.
std::optional<std::string> check_key_labels(const policy::LabelLattice& lattice,
                                            std::string_view default_label,
                                            std::string_view max_label);

// The label the client declares in X-Redline-Classification; nullopt when absent. A value that
// does not parse yields a 400 in `error`.
std::optional<policy::Label> declared_label(const net::HttpRequest& request,
                                            const policy::LabelLattice& lattice,
                                            std::optional<ApiError>& error);

}  // namespace redline::gateway
