"""A rewrite keeps what it left out: the file's other definitions are merged back by name.

A small model asked for a whole file writes the part it was thinking about and stops. In the
minicalc repo task the 1.5B's new parser.py had the fixed method but no ``import`` of the
error class and no ``_PRECEDENCE`` table; the tests then failed with a NameError, the next
iteration was spent learning only that, and the fix itself was never judged. Putting back
only the names other modules import (``imports.restore``) was not enough.

So a rewrite is read as "these definitions, as I want them now", not "the file is exactly
this": every top-level statement of the file as it was that binds a name the rewrite binds
nowhere (an import, a constant, a function, a class) is put back where it stood relative to
its neighbours, and a class the rewrite gives only some methods of keeps the others. A
function whose new body is only ``...`` is an elision ("unchanged") and keeps its old body.
What the rewrite does define wins, so a changed function or constant is the model's.

Nothing is deleted by leaving it out, then; a model that meant to remove a helper leaves
dead code, which no test fails on. Source that does not parse, before or after, is taken
as written: the tests will show the syntax error with its line.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from smallhold.apps.code.imports import targets, top_level

_Scope = ast.Module | ast.ClassDef
_Def = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


@dataclass
class Merged:
    """The merged text and what was taken from the file as it was, by qualified name."""

    text: str
    kept: list[str] = field(default_factory=list)
    elided: list[str] = field(default_factory=list)


def _bound(node: ast.stmt) -> set[str]:
    """The names one statement binds in its scope (into ``if``/``try``/``with`` blocks)."""
    names: set[str] = set()
    for stmt in top_level([node]):
        if isinstance(stmt, _Def):
            names.add(stmt.name)
        elif isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                names.update(targets(target))
        elif isinstance(stmt, ast.AnnAssign):
            names.update(targets(stmt.target))
        elif isinstance(stmt, ast.Import):
            names.update(a.asname or a.name.split(".")[0] for a in stmt.names)
        elif isinstance(stmt, ast.ImportFrom):
            names.update(a.asname or a.name for a in stmt.names if a.name != "*")
    return names


def _is_main_guard(node: ast.stmt) -> bool:
    return isinstance(node, ast.If) and "__main__" in ast.dump(node.test) and \
        "__name__" in ast.dump(node.test)


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and \
        isinstance(node.value.value, str)


def _elided(node: ast.stmt) -> bool:
    """A function whose body is ``...`` alone (after its docstring): "as before"."""
    if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return False
    body = node.body[1:] if node.body and _is_docstring(node.body[0]) else node.body
    return len(body) == 1 and isinstance(body[0], ast.Expr) and \
        isinstance(body[0].value, ast.Constant) and body[0].value.value is Ellipsis


def _first_line(node: ast.stmt, lines: Sequence[str]) -> int:
    """The 1-based first line of ``node``: its decorators and the comments right above."""
    decorators: list[ast.expr] = getattr(node, "decorator_list", [])
    first = min([node.lineno, *(d.lineno for d in decorators)])
    while first > 1 and lines[first - 2].lstrip().startswith("#"):
        first -= 1
    return first


def _source(node: ast.stmt, lines: Sequence[str], indent: int) -> list[str]:
    """``node``'s lines from ``lines``, re-indented by ``indent`` columns."""
    assert node.end_lineno is not None
    block = list(lines[_first_line(node, lines) - 1:node.end_lineno])
    if indent > 0:
        return [" " * indent + line if line.strip() else line for line in block]
    if indent < 0:
        return [line[min(-indent, len(line) - len(line.lstrip())):] for line in block]
    return block


