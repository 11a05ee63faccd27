#!/usr/bin/env python3
"""The independent side of scripts/real-gpu-check.sh: proof that roimon books
what a real GPU draws.

It reads NVML itself (pynvml, from PyPI's nvidia-ml-py), drives a PyTorch load
in a child process, scrapes a running roimon, and writes the report. The shell
script starts and stops roimon; this file does everything else.

    real-gpu-check.py run --roimon http://HOST:PORT --roimon-log FILE --out DIR
                          [--nvml-library PATH] [--gpu-index N]
        The check. Phases: idle, full load (bf16 matrix multiplies), about
        half power (the same load duty-cycled), idle. At each phase boundary
        it waits for roimon to publish new counters (a checkpoint), and reads
        NVML's total-energy counter at that instant, so both sides measure the
        same span; NVML power is sampled every 100 ms meanwhile. Writes
        DIR/report.json and DIR/report.md, prints the table. Exit 0 when every
        phase's energy agrees within 1 %, 1 when one does not, 2 when the
        check could not be made.
        With --nvml-library (a fake NVML, as in CI) NVML is loaded from that
        file and the load phases only wait: no PyTorch, no GPU. If the file
        sits beside a fake-nvml.conf, the stand-in load process is listed on
        the fake GPU (its procs-<i> control file), so roimon's process view
        is checked too.

    real-gpu-check.py load [--no-gpu]
        The load process (started by `run`): prints "ready" once warm, then
        obeys lines on stdin: "full", "half DUTY" (busy fraction of each
        100 ms), "idle"; exits at end of input.

Environment: REAL_GPU_CHECK_PHASE_SECS: one number for every phase, or four
comma-separated numbers (idle, full, half, idle); default 30,60,30,30.
"""

import argparse
import ctypes
import datetime
import json
import math
import os
import re
import select
import subprocess
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request

THRESHOLD = 0.01  # the largest relative energy error a phase may have
DEFAULT_PHASE_SECS = (30.0, 60.0, 30.0, 30.0)
PHASE_NAMES = ("idle", "full-load", "half-load", "idle-after")
POWER_PERIOD = 0.1  # s between NVML power samples
ROIMON_EVERY = 5  # scrape roimon's gauges every 5th power sample (0.5 s)
PROCS_EVERY = 10  # read NVML's process list every 10th sample (1 s)
SYNC_POLL = 0.02  # s between polls while waiting for a checkpoint
SYNC_TIMEOUT = 30.0  # s: roimon checkpoints every 5 s by default
READY_TIMEOUT = 60.0  # s for roimon to list the GPU
LOAD_READY_TIMEOUT = 180.0  # s for the load process to import torch and warm up
LOAD_EXIT_TIMEOUT = 30.0
SETTLE = 1.0  # s after a load change before a boundary may be taken
MATRIX = 8192  # bf16 matrix side: ~1 TFLOP a multiply


class CheckError(Exception):
    """The check could not be made (exit 2)."""


# ---- the load process ---------------------------------------------------------


