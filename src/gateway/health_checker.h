#pragma once
// Active health checks: every backend with a health_path is probed with GET at its interval.
// One success marks it healthy; two consecutive failures mark it unhealthy (a single lost probe
// should not empty a pool).
#include <memory>

namespace redline::net {
class IoPool;
}

namespace redline::gateway {

class RoutingTable;

// Spawns one probe loop per backend, spread over the pool's threads. A loop ends by itself once
// `table` has been replaced by a reload and released by every request.
void start_health_checks(const std::shared_ptr<const RoutingTable>& table, net::IoPool& io);

}  // namespace redline::gateway
