#pragma once
// The admin API under /admin/: API keys (create, list, revoke), tenants, and requests held for
// approval (list, approve, deny). Every route needs the admin credential from the config
// (Authorization: Bearer <token>), compared in constant time; the routes are off when no
// credential is configured.
//
//   GET    /admin/keys[?tenant=T]          list keys (never secrets or hashes)
//   POST   /admin/keys                     {"tenant", "default_label", "max_label", "models",
//                                           "expires_at" (unix s), "description"} → 201 + "key"
//   DELETE /admin/keys/{id}                revoke
//   GET    /admin/approvals                requests waiting for a decision
//   POST   /admin/approvals/{id}/approve | /deny
//   GET    /admin/usage[?tenant&key&model&backend&since&until&group_by=tenant,key,model,
//                        backend,day,hour]   usage and cost from the audit chain (unix seconds)
//   GET    /admin/budgets                  every budget: limits, spent and reserved now
// Every change (and every refused credential) is recorded in the audit chain.
#include <optional>

#include "net/http_message.h"

namespace redline::gateway {
class Gateway;
}

namespace redline::api {

class AdminApi {
 public:
  explicit AdminApi(gateway::Gateway& gateway) : gateway_(gateway) {}

  // Answers any request whose path starts with /admin/.
  net::HttpResponse handle(const net::HttpRequest& request, const std::string& request_id);
  // The answer refusing a request without the admin credential (recorded in the audit chain),
  // or nullopt when it has it: for admin routes answered elsewhere (/admin/agent/).
  std::optional<net::HttpResponse> refusal(const net::HttpRequest& request,
                                           const std::string& request_id);

 private:
  net::HttpResponse keys(const net::HttpRequest& request, std::string_view rest);
  net::HttpResponse create_key(const net::HttpRequest& request);
  net::HttpResponse approvals(const net::HttpRequest& request, std::string_view rest);
  net::HttpResponse usage(const net::HttpRequest& request);
  net::HttpResponse budgets();

  gateway::Gateway& gateway_;
};

}  // namespace redline::api
