#!/usr/bin/env bash
# Compares Redline with nginx (a plain keep-alive reverse proxy) and with no proxy at all, in one
# run, against the same simulated upstream (`redline sim`, one thread), then holds many concurrent
# slow SSE streams through Redline (and, for reference, nginx) to measure memory per stream.
#
# Usage: bash bench/run.sh
# Environment (all optional):
#   THREADS=1        Redline [server] threads and nginx worker_processes
#   DURATION=10      seconds per measured wrk run (each run is preceded by a WARMUP-second run)
#   WARMUP=2
#   STREAMS=10000    concurrent slow streams
#   CPU_LOAD=0 CPU_UPSTREAM=0 CPU_PROXY=1   taskset CPU lists for wrk/node, the simulators and
#                    the proxy under test in the 64-connection and slow-stream runs
#   CPU_LATENCY=0    the one CPU every process is moved to for the 1-connection runs: that chain
#                    is serial, and on a VM a wake-up on another core adds 100-200 µs per hop,
#                    which would swamp what the proxy itself adds
#   REDLINE=build-bench/redline   the binary under test (built with ninja if missing)
#
# Raw figures go to bench/out/<timestamp>/ (results.jsonl, every tool's output, summary.md);
# bench/out/summary.md is a copy of the latest summary. Only loopback addresses are used, every
# load loop has a fixed duration, and every process started here is stopped on exit.
set -euo pipefail

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(dirname "$bench_dir")
THREADS=${THREADS:-1}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
STREAMS=${STREAMS:-10000}
REDLINE=${REDLINE:-$repo_dir/build-bench/redline}
if [[ $(nproc) -ge 2 ]]; then
  CPU_LOAD=${CPU_LOAD:-0} CPU_UPSTREAM=${CPU_UPSTREAM:-0} CPU_PROXY=${CPU_PROXY:-1}
else
  CPU_LOAD=${CPU_LOAD:-0} CPU_UPSTREAM=${CPU_UPSTREAM:-0} CPU_PROXY=${CPU_PROXY:-0}
fi
CPU_LATENCY=${CPU_LATENCY:-0}

# Ports, all on 127.0.0.1 (the configs in bench/configs/ name the same ones).
PORT_SIM=19401 PORT_NGINX=19402 PORT_REDLINE=19403
PORT_SIM_SLOW_1=19404 PORT_SIM_SLOW_2=19405 PORT_REDLINE_SLOW=19406 PORT_NGINX_SLOW=19407

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- tools --------------------------------------------------------------------------------------
missing=()
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
command -v wrk >/dev/null || missing+=(wrk)
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  apt-get install -y "${missing[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
command -v node >/dev/null || die "node is required (slow-stream client and summary)"
command -v taskset >/dev/null || die "taskset (util-linux) is required"
if [[ ! -x $REDLINE ]]; then
  log "building $REDLINE"
  build_dir=$(dirname "$REDLINE")
  [[ -f $build_dir/build.ninja ]] ||
    cmake -S "$repo_dir" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  ninja -C "$build_dir" redline >/dev/null
fi

# 10,000 client sockets plus 10,000 upstream sockets in one process need more than the default.
# Raising the hard limit needs CAP_SYS_RESOURCE; without it, the streams are capped so that one
# proxy process (one client and one upstream descriptor per stream, plus ~40 of its own) fits.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
fd_limit=$(ulimit -n)
streams_requested=$STREAMS
if ((2 * STREAMS + 40 > fd_limit)); then
  STREAMS=$(((fd_limit - 40) / 2))
  log "ulimit -n is $fd_limit (hard limit): holding $STREAMS streams instead of $streams_requested"
fi

for port in $PORT_SIM $PORT_NGINX $PORT_REDLINE $PORT_SIM_SLOW_1 $PORT_SIM_SLOW_2 \
  $PORT_REDLINE_SLOW $PORT_NGINX_SLOW; do
  [[ -z $(ss -Hltn "sport = :$port") ]] || die "port $port is in use"
done

