#pragma once
// The one JSON shape of an API key that operators see, from the admin API and `redline keys list
// --json` alike: never the secret or its hash.
#include <boost/json/object.hpp>

#include "store/key_store.h"

namespace redline::quota {

boost::json::object key_to_json(const store::ApiKeyRecord& key);

}  // namespace redline::quota