def load_main(no_gpu):
    """Run the load; commands on stdin, "ready" on stdout."""
    step = None
    if not no_gpu:
        import torch  # only here: the fake mode and the orchestrator do without

        if not torch.cuda.is_available():
            print("error: PyTorch sees no CUDA device", flush=True)
            return 2
        dev = torch.device("cuda", 0)
        a = torch.randn(MATRIX, MATRIX, device=dev, dtype=torch.bfloat16)
        b = torch.randn(MATRIX, MATRIX, device=dev, dtype=torch.bfloat16)
        c = torch.empty(MATRIX, MATRIX, device=dev, dtype=torch.bfloat16)

        def step(n):
            for _ in range(n):
                torch.matmul(a, b, out=c)
            torch.cuda.synchronize()

        step(3)  # warm: cuBLAS picks its kernels now, not in the first phase
    print("ready", flush=True)
    mode, duty = "idle", 0.5
    fd = sys.stdin.fileno()

    pending = b""

    def command(timeout):
        """Wait up to `timeout` for input; apply whole lines. False at end of input."""
        nonlocal mode, duty, pending
        ready, _, _ = select.select([fd], [], [], max(0.0, timeout))
        if not ready:
            return True
        chunk = os.read(fd, 4096)
        if not chunk:
            return False
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            words = line.decode("ascii", "replace").split()
            if words and words[0] in ("full", "half", "idle"):
                mode = words[0]
                if mode == "half" and len(words) > 1:
                    duty = min(0.95, max(0.05, float(words[1])))
        return True

    while True:
        if step is None or mode == "idle":
            if not command(0.1):
                return 0
        elif mode == "full":
            step(10)
            if not command(0.0):
                return 0
        else:  # half: busy for duty of every 100 ms, idle for the rest
            start = time.monotonic()
            while time.monotonic() - start < 0.1 * duty:
                step(2)
            if not command(0.1 - (time.monotonic() - start)):
                return 0


