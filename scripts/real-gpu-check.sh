#!/usr/bin/env bash
# Proof on a real GPU that roimon books what the GPU draws: start a prebuilt
# roimon (built-in configuration: NVML through nvml-wrapper, 1 s sampling) with
# its state in a temporary directory, and let scripts/real-gpu-check.py read
# NVML independently through four phases (idle, full PyTorch bf16 load, about
# half power, idle), compare roimon's energy, power and cost with NVML's, and
# write the report (report.md, report.json, roimon.log) to OUTDIR.
#
#   scripts/real-gpu-check.sh [--nvml-library PATH] OUTDIR
#
# --nvml-library PATH: load NVML from PATH, in roimon and in the check alike
# (a fake NVML, as CI does): the load phases then only wait, no GPU needed.
# roimon comes from $ROIMON_BIN, else target/release/roimon. Phase lengths:
# REAL_GPU_CHECK_PHASE_SECS (one number, or four: idle,full,half,idle; default
# 30,60,30,30). Exit 0: every phase's energy within 1 % of NVML's counter;
# 1: a phase is off by more; 2: the check could not be made.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
usage() { echo "usage: $0 [--nvml-library PATH] OUTDIR" >&2; exit 2; }
die() { echo "real-gpu-check: $*" >&2; exit 2; }

nvml_library=""
outdir=""
while (($#)); do
  case "$1" in
    --nvml-library) (($# >= 2)) || usage; nvml_library="$2"; shift 2 ;;
    --nvml-library=*) nvml_library="${1#*=}"; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    -*) echo "unknown option: $1" >&2; usage ;;
    *) [ -z "$outdir" ] || usage; outdir="$1"; shift ;;
  esac
done
[ -n "$outdir" ] || usage

roimon="${ROIMON_BIN:-$root/target/release/roimon}"
python="${PYTHON:-python3}"
[ -x "$roimon" ] || die "no roimon binary at $roimon (build it with 'cargo build --release -p roimon', or set ROIMON_BIN)"
command -v "$python" >/dev/null 2>&1 || die "$python not found"
"$python" -c 'import pynvml' 2>/dev/null \
  || die "$python cannot import pynvml: install it with '$python -m pip install nvidia-ml-py'"
nvml_args=()
if [ -n "$nvml_library" ]; then
  [ -f "$nvml_library" ] || die "--nvml-library $nvml_library: no such file"
  nvml_library="$(cd "$(dirname "$nvml_library")" && pwd)/$(basename "$nvml_library")"
  nvml_args=(--nvml-library "$nvml_library")
else
  "$python" -c 'import torch' 2>/dev/null \
    || die "$python cannot import torch: the load phases need PyTorch with CUDA"
fi
mkdir -p "$outdir"
rm -f "$outdir/report.json" "$outdir/report.md" "$outdir/roimon.log"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/real-gpu-check.XXXXXX")"
roimon_pid=""
cleanup() {
  local rc=$?
  if [ -n "$roimon_pid" ] && kill -0 "$roimon_pid" 2>/dev/null; then
    kill -TERM "$roimon_pid" 2>/dev/null || true
    for _ in $(seq 150); do kill -0 "$roimon_pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$roimon_pid" 2>/dev/null; then
      echo "real-gpu-check: roimon did not stop within 15 s of SIGTERM; killing it" >&2
      kill -KILL "$roimon_pid" 2>/dev/null || true
    fi
    wait "$roimon_pid" 2>/dev/null || true
  fi
  [ ! -f "$tmp/roimon.log" ] || cp "$tmp/roimon.log" "$outdir/roimon.log" 2>/dev/null || true
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The built-in configuration (no --config, none from the environment either),
# on a free loopback port, state in the temporary dir; the attribution module
# at debug level logs each GPU process it resolves (the process check).
env -u ROIMON_CONFIG -u ROIMON_NVML_LIBRARY RUST_LOG="info,roimon_attribution=debug" \
  "$roimon" run --listen 127.0.0.1:0 --state-dir "$tmp/state" --log-format json "${nvml_args[@]}" \
  >/dev/null 2>"$tmp/roimon.log" &
roimon_pid=$!

addr=""
for _ in $(seq 300); do
  line="$(grep -m1 '"roimon running"' "$tmp/roimon.log" 2>/dev/null || true)"
  if [ -n "$line" ]; then
    addr="$(sed -n 's/.*"listen":"\([^"]*\)".*/\1/p' <<<"$line")"
    break
  fi
  if ! kill -0 "$roimon_pid" 2>/dev/null; then
    tail -n 20 "$tmp/roimon.log" >&2 || true
    die "roimon exited before it was running"
  fi
  sleep 0.1
done
[ -n "$addr" ] || { tail -n 20 "$tmp/roimon.log" >&2 || true; die "roimon was not running within 30 s"; }
version="$("$roimon" --version 2>/dev/null | awk '{print $2}' || true)"
nvml_from="${nvml_library:-the driver}"
echo "real-gpu-check: roimon ${version:-?} (pid $roimon_pid) on $addr, NVML from $nvml_from"

# Bounded as a whole: the phases take 150 s by default, the waits inside the
# check are bounded too; this only stops a hung NVML call from hanging CI.
limit="${REAL_GPU_CHECK_TIMEOUT_SECS:-600}"
check=("$python" "$root/scripts/real-gpu-check.py" run --roimon "http://$addr"
       --roimon-log "$tmp/roimon.log" --roimon-version "$version" --out "$outdir"
       "${nvml_args[@]}")
rc=0
if command -v timeout >/dev/null 2>&1; then
  timeout --kill-after=10 "$limit" "${check[@]}" || rc=$?
else
  "${check[@]}" || rc=$?
fi
if ((rc == 124 || rc == 137)); then
  echo "real-gpu-check: the check did not finish within $limit s" >&2
  rc=2
fi
if ! kill -0 "$roimon_pid" 2>/dev/null; then
  echo "real-gpu-check: roimon died during the check (its log: $outdir/roimon.log)" >&2
  ((rc != 0)) || rc=2
fi
exit "$rc"