def _lacking(old: Sequence[ast.stmt], new: Sequence[ast.stmt]) -> list[int]:
    """Indexes into ``old`` of the statements the rewrite left out: binding a name the new
    scope binds nowhere, a ``__main__`` guard or the docstring when the new scope has none."""
    bound_now = set().union(*(_bound(s) for s in new)) if new else set()
    guarded = any(_is_main_guard(s) for s in new)
    documented = bool(new) and _is_docstring(new[0])
    lacking = []
    for index, stmt in enumerate(old):
        names = _bound(stmt)
        if (names and not names <= bound_now) or (_is_main_guard(stmt) and not guarded) or (
                index == 0 and _is_docstring(stmt) and not documented):
            lacking.append(index)
    return lacking


def _anchor(old: Sequence[ast.stmt], index: int, new: Sequence[ast.stmt]) -> int:
    """Where old statement ``index`` goes in ``new``: after the nearest statement above it
    in the old scope that the new scope also has (by a shared name), as a new-body index
    (-1: at the top, after the docstring and ``__future__`` imports; -2: above everything,
    for the docstring itself)."""
    if index == 0 and _is_docstring(old[0]):
        return -2  # the very top, above a `from __future__` import: else it is no docstring
    by_name: dict[str, int] = {}
    for position, stmt in enumerate(new):
        for name in _bound(stmt):
            by_name.setdefault(name, position)
    for above in reversed(old[:index]):
        hits = [by_name[n] for n in _bound(above) if n in by_name]
        if hits:
            return max(hits)
    top = -1
    for position, stmt in enumerate(new):
        if (_is_docstring(stmt) and position == 0) or (
                isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__"):
            top = position
        else:
            break
    return top


@dataclass
class _Insert:
    after_line: int  # 0-based index of the new text's line the block goes after (-1: top)
    lines: list[str]
    order: int
    spaced: bool  # a definition: blank lines around it
    gap: int  # how many: 2 between top-level definitions, 1 between methods

    def spaced_in(self, out: Sequence[str], at: int) -> list[str]:
        """The block with the blank lines it needs between ``out[at]`` and ``out[at + 1]``."""
        def starts_block(line: str) -> bool:
            return line.lstrip().startswith(("def ", "async def ", "class ", "@", "#",
                                             "if __name__"))

        depth = len(self.lines[0]) - len(self.lines[0].lstrip()) if self.lines else 0
        above, below = (out[at] if at >= 0 else ""), (out[at + 1] if at + 1 < len(out) else "")
        lead = bool(above.strip()) and (
            self.spaced or len(above) - len(above.lstrip()) > depth)
        trail = bool(below.strip()) and (self.spaced or starts_block(below))
        return [*[""] * (self.gap if lead else 0), *self.lines, *[""] * (self.gap if trail else 0)]


def _body_start(scope: _Scope, lines: Sequence[str]) -> int:
    """0-based line index after which a block goes when it belongs at a scope's top (above
    the first statement's decorators and comments)."""
    if isinstance(scope, ast.Module):
        return -1
    return _first_line(scope.body[0], lines) - 2 if scope.body else scope.lineno - 1


def _merge_scope(old_scope: _Scope, new_scope: _Scope, old_lines: Sequence[str],
                 new_lines: Sequence[str], prefix: str, merged: Merged,
                 edits: list[_Insert], replaced: list[tuple[int, int, list[str]]]) -> None:
    old_body, new_body = old_scope.body, new_scope.body
    old_defs = {s.name: s for s in old_body if isinstance(s, _Def)}
    indent = (new_body[0].col_offset - old_body[0].col_offset) if old_body and new_body else 0
    for stmt in new_body:  # elided functions and partial classes, one level down
        if not isinstance(stmt, _Def) or stmt.name not in old_defs:
            continue
        before = old_defs[stmt.name]
        if _elided(stmt) and not _elided(before):
            assert stmt.end_lineno is not None
            replaced.append((_first_line(stmt, new_lines) - 1, stmt.end_lineno,
                             _source(before, old_lines, stmt.col_offset - before.col_offset)))
            merged.elided.append(prefix + stmt.name)
        elif isinstance(stmt, ast.ClassDef) and isinstance(before, ast.ClassDef):
            _merge_scope(before, stmt, old_lines, new_lines, f"{prefix}{stmt.name}.", merged,
                         edits, replaced)
    for order, index in enumerate(_lacking(old_body, new_body)):
        at = _anchor(old_body, index, new_body)
        if at >= 0:
            end = new_body[at].end_lineno
            assert end is not None
            after = end - 1
        elif at == -2 and new_body:
            after = _first_line(new_body[0], new_lines) - 2
        else:
            after = _body_start(new_scope, new_lines)
        block = _source(old_body[index], old_lines, indent)
        spaced = isinstance(old_body[index], _Def) or _is_main_guard(old_body[index])
        edits.append(_Insert(after, block, order, spaced,
                             2 if isinstance(new_scope, ast.Module) else 1))
        stmt = old_body[index]
        names = ["__future__ import"] if isinstance(stmt, ast.ImportFrom) and \
            stmt.module == "__future__" else sorted(_bound(stmt)) or (
                ["__main__ guard"] if _is_main_guard(stmt) else ["docstring"])
        merged.kept.extend(prefix + n for n in names)


_FUTURE = re.compile(r"^from __future__ import (?P<names>[\w, ]+)[ \t]*$", re.M)


def hoist_future(text: str) -> str:
    """``text`` with its ``from __future__`` imports moved to the top (below the docstring)
    when one stands lower, which Python refuses. The 1.5B wrote the import above the module
    docstring and then again below it: a SyntaxError for the whole file, one iteration lost
    to a line the model did not mean to change."""
    found = list(_FUTURE.finditer(text))
    if not found:
        return text
    try:  # the placement is the compiler's check, not the parser's
        compile(text, "<edit>", "exec", dont_inherit=True)
        return text
    except SyntaxError as exc:
        if "__future__" not in str(exc.msg):
            return text
    except (ValueError, RecursionError):
        return text
    names = sorted({n.strip() for m in found for n in m.group("names").split(",") if n.strip()})
    rest = _FUTURE.sub("", text)
    try:
        body = ast.parse(rest).body
    except (SyntaxError, ValueError, RecursionError):
        return text
    lines = rest.splitlines()
    after = body[0].end_lineno or 0 if body and _is_docstring(body[0]) else 0
    lines.insert(after, "from __future__ import " + ", ".join(names))
    return "\n".join(lines).rstrip("\n") + "\n"


def merge(old: str, new: str) -> Merged:
    """``new`` with what it left out of ``old`` put back (see the module's docstring)."""
    new = hoist_future(new)
    try:
        old_tree, new_tree = ast.parse(old), ast.parse(new)
    except (SyntaxError, ValueError, RecursionError):
        return Merged(new)
    old_lines, new_lines = old.splitlines(), new.splitlines()
    merged = Merged(new)
    inserts: list[_Insert] = []
    replaced: list[tuple[int, int, list[str]]] = []
    _merge_scope(old_tree, new_tree, old_lines, new_lines, "", merged, inserts, replaced)
    if not inserts and not replaced:
        return merged
    # applied bottom-up so earlier line numbers stay valid: an insert after line k goes in
    # before a replacement ending at k is made, and of blocks after one line the last first
    actions: list[tuple[int, int, int, list[str] | _Insert]] = []
    for start, end, lines in replaced:
        actions.append((end - 1, 0, start, lines))
    out = list(new_lines)
    for key, _kind, extra, item in sorted(
            [*actions, *((i.after_line, 1, i.order, i) for i in inserts)],
            key=lambda a: (a[0], a[1], a[2]), reverse=True):
        if isinstance(item, _Insert):
            out[key + 1:key + 1] = item.spaced_in(out, key)
        else:
            out[extra:key + 1] = item
    text = "\n".join(out).rstrip("\n") + "\n"
    try:
        compile(text, "<merged>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError):  # never make a compiling file fail to compile
        return Merged(new)
    merged.text = text
    return merged
