#!/usr/bin/env bash
# Redline's whole test suite, as CI runs it:
#   1. install dependencies (fast when present)          REDLINE_SKIP_DEPS=1 skips,
#      then check every C++ file against .clang-format
#   2. Release build of the server into build/ (no unit tests: step 4 runs them, sanitized)
#   3. end-to-end and SDK compatibility tests (node --test) against build/redline
#   4. ASan/UBSan build into build-asan/, its unit tests, and the step 3 tests against it
#   5. libFuzzer build into build-fuzz/ (clang-14), each target for FUZZ_SECONDS over its corpus
# The unit tests run once, in the sanitized tree, and the end-to-end tests twice, so the suite fits
# in half an hour on two cores; `ctest --test-dir build` still runs them in a developer's Release
# tree, where they are built by default.
# REDLINE_BUILD_DIR, REDLINE_ASAN_BUILD_DIR and REDLINE_FUZZ_BUILD_DIR rename the build trees.
# Every stage runs even when an earlier one failed, so one run reports everything. Exits non-zero
# on any failure; the last line is "N passed, N failed" over all tests run.
# The body is one { ... } block, so bash reads all of it before running any: editing or pulling
# this file while a run is in progress cannot change what that run does.
{
set -uo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

jobs="${REDLINE_JOBS:-2}"
# Build directories, relative to the repo root; overridable so a developer's run does not touch
# someone else's build tree.
build_dir="${REDLINE_BUILD_DIR:-build}"
asan_build_dir="${REDLINE_ASAN_BUILD_DIR:-build-asan}"
fuzz_build_dir="${REDLINE_FUZZ_BUILD_DIR:-build-fuzz}"
fuzz_seconds="${FUZZ_SECONDS:-10}"
node_test_timeout_ms="${NODE_TEST_TIMEOUT_MS:-120000}"
log_dir="$(mktemp -d "${TMPDIR:-/tmp}/redline-test.XXXXXX")"
started_at=$SECONDS

total_passed=0
total_failed=0
stage_lines=()

# record STAGE PASSED FAILED [NOTE]
record() {
  total_passed=$((total_passed + $2))
  total_failed=$((total_failed + $3))
  stage_lines+=("$(printf '%-28s %5d passed %5d failed  %s' "$1" "$2" "$3" "${4:-}")")
}

banner() {
  printf '\n==== %s (%ds elapsed) ====\n' "$1" $((SECONDS - started_at))
}

# run_ctest LABEL BUILD_DIR: counts come from ctest's "N% tests passed, F tests failed out of T".
run_ctest() {
  local label="$1" build_dir="$2" log="$log_dir/$1.log" rc summary total failed
  banner "$label"
  ctest --test-dir "$build_dir" --output-on-failure -j "$jobs" --timeout 300 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  summary="$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -1)"
  if [[ -n "$summary" ]]; then
    failed="$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$summary")"
    total="$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\2/' <<<"$summary")"
    if ((rc != 0 && failed == 0)); then failed=1; fi
    record "$label" $((total - failed)) "$failed"
  elif grep -q 'No tests were found' "$log" && ((rc == 0)); then
    record "$label" 0 0 "no unit tests registered"
  else
    record "$label" 0 1 "ctest exited $rc without a summary"
  fi
}

# build_stage LABEL BUILD_DIR CMAKE_ARGS...: a failed build counts as one failure. Ninja keeps
# going past failures, so one broken test file does not keep the binary from the later stages.
build_stage() {
  local label="$1" build_dir="$2"
  shift 2
  banner "$label"
  if REDLINE_KEEP_GOING=0 "$repo_root/scripts/build.sh" "$build_dir" "$@" 2>&1 |
    tee "$log_dir/$label.log"; then
    return 0
  fi
  record "$label" 0 1 "build failed (see output above)"
  return 1
}