# ---- roimon's exposition --------------------------------------------------------

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """[(name, {label: value}, float)] of a Prometheus text exposition."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m:
            continue
        try:
            v = float(m.group(3))
        except ValueError:
            continue
        labels = dict(LABEL.findall(m.group(2) or ""))
        out.append((m.group(1), labels, v))
    return out


def metric_sum(samples, name, **want):
    """Sum of `name` over series whose labels include `want`; None if none."""
    vals = [
        v
        for n, l, v in samples
        if n == name and all(l.get(k) == x for k, x in want.items())
    ]
    return sum(vals) if vals else None


class Roimon:
    def __init__(self, url, uuid):
        self.url = url.rstrip("/")
        self.uuid = uuid

    def get(self, path, timeout=5.0):
        with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")

    def scrape(self):
        status, body = self.get("/metrics")
        if status != 200:
            raise CheckError(f"roimon /metrics answered {status}")
        return parse_metrics(body)

    def energy(self, s):
        return metric_sum(s, "roimon_gpu_energy_joules_total", gpu_uuid=self.uuid)

    def power(self, s):
        return metric_sum(s, "roimon_gpu_power_watts", gpu_uuid=self.uuid)

    def processes(self, s):
        return metric_sum(s, "roimon_gpu_processes", gpu_uuid=self.uuid)

    def cost(self, s):
        v = metric_sum(
            s, "roimon_gpu_cost_total", gpu_uuid=self.uuid, component="energy"
        )
        return v or 0.0

    def rows(self, s):
        """The owners this GPU has cost rows for."""
        return frozenset(
            (l.get("team"), l.get("workload"))
            for n, l, _ in s
            if n == "roimon_gpu_cost_total" and l.get("gpu_uuid") == self.uuid
        )

    def summary_energy(self):
        """(energy_joules, at) of this GPU from /api/v1/summary."""
        status, body = self.get("/api/v1/summary")
        if status != 200:
            raise CheckError(f"roimon /api/v1/summary answered {status}")
        doc = json.loads(body)
        for g in doc.get("gpus", []):
            if g.get("gpu_uuid") == self.uuid:
                return g.get("energy_joules"), doc.get("at")
        return None, doc.get("at")

    def facility_joules(self, s):
        v = metric_sum(s, "roimon_gpu_facility_energy_joules_total", gpu_uuid=self.uuid)
        return v or 0.0


# ---- NVML -------------------------------------------------------------------------


def open_nvml(library):
    """Import pynvml and initialise it, from `library` when given."""
    try:
        import pynvml
    except ImportError:
        raise CheckError(
            "python3 cannot import pynvml: install it with `python3 -m pip install nvidia-ml-py`"
        )
    if library:
        # pynvml loads libnvidia-ml.so.1 by name unless its handle is set:
        # load the very file roimon is given, so both read the same NVML.
        try:
            pynvml.nvmlLib = ctypes.CDLL(os.path.abspath(library))
        except OSError as e:
            raise CheckError(f"cannot load NVML from {library}: {e}")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as e:
        raise CheckError(f"NVML did not initialise: {e}")
    return pynvml


def text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def gpu_facts(nv, h):
    facts = {
        "gpu": text(nv.nvmlDeviceGetName(h)),
        "gpu_uuid": text(nv.nvmlDeviceGetUUID(h)),
        "driver": text(nv.nvmlSystemGetDriverVersion()),
    }
    try:
        facts["power_limit_watts"] = nv.nvmlDeviceGetEnforcedPowerLimit(h) / 1000.0
    except nv.NVMLError:
        facts["power_limit_watts"] = None
    try:
        current, _pending = nv.nvmlDeviceGetMigMode(h)
        facts["mig"] = bool(current)
    except nv.NVMLError_NotSupported:
        facts["mig"] = False  # a part without MIG
    except nv.NVMLError:
        facts["mig"] = None
    return facts


# ---- sampling -----------------------------------------------------------------------


class Sampler(threading.Thread):
    """NVML power and energy every 100 ms, roimon's gauges every 0.5 s, NVML's
    process list every second; all stamped with time.time() (the wall clock
    roimon stamps its ticks with)."""

    def __init__(self, nv, handle, roimon):
        super().__init__(daemon=True)
        self.nv, self.h, self.roimon = nv, handle, roimon
        self.nvml_power = []  # (t, W)
        self.nvml_energy = []  # (t, J): also fed densely by Check.boundary
        self.roimon_gauges = []  # (t, W or None, processes or None)
        self.nvml_pids = []  # (t, [pid])
        self.errors = []
        self.halt = threading.Event()

    def energy_now(self):
        """Read NVML's counter, keep the sample, return joules."""
        t0 = time.time()
        j = self.nv.nvmlDeviceGetTotalEnergyConsumption(self.h) / 1000.0
        self.nvml_energy.append(((t0 + time.time()) / 2, j))
        return j

    def run(self):
        nxt = time.monotonic()
        i = 0
        while not self.halt.is_set():
            t = time.time()
            try:
                self.nvml_power.append((t, self.nv.nvmlDeviceGetPowerUsage(self.h) / 1000.0))
                self.energy_now()
            except self.nv.NVMLError as e:
                self.note(f"NVML power or energy: {e}")
            if i % ROIMON_EVERY == 0:
                try:
                    s = self.roimon.scrape()
                    self.roimon_gauges.append((t, self.roimon.power(s), self.roimon.processes(s)))
                except (OSError, CheckError) as e:
                    self.note(f"roimon scrape: {e}")
            if i % PROCS_EVERY == 0:
                try:
                    procs = self.nv.nvmlDeviceGetComputeRunningProcesses(self.h)
                    self.nvml_pids.append((t, sorted({p.pid for p in procs})))
                except self.nv.NVMLError as e:
                    self.note(f"NVML processes: {e}")
            i += 1
            nxt += POWER_PERIOD
            now = time.monotonic()
            if nxt < now:
                nxt = now
            self.halt.wait(nxt - now)

    def note(self, msg):
        if len(self.errors) < 20:
            self.errors.append(msg)

    def window(self, series, t0, t1):
        return [s for s in series if t0 <= s[0] <= t1]

    def energy_at(self, t):
        """NVML's counter at wall time t, interpolated between the samples
        either side (the boundary waits sample every 20 ms)."""
        pts = sorted(self.nvml_energy)
        before = [p for p in pts if p[0] <= t]
        after = [p for p in pts if p[0] >= t]
        if not before or not after:
            raise CheckError(f"no NVML energy samples either side of {t:.3f}")
        (t0, e0), (t1, e1) = before[-1], after[0]
        if t1 - t0 > 1.0:
            raise CheckError(f"NVML energy samples {t1 - t0:.2f} s apart around a boundary")
        return e0 if t1 == t0 else e0 + (e1 - e0) * (t - t0) / (t1 - t0)


