"""Error signatures: a failure's shape without the details that differ between runs.

Two failures are "the same" when they raise the same exception type, with the same message
once numbers, quoted values and paths are blanked out, through the same chain of function
names. That is what the circuit breaker counts and what failure memory is searched by: a
signature recalls the fix that worked last time even in another project, because it keeps
no path, line number or value.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

# "  File "/x/y.py", line 12, in parse"    (a Python traceback)
_PY_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line \d+, in (?P<func>\S+)', re.M)
# "tests/test_calc.py:14: in test_sub"    (pytest --tb=short)
_PYTEST_FRAME = re.compile(r"^(?P<file>[^\s:]+\.py):\d+: in (?P<func>\S+)", re.M)
# "E   AssertionError: assert 7 == 3"      (pytest's failure lines)
_PYTEST_E = re.compile(r"^E\s+(?P<text>.+)$", re.M)
_EXCEPTION = re.compile(r"^(?P<type>[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning|"
                        r"Failure|Iteration))(?::\s*(?P<message>.*))?$")
_NOISE = [
    (re.compile(r"0x[0-9a-fA-F]+"), "<ADDR>"),
    (re.compile(r"(?:[A-Za-z]:)?(?:/[\w.\-]+)+/?"), "<PATH>"),
    (re.compile(r"'[^']*'|\"[^\"]*\""), "<STR>"),
    (re.compile(r"(?<![\w<])-?\d+(?:\.\d+)?(?:e[+-]?\d+)?(?![\w>])"), "<N>"),
    (re.compile(r"\s+"), " "),
]
MAX_FRAMES = 6


@dataclass(frozen=True)
class Signature:
    exception: str
    message: str
    frames: tuple[str, ...]

    @property
    def text(self) -> str:
        """The form stored and embedded for failure memory."""
        chain = " > ".join(self.frames) or "(no frames)"
        return f"{self.exception}: {self.message}\nframes: {chain}"

    @property
    def key(self) -> str:
        """A short, stable id: equal for the same failure in any project or run."""
        return hashlib.sha256(self.text.encode()).hexdigest()[:16]


def template(message: str) -> str:
    """The message with numbers, strings, paths and addresses blanked out."""
    out = message.strip()
    for pattern, repl in _NOISE:
        out = pattern.sub(repl, out)
    return out.strip()[:300]


def _frames(text: str) -> tuple[str, ...]:
    found = [(m.start(), m.group("func")) for m in _PY_FRAME.finditer(text)]
    found += [(m.start(), m.group("func")) for m in _PYTEST_FRAME.finditer(text)]
    names = [func for _, func in sorted(found) if func != "<module>"]
    deduped: list[str] = []
    for name in names:
        if not deduped or deduped[-1] != name:
            deduped.append(name)
    return tuple(deduped[-MAX_FRAMES:])


def _last_exception(text: str) -> tuple[str, str] | None:
    """pytest's first ``E`` line that names an exception (or a bare ``assert``), else the
    last exception line of a plain traceback."""
    for m in _PYTEST_E.finditer(text):
        line = m.group("text").strip()
        if line.startswith("assert "):
            return "AssertionError", line
        match = _EXCEPTION.match(line)
        if match:
            return match.group("type").rsplit(".", 1)[-1], match.group("message") or ""
    best: tuple[str, str] | None = None
    for line in text.splitlines():
        match = _EXCEPTION.match(line.strip())
        if match:
            best = (match.group("type").rsplit(".", 1)[-1], match.group("message") or "")
    return best


def signature_of(output: str) -> Signature | None:
    """The signature of the last error in a traceback or pytest report, if there is one."""
    found = _last_exception(output)
    if found is None:
        return None
    exception, message = found
    return Signature(exception, template(message), _frames(output))
