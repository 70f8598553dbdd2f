#!/usr/bin/env bash
# Durable agents: what context compaction and prefix-affinity routing save on a tool-heavy task
# graph, and what journaling every step costs.
#
# A. Compaction. One graph of 24 tasks in four dependency layers (8/8/6/2); each task reads
#    TOOL_ROUNDS documents of ~DOC_CHARS characters (bench/mcp_docs_server.mjs over stdio) and
#    answers citing the first line of the last one, which bench/agents.mjs grades from the run's
#    journal. The same graph runs against fresh processes (simulators, gateway, store) in each
#    configuration below; every simulator has a prompt-prefix cache, so the bench reports the
#    input tokens the upstream could take from its cache and a cost with cached input discounted.
#      no-compaction             one backend, compaction off (threshold 1, a huge window)
#      compaction-mask-only      one backend, compaction on without a summary model: older tool
#                                results are masked, nothing is summarised
#      compaction                one backend, compaction on with summary_model "summary" (what
#                                the masked results said is summarised by a cheaper alias on its
#                                own simulator, backend s)
#      compaction-affinity       backends a and b, strategy prefix_affinity, compaction as above
#      compaction-least-load     backends a and b, strategy least_load, compaction as above
#      no-compaction-affinity    backends a and b, prefix_affinity, compaction off
#      no-compaction-least-load  backends a and b, least_load, compaction off
#    Compaction on = context_window_tokens CONTEXT_WINDOW, compaction_threshold THRESHOLD,
#    keep_recent_steps KEEP_RECENT_STEPS (steps: a model message with the tool results it asked
#    for). The gateway estimates a prompt at ~4 characters a token, as the simulators count, so
#    the window is in real tokens: a document is ~2,000 tokens, so with the defaults (8,000 ×
#    0.6 = 4,800) a task's context is compacted before its model call once it holds three
#    documents, and from then on before every call (each new document pushes it over again).
#    For every run the bench reads from its journal which backend served each model call and
#    reports the backend hops (a call served by another backend than the call before).
# B. Journal. GRAPHS graphs of TASKS tasks started at once, each task a model call, one cheap
#    tool call and a model call (JOURNAL_TOOL=0: one model call), at most RUNS_PER_TENANT runs at
#    a time; then, through the same gateway, as many plain chat completions as steps were
#    journaled, from RUNS_PER_TENANT clients. ROUNDS rounds of both, each on a fresh gateway
#    and store (medians reported); then GROWTH_ROUNDS rounds of the graphs one after the other
#    on one gateway, to show what a tenant's growing history does to the same workload. Every
#    graph, task and journal is verified.
#
# Usage: bash bench/agents.sh
# Environment (all optional):
#   PARTS=compaction,journal   CONFIGS=<comma list of the names above; default all>
#   TOOL_ROUNDS=8 DOC_CHARS=8000 GRAPH_CONCURRENCY=8 LAYERS=8,8,6,2
#   CONTEXT_WINDOW=8000        context_window_tokens, in real tokens (~4 characters a token)
#   THRESHOLD=0.6              compaction_threshold: compact over THRESHOLD × CONTEXT_WINDOW
#   KEEP_RECENT_STEPS=2        the gateway's default
#   PREFIX_CACHE_ENTRIES=4096
#   CACHED_PRICE=0.1           share of the input price a cached input token is billed at
#   GRAPHS=100 TASKS=20 RUNS_PER_TENANT=200 JOURNAL_TOOL=1 ROUNDS=3 GROWTH_ROUNDS=3
#   CPU_LOAD=0 CPU_UPSTREAM=0 CPU_PROXY=1   taskset CPU lists (CPU_PROXY=0 on a 1-CPU machine)
#   REDLINE=build/redline      the binary (built with ninja if missing; copied into the output
#                              directory first, so a rebuild during the run cannot mix binaries)
#
# Raw figures go to bench/out/agents-<timestamp>/ (one directory per configuration with its
# configs, store and logs; compaction-*.json, journal-*.json, summary.md); the summary is printed.
set -euo pipefail

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(dirname "$bench_dir")
PARTS=${PARTS:-compaction,journal}
ALL_CONFIGS=no-compaction,compaction-mask-only,compaction,compaction-affinity,compaction-least-load,no-compaction-affinity,no-compaction-least-load
CONFIGS=${CONFIGS:-$ALL_CONFIGS}
TOOL_ROUNDS=${TOOL_ROUNDS:-8}
DOC_CHARS=${DOC_CHARS:-8000}
GRAPH_CONCURRENCY=${GRAPH_CONCURRENCY:-8}
LAYERS=${LAYERS:-8,8,6,2}
CONTEXT_WINDOW=${CONTEXT_WINDOW:-8000}
THRESHOLD=${THRESHOLD:-0.6}
KEEP_RECENT_STEPS=${KEEP_RECENT_STEPS:-2}
PREFIX_CACHE_ENTRIES=${PREFIX_CACHE_ENTRIES:-4096}
CACHED_PRICE=${CACHED_PRICE:-0.1}
GRAPHS=${GRAPHS:-100}
ROUNDS=${ROUNDS:-3}
GROWTH_ROUNDS=${GROWTH_ROUNDS:-3}
TASKS=${TASKS:-20}
RUNS_PER_TENANT=${RUNS_PER_TENANT:-200}
JOURNAL_TOOL=${JOURNAL_TOOL:-1}
REDLINE=${REDLINE:-$repo_dir/build/redline}
CPU_LOAD=${CPU_LOAD:-0} CPU_UPSTREAM=${CPU_UPSTREAM:-0}
CPU_PROXY=${CPU_PROXY:-$(($(nproc) >= 2 ? 1 : 0))}
PORT_SIM_A=19521 PORT_SIM_B=19522 PORT_SIM_S=19523 PORT_GATEWAY=19531

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

