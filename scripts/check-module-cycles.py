#!/usr/bin/env python3
"""Fail if the top-level modules of any crate import each other in a cycle.

For every crate under crates/ (and the system tests crate, tests/), build the
graph of edges between its top-level modules (a file `src/X.rs` or a folder
`src/X/`) from the paths in non-test code that name another one:
`use crate::X…`, `crate::X::…` in expressions, `use crate::{X, Y::…}`, and
`super::X` where `super` reaches the crate root. Test code is left out:
items under `#[cfg(test)]` (a `mod tests { … }` block, a test-only `fn` or
`use`) and every file in a `tests` folder or named `tests.rs`. Comments and
string literals are ignored.

A cycle (A uses B and B, directly or through others, uses A) fails the check
with the modules in order and the file and line of each edge. ARCHITECTURE.md,
"Invariants", says why: a module that publishes does not know who reads.

Needs only Python 3. Usage: scripts/check-module-cycles.py [crate dir...]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

# Edges a cycle may keep for now, as (crate folder, from module, to module),
# each with the reason it is allowed. Shrink it; never add to it to get a
# change through. An entry that no longer matches is reported (not an error:
# remove it).
ALLOWED: dict[tuple[str, str, str], str] = {}

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


LITERAL = re.compile(
    r"//[^\n]*"  # line comment (doc comments too)
    r"|/\*"  # block comment start (nested ones are followed by hand)
    r'|(?<!\w)b?r(?P<hashes>#*)".*?"(?P=hashes)'  # raw string
    r'|(?<!\w)b?"(?:\\.|[^"\\])*"'  # string
    r"|(?<!\w)b?'(?:\\(?:u\{[0-9a-fA-F]+\}|x[0-9a-fA-F]{2}|.)|[^\\'\n])'",  # char
    re.DOTALL,
)


def blank(s: str) -> str:
    return re.sub(r"[^\n]", " ", s)


def strip(text: str) -> str:
    """Blank out comments, string and char literals; keep offsets and lines."""
    out, i, n = [], 0, len(text)
    while (m := LITERAL.search(text, i)) is not None:
        out.append(text[i : m.start()])
        end = m.end()
        if m.group(0) == "/*":
            depth = 1
            while end < n and depth:
                if text.startswith("/*", end):
                    depth, end = depth + 1, end + 2
                elif text.startswith("*/", end):
                    depth, end = depth - 1, end + 2
                else:
                    end += 1
        out.append(blank(text[m.start() : end]))
        i = end
    out.append(text[i:])
    return "".join(out)


def block_end(code: str, open_brace: int) -> int:
    """Index just past the brace matching the one at `open_brace`."""
    depth = 0
    for j in range(open_brace, len(code)):
        if code[j] == "{":
            depth += 1
        elif code[j] == "}":
            depth -= 1
            if depth == 0:
                return j + 1
    return len(code)


CFG_TEST = re.compile(r"#\s*\[\s*cfg\s*\(\s*test\s*\)\s*\]")
ATTR = re.compile(r"\s*#\s*\[")


def test_spans(code: str) -> list[tuple[int, int]]:
    """(start, end) of every item under `#[cfg(test)]` (to its `;` or its
    closing brace) in code whose comments and literals are blanked."""
    spans, i = [], 0
    while (m := CFG_TEST.search(code, i)) is not None:
        j = m.end()
        # Further attributes on the same item.
        while (a := ATTR.match(code, j)) is not None:
            depth, k = 0, a.end() - 1
            while k < len(code):
                if code[k] == "[":
                    depth += 1
                elif code[k] == "]":
                    depth -= 1
                    if depth == 0:
                        break
                k += 1
            j = k + 1
        semi, brace = code.find(";", j), code.find("{", j)
        if brace >= 0 and (semi < 0 or brace < semi):
            end = block_end(code, brace)
        else:
            end = len(code) if semi < 0 else semi + 1
        spans.append((m.start(), end))
        i = end
    return spans


def drop_test_items(code: str) -> str:
    """Blank every item under `#[cfg(test)]` (to its `;` or its closing brace)."""
    for start, end in test_spans(code):
        code = code[:start] + blank(code[start:end]) + code[end:]
    return code


def top_level_modules(src: Path) -> set[str]:
    mods = set()
    for p in src.iterdir():
        if p.is_file() and p.suffix == ".rs" and p.stem not in ("lib", "main"):
            mods.add(p.stem)
        elif p.is_dir() and p.name != "bin" and any(p.rglob("*.rs")):
            mods.add(p.name)
    return mods


def module_of(src: Path, f: Path) -> tuple[str | None, int]:
    """The file's top-level module (None for the crate root) and its depth."""
    rel = f.relative_to(src).parts
    if len(rel) == 1:
        stem = Path(rel[0]).stem
        return (None, 0) if stem in ("lib", "main") else (stem, 1)
    depth = len(rel) - (1 if rel[-1] == "mod.rs" else 0)
    return rel[0], depth


