#!/usr/bin/env bash
# Mutation testing of the money paths: cargo-mutants changes one operator,
# constant or function body at a time in the files that compute energy,
# prices, costs and the ledger's hours, and runs that crate's own tests; a
# mutant no test notices is a hole in the tests. Prints caught / missed /
# viable per file and exits non-zero when a file is below THRESHOLD percent
# caught (a timeout counts as caught: the tests did not pass).
#
# By default each mutant is tested with the unit tests of the files being
# mutated only (`cargo test --lib -- energy:: cost::`, the integration tests
# not even built): a mutant those catch
# is caught by the whole suite too, so the score is a lower bound, and a run
# takes about 5 s per mutant instead of 25 s (core's property tests alone
# run 20 s), and property tests run 16 cases instead of 256
# (PROPTEST_CASES). FULL=1 runs the crate's whole test suite, at full
# strength, for every mutant.
#
# Too slow for CI (minutes per file on 2 cores): run it when one of these
# files changes. Scores are in BENCHMARKS.md, "Mutation testing".
#
#   scripts/mutants.sh                 # every money file
#   scripts/mutants.sh energy cost     # only files whose path matches a word
#
# Env: THRESHOLD (default 95), JOBS (default 1), MUTANTS_OUT (default
# target/mutants; removed afterwards unless KEEP=1), SHARD (k/n: run the
# k-th of n slices, e.g. two shards side by side in two target dirs; each
# prints its own counts, add them up).
set -euo pipefail
cd "$(dirname "$0")/.."

THRESHOLD=${THRESHOLD:-95}
JOBS=${JOBS:-1}
OUT=${MUTANTS_OUT:-target/mutants}

# crate:file pairs that hold the money.
FILES=(
  roimon-core:crates/roimon-core/src/energy.rs
  roimon-core:crates/roimon-core/src/cost.rs
  roimon-core:crates/roimon-core/src/price.rs
  roimon-core:crates/roimon-core/src/window.rs
  roimon-ledger:crates/roimon-ledger/src/book.rs
  roimon-ledger:crates/roimon-ledger/src/figures.rs
)

# Mutants that cannot change behaviour (equivalent), by name as
# `cargo mutants --list` prints it. Each line says why. cargo-mutants 27.1
# does not apply --exclude-re to field-deletion mutants, so the same
# patterns are also taken out of the missed list afterwards and counted as
# "equivalent" (never as caught).
EXCLUDE=(
  # shares(): `w > 0.0` -> `w >= 0.0`, in the total and in each share: a
  # zero weight adds 0 to the total and gets 0 / total = 0 (and -0.0 == 0.0),
  # exactly what the filter gives it.
  'cost\.rs:(108:69|113:40): replace > with >= in shares'
  # HourBook::resume: `open_hour: None` next to `..Default::default()`;
  # deleting the field leaves the default, which is None.
  'book\.rs:[0-9]+:[0-9]+: delete field open_hour from struct BookState expression in HourBook::resume'
  # HourBook::observe: `h < open` -> `h <= open` in the step-back test. When
  # h == open the wall time lies after the open hour's start, so
  # `wall + STEP_BACK_TOLERANCE_SECS <= open` is false either way.
  'book\.rs:180:27: replace < with <= in HourBook::observe'
  # Windows::observe: `marks.len() > max` -> `>=`: at exactly max marks the
  # excess is 0 and `drain(..0)` removes nothing.
  'window\.rs:300:30: replace > with >= in Windows::observe'
  # base_mark: `t > far` -> `t >= far` in the fallback. A mark exactly at
  # `far` (= cut - step) is at or before the cut and not older than `far`,
  # so the first arm has already returned it or a later mark.
  'window\.rs:324:48: replace > with >= in base_mark'
)

if ! cargo mutants --version >/dev/null 2>&1; then
  echo "-- installing cargo-mutants"
  cargo install --locked cargo-mutants
fi

if [ "${FULL:-0}" != 1 ]; then
  export PROPTEST_CASES=${PROPTEST_CASES:-16}
fi

selected=()
for pair in "${FILES[@]}"; do
  if [ $# -eq 0 ]; then
    selected+=("$pair")
  else
    for w in "$@"; do
      case "$pair" in *"$w"*) selected+=("$pair"); break ;; esac
    done
  fi
done
[ ${#selected[@]} -gt 0 ] || { echo "no money file matches: $*" >&2; exit 2; }

exclude_args=()
for re in "${EXCLUDE[@]}"; do exclude_args+=(--exclude-re "$re"); done

# One cargo-mutants run per crate (one baseline build per crate).
crates=$(printf '%s\n' "${selected[@]}" | cut -d: -f1 | sort -u)
status=0
rows=()
for crate in $crates; do
  file_args=()
  for pair in "${selected[@]}"; do
    [ "${pair%%:*}" = "$crate" ] && file_args+=(--file "${pair#*:}")
  done
  test_args=()
  if [ "${FULL:-0}" != 1 ]; then
    # --lib for the build as well: the integration tests are not built.
    test_args=(--cargo-arg=--lib -- --)
    for pair in "${selected[@]}"; do
      [ "${pair%%:*}" = "$crate" ] || continue
      m="${pair##*/}"
      test_args+=("${m%.rs}::")
    done
  fi
  out="$OUT/$crate"
  rm -rf "$out"
  mkdir -p "$out"
  echo "-- cargo mutants -p $crate ${file_args[*]} ${test_args[*]}"
  # Exit code 2 means "some mutants missed": the counts below decide.
  cargo mutants -p "$crate" "${file_args[@]}" "${exclude_args[@]}" \
    --jobs "$JOBS" --timeout-multiplier 3 --output "$out" --no-shuffle ${SHARD:+--shard "$SHARD"} "${test_args[@]}" || {
    rc=$?
    if [ "$rc" -ne 2 ] && [ "$rc" -ne 3 ]; then
      echo "cargo mutants failed for $crate (exit $rc)" >&2
      exit "$rc"
    fi
  }
  dir="$out/mutants.out"
  for pair in "${selected[@]}"; do
    [ "${pair%%:*}" = "$crate" ] || continue
    f="${pair#*:}"
    count() { grep -c "^$f:" "$dir/$1" 2>/dev/null || true; }
    caught=$(count caught.txt)
    timeout=$(count timeout.txt)
    missed_list=$(grep "^$f:" "$dir/missed.txt" 2>/dev/null || true)
    equivalent=0
    for re in "${EXCLUDE[@]}"; do
      n=$(printf '%s\n' "$missed_list" | grep -cE "$re" || true)
      equivalent=$((equivalent + n))
      missed_list=$(printf '%s\n' "$missed_list" | grep -vE "$re" || true)
    done
    missed=$(printf '%s\n' "$missed_list" | grep -c . || true)
    viable=$((caught + timeout + missed))
    if [ "$viable" -eq 0 ]; then
      pct=100
    else
      pct=$(( (caught + timeout) * 100 / viable ))
    fi
    rows+=("$(printf '%-40s caught %3d  timeout %2d  missed %2d  viable %3d  %3d %%  (equivalent, not counted: %d)' \
      "$f" "$caught" "$timeout" "$missed" "$viable" "$pct" "$equivalent")")
    if [ "$missed" -gt 0 ]; then
      echo "-- missed in $f:"
      printf '%s\n' "$missed_list"
    fi
    [ "$pct" -ge "$THRESHOLD" ] || status=1
  done
  [ "${KEEP:-0}" = 1 ] || rm -rf "$out"
done

echo
echo "== mutation score (threshold $THRESHOLD %)"
printf '%s\n' "${rows[@]}"
exit "$status"
