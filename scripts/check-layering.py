#!/usr/bin/env python3
"""Fail if a roimon crate depends on a roimon crate its layer may not use.

The table below is the "may depend on" column of the crate map in
ARCHITECTURE.md, for the workspace's own crates: each roimon crate and the
roimon crates it may use as normal dependencies (dev-dependencies and build
dependencies are not checked). A workspace crate missing from the table fails
the check: add its row here and in ARCHITECTURE.md. A crate in the table but
not in the workspace is fine (it may be on its way in).

Reads `cargo metadata --no-deps` (no build, no network). Needs Python 3 and
cargo. Usage: scripts/check-layering.py
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ALLOWED: dict[str, set[str]] = {
    "roimon-core": set(),
    "roimon-collect-gpu": {"roimon-core"},
    "roimon-collect-host": {"roimon-core"},
    "roimon-export-prometheus": {"roimon-core"},
    "roimon-price": {"roimon-core"},
    "roimon-value": {"roimon-core"},
    "roimon-http": set(),
    "roimon-ledger": {"roimon-core"},
    "roimon-influx": {"roimon-core"},
    "roimon-config": {"roimon-core", "roimon-value", "roimon-price", "roimon-ledger"},
    "roimon-attribution": {"roimon-core", "roimon-config"},
    "roimon-planner": set(),
    "roimon-daemon": {
        "roimon-core",
        "roimon-attribution",
        "roimon-config",
        "roimon-export-prometheus",
        "roimon-http",
        "roimon-influx",
        "roimon-ledger",
        "roimon-value",
    },
    "roimon-feeds": {
        "roimon-core",
        "roimon-attribution",
        "roimon-config",
        "roimon-daemon",
        "roimon-http",
        "roimon-price",
        "roimon-value",
    },
    "roimon-commands": {
        "roimon-core",
        "roimon-config",
        "roimon-daemon",
        "roimon-feeds",
        "roimon-ledger",
        "roimon-planner",
        "roimon-price",
    },
    "roimon-server": {
        "roimon-core",
        "roimon-commands",
        "roimon-config",
        "roimon-daemon",
        "roimon-export-prometheus",
        "roimon-http",
        "roimon-ledger",
        "roimon-planner",
        "roimon-value",
    },
    "roimon-fake-nvml": set(),
    "roimon-system-tests": set(),
    "roimon": {
        "roimon-core",
        "roimon-collect-gpu",
        "roimon-collect-host",
        "roimon-export-prometheus",
        "roimon-price",
        "roimon-value",
        "roimon-http",
        "roimon-ledger",
        "roimon-influx",
        "roimon-config",
        "roimon-attribution",
        "roimon-planner",
        "roimon-daemon",
        "roimon-feeds",
        "roimon-commands",
        "roimon-server",
    },
}


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps", "--offline"],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    meta = json.loads(out)
    members = set(meta["workspace_members"])
    crates = [p for p in meta["packages"] if p["id"] in members]
    ours = {p["name"] for p in crates}
    errors = []
    for p in sorted(crates, key=lambda p: p["name"]):
        name = p["name"]
        if name not in ALLOWED:
            errors.append(
                f"{name}: not in the layering table; add its row (the roimon crates it may "
                f"depend on) to ALLOWED in scripts/check-layering.py and to the crate map "
                f"in ARCHITECTURE.md"
            )
            continue
        for d in p["dependencies"]:
            if d["kind"] is not None or d["name"] not in ours:
                continue  # dev/build dependency, or not a workspace crate
            if d["name"] not in ALLOWED[name]:
                may = ", ".join(sorted(ALLOWED[name])) or "no roimon crate"
                errors.append(
                    f"{name} must not depend on {d['name']} (ARCHITECTURE.md, crate map: "
                    f"{name} may depend on {may})"
                )
    # The table mirrors ARCHITECTURE.md: every crate of the workspace has a row there.
    arch = (root / "ARCHITECTURE.md").read_text(encoding="utf-8")
    rows = set(re.findall(r"^\| `([a-z0-9-]+)`", arch, re.MULTILINE))
    for name in sorted(ours - rows):
        errors.append(f"{name}: no row in ARCHITECTURE.md's crate map")
    if errors:
        print("\n".join(errors), file=sys.stderr)
        return 1
    print(f"layering ok: {len(crates)} crates")
    return 0


if __name__ == "__main__":
    sys.exit(main())