# ---- 1. dependencies ----------------------------------------------------------------------------
if [[ "${REDLINE_SKIP_DEPS:-0}" != 1 ]]; then
  banner "install dependencies"
  if ! "$repo_root/scripts/install-deps.sh"; then
    record "install-deps" 0 1 "scripts/install-deps.sh failed"
  fi
fi

# ---- 1. formatting ------------------------------------------------------------------------------
# Every C++ file as .clang-format lays it out; each file that is not counts as one failure.
banner "format (clang-format)"
format_failed=0
format_checked=0
while IFS= read -r file; do
  format_checked=$((format_checked + 1))
  if ! clang-format --dry-run --Werror "$file" >/dev/null 2>&1; then
    echo "not formatted: $file (clang-format -i $file)"
    format_failed=$((format_failed + 1))
  fi
done < <(find src tests fuzz bench -type f \( -name '*.cpp' -o -name '*.h' \) | sort)
record "format (clang-format)" $((format_checked - format_failed)) "$format_failed"

# ---- 2. Release build ---------------------------------------------------------------------------
build_stage "build (Release)" "$build_dir" -DREDLINE_TESTS=OFF

# ---- 3. end-to-end and SDK tests --------------------------------------------------------------
shopt -s nullglob
node_tests=(tests/integration/*.test.mjs tests/compat/*.test.mjs)
shopt -u nullglob

# run_node_tests LABEL BINARY: node's test runner over every end-to-end and SDK test file, with
# `redline` taken from BINARY; counts come from its TAP summary.
run_node_tests() {
  local label="$1" binary="$2" tap="$log_dir/$1.tap" rc pass fail cancelled
  banner "$label"
  if ((${#node_tests[@]} == 0)); then
    record "$label" 0 1 "no test files found"
    return
  fi
  # Each test binds ports it picked itself (port 0), so files may run side by side; the processes
  # they start mostly sleep, so a concurrency above the core count is fine.
  REDLINE_BIN="$binary" node --test \
    --test-concurrency="${NODE_TEST_CONCURRENCY:-3}" \
    --test-timeout="$node_test_timeout_ms" \
    --test-reporter=spec --test-reporter-destination=stdout \
    --test-reporter=tap --test-reporter-destination="$tap" \
    "${node_tests[@]}"
  rc=$?
  pass="$(grep -E '^# pass [0-9]+' "$tap" | tail -1 | awk '{print $3}')"
  fail="$(grep -E '^# fail [0-9]+' "$tap" | tail -1 | awk '{print $3}')"
  cancelled="$(grep -E '^# cancelled [0-9]+' "$tap" | tail -1 | awk '{print $3}')"
  pass="${pass:-0}"
  fail=$((${fail:-0} + ${cancelled:-0}))
  if ((rc != 0 && fail == 0)); then fail=1; fi
  record "$label" "$pass" "$fail"
}

run_node_tests "e2e + SDK tests" "$repo_root/$build_dir/redline"

# ---- 4. sanitizers ------------------------------------------------------------------------------
# Unoptimised, with line tables only: the sanitizers check the same, stack traces still name
# files and lines, and the tree builds in a third of the time -O2 -g takes (Beast and coroutine
# code generation dominate the build). Unit tests run even after a failed build: those that did
# build still report.
build_stage "build (ASan+UBSan)" "$asan_build_dir" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O0 -g1 -DNDEBUG" \
  -DREDLINE_SANITIZE=ON -DREDLINE_BENCH=OFF
ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}" \
  UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}" \
  run_ctest "unit tests (ASan+UBSan)" "$asan_build_dir"
# The same end-to-end tests against the sanitized binary: a memory error or undefined behaviour
# aborts the process (halt_on_error), and a leak makes its clean exit non-zero, so either fails a
# test.
ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}" \
  UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}" \
  run_node_tests "e2e + SDK tests (ASan+UBSan)" "$repo_root/$asan_build_dir/redline"

# Configures the fuzz tree with clang-14 and builds only the fuzz executables (and the libraries
# they link), not the server binary, which the fuzz targets do not need. -O1 with line tables is
# the usual libFuzzer build: fast enough to fuzz, quicker to compile than -O3.
build_fuzz_targets() {
  local label="build (fuzz)" log="$log_dir/build-fuzz.log" targets
  banner "$label"
  {
    cmake -S "$repo_root" -B "$repo_root/$fuzz_build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -gline-tables-only -DNDEBUG" \
      -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
      -DREDLINE_FUZZ=ON -DREDLINE_TESTS=OFF -DREDLINE_BENCH=OFF &&
      targets="$(ninja -C "$repo_root/$fuzz_build_dir" -t targets all |
        sed -nE 's#^(fuzz/[A-Za-z0-9_]+): CXX_EXECUTABLE_LINKER.*#\1#p')" &&
      [[ -n "$targets" ]] &&
      # shellcheck disable=SC2086 # one target per word
      ninja -C "$repo_root/$fuzz_build_dir" -j "$jobs" -k 0 $targets
  } 2>&1 | tee "$log"
  if ((PIPESTATUS[0] == 0)); then return 0; fi
  record "$label" 0 1 "build failed (see output above)"
  return 1
}

# ---- 5. fuzzing ---------------------------------------------------------------------------------
if [[ -f fuzz/CMakeLists.txt ]] && grep -qE 'add_executable|redline_fuzz' fuzz/CMakeLists.txt; then
  if build_fuzz_targets; then
    banner "fuzz targets (${fuzz_seconds}s each)"
    fuzz_passed=0
    fuzz_failed=0
    while IFS= read -r target; do
      name="$(basename "$target")"
      short="${name#fuzz_}"
      short="${short%_fuzz}"
      # New inputs go to a scratch dir (libFuzzer writes into its first corpus dir); the committed
      # corpus, when there is one, is only read.
      scratch="$log_dir/corpus-$name"
      mkdir -p "$scratch"
      corpus_dirs=("$scratch")
      for candidate in "fuzz/corpus/$name" "fuzz/corpus/$short" "fuzz/${name}_corpus" "fuzz/$short/corpus"; do
        if [[ -d "$candidate" ]]; then corpus_dirs+=("$candidate"); fi
      done
      echo "-- $name over ${corpus_dirs[*]}"
      if timeout $((fuzz_seconds + 120)) "$target" -max_total_time="$fuzz_seconds" -timeout=10 \
        -rss_limit_mb=2048 -artifact_prefix="$log_dir/$name-" "${corpus_dirs[@]}" \
        >"$log_dir/fuzz-$name.log" 2>&1; then
        fuzz_passed=$((fuzz_passed + 1))
        echo "   ok: $(grep -E '^#[0-9]+.*(DONE|pulse|NEW)' "$log_dir/fuzz-$name.log" | tail -1)"
      else
        fuzz_failed=$((fuzz_failed + 1))
        echo "   FAILED: $name; last output:"
        tail -60 "$log_dir/fuzz-$name.log"
        ls "$log_dir/$name-"* 2>/dev/null | sed 's/^/   crash input: /'
      fi
    done < <(find "$fuzz_build_dir/fuzz" -maxdepth 1 -type f -executable 2>/dev/null | sort)
    if ((fuzz_passed + fuzz_failed == 0)); then
      record "fuzz targets" 0 1 "fuzz build produced no targets in $fuzz_build_dir/fuzz"
    else
      record "fuzz targets" "$fuzz_passed" "$fuzz_failed"
    fi
  fi
else
  stage_lines+=("fuzz targets: skipped (fuzz/CMakeLists.txt defines none)")
fi

# ---- summary ------------------------------------------------------------------------------------
banner "summary"
printf '%s\n' "${stage_lines[@]}"
echo "logs: $log_dir"
echo "wall time: $((SECONDS - started_at))s"
echo "$total_passed passed, $total_failed failed"
if ((total_failed > 0)); then exit 1; fi
exit 0
}