stamp=$(date +%Y%m%d-%H%M%S)
out_dir=$bench_dir/out/$stamp
mkdir -p "$out_dir"
work_dir=$(mktemp -d /tmp/redline-bench.XXXXXX)
results=$out_dir/results.jsonl
: >"$results"

# --- process management -------------------------------------------------------------------------
started_pids=()
cleanup() {
  local pid
  for pid in "${started_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  sleep 0.5
  for pid in "${started_pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  rm -rf "$work_dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME CPU COMMAND...: runs COMMAND pinned to CPU, output in out_dir/NAME.log; sets
# started_pid. taskset execs the command, so the pid is the command's own.
start() {
  local name=$1 cpu=$2
  shift 2
  taskset -c "$cpu" "$@" >"$out_dir/$name.log" 2>&1 &
  started_pid=$!
  started_pids+=("$started_pid")
}

stop() {
  kill -TERM "$1" 2>/dev/null || true
  local i
  for i in $(seq 50); do
    kill -0 "$1" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$1" 2>/dev/null || true
}

wait_port() {
  local i
  for i in $(seq 100); do
    [[ -n $(ss -Hltn "sport = :$1") ]] && return 0
    sleep 0.1
  done
  die "nothing listens on port $1 (see $out_dir/*.log)"
}

# A process and its direct children (nginx workers).
process_tree() { echo "$1" $(pgrep -P "$1" || true); }

# CPU time (user + system, in clock ticks) used so far by a process tree.
cpu_ticks() {
  local total=0 pid fields
  for pid in $(process_tree "$1"); do
    fields=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null) || continue
    set -- $fields
    total=$((total + ${12} + ${13}))
  done
  echo "$total"
}

# Resident memory of a process tree in KiB; FIELD is VmRSS or VmHWM.
memory_kib() {
  local field=$1 total=0 pid value
  for pid in $(process_tree "$2"); do
    value=$(awk -v f="$field:" '$1 == f { print $2 }' "/proc/$pid/status" 2>/dev/null) || continue
    total=$((total + ${value:-0}))
  done
  echo "$total"
}

clock_ticks=$(getconf CLK_TCK)

# --- processes for the wrk runs -----------------------------------------------------------------
gateway_config() { # SOURCE DEST: the gateway config with the benchmark's thread count
  sed "s/^threads = 1$/threads = $THREADS/" "$1" >"$2"
}

log "output: $out_dir"
start sim-fast "$CPU_UPSTREAM" "$REDLINE" sim --config "$bench_dir/configs/sim-fast.toml"
pid_sim=$started_pid
wait_port $PORT_SIM

mkdir -p "$work_dir/nginx"
sed -e "s|@WORKERS@|$THREADS|" -e "s|@PREFIX@|$work_dir/nginx|g" \
  "$bench_dir/configs/nginx.conf.in" >"$work_dir/nginx/nginx.conf"
cp "$work_dir/nginx/nginx.conf" "$out_dir/nginx.conf"
start nginx "$CPU_PROXY" "$NGINX" -p "$work_dir/nginx" -c "$work_dir/nginx/nginx.conf"
pid_nginx=$started_pid
wait_port $PORT_NGINX

gateway_config "$bench_dir/configs/gateway-fast.toml" "$out_dir/gateway-fast.toml"
start redline "$CPU_PROXY" "$REDLINE" serve --config "$out_dir/gateway-fast.toml"
pid_redline=$started_pid
wait_port $PORT_REDLINE

for port in $PORT_SIM $PORT_NGINX $PORT_REDLINE; do
  status=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary @"$bench_dir/payloads/chat.json" "http://127.0.0.1:$port/v1/chat/completions")
  [[ $status == 200 ]] || die "POST to port $port answered $status"
done

# --- wrk: latency at 1 connection, throughput at 64 ---------------------------------------------
# pin CPU PID: moves every thread of a process tree to CPU.
pin() {
  local pid
  for pid in $(process_tree "$2"); do taskset -a -p -c "$1" "$pid" >/dev/null; done
}

