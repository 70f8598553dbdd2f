#!/usr/bin/env bash
# What accountability costs: keys, rate limits, a budget and the audit chain (batched group
# commit, and before_response durability), on versus off.
exec bash "$(dirname "${BASH_SOURCE[0]}")/on_off.sh" accountability gateway-accountable.toml \
  gateway-durable.toml "$@"
