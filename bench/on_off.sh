#!/usr/bin/env bash
# What a feature costs: the same gateway, the same upstream and the same request, measured in one
# run with the feature off (bench/configs/gateway-fast.toml: no keys, no red lines, no audit) and
# with each configuration given switched on, at 64 connections, JSON and SSE. Prints the on/off
# throughput ratios and keeps the raw figures in bench/out/<name>-<timestamp>/. A configuration
# with [auth] required = true gets a key made for it.
#
# Usage: bash bench/on_off.sh NAME CONFIG...   (configs relative to bench/configs; each listens on
#        its own port)                          DURATION=10 WARMUP=2 ROUNDS=3
#        REDLINE=build-bench/redline
set -euo pipefail

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(dirname "$bench_dir")
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
ROUNDS=${ROUNDS:-3}
REDLINE=${REDLINE:-$repo_dir/build-bench/redline}
CPU_LOAD=0 CPU_UPSTREAM=0 CPU_PROXY=$(($(nproc) >= 2 ? 1 : 0))
PORT_SIM=19401 PORT_OFF=19403
name=$1
shift
on_configs=("$@")

out_dir=$bench_dir/out/$name-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out_dir"
log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
[[ -x $REDLINE ]] || {
  cmake -S "$repo_dir" -B "$repo_dir/build-bench" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  ninja -C "$repo_dir/build-bench" redline >/dev/null
}

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
start() { # NAME CPU COMMAND...
  local name=$1 cpu=$2
  shift 2
  taskset -c "$cpu" "$@" >"$out_dir/$name.log" 2>&1 &
  pids+=($!)
}
wait_port() {
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done
  log "port $1 did not open"; exit 1
}

# Each gateway gets its own copy of its config, so its store and audit key land in out_dir.
cp "$bench_dir/configs/gateway-fast.toml" "$out_dir/"
for config in "${on_configs[@]}"; do cp "$bench_dir/configs/$config" "$out_dir/"; done
port_of() { sed -n 's/^listen = "127.0.0.1:\([0-9]*\)"/\1/p' "$out_dir/$1" | head -1; }
start sim "$CPU_UPSTREAM" "$REDLINE" sim --config "$bench_dir/configs/sim-fast.toml"
start off "$CPU_PROXY" "$REDLINE" serve --config "$out_dir/gateway-fast.toml"
wait_port $PORT_SIM
wait_port $PORT_OFF
declare -A auth
for config in "${on_configs[@]}"; do
  start "${config%.toml}" "$CPU_PROXY" "$REDLINE" serve --config "$out_dir/$config"
  wait_port "$(port_of "$config")"
  auth[$config]=""
  if grep -q '^required = true' "$out_dir/$config"; then
    auth[$config]="Bearer $("$REDLINE" keys create --config "$out_dir/$config" --tenant bench | head -1)"
  fi
done

# rps TARGET PORT BODY AUTH: requests per second at 64 connections.
rps() {
  local name=$1 port=$2 body=$3 auth=$4 url=http://127.0.0.1:$2/v1/chat/completions
  BENCH_BODY=$body BENCH_AUTHORIZATION=$auth taskset -c $CPU_LOAD wrk -t1 -c64 -d"${WARMUP}s" \
    -s "$bench_dir/wrk_post.lua" "$url" >/dev/null
  BENCH_BODY=$body BENCH_AUTHORIZATION=$auth taskset -c $CPU_LOAD wrk -t1 -c64 -d"${DURATION}s" \
    --latency -s "$bench_dir/wrk_post.lua" "$url" >"$out_dir/$name.txt"
  local json
  json=$(sed -n 's/^WRKJSON //p' "$out_dir/$name.txt")
  node -e 'const r = JSON.parse(process.argv[1]);
    if (r.errors_status + r.errors_connect + r.errors_read > 0) { console.error("errors", r); process.exit(1); }
    console.log((r.requests / (r.duration_us / 1e6)).toFixed(0))' "$json"
}

{
  printf '| payload | off (req/s) |'
  for config in "${on_configs[@]}"; do printf ' %s (req/s) | on / off |' "${config%.toml}"; done
  printf '\n| --- | --- |'
  for _ in "${on_configs[@]}"; do printf ' --- | --- |'; done
  printf '\n'
} | tee "$out_dir/summary.md"
# The machine's speed drifts between seconds: each configuration is measured ROUNDS times,
# interleaved with the others, and the median is reported.
median() { tr ' ' '\n' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
for payload in chat chat_stream; do
  body=$bench_dir/payloads/$payload.json
  declare -A runs=()
  for round in $(seq "$ROUNDS"); do
    log "$payload round $round: off"
    runs[off]+=" $(rps "$payload-off-$round" $PORT_OFF "$body" "")"
    for config in "${on_configs[@]}"; do
      log "$payload round $round: ${config%.toml}"
      runs[$config]+=" $(rps "$payload-${config%.toml}-$round" "$(port_of "$config")" "$body" \
        "${auth[$config]}")"
    done
  done
  off=$(median <<<"${runs[off]# }")
  row="| $payload | $off |"
  for config in "${on_configs[@]}"; do
    on=$(median <<<"${runs[$config]# }")
    row+=" $on | $(awk -v a="$on" -v b="$off" 'BEGIN { printf "%.2f", a / b }')× |"
  done
  printf '%s\n' "$row" | tee -a "$out_dir/summary.md"
  unset runs
done