# run_wrk TARGET PORT PAYLOAD CONNECTIONS PROXY_PID LOAD_CPU
run_wrk() {
  local target=$1 port=$2 payload=$3 connections=$4 proxy_pid=$5 load_cpu=$6
  local body=$bench_dir/payloads/chat.json
  [[ $payload == sse ]] && body=$bench_dir/payloads/chat_stream.json
  local url=http://127.0.0.1:$port/v1/chat/completions
  local name=wrk-$payload-c$connections-$target
  log "$name (${WARMUP}s warm-up + ${DURATION}s)"
  BENCH_BODY=$body taskset -c "$load_cpu" wrk -t1 -c"$connections" -d"${WARMUP}s" --timeout 5s \
    -s "$bench_dir/wrk_post.lua" "$url" >/dev/null
  local proxy_before=0 proxy_after=0 sim_before sim_after
  [[ -n $proxy_pid ]] && proxy_before=$(cpu_ticks "$proxy_pid")
  sim_before=$(cpu_ticks "$pid_sim")
  BENCH_BODY=$body taskset -c "$load_cpu" wrk -t1 -c"$connections" -d"${DURATION}s" --timeout 5s \
    --latency -s "$bench_dir/wrk_post.lua" "$url" >"$out_dir/$name.txt"
  [[ -n $proxy_pid ]] && proxy_after=$(cpu_ticks "$proxy_pid")
  sim_after=$(cpu_ticks "$pid_sim")
  local wrk_json
  wrk_json=$(sed -n 's/^WRKJSON //p' "$out_dir/$name.txt")
  [[ -n $wrk_json ]] || die "wrk printed no summary, see $out_dir/$name.txt"
  printf '{"kind":"wrk","target":"%s","payload":"%s","connections":%d,"proxy_cpu_s":%s,"upstream_cpu_s":%s,"wrk":%s}\n' \
    "$target" "$payload" "$connections" \
    "$(awk -v d=$((proxy_after - proxy_before)) -v t="$clock_ticks" 'BEGIN { print d / t }')" \
    "$(awk -v d=$((sim_after - sim_before)) -v t="$clock_ticks" 'BEGIN { print d / t }')" \
    "$wrk_json" >>"$results"
}

run_all_targets() { # PAYLOAD CONNECTIONS LOAD_CPU
  run_wrk direct $PORT_SIM "$1" "$2" "" "$3"
  run_wrk nginx $PORT_NGINX "$1" "$2" "$pid_nginx" "$3"
  run_wrk redline $PORT_REDLINE "$1" "$2" "$pid_redline" "$3"
}

# Latency: one connection, every process on CPU_LATENCY.
for pid in "$pid_sim" "$pid_nginx" "$pid_redline"; do pin "$CPU_LATENCY" "$pid"; done
for payload in json sse; do run_all_targets $payload 1 "$CPU_LATENCY"; done

# Throughput: 64 connections, load generator, upstream and proxy on their own CPUs.
pin "$CPU_UPSTREAM" "$pid_sim"
pin "$CPU_PROXY" "$pid_nginx"
pin "$CPU_PROXY" "$pid_redline"
for payload in json sse; do run_all_targets $payload 64 "$CPU_LOAD"; done

stop "$pid_redline"
stop "$pid_nginx"
stop "$pid_sim"

# --- many concurrent slow streams ---------------------------------------------------------------
start sim-slow-1 "$CPU_UPSTREAM" "$REDLINE" sim --config "$bench_dir/configs/sim-slow-1.toml"
pid_slow_1=$started_pid
start sim-slow-2 "$CPU_UPSTREAM" "$REDLINE" sim --config "$bench_dir/configs/sim-slow-2.toml"
pid_slow_2=$started_pid
wait_port $PORT_SIM_SLOW_1
wait_port $PORT_SIM_SLOW_2

upstream_connections() {
  ss -Htn state established "( dport = :$PORT_SIM_SLOW_1 or dport = :$PORT_SIM_SLOW_2 )" | wc -l
}

