#!/usr/bin/env python3
"""Run the roimon command line of a rendered DaemonSet with a real roimon
binary: the chart's command, flags and config must start the daemon. Paths
inside the pod are mapped to temporary ones (config, state dir, web config), the listen
address to a free loopback port; the daemon must answer /healthz and /readyz
and stop with exit 0 on SIGTERM.

    run-chart-command.py RENDERED.yaml ROIMON_BINARY
"""

import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml


def main(rendered, binary):
    docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
    ds = next(d for d in docs if d["kind"] == "DaemonSet")
    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    c = next(c for c in ds["spec"]["template"]["spec"]["containers"] if c["name"] == "roimon")
    argv = c["command"] + c.get("args", [])
    assert argv[0] == "/usr/local/bin/roimon", argv
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp, "roimon.toml")
        config.write_text(cm["data"]["roimon.toml"])
        # With webConfig: an exporter-toolkit web config without TLS or
        # users (an empty mapping), so the plain HTTP probes below still work.
        web = Path(tmp, "web-config.yml")
        web.write_text("{}\n")
        mapping = {
            "/etc/roimon/web/web-config.yml": str(web),
            "/usr/local/bin/roimon": binary,
            "/etc/roimon/roimon.toml": str(config),
            "/var/lib/roimon": str(Path(tmp, "state")),
            f"0.0.0.0:{c['ports'][0]['containerPort']}": f"127.0.0.1:{port}",
        }
        run = [mapping.get(a, a) for a in argv]
        unmapped = [a for a in run if a.startswith("/") and a not in mapping.values()]
        if unmapped:
            sys.exit(f"{rendered}: paths in the command line this check cannot map: {unmapped}")
        print("running:", " ".join(run))
        env = {"PATH": "/usr/bin:/bin", "ROIMON_NVML_LIBRARY": "/nonexistent/libnvidia-ml.so.1"}
        proc = subprocess.Popen(run, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        try:
            ready = False
            for _ in range(100):
                if proc.poll() is not None:
                    break
                try:
                    for path in ("/healthz", "/readyz"):
                        urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1).read()
                    ready = True
                    break
                except OSError:
                    time.sleep(0.1)
            if not ready:
                proc.kill()
                out = proc.communicate()[0]
                sys.exit(f"the chart's command line did not start a ready roimon:\n{out}")
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=30)
            out = proc.stdout.read()
            if code != 0:
                sys.exit(f"roimon exited {code} on SIGTERM:\n{out}")
        finally:
            if proc.poll() is None:
                proc.kill()
    print(f"the chart's command line starts roimon (healthz, readyz) and stops it cleanly")


if __name__ == "__main__":
    main(*sys.argv[1:])
