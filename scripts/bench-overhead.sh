#!/usr/bin/env bash
# Agent overhead benchmark: roimon with 4 fake GPUs at a 1 s interval and
# prometheus-node-exporter, each scraped once a second for DURATION seconds;
# prints CPU seconds and peak RSS of each and the ratios. Figures go to
# BENCHMARKS.md. Needs: apt-get install prometheus-node-exporter curl.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-60}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

cargo build --release -q -p roimon -p roimon-fake-nvml
lib=$(ls -t target/release/build/roimon-fake-nvml-*/out/libnvidia-ml.so.1 | head -1)
mkdir -p "$work/nvml"
cp "$lib" "$work/nvml/libnvidia-ml.so.1"
for i in 0 1 2 3; do
  echo "NVIDIA H100 80GB HBM3,GPU-00000000-0000-0000-0000-00000000000$i,350000,1,80,42949672960,85899345920,60,700000"
done > "$work/nvml/fake-nvml.conf"
cat > "$work/roimon.toml" <<TOML
[sampling]
interval_secs = 1.0
[gpu]
source = "nvml"
nvml_library = "$work/nvml/libnvidia-ml.so.1"
[host]
power = "model"
[server]
listen = "127.0.0.1:19464"
[state]
dir = "$work/state"
[log]
level = "warn"
TOML

target/release/roimon run --config "$work/roimon.toml" 2>"$work/roimon.log" &
rpid=$!
prometheus-node-exporter --web.listen-address=127.0.0.1:19100 >"$work/ne.log" 2>&1 &
npid=$!
sleep 2
curl -sf 127.0.0.1:19464/metrics >/dev/null || { echo "roimon not up"; cat "$work/roimon.log"; exit 1; }
curl -sf 127.0.0.1:19100/metrics >/dev/null || { echo "node_exporter not up"; cat "$work/ne.log"; exit 1; }

cpu() { # utime+stime in seconds
  awk -v hz="$(getconf CLK_TCK)" '{print ($14+$15)/hz}' "/proc/$1/stat"
}
c0r=$(cpu $rpid); c0n=$(cpu $npid)
for _ in $(seq "$DURATION"); do
  curl -sf -o /dev/null 127.0.0.1:19464/metrics &
  curl -sf -o /dev/null 127.0.0.1:19100/metrics &
  sleep 1
done
wait_scrapes() { sleep 1; }
wait_scrapes
c1r=$(cpu $rpid); c1n=$(cpu $npid)
rss() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
rr=$(rss $rpid); rn=$(rss $npid)
rbytes=$(curl -s 127.0.0.1:19464/metrics | wc -c); nbytes=$(curl -s 127.0.0.1:19100/metrics | wc -c)
python3 - "$c0r" "$c1r" "$c0n" "$c1n" "$rr" "$rn" "$DURATION" "$rbytes" "$nbytes" <<'PY'
import sys
c0r,c1r,c0n,c1n,rr,rn,d,rb,nb = map(float, sys.argv[1:])
r, n = c1r - c0r, c1n - c0n
print(f"duration: {d:.0f} s, 1 scrape/s each; roimon: 4 fake GPUs + host model at 1 s")
print(f"{'':14}{'CPU s':>10}{'CPU %':>8}{'peak RSS MiB':>14}{'/metrics bytes':>16}")
print(f"{'roimon':14}{r:10.3f}{100*r/d:8.2f}{rr/1024:14.1f}{rb:16.0f}")
print(f"{'node_exporter':14}{n:10.3f}{100*n/d:8.2f}{rn/1024:14.1f}{nb:16.0f}")
print(f"ratio roimon/node_exporter: CPU {r/n if n else float('nan'):.3f}, RSS {rr/rn:.3f}")
PY
