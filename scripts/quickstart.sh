#!/usr/bin/env bash
# Builds Redline and runs the quickstart: two simulated model servers (an "edge" and a "cloud"
# one) in the background and the gateway in the foreground on the address in
# examples/quickstart.toml. Ctrl-C stops the gateway; the simulators are stopped with it.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

scripts/install-deps.sh
scripts/build.sh build

sim_pids=()
stop_sims() {
  local pid
  for pid in "${sim_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${sim_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop_sims EXIT

for sim in examples/sim-edge.toml examples/sim-cloud.toml; do
  build/redline sim --config "$sim" &
  sim_pids+=("$!")
done

listen="$(sed -nE 's/^[[:space:]]*listen[[:space:]]*=[[:space:]]*"([^"]+)".*/\1/p' examples/quickstart.toml | head -1)"
echo "Redline gateway starting with examples/quickstart.toml; try:"
echo "  curl -s http://${listen:-127.0.0.1:8080}/v1/models"
build/redline serve --config examples/quickstart.toml
