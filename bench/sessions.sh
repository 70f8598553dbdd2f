#!/usr/bin/env bash
# What server-side conversation state costs: CONVERSATIONS concurrent conversations of TURNS turns
# each through the Conversations and Responses APIs (the gateway loads the history from SQLite,
# calls the model and stores the turn), against the same turns as plain chat completions whose
# clients send the whole history themselves, and the same turns sent to the simulator directly.
# One gateway (bench/configs/sessions-gateway.toml, a fresh SQLite file in the output directory),
# one zero-latency simulator (bench/configs/sim-fast.toml), one run; the workloads are
# interleaved for ROUNDS rounds and medians reported (bench/sessions.mjs).
#
# Usage: bash bench/sessions.sh
# Environment (all optional):
#   CONVERSATIONS=1000 TURNS=4 ROUNDS=3
#   WARMUP_CONVERSATIONS=$CONVERSATIONS WARMUP_TURNS=1   the warm-up batch of each workload
#   VERIFY=100       conversations read back and checked after every stateful round
#   DIRECT=1         also run the turns against the simulator directly (0: skip)
#   STORE_DIR=       where the SQLite store goes (default: the output directory, i.e. the
#                    repository's disk); e.g. a fresh directory on /dev/shm to take the disk out
#   CPU_LOAD=0 CPU_UPSTREAM=0 CPU_PROXY=1   taskset CPU lists (CPU_PROXY=0 on a 1-CPU machine)
#   REDLINE=build-bench/redline   the binary (built with -DCMAKE_BUILD_TYPE=Release if missing)
#
# Raw figures go to bench/out/sessions-<timestamp>/ (results.json, the configs, the store, the
# processes' logs, summary.md); the summary is printed at the end.
set -euo pipefail

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(dirname "$bench_dir")
CONVERSATIONS=${CONVERSATIONS:-1000}
TURNS=${TURNS:-4}
ROUNDS=${ROUNDS:-3}
WARMUP_CONVERSATIONS=${WARMUP_CONVERSATIONS:-$CONVERSATIONS}
WARMUP_TURNS=${WARMUP_TURNS:-1}
VERIFY=${VERIFY:-100}
DIRECT=${DIRECT:-1}
STORE_DIR=${STORE_DIR:-}
REDLINE=${REDLINE:-$repo_dir/build-bench/redline}
CPU_LOAD=${CPU_LOAD:-0} CPU_UPSTREAM=${CPU_UPSTREAM:-0}
CPU_PROXY=${CPU_PROXY:-$(($(nproc) >= 2 ? 1 : 0))}
PORT_SIM=19401 PORT_GATEWAY=19411

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

command -v node >/dev/null || die "node is required"
command -v taskset >/dev/null || die "taskset (util-linux) is required"
if [[ ! -x $REDLINE ]]; then
  log "building $REDLINE"
  build_dir=$(dirname "$REDLINE")
  [[ -f $build_dir/build.ninja ]] ||
    cmake -S "$repo_dir" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  ninja -C "$build_dir" redline >/dev/null
fi

# Every conversation holds a client connection and, while its turn runs, an upstream one.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
fd_limit=$(ulimit -n)
((2 * (CONVERSATIONS + WARMUP_CONVERSATIONS) + 100 <= fd_limit)) ||
  log "warning: ulimit -n is $fd_limit, low for $CONVERSATIONS conversations"

for port in $PORT_SIM $PORT_GATEWAY; do
  [[ -z $(ss -Hltn "sport = :$port") ]] || die "port $port is in use"
done

stamp=$(date +%Y%m%d-%H%M%S)
out_dir=$bench_dir/out/sessions-$stamp
mkdir -p "$out_dir"
log "output: $out_dir"

