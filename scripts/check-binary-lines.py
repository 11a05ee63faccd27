#!/usr/bin/env python3
"""Fail if the roimon binary crate holds more than 1,500 lines of non-test code.

The binary is the command line and the wiring (ARCHITECTURE.md, "Crate map"):
behaviour lives in the library crates, where it is tested and compiled apart.
This counts, in every `.rs` file under crates/roimon/src, the lines that are
not blank and not test code: items under `#[cfg(test)]` (a `mod tests { … }`
block, a test-only `fn` or `use`) and files in a `tests` folder or named
`tests.rs` are left out. Comments and doc comments count: they are part of
what a reader of the binary reads. Integration tests (crates/roimon/tests/)
are not under src and are not counted.

Uses the comment and string stripping of check-module-cycles.py, so a brace
in a string or comment does not end a test block early.

Needs only Python 3. Usage: scripts/check-binary-lines.py [limit]
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

LIMIT = 1500

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("cycles", HERE / "check-module-cycles.py")
assert _spec is not None and _spec.loader is not None
cycles = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cycles)


def non_test_lines(text: str) -> int:
    code = cycles.strip(text)
    spans = cycles.test_spans(code)
    count, offset = 0, 0
    for line in text.split("\n"):
        start, end = offset, offset + len(line)
        offset = end + 1
        if not line.strip():
            continue
        if any(s <= start and end <= e for s, e in spans):
            continue
        count += 1
    return count


def main() -> int:
    limit = int(sys.argv[1]) if len(sys.argv) > 1 else LIMIT
    src = HERE.parent / "crates" / "roimon" / "src"
    per_file = []
    for f in sorted(src.rglob("*.rs")):
        if cycles.is_test_file(src, f):
            continue
        per_file.append((non_test_lines(f.read_text(encoding="utf-8")), f.relative_to(src)))
    total = sum(n for n, _ in per_file)
    if total > limit:
        print(
            f"the binary crate has {total} non-test lines, over the limit of {limit}: move "
            f"behaviour into the library crate it belongs to (ARCHITECTURE.md, crate map)",
            file=sys.stderr,
        )
        for n, f in sorted(per_file, reverse=True):
            print(f"  {n:6} crates/roimon/src/{f}", file=sys.stderr)
        return 1
    print(f"binary lines ok: {total} non-test lines of at most {limit}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
