"""What a failing test run shows, put the way a person fixing the code would read it.

A small model handed a 3,000-character pytest tail restates the task instead of reading the
failure: one reflection blamed the return type where the test showed two values in the wrong
order. This reads the first failures of a ``--tb=short`` report and says, for each, which
check failed, what the code returned against what the test expects (from pytest's assertion
rewriting: ``assert (5, 4) == (4, 5)`` under ``assert f(x) == (4, 5)``), or which line of the
project raised what. Pure text in, text out; the raw tail still goes along for what this
does not recognise.
"""

from __future__ import annotations

import ast
import builtins
import re
from dataclasses import dataclass

_HEADER = re.compile(r"^_{3,} (?P<name>.+?) _{3,}$", re.M)
_SECTION = re.compile(r"^={3,} (?P<name>[^=]+?) ={3,}$", re.M)
_FRAME = re.compile(r"^(?P<file>[^\s:][^:]*\.py):(?P<line>\d+): in (?P<func>\S+)$")
_E = re.compile(r"^E\s?(?P<text>.*)$")
_BUILTINS = frozenset(dir(builtins))
MAX_FAILURES = 2
MAX_E_LINES = 6
STDERR_LINES = 2
VALUE_CHARS = 300


@dataclass(frozen=True)
class Frame:
    file: str
    line: int
    func: str
    code: str


@dataclass(frozen=True)
class Failure:
    """One failing test as ``--tb=short`` reports it."""

    test: str
    frames: tuple[Frame, ...]
    errors: tuple[str, ...]  # the E lines, without the "E"
    stderr: tuple[str, ...] = ()  # the last lines the test wrote to stderr

    def explain(self) -> str:
        lines = [f"Failing test: {self.test}"]
        call = self.frames[0] if self.frames else None
        if call is not None:
            lines.append(f"  {call.file}:{call.line}:  {call.code}")
        compared = _compared(call.code if call else "", self.errors[0] if self.errors else "")
        if compared is not None:
            expression, got, expected = compared
            lines.append(f"  {expression} returned {got}; the test expects {expected}.")
        elif len(self.frames) > 1:
            # the deepest frame in the project (pytest names those relative to its root);
            # argparse's sys.exit says less than the project line that called it
            own = [f for f in self.frames[1:] if not f.file.startswith("/")]
            last = (own or list(self.frames))[-1]
            raised = next((e for e in self.errors if e.strip()), "an error")
            lines.append(f"  raised in {last.file}:{last.line} ({last.func}):  {last.code}")
            lines.append(f"  {raised.strip()}")
        else:
            lines += [f"  {e.rstrip()}" for e in self.errors[:MAX_E_LINES] if e.strip()]
        if self.stderr:
            lines.append("  it wrote to stderr: " + " / ".join(self.stderr))
        return "\n".join(lines)


def _clip(text: str) -> str:
    return text if len(text) <= VALUE_CHARS else text[:VALUE_CHARS] + "..."


def _computed(node: ast.expr) -> bool:
    """Whether ``node`` calls the project's code: a call of anything but a builtin
    (``set((3,))`` is a literal written long-hand, ``set(f(x))`` is computed)."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call) and not (isinstance(sub.func, ast.Name)
                                              and sub.func.id in _BUILTINS):
            return True
    return False


def _compared(code: str, error: str) -> tuple[str, str, str] | None:
    """(the checked expression, what it gave, what the test wants) for an
    ``assert CALL == EXPECTED`` (or ``is``) line whose failure pytest spelled out as
    ``assert A == B``."""
    try:
        source = ast.parse(code.strip()).body[0]
        shown = ast.parse(error.strip().removeprefix("AssertionError: ")).body[0]
    except (SyntaxError, IndexError, ValueError):
        return None
    if not (isinstance(source, ast.Assert) and isinstance(shown, ast.Assert)):
        return None
    test, values = source.test, shown.test
    same = (ast.Eq, ast.Is)  # `x is False` says as much as `x == 4`: what was expected
    if not (isinstance(test, ast.Compare) and isinstance(values, ast.Compare)
            and len(test.ops) == 1 and isinstance(test.ops[0], same)
            and len(values.ops) == 1 and type(values.ops[0]) is type(test.ops[0])):
        return None
    left_calls, right_calls = _computed(test.left), _computed(test.comparators[0])
    if left_calls == right_calls:  # both or neither side computed: no telling which is which
        return None
    got_node, expected_node = (values.left, values.comparators[0]) if left_calls else (
        values.comparators[0], values.left)
    expression = test.left if left_calls else test.comparators[0]
    return (_clip(ast.unparse(expression)), _clip(ast.unparse(got_node)),
            _clip(ast.unparse(expected_node)))


def failures(output: str) -> list[Failure]:
    """The failing tests of a pytest ``--tb=short`` report, in the order it lists them."""
    start = _SECTION.search(output)
    while start is not None and start.group("name").strip() not in ("FAILURES", "ERRORS"):
        start = _SECTION.search(output, start.end())
    if start is None:
        return []
    body = output[start.end():]
    end = re.search(r"^={3,} short test summary info ={3,}$", body, re.M)
    body = body[: end.start()] if end else body
    found = []
    headers = list(_HEADER.finditer(body))
    for i, header in enumerate(headers):
        block = body[header.end(): headers[i + 1].start() if i + 1 < len(headers) else None]
        frames: list[Frame] = []
        errors: list[str] = []
        lines = block.splitlines()
        captured = next((j for j, line in enumerate(lines)
                         if re.match(r"^-{3,} Captured stderr", line)), None)
        stderr = tuple(x.strip() for x in lines[captured + 1:] if x.strip()
                       and not x.startswith("---"))[-STDERR_LINES:] if captured is not None else ()
        for j, line in enumerate(lines[:captured]):
            frame = _FRAME.match(line)
            if frame:
                code = lines[j + 1].strip() if j + 1 < len(lines) and \
                    not _FRAME.match(lines[j + 1]) and not _E.match(lines[j + 1]) else ""
                frames.append(Frame(frame.group("file"), int(frame.group("line")),
                                    frame.group("func"), code))
                continue
            error = _E.match(line)
            if error:
                errors.append(error.group("text"))
        found.append(Failure(header.group("name").strip(), tuple(frames), tuple(errors),
                             tuple(_clip(x) for x in stderr)))
    return found


def explain(output: str, limit: int = MAX_FAILURES) -> str:
    """The first ``limit`` failures, explained; empty when the output has none pytest-shaped
    (a collection error without a FAILURES section, another test runner)."""
    found = failures(output)
    if not found:
        return ""
    shown = [f.explain() for f in found[:limit]]
    if len(found) > limit:
        shown.append(f"(and {len(found) - limit} more failing)")
    return "\n".join(shown)
