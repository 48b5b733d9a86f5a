"""The edit format: whole files as fenced code blocks, each under a ``FILE:`` line.

Code inside JSON strings has to escape every newline and quote; a 1.5B model gets that
wrong often enough (raw control characters, unbalanced quotes) that an edit took three
tries and still failed. Coder models are trained to write fenced blocks, so the edit is
asked for as markdown and read back by this parser, which is tolerant of the ways a model
names the file (``FILE: a.py``, ``### a.py``, ``**a.py**``, a ``# a.py`` first line) and
strict about what it returns: a path and the complete content of each file.
"""

from __future__ import annotations

import re

from smallhold.apps.code.errors import EditFormatError
from smallhold.apps.code.models import Edit, FileChange

_PLACEHOLDER = "<every line of the new"
EXAMPLE_PATH = "pkg/module.py"  # the path in the instructions' example (small models copy it)
# Shown by example: told in words only ("a fenced code block holding the complete new
# content"), the 1.5B answered some repo tasks with `obj['coerce']` as the whole file, on
# every try and at temperature 0; with the example it writes the file.
INSTRUCTIONS = (
    "For each file to change, write a line `FILE: <path>` and then the whole new file in a "
    f"fenced code block, like this:\nFILE: {EXAMPLE_PATH}\n```python\n" + _PLACEHOLDER +
    f" {EXAMPLE_PATH}>\n```\nWrite the complete files, not diffs and no ellipsis; nothing else.")

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)$")
_PATH = r"(?P<path>[\w.\-/]+\.[\w]+|[\w.\-/]*(?:Makefile|Dockerfile|LICENSE))"
_HEADERS = [
    re.compile(rf"^\s*(?:[-*]|\d+[.)])?\s*(?:FILE|File|file|Path|path)\s*:\s*`?{_PATH}`?\s*$"),
    re.compile(rf"^\s*#+\s*`?{_PATH}`?\s*:?\s*$"),
    re.compile(rf"^\s*\*\*`?{_PATH}`?\*\*\s*:?\s*$"),
    re.compile(rf"^\s*`{_PATH}`\s*:?\s*$"),
    re.compile(rf"^\s*{_PATH}\s*:\s*$"),
]
# prose naming the file right above its block ("Corrected solution.py", "Here is the new
# calc.py:"): only a short line, and only for a block in that file's language
_LEAD_IN = re.compile(rf"^[^`\n]{{0,60}}?\s`?{_PATH}`?\s*:?\s*$")
_LANGUAGES = {"py": {"python", "py", "python3"}}
_FIRST_LINE = re.compile(rf"^\s*(?:#|//)\s*(?:file(?:name)?\s*:\s*)?{_PATH}\s*$", re.I)
_INFO_PATH = re.compile(rf"^(?:\w+[ \t:]+)?{_PATH}$")


def _header_path(line: str) -> str | None:
    for pattern in _HEADERS:
        found = pattern.match(line)
        if found:
            return found.group("path")
    return None


def _lead_in_path(line: str, info: str) -> str | None:
    """The path a short line of prose right above a block names, if the block's info
    string fits that file (a ```bash block under "run tests/test_x.py" is no edit of it)."""
    found = _LEAD_IN.match(line)
    if found is None:
        return None
    path = found.group("path")
    extension = path.rsplit(".", 1)[-1] if "." in path else ""
    language = info.split()[0].lower() if info.split() else ""
    return path if language in {"", extension, *_LANGUAGES.get(extension, ())} else None


def _blocks(text: str) -> list[tuple[str | None, str, list[str]]]:
    """(path named above the block or None, info string, body lines) for each block."""
    lines = text.splitlines()
    found: list[tuple[str | None, str, list[str]]] = []
    pending: str | None = None
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            header = _header_path(lines[i])
            if header is not None:  # prose between a header and its block keeps it
                pending = header
            i += 1
            continue
        fence, indent = opening.group("fence"), opening.group("indent")
        start = i
        body: list[str] = []
        i += 1
        closed = False
        while i < len(lines):
            closing = _FENCE.match(lines[i])
            if closing and closing.group("fence").startswith(fence[0]) and \
                    len(closing.group("fence")) >= len(fence) and not closing.group("info"):
                closed = True
                break
            line = lines[i]
            body.append(line[len(indent):] if indent and line.startswith(indent) else line)
            i += 1
        if not closed:
            raise EditFormatError("a code block was opened but never closed with ```; "
                                  "close every block")
        info = opening.group("info").strip()
        if pending is None and start > 0:
            pending = _lead_in_path(lines[start - 1], info)
        found.append((pending, info, body))
        pending = None
        i += 1
    return found


def parse_edit(text: str) -> Edit:
    """The files a reply in the edit format changes; raises :class:`EditFormatError`."""
    changes: dict[str, str] = {}
    unnamed = 0
    for named, info, body in _blocks(text):
        path = named
        if path is None and info:
            in_info = _INFO_PATH.match(info)
            path = in_info.group("path") if in_info else None
        if path is None and body:
            first = _FIRST_LINE.match(body[0])
            if first:
                path, body = first.group("path"), body[1:]
        if path is None:
            unnamed += 1
            continue
        content = "\n".join(body).strip("\n") + "\n"
        if content.startswith(_PLACEHOLDER):  # the instructions' example copied back
            continue
        changes[path.removeprefix("./")] = content
    if not changes:
        if unnamed:
            raise EditFormatError(f"{unnamed} code block(s) but no file names; put a line "
                                  "`FILE: <path>` right above each block")
        raise EditFormatError("no code block found; give each file as `FILE: <path>` and a "
                              "fenced code block with its complete content")
    if len(changes) > 5:
        raise EditFormatError(f"{len(changes)} files in one edit; change at most 5")
    return Edit(changes=[FileChange(path=p, content=c) for p, c in changes.items()])


def render_edit(edit: Edit) -> str:
    """An edit in the format :func:`parse_edit` reads (for replies kept in a conversation)."""
    return "\n\n".join(f"FILE: {c.path}\n```\n{c.content.rstrip(chr(10))}\n```"
                       for c in edit.changes)
