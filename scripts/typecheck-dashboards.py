#!/usr/bin/env python3
"""Type-check the Grafana dashboards against Grafana's own schema types
(@grafana/schema's Dashboard, with TypeScript): every field Grafana knows has
the right type and enum value, required fields are present. Fields the
schema does not model (datasource-specific query fields such as `expr`) are
allowed.

    typecheck-dashboards.py NPM_DIR   (NPM_DIR/node_modules holds typescript
                                       and @grafana/schema)
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# String enums accept their literal values, as JSON spells them; objects may
# carry fields the schema does not model.
PRELUDE = """import type { Dashboard } from "@grafana/schema";
type J<T> = T extends string
  ? T | `${T}`
  : T extends (infer U)[]
    ? J<U>[]
    : T extends object
      ? { [K in keyof T]: J<T[K]> } & { [extra: string]: unknown }
      : T;
export const dashboard: J<Dashboard> = """


def main(argv):
    npm = Path(argv[0]).resolve()
    work = npm / "dashboard-types"
    work.mkdir(exist_ok=True)
    files = []
    for path in sorted((ROOT / "grafana/dashboards").glob("*.json")):
        ts = work / (path.stem + ".ts")
        ts.write_text(PRELUDE + path.read_text() + ";\n")
        files.append(ts.name)
    if not files:
        sys.exit("no dashboards found")
    (work / "tsconfig.json").write_text(
        '{"compilerOptions": {"strict": true, "noEmit": true, "module": "nodenext", '
        '"moduleResolution": "nodenext", "target": "es2022", "skipLibCheck": true}, '
        f'"files": {files!r}}}'.replace("'", '"')
    )
    tsc = npm / "node_modules/typescript/bin/tsc"
    r = subprocess.run(["node", str(tsc), "-p", str(work)], capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stdout + r.stderr)
        sys.exit(f"dashboards do not type-check against @grafana/schema ({work})")
    print(f"{len(files)} dashboards type-check against @grafana/schema: {', '.join(files)}")


if __name__ == "__main__":
    main(sys.argv[1:])
