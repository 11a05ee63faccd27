#!/usr/bin/env bash
# End-to-end InfluxDB stream throughput: fill a stream buffer with N points
# (crates/roimon-influx/examples/fill_buffer.rs), start a local
# VictoriaMetrics and the release roimon binary on that buffer, and time the
# replay until every point is acknowledged (the stream is one thread: one
# core). Usage: scripts/bench-influx.sh [POINTS] [gzip true|false]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
GZIP=${2:-true}
cargo build --release --locked -p roimon --bin roimon >/dev/null
cargo build --release --locked -p roimon-influx --example fill_buffer >/dev/null
tmp=$(mktemp -d)
cleanup() { [ -n "${vm:-}" ] && kill "$vm" 2>/dev/null; [ -n "${rm:-}" ] && kill "$rm" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
target/release/examples/fill_buffer "$tmp/state/influxdb" "$N"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
victoria-metrics -httpListenAddr=127.0.0.1:$port -storageDataPath="$tmp/vm" -retentionPeriod=100y -loggerLevel=ERROR >/dev/null 2>&1 &
vm=$!
until curl -sf "http://127.0.0.1:$port/health" >/dev/null; do sleep 0.1; done
mport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$tmp/roimon.toml" <<TOML
[gpu]
source = "none"
[host]
power = "model"
rapl_root = "$tmp/none"
[server]
listen = "127.0.0.1:$mport"
[state]
dir = "$tmp/state"
[influxdb]
url = "http://127.0.0.1:$port"
org = "bench"
bucket = "bench"
interval_secs = 10
batch_points = 5000
gzip = $GZIP
buffer_max_bytes = 1099511627776
TOML
t0=$(date +%s.%N)
target/release/roimon run --config "$tmp/roimon.toml" 2>"$tmp/log" &
rm=$!
while :; do
  left=$(curl -sf "http://127.0.0.1:$mport/metrics" | awk '$1=="roimon_influxdb_buffer_points"{print $2}') || left=""
  [ "$left" = "0" ] && break
  sleep 0.05
done
t1=$(date +%s.%N)
written=$(curl -sf "http://127.0.0.1:$mport/metrics" | awk '$1=="roimon_influxdb_points_written_total"{print $2}')
curl -sf -XPOST "http://127.0.0.1:$port/internal/force_flush" >/dev/null
stored=$(curl -sf "http://127.0.0.1:$port/api/v1/series/count" || true)
python3 - "$t0" "$t1" "$written" "$N" "$GZIP" <<'PY'
import sys
t0, t1, w, n, gz = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
s = t1 - t0
print(f"replayed {int(w)} points (of {n}) into VictoriaMetrics in {s:.2f} s (start included): {w/s:,.0f} points/s, gzip={gz}")
PY