command -v node >/dev/null || die "node is required"
command -v taskset >/dev/null || die "taskset (util-linux) is required"
[[ -d $repo_dir/node_modules/@modelcontextprotocol/sdk ]] ||
  die "@modelcontextprotocol/sdk is missing: run npm install in $repo_dir"
if [[ ! -x $REDLINE ]]; then
  log "building $REDLINE"
  build_dir=$(dirname "$REDLINE")
  [[ -f $build_dir/build.ninja ]] ||
    cmake -S "$repo_dir" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  ninja -C "$build_dir" redline >/dev/null
fi

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
for port in $PORT_SIM_A $PORT_SIM_B $PORT_SIM_S $PORT_GATEWAY; do
  [[ -z $(ss -Hltn "sport = :$port") ]] || die "port $port is in use"
done

stamp=$(date +%Y%m%d-%H%M%S)
out_dir=$bench_dir/out/agents-$stamp
mkdir -p "$out_dir"
log "output: $out_dir"
binary_source=$REDLINE
binary_built=$(date -r "$REDLINE" '+%F %H:%M')
cp "$REDLINE" "$out_dir/redline"
REDLINE=$out_dir/redline

started_pids=()
cleanup() {
  local pid
  for pid in "${started_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  sleep 0.5
  for pid in "${started_pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start DIR NAME CPU COMMAND...: COMMAND pinned to CPU, output in DIR/NAME.log; sets started_pid.
start() {
  local dir=$1 name=$2 cpu=$3
  shift 3
  taskset -c "$cpu" "$@" >"$dir/$name.log" 2>&1 &
  started_pid=$!
  started_pids+=("$started_pid")
}

# Stops the processes started so far, and waits for them (the gateway stops its MCP server).
stop_all() {
  local pid
  for pid in "${started_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${started_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  started_pids=()
}

wait_port() {
  for _ in $(seq 100); do
    [[ -n $(ss -Hltn "sport = :$1") ]] && return 0
    sleep 0.1
  done
  die "nothing listens on port $1 (see $2/*.log)"
}

# fill TEMPLATE OUT NAME=VALUE...: the template with every @NAME@ replaced.
fill() {
  local template=$1 out=$2 pair
  shift 2
  cp "$template" "$out"
  for pair in "$@"; do
    sed -i "s|@${pair%%=*}@|${pair#*=}|g" "$out"
  done
  ! grep -q '@[A-Z_]*@' "$out" || die "$out has unfilled fields: $(grep -o '@[A-Z_]*@' "$out" | sort -u | tr '\n' ' ')"
}

# start_sim DIR NAME PORT TOOL_ROUNDS
start_sim() {
  fill "$bench_dir/configs/agents-sim.toml" "$1/sim-$2.toml" NAME="$2" PORT="$3" \
    TOOL_ROUNDS="$4" PREFIX_CACHE_ENTRIES="$PREFIX_CACHE_ENTRIES"
  start "$1" "sim-$2" "$CPU_UPSTREAM" "$REDLINE" sim --config "$1/sim-$2.toml"
}

gateway_url=http://127.0.0.1:$PORT_GATEWAY
status=0

# run_compaction NAME BACKENDS STRATEGY on|off [SUMMARY_MODEL]
run_compaction() {
  local name=$1 backends=$2 strategy=$3 compaction=$4 summary=${5:-}
  local dir=$out_dir/$name targets threshold window
  mkdir -p "$dir"
  targets='{ backend = "a", model = "agent-model" }'
  [[ $backends == a,b ]] && targets+=', { backend = "b", model = "agent-model" }'
  if [[ $compaction == on ]]; then
    threshold=$THRESHOLD window=$CONTEXT_WINDOW
  else
    threshold=1.0 window=100000000 summary=
  fi
  start_sim "$dir" a $PORT_SIM_A "$TOOL_ROUNDS"
  start_sim "$dir" b $PORT_SIM_B "$TOOL_ROUNDS"
  start_sim "$dir" s $PORT_SIM_S "$TOOL_ROUNDS"
  fill "$bench_dir/configs/agents-gateway.toml" "$dir/gateway.toml" TARGETS="$targets" \
    STRATEGY="$strategy" COMPACTION_THRESHOLD="$threshold" CONTEXT_WINDOW_TOKENS="$window" \
    KEEP_RECENT_STEPS="$KEEP_RECENT_STEPS" BENCH_DIR="$bench_dir" DOC_CHARS="$DOC_CHARS" \
    SUMMARY_MODEL="$([[ -n $summary ]] && echo "summary_model = \"$summary\"" ||
      echo '# no summary_model: observations are masked only')"
  start "$dir" gateway "$CPU_PROXY" "$REDLINE" serve --config "$dir/gateway.toml"
  local pid_gateway=$started_pid
  for port in $PORT_SIM_A $PORT_SIM_B $PORT_SIM_S $PORT_GATEWAY; do wait_port "$port" "$dir"; done
  taskset -c "$CPU_LOAD" node "$bench_dir/agents.mjs" compaction --gateway "$gateway_url" \
    --name "$name" --sims "a=http://127.0.0.1:$PORT_SIM_A,b=http://127.0.0.1:$PORT_SIM_B,s=http://127.0.0.1:$PORT_SIM_S" \
    --backends "$backends" --strategy "$strategy" --compaction "$compaction" \
    --keep-recent-steps "$KEEP_RECENT_STEPS" --summary-model "$summary" \
    --threshold "$threshold" --window "$window" \
    --layers "$LAYERS" --graph-concurrency "$GRAPH_CONCURRENCY" --tool-rounds "$TOOL_ROUNDS" \
    --doc-chars "$DOC_CHARS" --gateway-pid "$pid_gateway" --store-dir "$dir" \
    --out-dir "$out_dir" 2> >(tee -a "$out_dir/agents.log" >&2) || status=1
  kill -0 "$pid_gateway" 2>/dev/null || die "the gateway exited during $name, see $dir/gateway.log"
  stop_all
}

