#!/usr/bin/env python3
"""Every alert of the mixin has a promtool unit test in which it fires and
one in which it must not (an `exp_alerts: []` case), every alert has a
runbook section, and every runbook_url anchor exists in docs/runbooks.md.
Text checks only: promtool itself runs the tests (scripts/check-rules.sh).
"""

import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import rules  # noqa: E402

ROOT = HERE.parent.parent


def main():
    alerts = [r for g in rules.all_groups() for r in g["rules"] if "alert" in r]
    tests = "".join(p.read_text() for p in sorted((ROOT / "deploy/prometheus/rules/tests").glob("*.yml")))
    # alertname: X followed (before the next alertname) by exp_alerts: [] or a list
    cases = re.findall(r"alertname: (\w+)\n\s+eval_time: \S+\n\s+exp_alerts:( \[\])?", tests)
    runbooks = (ROOT / "docs/runbooks.md").read_text()
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
        for h in re.findall(r"^#+ (.+)$", runbooks, re.M)
    }
    errors = []
    for a in alerts:
        name = a["alert"]
        fires = any(n == name and not empty for n, empty in cases)
        quiet = any(n == name and empty for n, empty in cases)
        if not fires:
            errors.append(f"{name}: no test case in which it fires")
        if not quiet:
            errors.append(f"{name}: no test case in which it must not fire (exp_alerts: [])")
        anchor = a["annotations"]["runbook_url"].rsplit("#", 1)[1]
        if anchor not in anchors:
            errors.append(f"{name}: docs/runbooks.md has no section #{anchor}")
        for key in ("summary", "description", "runbook_url"):
            if not str(a["annotations"].get(key, "")).strip():
                errors.append(f"{name}: no {key}")
        if a["labels"].get("severity") not in ("info", "warning", "critical"):
            errors.append(f"{name}: severity must be info, warning or critical")
    for e in errors:
        print(e, file=sys.stderr)
    print(f"{len(alerts)} alerts: each fires in a test, stays quiet in one, has a runbook section")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
