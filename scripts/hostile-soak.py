#!/usr/bin/env python3
# A soak against hostile peers, for BENCHMARKS.md: runs a roimon binary with
# simulated GPUs (labelled as such) for a while against a value server that
# changes its lies at every scrape (1e308 jumps, u64 wraps, counters that go
# down, a start time that changes, thousands of new models, 100 KB labels,
# NaN, forged log lines) and a client pushing hostile batches, then checks
# what a billing system must hold: peak RSS, unaccounted time, checkpoint
# errors, finite figures, a clean restart and `roimon report --verify`.
#
#   scripts/hostile-soak.py [--secs 300] [--bin target/release/roimon]
#
# Exit 0 when every check holds, 1 otherwise. Loopback only; every wait is
# bounded.

import argparse
import http.server
import json
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

LIES = [
    lambda i: "vllm:prompt_tokens_total{model_name=\"m\"} 1e308\n",
    lambda i: "vllm:prompt_tokens_total{model_name=\"m\"} 18446744073709551615\n",
    lambda i: f"vllm:prompt_tokens_total{{model_name=\"m\"}} {1000 - i % 1000}\n",
    lambda i: f"vllm:prompt_tokens_total{{model_name=\"m\"}} 5\nprocess_start_time_seconds {1.7e9 + i}\n",
    lambda i: "".join(
        f"vllm:prompt_tokens_total{{model_name=\"m{i}-{k}\"}} {k}\n" for k in range(2000)
    ),
    lambda i: f"vllm:prompt_tokens_total{{model_name=\"{'x' * 100_000}\"}} 1\n",
    lambda i: "vllm:prompt_tokens_total{model_name=\"m\"} NaN\n",
    lambda i: "vllm:prompt_tokens_total{model_name=\"m\"} +Inf\n",
    lambda i: "\x1b[31mERROR forged line\nlevel=error msg=\"pwned\"\n",
]

PUSHES = [
    "roimon_value,team=t,workload=w amount=1.7e308",
    "roimon_value,team=t,workload=w amount=18446744073709551615u",
    "roimon_kpi,team=t,workload=w precision=5.0",
    "roimon_value,team=" + "a" * 700 + ",workload=w amount=1",
    "roimon_value,team=t\x01,workload=w amount=1",
    "roimon_value,team=nosuchteam,workload=w amount=1",
    "roimon_value,team=t,workload=w amount=-3",
]