def is_test_file(src: Path, f: Path) -> bool:
    parts = f.relative_to(src).parts
    return "tests" in parts[:-1] or parts[-1] == "tests.rs" or parts[0] == "bin"


def inline_mod_ranges(code: str) -> list[tuple[int, int]]:
    return [
        (m.end() - 1, block_end(code, m.end() - 1))
        for m in re.finditer(rf"\bmod\s+{IDENT}\s*\{{", code)
    ]


def group_heads(code: str, open_brace: int) -> list[str]:
    """The first name of each element of a `{a, b::c, d::{…}}` use group."""
    inner = code[open_brace + 1 : block_end(code, open_brace) - 1]
    heads, depth, cur = [], 0, ""
    for c in inner + ",":
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        if c == "," and depth == 0:
            m = re.match(rf"\s*({IDENT})", cur)
            if m:
                heads.append(m.group(1))
            cur = ""
        else:
            cur += c
    return heads


PATH = re.compile(rf"(?<![\w$:])(crate|(?:super\s*::\s*)+)\s*(?:::\s*)?(\{{|{IDENT})")


def edges_of(src: Path, f: Path, mods: set[str]) -> list[tuple[str, str, int]]:
    """(from, to, line) for every reference from this file to another top-level module."""
    me, depth = module_of(src, f)
    if me is None:
        return []
    code = drop_test_items(strip(f.read_text(encoding="utf-8")))
    inline = inline_mod_ranges(code)
    found = []
    for m in PATH.finditer(code):
        head, what = m.group(1), m.group(2)
        if head == "crate":
            if not re.match(r"crate\s*::", code[m.start() : m.end()]):
                continue  # `pub(crate)`, `crate` alone
            reaches_root = True
        else:
            here = depth + sum(1 for a, b in inline if a < m.start() < b)
            reaches_root = head.count("super") == here
        if not reaches_root:
            continue
        names = group_heads(code, m.end() - 1) if what == "{" else [what]
        line = code.count("\n", 0, m.start()) + 1
        for name in names:
            if name in mods and name != me:
                found.append((me, name, line))
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, …, a], or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(v: str) -> list[str] | None:
        state[v] = 1
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if state.get(w) == 1:
                return stack[stack.index(w) :] + [w]
            if w not in state:
                c = visit(w)
                if c:
                    return c
        stack.pop()
        state[v] = 2
        return None

    for v in sorted(graph):
        if v not in state:
            c = visit(v)
            if c:
                return c
    return None


USED: set[tuple[str, str, str]] = set()


def show(p: Path, root: Path) -> str:
    return str(p.relative_to(root)) if p.is_relative_to(root) else str(p)


def check_crate(crate: Path, root: Path) -> list[str]:
    src = crate / "src"
    if not src.is_dir():
        return []
    mods = top_level_modules(src)
    where: dict[tuple[str, str], str] = {}
    graph: dict[str, set[str]] = {}
    for f in sorted(src.rglob("*.rs")):
        if is_test_file(src, f):
            continue
        for a, b, line in edges_of(src, f, mods):
            if (crate.name, a, b) in ALLOWED:
                USED.add((crate.name, a, b))
                continue
            graph.setdefault(a, set()).add(b)
            where.setdefault((a, b), f"{show(f, root)}:{line}")
    errors = []
    # Report every cycle: remove one edge of each found and look again.
    while (cycle := find_cycle(graph)) is not None:
        steps = [
            f"    {a} -> {b}   ({where[(a, b)]})" for a, b in zip(cycle, cycle[1:])
        ]
        errors.append(
            f"module cycle in {show(crate, root)}: {' -> '.join(cycle)}\n" + "\n".join(steps)
        )
        graph[cycle[0]].discard(cycle[1])
    return errors


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    if len(sys.argv) > 1:
        crates = [Path(a).resolve() for a in sys.argv[1:]]
    else:
        crates = sorted(p for p in (root / "crates").iterdir() if p.is_dir())
        crates.append(root / "tests")
    errors = []
    for crate in crates:
        errors += check_crate(crate, root)
    for name, a, b in sorted(ALLOWED.keys() - USED):
        if any(c.name == name for c in crates):
            print(
                f"note: allowed edge {name}: {a} -> {b} is gone; remove it from ALLOWED in {Path(__file__).name}",
                file=sys.stderr,
            )
    if errors:
        print("\n".join(errors), file=sys.stderr)
        print(
            "\nBreak the cycle: move what both sides need into a module that imports "
            "neither (see ARCHITECTURE.md, Invariants).",
            file=sys.stderr,
        )
        return 1
    print(f"no module cycles in {len(crates)} crates")
    return 0


if __name__ == "__main__":
    sys.exit(main())
