#!/usr/bin/env bash
# What the red lines cost: keys, every detector and rules of each kind, on versus off.
exec bash "$(dirname "${BASH_SOURCE[0]}")/on_off.sh" red_lines gateway-redlines.toml "$@"
