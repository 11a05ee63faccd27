#!/usr/bin/env bash
# Check the Prometheus rules in deploy/prometheus/rules/: they are what
# deploy/mixin/ generates (no hand edits, no drift from the dashboards and the
# Helm chart), every rules file passes `promtool check rules` (duplicate rules
# are errors), every unit test file in tests/ passes `promtool test rules`,
# and every alert has a firing and a quiet test case and a runbook section.
# Exits non-zero on the first failure, or when a directory holds no file.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=deploy/prometheus/rules
command -v promtool >/dev/null 2>&1 || { echo "promtool not found (Debian: apt-get install prometheus)" >&2; exit 1; }
command -v python3 >/dev/null 2>&1 || { echo "python3 not found (the mixin generator needs it)" >&2; exit 1; }

echo "-- generated files match deploy/mixin/"
python3 deploy/mixin/build.py --check

shopt -s nullglob
rules=("$dir"/*.yml "$dir"/*.yaml)
tests=("$dir"/tests/*.yml "$dir"/tests/*.yaml)
if ((${#rules[@]} == 0)); then echo "no rules files in $dir" >&2; exit 1; fi
if ((${#tests[@]} == 0)); then echo "no test files in $dir/tests" >&2; exit 1; fi

promtool check rules --lint=duplicate-rules --lint-fatal "${rules[@]}"
promtool test rules "${tests[@]}"
echo "-- every alert: a firing test, a quiet test, a runbook"
python3 deploy/mixin/check_coverage.py

echo "-- the runbook base is a value: --runbook-base moves every alert's link, anchors kept"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
base=https://runbooks.example.com/ops/roimon
python3 deploy/mixin/build.py --rules-out "$tmp" --runbook-base "$base" >/dev/null
want=$(grep -h 'runbook_url:' "${rules[@]}" | sed 's|"[^"#]*#|"'"$base"'#|' | sort)
got=$(grep -h 'runbook_url:' "$tmp"/*.yml | sort)
if [ -z "$want" ] || [ "$want" != "$got" ]; then
  echo "--runbook-base did not move every runbook link to $base:" >&2
  diff <(echo "$want") <(echo "$got") >&2 || true
  exit 1
fi
promtool check rules --lint=duplicate-rules --lint-fatal "$tmp"/*.yml >/dev/null
if python3 deploy/mixin/build.py --rules-out "$tmp" --runbook-base 'https://x/a#b' 2>/dev/null; then
  echo "--runbook-base accepted a base with '#'" >&2; exit 1
fi
echo "$(echo "$got" | wc -l) runbook links under $base"
