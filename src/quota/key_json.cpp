#include "quota/key_json.h"

#include <boost/json/array.hpp>
#include <boost/json/value.hpp>

namespace redline::quota {
namespace {

boost::json::value optional_time(const std::optional<std::int64_t>& at) {
  return at ? boost::json::value(*at) : boost::json::value(nullptr);
}

}  // namespace

boost::json::object key_to_json(const store::ApiKeyRecord& key) {
  boost::json::array models;
  for (const auto& model : key.models) models.emplace_back(model);
  return {{"id", key.id},
          {"object", "api_key"},
          {"tenant", key.tenant},
          {"default_label", key.default_label},
          {"max_label", key.max_label},
          {"models", std::move(models)},
          {"created_at", key.created_at},
          {"expires_at", optional_time(key.expires_at)},
          {"revoked_at", optional_time(key.revoked_at)},
          {"description", key.description}};
}

}  // namespace redline::quota