class Liar(http.server.BaseHTTPRequestHandler):
    n = 0

    def do_GET(self):
        Liar.n += 1
        i = Liar.n
        lie = LIES[i % len(LIES)](i)
        if i % 11 == 0:
            body = ("\x1b[2J forged\nline " * 50).encode()
            self.send_response(500)
        else:
            body = lie.encode()
            self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def series_sum(metrics, name):
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def hwm_kib(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--secs", type=float, default=300)
    ap.add_argument("--bin", default=os.environ.get("ROIMON_BIN", "target/release/roimon"))
    a = ap.parse_args()

    liar = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Liar)
    threading.Thread(target=liar.serve_forever, daemon=True).start()
    tmp = tempfile.mkdtemp(prefix="roimon-soak-")
    port = free_port()
    cfg = os.path.join(tmp, "roimon.toml")
    interval = 1.0
    with open(cfg, "w") as f:
        f.write(
            f"""[sampling]
interval_secs = {interval}
[gpu]
source = "simulated"
simulated_count = 2
[[gpu.owners]]
gpu_uuid = "SIM-GPU-0000"
team = "t"
workload = "w"
[price]
source = "static"
currency = "EUR"
price_per_kwh = 0.30
[server]
listen = "127.0.0.1:{port}"
[state]
dir = "{tmp}/state"
[[value.scrape]]
url = "http://127.0.0.1:{liar.server_address[1]}/metrics?apikey=SOAKSECRET"
name = "liar"
team = "t"
workload = "w"
interval_secs = 1
input_per_million_tokens = 1.0
"""
        )
    log = open(os.path.join(tmp, "roimon.log"), "w")
    proc = subprocess.Popen([a.bin, "run", "--config", cfg], stderr=log, stdout=log)
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            get(base + "/healthz", 1)
            break
        except OSError:
            time.sleep(0.2)
    stop = threading.Event()
    pushes = [0, 0]

    def pusher():
        while not stop.is_set():
            body = "\n".join(random.sample(PUSHES, 3)).encode()
            req = urllib.request.Request(base + "/api/v2/write", data=body, method="POST")
            try:
                urllib.request.urlopen(req, timeout=10)
                pushes[0] += 1
            except urllib.error.HTTPError as e:
                pushes[1] += 1
                e.read()
            except OSError:
                pushes[1] += 1
            time.sleep(0.05)

    threading.Thread(target=pusher, daemon=True).start()
    m0 = get(base + "/metrics")
    t0 = time.time()
    peak = 0
    # Scraped every 5 s, as Prometheus would (new series are shown from 0
    # until a scrape has seen them).
    last_scrape = 0.0
    while time.time() - t0 < a.secs:
        time.sleep(1)
        peak = max(peak, hwm_kib(proc.pid))
        if time.time() - last_scrape >= 5:
            get(base + "/metrics")
            last_scrape = time.time()
        if proc.poll() is not None:
            print("roimon exited during the soak", file=sys.stderr)
            return 1
    stop.set()
    elapsed = time.time() - t0
    get(base + "/metrics")
    time.sleep(3 * interval)
    m1 = get(base + "/metrics")
    peak = max(peak, hwm_kib(proc.pid))
    proc.terminate()
    rc = proc.wait(timeout=30)
    log.close()
    text = open(os.path.join(tmp, "roimon.log")).read()

    gpus = 2
    unacc = series_sum(m1, "roimon_unaccounted_seconds_total") - series_sum(
        m0, "roimon_unaccounted_seconds_total"
    )
    gpu_secs = gpus * elapsed
    ck_err = series_sum(m1, "roimon_checkpoint_errors_total")
    rejected = series_sum(m1, "roimon_value_rejected_total")
    if os.environ.get("SOAK_DEBUG"):
        print("\n".join(l for l in m1.splitlines() if "rejected" in l))
    nonfinite = [l for l in m1.splitlines() if not l.startswith("#") and re.search(r" (NaN|[+-]Inf)$", l)]
    verify = subprocess.run(
        [a.bin, "report", "--config", cfg, "--verify"], capture_output=True, text=True
    )
    # Restartable: the state loads and the daemon runs again.
    proc2 = subprocess.Popen([a.bin, "run", "--config", cfg], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    restarted = False
    for _ in range(100):
        try:
            get(base + "/healthz", 1)
            restarted = True
            break
        except OSError:
            if proc2.poll() is not None:
                break
            time.sleep(0.2)
    proc2.terminate()
    proc2.wait(timeout=30)

    checks = {
        "peak RSS <= 128 MiB": peak <= 128 * 1024,
        "unaccounted < 1 % of GPU time": unacc < 0.01 * gpu_secs,
        "no checkpoint errors": ck_err == 0,
        "no non-finite series": not nonfinite,
        "clean stop": rc == 0,
        "report --verify OK": verify.returncode == 0,
        "restarts": restarted,
        "secret never logged": "SOAKSECRET" not in text,
        "no escape from a server reaches the log raw": "\x1b[2J" not in text
        and "\x1b[31m" not in text,
    }
    print(
        f"hostile soak, {elapsed:.0f} s: peak RSS {peak / 1024:.1f} MiB, unaccounted "
        f"{unacc:.2f} s of {gpu_secs:.0f} GPU-s, value refusals {rejected:.0f}, pushes "
        f"{pushes[0]} acknowledged / {pushes[1]} refused, checkpoint errors {ck_err:.0f}"
    )
    for k, ok in checks.items():
        print(f"  {'ok  ' if ok else 'FAIL'} {k}")
    if not all(checks.values()):
        print(verify.stdout + verify.stderr)
        print("\n".join(nonfinite[:5]))
        print("state and log kept in", tmp)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