if [[ ,$PARTS, == *,compaction,* ]]; then
  log "compaction: tool_rounds $TOOL_ROUNDS, documents of $DOC_CHARS characters, window" \
    "$CONTEXT_WINDOW × $THRESHOLD, keep_recent_steps $KEEP_RECENT_STEPS"
  IFS=, read -ra wanted <<<"$CONFIGS"
  for name in "${wanted[@]}"; do
    case $name in
      no-compaction) run_compaction "$name" a least_load off ;;
      compaction-mask-only) run_compaction "$name" a least_load on ;;
      compaction) run_compaction "$name" a least_load on summary ;;
      compaction-affinity) run_compaction "$name" a,b prefix_affinity on summary ;;
      compaction-least-load) run_compaction "$name" a,b least_load on summary ;;
      no-compaction-affinity) run_compaction "$name" a,b prefix_affinity off ;;
      no-compaction-least-load) run_compaction "$name" a,b least_load off ;;
      *) die "unknown configuration $name (known: $ALL_CONFIGS)" ;;
    esac
  done
fi

# run_journal NAME ROUNDS CHAT: a fresh simulator, gateway and store, then ROUNDS rounds.
run_journal() {
  local name=$1 rounds=$2 chat=$3
  local dir=$out_dir/$name
  mkdir -p "$dir"
  start_sim "$dir" a $PORT_SIM_A 1
  fill "$bench_dir/configs/agents-journal.toml" "$dir/gateway.toml" BENCH_DIR="$bench_dir" \
    RUNS_PER_TENANT="$RUNS_PER_TENANT"
  start "$dir" gateway "$CPU_PROXY" "$REDLINE" serve --config "$dir/gateway.toml"
  local pid_gateway=$started_pid
  for port in $PORT_SIM_A $PORT_GATEWAY; do wait_port "$port" "$dir"; done
  taskset -c "$CPU_LOAD" node "$bench_dir/agents.mjs" journal --gateway "$gateway_url" \
    --sim "http://127.0.0.1:$PORT_SIM_A" --graphs "$GRAPHS" --tasks "$TASKS" \
    --concurrency "$RUNS_PER_TENANT" --tool "$JOURNAL_TOOL" --rounds "$rounds" --chat "$chat" \
    --tag "$name" --gateway-pid "$pid_gateway" --store-dir "$dir" --out-dir "$out_dir" \
    2> >(tee -a "$out_dir/agents.log" >&2) || status=1
  kill -0 "$pid_gateway" 2>/dev/null || die "the gateway exited during $name, see $dir/gateway.log"
  awk '$1 == "VmHWM:" { print $2 }' "/proc/$pid_gateway/status" >"$dir/gateway-vmhwm-kib"
  stop_all
}

