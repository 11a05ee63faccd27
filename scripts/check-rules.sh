#!/usr/bin/env bash
# Check the Prometheus rules in deploy/prometheus/rules/: every rules file with
# `promtool check rules` (duplicate rules are errors), every unit test file in
# tests/ with `promtool test rules`. Exits non-zero on the first failure, or
# when a directory holds no file to check.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=deploy/prometheus/rules
command -v promtool >/dev/null 2>&1 || { echo "promtool not found (Debian: apt-get install prometheus)" >&2; exit 1; }

shopt -s nullglob
rules=("$dir"/*.yml "$dir"/*.yaml)
tests=("$dir"/tests/*.yml "$dir"/tests/*.yaml)
if ((${#rules[@]} == 0)); then echo "no rules files in $dir" >&2; exit 1; fi
if ((${#tests[@]} == 0)); then echo "no test files in $dir/tests" >&2; exit 1; fi

promtool check rules --lint=duplicate-rules --lint-fatal "${rules[@]}"
promtool test rules "${tests[@]}"