def parse_time(s):
    """Seconds since the epoch of an RFC 3339 UTC time (any fraction digits)."""
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]00:00)$", s or "")
    if not m:
        raise CheckError(f"roimon's summary has a tick time I cannot read: {s!r}")
    whole = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")
    whole = whole.replace(tzinfo=datetime.timezone.utc).timestamp()
    return whole + (float("0." + m.group(2)) if m.group(2) else 0.0)


# ---- the run ------------------------------------------------------------------------


def phase_secs():
    raw = os.environ.get("REAL_GPU_CHECK_PHASE_SECS", "").strip()
    if not raw:
        return DEFAULT_PHASE_SECS
    try:
        vals = [float(x) for x in raw.split(",")]
    except ValueError:
        vals = []
    if len(vals) == 1:
        vals = vals * 4
    if len(vals) != 4 or not all(math.isfinite(v) and 0.5 <= v <= 600 for v in vals):
        raise CheckError(
            f"REAL_GPU_CHECK_PHASE_SECS must be one number or four comma-separated numbers of seconds (0.5..600), got {raw!r}"
        )
    return tuple(vals)


class Boundary:
    """roimon's counters as published at its tick `t` (wall seconds)."""

    def __init__(self, t, samples, roimon):
        self.t = t
        self.roimon_j = roimon.energy(samples)
        self.cost = roimon.cost(samples)
        self.facility_j = roimon.facility_joules(samples)
        self.nvml_j = None  # NVML's counter at t, filled in after the run


