#!/usr/bin/env bash
# Configures and builds Redline with Ninja.
#   scripts/build.sh [build-dir] [extra cmake args...]
# Release unless the extra args say otherwise (a later -DCMAKE_BUILD_TYPE wins). REDLINE_JOBS sets
# the parallelism (default 2: Beast translation units need ~800 MB each and the reference machine
# has 2 cores); REDLINE_KEEP_GOING=0 builds every target that can be built despite failures.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${1:-build}"
shift || true
case "$build_dir" in
  /*) ;;
  *) build_dir="$repo_root/$build_dir" ;;
esac

cmake -S "$repo_root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@"
ninja -C "$build_dir" -j "${REDLINE_JOBS:-2}" -k "${REDLINE_KEEP_GOING:-1}"
