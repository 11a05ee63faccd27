"""A small YAML writer for the generated rule files and manifests.

Only what the mixin emits: mappings, sequences, strings, numbers, booleans
and null. Multi-line strings become literal blocks (`|`), strings marked
`Folded` become folded blocks (`>-`, one logical line wrapped for reading),
other strings are written plain when YAML reads them back unchanged and
double-quoted otherwise. Comments come from `Commented` mapping entries.
"""

import json
import re


class Folded(str):
    """A one-line string written as a folded block scalar (`>-`)."""


class Commented:
    """A value with comment lines written above its key."""

    def __init__(self, comment, value):
        self.comment = comment
        self.value = value


_PLAIN = re.compile(r"^[A-Za-z_/.][A-Za-z0-9_ ./:()+,=<>%\[\]{}\"*~!-]*$")
_RESERVED = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


def scalar(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return json.dumps(v)
    s = str(v)
    if (
        _PLAIN.match(s)
        and s.lower() not in _RESERVED
        and not s.endswith((" ", ":"))
        and ": " not in s
        and " #" not in s
    ):
        return s
    return json.dumps(s, ensure_ascii=False)


def _block(s, indent, style):
    pad = " " * indent
    if style == ">-":
        assert "\n" not in s and "  " not in s and s == s.strip(), repr(s)
        words, lines, line = s.split(" "), [], ""
        for w in words:
            if line and len(line) + 1 + len(w) > 88 - indent:
                lines.append(line)
                line = w
            else:
                line = f"{line} {w}" if line else w
        lines.append(line)
        return ">-\n" + "\n".join(pad + ln for ln in lines)
    body = s[:-1] if s.endswith("\n") else s
    head = "|" if s.endswith("\n") else "|-"
    return head + "\n" + "\n".join((pad + ln) if ln else "" for ln in body.split("\n"))


def _value(v, indent):
    """Text after `key:` or `- ` for a scalar, or None for a collection."""
    if isinstance(v, Folded):
        return " " + _block(str(v), indent, ">-")
    if isinstance(v, str) and "\n" in v:
        return " " + _block(v, indent, "|")
    if isinstance(v, (dict, list)):
        if not v:
            return " {}" if isinstance(v, dict) else " []"
        return None
    return " " + scalar(v)


def _comment(text, indent):
    return [(" " * indent + "# " + ln).rstrip() for ln in text.strip("\n").split("\n")]


def _emit(v, indent, out):
    pad = " " * indent
    if isinstance(v, dict):
        for k, item in v.items():
            if isinstance(item, Commented):
                out.extend(_comment(item.comment, indent))
                item = item.value
            text = _value(item, indent + 2)
            if text is not None:
                out.append(f"{pad}{scalar(k)}:{text}")
            else:
                out.append(f"{pad}{scalar(k)}:")
                _emit(item, indent + 2 if isinstance(item, dict) else indent + 2, out)
    elif isinstance(v, list):
        for item in v:
            if isinstance(item, Commented):
                out.extend(_comment(item.comment, indent))
                item = item.value
            text = _value(item, indent + 2)
            if text is not None:
                out.append(f"{pad}-{text}")
            elif isinstance(item, dict):
                sub = []
                _emit(item, indent + 2, sub)
                # the first line of the mapping shares the dash
                first = sub[0]
                while first.lstrip().startswith("#"):
                    out.append(first)
                    sub.pop(0)
                    first = sub[0]
                out.append(f"{pad}- {first[indent + 2:]}")
                out.extend(sub[1:])
            else:
                out.append(f"{pad}-")
                _emit(item, indent + 2, out)
    else:
        raise TypeError(v)


def dump(doc, header=""):
    out = _comment(header, 0) if header else []
    _emit(doc, 0, out)
    return "\n".join(out) + "\n"