started_pids=()
cleanup() {
  local pid
  for pid in "${started_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  sleep 0.5
  for pid in "${started_pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME CPU COMMAND...: COMMAND pinned to CPU, output in out_dir/NAME.log; sets started_pid
# (taskset execs the command, so it is the command's own pid).
start() {
  local name=$1 cpu=$2
  shift 2
  taskset -c "$cpu" "$@" >"$out_dir/$name.log" 2>&1 &
  started_pid=$!
  started_pids+=("$started_pid")
}

wait_port() {
  for _ in $(seq 100); do
    [[ -n $(ss -Hltn "sport = :$1") ]] && return 0
    sleep 0.1
  done
  die "nothing listens on port $1 (see $out_dir/*.log)"
}

# The config is copied so that its relative sqlite_path puts a fresh store in out_dir.
cp "$bench_dir/configs/sessions-gateway.toml" "$bench_dir/configs/sim-fast.toml" "$out_dir/"
store_dir=$out_dir
if [[ -n $STORE_DIR ]]; then
  mkdir -p "$STORE_DIR"
  store_dir=$(cd "$STORE_DIR" && pwd)
  [[ ! -e $store_dir/sessions.db ]] || die "$store_dir/sessions.db exists; the run needs a fresh store"
  sed -i "s|^sqlite_path = .*|sqlite_path = \"$store_dir/sessions.db\"|" "$out_dir/sessions-gateway.toml"
fi
start sim "$CPU_UPSTREAM" "$REDLINE" sim --config "$out_dir/sim-fast.toml"
pid_sim=$started_pid
start gateway "$CPU_PROXY" "$REDLINE" serve --config "$out_dir/sessions-gateway.toml"
pid_gateway=$started_pid
wait_port $PORT_SIM
wait_port $PORT_GATEWAY

# One turn by hand before the load, so a broken setup fails here with a readable answer.
gateway_url=http://127.0.0.1:$PORT_GATEWAY
conversation=$(curl -sf -H 'Content-Type: application/json' -d '{}' "$gateway_url/v1/conversations") ||
  die "POST /v1/conversations failed"
conversation_id=$(node -e 'console.log(JSON.parse(process.argv[1]).id)' "$conversation")
answer=$(curl -s -w '\n%{http_code}' -H 'Content-Type: application/json' \
  -d "{\"model\":\"m\",\"input\":\"hello\",\"conversation\":\"$conversation_id\"}" \
  "$gateway_url/v1/responses")
[[ ${answer##*$'\n'} == 200 ]] || die "POST /v1/responses answered: $answer"

direct_args=()
[[ $DIRECT == 1 ]] && direct_args=(--direct "http://127.0.0.1:$PORT_SIM")
loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)
log "load average $loadavg_start; $CONVERSATIONS conversations × $TURNS turns, $ROUNDS rounds"
status=0
taskset -c "$CPU_LOAD" node "$bench_dir/sessions.mjs" --gateway "$gateway_url" "${direct_args[@]}" \
  --conversations "$CONVERSATIONS" --turns "$TURNS" --rounds "$ROUNDS" \
  --warmup-conversations "$WARMUP_CONVERSATIONS" --warmup-turns "$WARMUP_TURNS" \
  --verify "$VERIFY" --gateway-pid "$pid_gateway" --sim-pid "$pid_sim" --out-dir "$out_dir" \
  >"$out_dir/sessions.txt" 2> >(tee "$out_dir/sessions.log" >&2) || status=$?
[[ -s $out_dir/summary.md ]] || die "sessions.mjs wrote no summary (exit $status), see $out_dir/sessions.log"

kill -0 "$pid_gateway" 2>/dev/null || die "the gateway exited during the run, see $out_dir/gateway.log"
hwm=$(awk '$1 == "VmHWM:" { print $2 }' "/proc/$pid_gateway/status")
db_kib=$(du -k "$store_dir"/sessions.db* | awk '{ s += $1 } END { print s }')
{
  echo "Run sessions-$stamp: $(nproc) cores ($(lscpu | sed -n 's/^Model name: *//p' | head -1))," \
    "Linux $(uname -r), Redline $(git -C "$repo_dir" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    "(working tree; binary $REDLINE built $(date -r "$REDLINE" '+%F %H:%M')), gateway \`[server] threads = 1\` on CPU $CPU_PROXY, simulator (sim-fast: zero" \
    "latency, 16 output tokens, one thread) and load generator on CPU $CPU_UPSTREAM/$CPU_LOAD." \
    "Gateway peak RSS (VmHWM) over the whole run $(awk -v k="$hwm" 'BEGIN { printf "%.1f", k / 1024 }') MiB;" \
    "store ($store_dir, $(df --output=fstype "$store_dir" | tail -1)) at the end" \
    "$(awk -v k="$db_kib" 'BEGIN { printf "%.1f", k / 1024 }') MiB (with WAL)."
  echo
  cat "$out_dir/summary.md"
} >"$out_dir/summary.full.md"
mv "$out_dir/summary.full.md" "$out_dir/summary.md"
cat "$out_dir/summary.md"
((status == 0)) || log "some turns or checks failed (exit $status), see $out_dir/sessions.log"
exit "$status"