class Check:
    def __init__(self, args):
        self.args = args
        self.fake = bool(args.nvml_library)
        self.nv = open_nvml(args.nvml_library)
        nv = self.nv
        try:
            count = nv.nvmlDeviceGetCount()
            if args.gpu_index >= count:
                raise CheckError(f"NVML lists {count} GPU(s); there is no GPU {args.gpu_index}")
            self.h = nv.nvmlDeviceGetHandleByIndex(args.gpu_index)
            self.facts = gpu_facts(nv, self.h)
            nv.nvmlDeviceGetTotalEnergyConsumption(self.h)
        except nv.NVMLError_NotSupported:
            raise CheckError("this GPU has no total-energy counter (NVML: not supported); the check needs one (Volta or newer)")
        except nv.NVMLError as e:
            raise CheckError(f"NVML: {e}")
        self.roimon = Roimon(args.roimon, self.facts["gpu_uuid"])
        self.worker = None
        self.rows = frozenset()
        self.started_at = now_utc()
        self.fake_procs = None
        if self.fake:
            d = os.path.dirname(os.path.abspath(args.nvml_library))
            if os.path.exists(os.path.join(d, "fake-nvml.conf")):
                self.fake_procs = os.path.join(d, f"procs-{args.gpu_index}")

    def wait_ready(self):
        """Until roimon is ready and shows this GPU's energy and cost rows."""
        deadline = time.monotonic() + READY_TIMEOUT
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                status, _ = self.roimon.get("/readyz")
                if status == 200:
                    s = self.roimon.scrape()
                    if self.roimon.energy(s) is not None and metric_sum(
                        s, "roimon_gpu_cost_total", gpu_uuid=self.roimon.uuid
                    ) is not None:
                        self.rows = self.roimon.rows(s)
                        return s
                    last = f"no roimon_gpu_energy_joules_total for gpu_uuid {self.roimon.uuid}"
            except urllib.error.HTTPError as e:
                last = f"/readyz {e.code}"
            except OSError as e:
                last = str(e)
            time.sleep(0.2)
        raise CheckError(f"roimon was not ready with GPU {self.roimon.uuid} within {READY_TIMEOUT:.0f} s ({last})")

    def boundary(self, what):
        """Wait for roimon to publish new counters (published counters are
        the last checkpoint's, so they move every few seconds), and take the
        tick they were sampled at from /api/v1/summary ("at"). NVML's counter
        at that instant is interpolated afterwards from samples taken every
        20 ms meanwhile, so the poll's own delay does not count.

        A change that brings a new cost row (a new owner) is let pass: roimon
        holds a new row back until a scrape has seen it, then shows the last
        checkpoint, which may be older than the tick it is published at."""
        deadline = time.monotonic() + SYNC_TIMEOUT
        prev = None
        while True:
            if time.monotonic() > deadline:
                raise CheckError(
                    f"roimon's roimon_gpu_energy_joules_total did not move within {SYNC_TIMEOUT:.0f} s ({what})"
                )
            self.sampler.energy_now()
            e, at = self.roimon.summary_energy()
            if prev is not None and e is not None and e != prev and at is not None:
                self.sampler.energy_now()
                s = self.roimon.scrape()
                rows = self.roimon.rows(s)
                # The exposition must show the same counters (it does unless a
                # checkpoint fell between the two requests: then wait again).
                if self.roimon.energy(s) == e:
                    if rows == self.rows:
                        return Boundary(parse_time(at), s, self.roimon)
                    self.rows = rows
            prev = e
            time.sleep(SYNC_POLL)

    def start_worker(self):
        cmd = [sys.executable, os.path.abspath(__file__), "load"]
        if self.fake:
            cmd.append("--no-gpu")
        env = dict(os.environ)
        env.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")  # CUDA's 0 = NVML's 0
        if not self.fake:
            env.setdefault("CUDA_VISIBLE_DEVICES", str(self.args.gpu_index))
        self.worker = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        deadline = time.monotonic() + LOAD_READY_TIMEOUT
        line, said = "", ""
        while time.monotonic() < deadline and line != "ready":
            ready, _, _ = select.select([self.worker.stdout], [], [], 0.5)
            if ready:
                raw = self.worker.stdout.readline()
                if not raw:
                    break  # it closed its output: it has exited
                line = raw.strip()
                said = line or said
            elif self.worker.poll() is not None:
                break
        if line != "ready":
            self.stop_worker()
            raise CheckError(f"the load process did not get ready within {LOAD_READY_TIMEOUT:.0f} s ({said or 'no output'})")
        if self.fake_procs:
            tmp = self.fake_procs + ".tmp"
            with open(tmp, "w") as f:
                f.write(f"{self.worker.pid},1073741824,100,c\n")
            os.replace(tmp, self.fake_procs)

    def tell(self, line):
        try:
            self.worker.stdin.write(line + "\n")
            self.worker.stdin.flush()
        except OSError as e:
            raise CheckError(f"the load process is gone ({e})")
        if self.worker.poll() is not None:
            raise CheckError(f"the load process exited with {self.worker.returncode}")

    def stop_worker(self):
        w, self.worker = self.worker, None
        if self.fake_procs and os.path.exists(self.fake_procs):
            os.remove(self.fake_procs)
        if w is None:
            return
        try:
            w.stdin.close()
        except OSError:
            pass
        try:
            w.wait(timeout=LOAD_EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            w.kill()
            w.wait()

    def run(self):
        secs = phase_secs()
        self.wait_ready()
        sampler = self.sampler = Sampler(self.nv, self.h, self.roimon)
        sampler.start()
        phases = []
        load_pid = None
        try:
            b0 = self.boundary("start of idle")
            time.sleep(secs[0])
            b1 = self.boundary("end of idle")
            phases.append((PHASE_NAMES[0], b0, b1, None))
            self.start_worker()
            load_pid = self.worker.pid
            self.tell("full")
            time.sleep(SETTLE)
            b2 = self.boundary("start of full load")
            time.sleep(secs[1])
            b3 = self.boundary("end of full load")
            phases.append((PHASE_NAMES[1], b2, b3, load_pid))
            # Half load starts where full load ends: one boundary for both.
            self.tell(f"half {self.duty(sampler, b0, b1, b2, b3):.3f}")
            time.sleep(secs[2])
            b4 = self.boundary("end of half load")
            phases.append((PHASE_NAMES[2], b3, b4, load_pid))
            self.stop_worker()
            time.sleep(SETTLE)
            b5 = self.boundary("start of idle after")
            time.sleep(secs[3])
            b6 = self.boundary("end of idle after")
            phases.append((PHASE_NAMES[3], b5, b6, None))
        finally:
            self.stop_worker()
            sampler.halt.set()
            sampler.join(5)
        return self.report(phases, sampler, load_pid)

    def duty(self, sampler, b0, b1, b2, b3):
        """The busy fraction that should draw about half the full-load power."""
        idle = mean([w for _, w in sampler.window(sampler.nvml_power, b0.t, b1.t)])
        full = mean([w for _, w in sampler.window(sampler.nvml_power, b2.t, b3.t)])
        if idle is None or full is None or full <= idle * 1.2:
            return 0.5
        return min(0.9, max(0.1, (full / 2 - idle) / (full - idle)))

    def roimon_pids(self):
        """Pids roimon's attribution logged (debug lines of roimon_attribution)."""
        pids = set()
        try:
            with open(self.args.roimon_log, encoding="utf-8", errors="replace") as f:
                for line in f:
                    try:
                        pid = json.loads(line).get("fields", {}).get("pid")
                    except ValueError:
                        continue
                    if isinstance(pid, int):
                        pids.add(pid)
        except OSError:
            pass
        return pids

    def report(self, phases, sampler, load_pid):
        samples = self.roimon.scrape()
        price = metric_sum(samples, "roimon_electricity_price_per_kwh")
        pue = metric_sum(samples, "roimon_facility_pue") or 1.0
        currency = next(
            (l.get("currency") for n, l, _ in samples if n == "roimon_electricity_price_per_kwh"),
            None,
        )
        logged = self.roimon_pids()
        for _, a, b, _ in phases:
            for x in (a, b):
                if x.nvml_j is None:
                    x.nvml_j = sampler.energy_at(x.t)
        rows, failures = [], []
        for name, a, b, pid in phases:
            secs = b.t - a.t
            nvml_j = b.nvml_j - a.nvml_j
            roimon_j = b.roimon_j - a.roimon_j
            if nvml_j > 0:
                err = abs(roimon_j - nvml_j) / nvml_j
            else:
                err = 0.0 if roimon_j == 0 else None
            if err is None or err > THRESHOLD:
                failures.append(
                    f"{name}: roimon booked {roimon_j:.1f} J, NVML counted {nvml_j:.1f} J"
                    + ("" if err is None else f" ({100 * err:.2f} % off, limit {100 * THRESHOLD:g} %)")
                )
            nvml_w = [w for _, w in sampler.window(sampler.nvml_power, a.t, b.t)]
            roimon_w = [w for _, w, _ in sampler.window(sampler.roimon_gauges, a.t, b.t) if w is not None]
            procs = [n for _, _, n in sampler.window(sampler.roimon_gauges, a.t, b.t) if n is not None]
            seen = sorted({p for _, ps in sampler.window(sampler.nvml_pids, a.t, b.t) for p in ps})
            cost = b.cost - a.cost
            facility_j = b.facility_j - a.facility_j
            by_hand = facility_j / 3.6e6 * price if price is not None else None
            row = {
                "name": name,
                "seconds": round(secs, 3),
                "nvml_joules": round(nvml_j, 3),
                "roimon_joules": round(roimon_j, 3),
                "relative_error": None if err is None else round(err, 6),
                "nvml_mean_watts": rnd(mean(nvml_w)),
                "roimon_mean_watts": rnd(mean(roimon_w)),
                "nvml_power_samples": len(nvml_w),
                "roimon_power_samples": len(roimon_w),
                "nvml_counter_mean_watts": rnd(nvml_j / secs if secs > 0 else None),
                "cost": {
                    "roimon": rnd(cost, 8),
                    "roimon_facility_joules": round(facility_j, 3),
                    "facility_joules_times_price": rnd(by_hand, 8),
                    "relative_error": rnd(abs(cost - by_hand) / by_hand if by_hand else None, 6),
                    "gpu_joules_times_pue_times_price": rnd(
                        nvml_j * pue / 3.6e6 * price if price is not None else None, 8
                    ),
                },
                "processes": {
                    "load_pid": pid,
                    "nvml_pids": seen,
                    "roimon_gpu_processes_max": rnd(max(procs) if procs else None),
                    "load_pid_seen_by_nvml": None if pid is None else pid in seen,
                    "load_pid_seen_by_roimon": None if pid is None else pid in logged,
                },
            }
            rows.append(row)
        doc = dict(self.facts)
        doc.update(
            {
                "mode": "fake" if self.fake else "real",
                "nvml_library": os.path.abspath(self.args.nvml_library) if self.fake else None,
                "roimon": self.args.roimon,
                "roimon_version": self.args.roimon_version,
                "sampling_interval_secs": 1.0,
                "threshold": THRESHOLD,
                "price_per_kwh": price,
                "currency": currency,
                "pue": pue,
                "started_at": self.started_at,
                "finished_at": now_utc(),
                "passed": not failures,
                "failures": failures,
                "roimon_logged_pids": sorted(logged),
                "sampler_errors": sampler.errors,
                "phases": rows,
            }
        )
        return doc


def now_utc():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def mean(xs):
    return sum(xs) / len(xs) if xs else None


def rnd(v, digits=3):
    return None if v is None else round(v, digits)


def fmt(v, spec):
    return "n/a" if v is None else format(v, spec)


def table(doc):
    head = "| phase | seconds | NVML J | roimon J | relative error | NVML mean W | roimon mean W |"
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|"]
    for p in doc["phases"]:
        err = p["relative_error"]
        lines.append(
            f"| {p['name']} | {p['seconds']:.1f} | {p['nvml_joules']:.1f} | {p['roimon_joules']:.1f} | "
            f"{'n/a' if err is None else format(100 * err, '.3f') + ' %'} | "
            f"{fmt(p['nvml_mean_watts'], '.1f')} | {fmt(p['roimon_mean_watts'], '.1f')} |"
        )
    return "\n".join(lines)


def markdown(doc):
    mig = {True: "on", False: "off", None: "unknown"}[doc["mig"]]
    limit = doc.get("power_limit_watts")
    out = [
        "# roimon on a real GPU: energy check",
        "",
        f"- GPU: {doc['gpu']} ({doc['gpu_uuid']}), driver {doc['driver']}, "
        f"power limit {fmt(limit, '.0f')} W, MIG {mig}",
        f"- NVML: {'fake, ' + doc['nvml_library'] + ' (the load phases only waited)' if doc['mode'] == 'fake' else 'the driver’s (real load: PyTorch bf16 matrix multiplies)'}",
        f"- roimon {doc['roimon_version'] or ''}: built-in configuration, 1 s sampling; finished {doc['finished_at']}",
        f"- price {fmt(doc['price_per_kwh'], 'g')} {doc['currency'] or ''}/kWh, PUE {doc['pue']:g}",
        f"- verdict: **{'PASS' if doc['passed'] else 'FAIL'}** (every phase's energy within {100 * doc['threshold']:g} % of NVML's counter)",
        "",
        table(doc),
        "",
    ]
    if doc["failures"]:
        out += ["Failures:", ""] + [f"- {f}" for f in doc["failures"]] + [""]
    out += [
        "## Cost per phase",
        "",
        "roimon's energy cost for the GPU against its facility energy × price (the GPU's own "
        "energy plus its share of the host's, × PUE), and against the GPU's NVML energy × PUE × price.",
        "",
        "| phase | roimon cost | facility J × price | relative error | NVML J × PUE × price |",
        "|---|---:|---:|---:|---:|",
    ]
    for p in doc["phases"]:
        c = p["cost"]
        out.append(
            f"| {p['name']} | {fmt(c['roimon'], '.6f')} | {fmt(c['facility_joules_times_price'], '.6f')} | "
            f"{'n/a' if c['relative_error'] is None else format(100 * c['relative_error'], '.3f') + ' %'} | "
            f"{fmt(c['gpu_joules_times_pue_times_price'], '.6f')} |"
        )
    out += [
        "",
        "## Processes",
        "",
        "| phase | load pid | NVML's pids | roimon_gpu_processes (max) | load pid seen by NVML | by roimon |",
        "|---|---:|---|---:|---|---|",
    ]
    yn = {True: "yes", False: "no", None: "-"}
    for p in doc["phases"]:
        pr = p["processes"]
        out.append(
            f"| {p['name']} | {pr['load_pid'] or '-'} | {', '.join(map(str, pr['nvml_pids'])) or '-'} | "
            f"{fmt(pr['roimon_gpu_processes_max'], 'g')} | {yn[pr['load_pid_seen_by_nvml']]} | "
            f"{yn[pr['load_pid_seen_by_roimon']]} |"
        )
    out += [
        "",
        "In a container NVML lists host pids, so the load's own pid may be missing from both "
        "lists while roimon_gpu_processes still counts it.",
    ]
    if doc["sampler_errors"]:
        out += ["", "Sampling errors:", ""] + [f"- {e}" for e in doc["sampler_errors"]]
    return "\n".join(out) + "\n"


def run_main(args):
    os.makedirs(args.out, exist_ok=True)
    check = Check(args)
    doc = check.run()
    with open(os.path.join(args.out, "report.json"), "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    with open(os.path.join(args.out, "report.md"), "w") as f:
        f.write(markdown(doc))
    mig = {True: "on", False: "off", None: "unknown"}[doc["mig"]]
    print(f"{doc['gpu']} ({doc['gpu_uuid']}), driver {doc['driver']}, MIG {mig}, mode {doc['mode']}")
    print(table(doc))
    for f in doc["failures"]:
        print(f"FAIL: {f}")
    print(f"{'PASS' if doc['passed'] else 'FAIL'}: report in {args.out}/report.md and report.json")
    return 0 if doc["passed"] else 1


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="the check (see the module docstring)")
    r.add_argument("--roimon", required=True, help="roimon's base URL, e.g. http://127.0.0.1:9464")
    r.add_argument("--roimon-log", required=True, help="roimon's JSON log file")
    r.add_argument("--roimon-version", default=None)
    r.add_argument("--out", required=True, help="report directory")
    r.add_argument("--nvml-library", default=None, help="a fake NVML: load phases only wait")
    r.add_argument("--gpu-index", type=int, default=0)
    l = sub.add_parser("load", help="the load process")
    l.add_argument("--no-gpu", action="store_true", help="only wait (fake NVML)")
    args = p.parse_args()
    if args.cmd == "load":
        return load_main(args.no_gpu)
    try:
        return run_main(args)
    except CheckError as e:
        print(f"error: {e}", file=sys.stderr)
    except OSError as e:  # roimon stopped answering, or the report cannot be written
        print(f"error: roimon stopped answering, or the report cannot be written: {e}", file=sys.stderr)
    except Exception as e:
        if type(e).__name__.startswith("NVMLError"):
            print(f"error: NVML: {e}", file=sys.stderr)
        else:  # a defect here: still exit 2 (no verdict), never 1
            traceback.print_exc()
    return 2


if __name__ == "__main__":
    sys.exit(main())