if [[ ,$PARTS, == *,journal,* ]]; then
  log "journal: $GRAPHS graphs × $TASKS tasks, $RUNS_PER_TENANT runs at a time, $ROUNDS fresh" \
    "rounds, then $GROWTH_ROUNDS rounds on one store"
  for round in $(seq "$ROUNDS"); do run_journal "journal-fresh-$round" 1 1; done
  ((GROWTH_ROUNDS == 0)) || run_journal journal-growth "$GROWTH_ROUNDS" 0
fi

AGENTS_CONFIG_ORDER=$CONFIGS node "$bench_dir/agents.mjs" summary --out-dir "$out_dir" \
  --cached-price "$CACHED_PRICE" >/dev/null || status=1
[[ -s $out_dir/summary.md ]] || die "agents.mjs wrote no summary, see $out_dir/agents.log"
{
  echo "Run agents-$stamp: $(nproc) cores ($(lscpu | sed -n 's/^Model name: *//p' | head -1))," \
    "Linux $(uname -r), Redline $(git -C "$repo_dir" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    "(working tree; binary $binary_source built $binary_built), gateway" \
    "\`[server] threads = 1\` on CPU $CPU_PROXY (its MCP server inherits that CPU), simulators and" \
    "load generator on CPU $CPU_UPSTREAM/$CPU_LOAD. Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)." \
    "Knobs: TOOL_ROUNDS=$TOOL_ROUNDS DOC_CHARS=$DOC_CHARS GRAPH_CONCURRENCY=$GRAPH_CONCURRENCY" \
    "LAYERS=$LAYERS CONTEXT_WINDOW=$CONTEXT_WINDOW THRESHOLD=$THRESHOLD" \
    "KEEP_RECENT_STEPS=$KEEP_RECENT_STEPS PREFIX_CACHE_ENTRIES=$PREFIX_CACHE_ENTRIES" \
    "CACHED_PRICE=$CACHED_PRICE GRAPHS=$GRAPHS TASKS=$TASKS RUNS_PER_TENANT=$RUNS_PER_TENANT" \
    "JOURNAL_TOOL=$JOURNAL_TOOL ROUNDS=$ROUNDS GROWTH_ROUNDS=$GROWTH_ROUNDS."
  for file in "$out_dir"/journal-*/gateway-vmhwm-kib; do
    if [[ -s $file ]]; then
      echo "Peak gateway RSS (VmHWM), $(basename "$(dirname "$file")"):" \
        "$(awk '{ printf "%.1f", $1 / 1024 }' "$file") MiB."
    fi
  done
  echo
  cat "$out_dir/summary.md"
} >"$out_dir/summary.full.md"
mv "$out_dir/summary.full.md" "$out_dir/summary.md"
cat "$out_dir/summary.md"
((status == 0)) || log "some graphs, grades or calls failed, see $out_dir/agents.log"
exit "$status"
