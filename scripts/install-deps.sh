#!/usr/bin/env bash
# Installs everything Redline needs to build, test and benchmark on Debian 12, then the npm
# packages the compatibility tests drive. Idempotent and fast when nothing is missing, so CI and
# scripts/quickstart.sh can run it every time.
#
# Services that Debian starts on install (nginx, redis, postgresql) are kept stopped: the tests
# start their own instances on loopback ports they choose, and a system instance would hold the
# default ports.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

packages=(
  build-essential cmake ninja-build pkg-config git
  clang-14 libclang-rt-14-dev clang-format
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libssl-dev libsimdjson-dev libtomlplusplus-dev libsqlite3-dev libpq-dev libhiredis-dev
  libvectorscan-dev prometheus-cpp-dev libspdlog-dev libfmt-dev libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  nginx-light wrk postgresql redis-server
)
# Node 20 and npm usually come with the machine (not always as Debian packages); only fall back
# to Debian's when they are absent.
if ! command -v node >/dev/null 2>&1; then packages+=(nodejs); fi
if ! command -v npm >/dev/null 2>&1; then packages+=(npm); fi

missing_packages() {
  local package status
  for package in "${packages[@]}"; do
    status="$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null || true)"
    if [[ "$status" != "installed" ]]; then echo "$package"; fi
  done
}

as_root() {
  if [[ "$(id -u)" -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

stop_services() {
  local service
  for service in nginx redis-server postgresql; do
    if [[ -x "/etc/init.d/$service" ]]; then
      as_root "/etc/init.d/$service" stop >/dev/null 2>&1 || true
    fi
    if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
      as_root systemctl disable --now "$service" >/dev/null 2>&1 || true
    fi
  done
}

mapfile -t missing < <(missing_packages)
if ((${#missing[@]} > 0)); then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # policy-rc.d exiting 101 tells maintainer scripts not to start services; install one for the
  # duration when the machine has none, and remove only the one we installed.
  own_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
    as_root chmod +x /usr/sbin/policy-rc.d
    own_policy=1
  fi
  cleanup_policy() { if ((own_policy)); then as_root rm -f /usr/sbin/policy-rc.d; fi; }
  trap cleanup_policy EXIT
  as_root apt-get update -q
  as_root apt-get install -y -q --no-install-recommends "${missing[@]}"
  stop_services
else
  echo "install-deps: all Debian packages present"
fi

# Quiet no-op when nothing runs; guards against a service left running from an earlier install.
stop_services

cd "$repo_root"
if [[ -f package-lock.json ]]; then
  # npm ci wipes node_modules every time; skip it when the installed tree already matches the lock.
  if node -e '
    const fs = require("fs");
    const want = JSON.parse(fs.readFileSync("package-lock.json")).packages;
    const have = JSON.parse(fs.readFileSync("node_modules/.package-lock.json")).packages;
    const names = Object.keys(want).filter((name) => name !== "");
    process.exit(names.every((name) => have[name] && have[name].version === want[name].version) &&
        Object.keys(have).length === names.length ? 0 : 1);
  ' 2>/dev/null; then
    echo "install-deps: node_modules up to date"
  else
    npm ci --no-audit --no-fund --loglevel=error
  fi
fi