# run_streams TARGET PORT PID: holds STREAMS streams through the proxy and records its memory.
run_streams() {
  local target=$1 port=$2 pid=$3
  # One short stream first, so lazily built state (pools, buffers) counts as idle memory.
  curl -s -N --max-time 1 -H 'Content-Type: application/json' \
    -d '{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}' \
    "http://127.0.0.1:$port/v1/chat/completions" >/dev/null || true
  sleep 1
  local idle_rss open_rss=0 rss hwm client_out=$out_dir/streams-$target.txt
  idle_rss=$(memory_kib VmRSS "$pid")
  log "streams-$target: $STREAMS slow streams (idle RSS ${idle_rss} KiB)"
  taskset -c "$CPU_LOAD" node "$bench_dir/slow_streams.mjs" --port "$port" --streams "$STREAMS" \
    --ramp-ms 5000 --ready-timeout-ms 15000 --hold-ms 6000 >"$client_out" 2>&1 &
  local client=$!
  started_pids+=("$client")
  local waited=0
  until grep -q '^READY' "$client_out"; do
    kill -0 "$client" 2>/dev/null || die "slow-stream client failed, see $client_out"
    sleep 0.2
    waited=$((waited + 1))
    ((waited < 200)) || die "slow-stream client never became ready"
  done
  sleep 1
  local upstream_open
  upstream_open=$(upstream_connections)
  while ! grep -q '^RESULT' "$client_out" && kill -0 "$client" 2>/dev/null; do
    rss=$(memory_kib VmRSS "$pid")
    ((rss > open_rss)) && open_rss=$rss
    sleep 0.5
  done
  wait "$client" || true
  hwm=$(memory_kib VmHWM "$pid")
  local result
  result=$(sed -n 's/^RESULT //p' "$client_out")
  [[ -n $result ]] || die "slow-stream client printed no result, see $client_out"
  # Upstream streams should end once their clients have gone.
  sleep 3
  local upstream_left
  upstream_left=$(upstream_connections)
  printf '{"kind":"streams","target":"%s","idle_rss_kib":%d,"open_rss_kib":%d,"hwm_kib":%d,"upstream_open":%d,"upstream_left_3s_after_close":%d,"client":%s}\n' \
    "$target" "$idle_rss" "$open_rss" "$hwm" "$upstream_open" "$upstream_left" "$result" \
    >>"$results"
}

gateway_config "$bench_dir/configs/gateway-slow.toml" "$out_dir/gateway-slow.toml"
start redline-slow "$CPU_PROXY" "$REDLINE" serve --config "$out_dir/gateway-slow.toml"
pid_redline_slow=$started_pid
wait_port $PORT_REDLINE_SLOW
run_streams redline $PORT_REDLINE_SLOW "$pid_redline_slow"
stop "$pid_redline_slow"
sleep 2

start nginx-slow "$CPU_PROXY" "$NGINX" -p "$work_dir/nginx" -c "$work_dir/nginx/nginx.conf"
pid_nginx_slow=$started_pid
wait_port $PORT_NGINX_SLOW
run_streams nginx $PORT_NGINX_SLOW "$pid_nginx_slow"
stop "$pid_nginx_slow"

# --- summary ------------------------------------------------------------------------------------
{
  echo "{\"kind\":\"machine\",\"cpu\":\"$(lscpu | sed -n 's/^Model name: *//p' | head -1)\"," \
    "\"cores\":$(nproc),\"kernel\":\"$(uname -r)\",\"redline_commit\":\"$(git -C "$repo_dir" rev-parse --short HEAD 2>/dev/null || echo unknown)\"," \
    "\"nginx\":\"$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')\",\"threads\":$THREADS," \
    "\"duration_s\":$DURATION,\"cpu_load\":\"$CPU_LOAD\",\"cpu_upstream\":\"$CPU_UPSTREAM\"," \
    "\"cpu_proxy\":\"$CPU_PROXY\",\"cpu_latency\":\"$CPU_LATENCY\"," \
    "\"loadavg_at_end\":\"$(cut -d' ' -f1-3 /proc/loadavg)\",\"streams\":$STREAMS,\"streams_requested\":$streams_requested,\"fd_limit\":$fd_limit,\"stamp\":\"$stamp\"}"
} >>"$results"
node "$bench_dir/summarize.mjs" "$results" >"$out_dir/summary.md"
cp "$out_dir/summary.md" "$bench_dir/out/summary.md"
cat "$out_dir/summary.md"
