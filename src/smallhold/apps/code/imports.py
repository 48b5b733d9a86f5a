"""Names a rewrite drops that the rest of the project still imports.

The agent asks for whole files, and a small model rewriting a 90-line module often leaves
out a function it was not thinking about: in the minicalc repo task the 1.5B coder's new
parser.py had no module-level ``parse``, evaluator.py's ``from .parser import parse``
failed, every test errored at collection and an iteration was spent learning only that.
Told so, it left ``parse`` out again in the next two iterations: it ends the file where its
change ends. So a dropped definition that the project imports is put back from the file as
it was (``restore``), the model's change is kept, and only a definition that cannot be lifted
out whole (one inside an ``if`` or ``try``) turns the rewrite down with the reason.

Only what can be known from the source is checked: ``from M import name`` where M is a
project module the change rewrites. A module with a star import or a module-level
``__getattr__`` may define anything, so it is not judged; neither is a name the module
lacked before the change (not this change's doing).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath


@dataclass(frozen=True)
class LostName:
    module: str  # project-relative path of the rewritten module
    name: str
    importer: str  # project-relative path of a module that imports it

    def describe(self) -> str:
        return (f"{self.module} no longer defines {self.name}, which {self.importer} "
                f"imports; keep every function and class of the file you rewrite")

    def restored(self) -> str:
        return (f"{self.module}: {self.name} kept as it was (the rewrite left it out and "
                f"{self.importer} imports it)")


def module_name(rel: str) -> str | None:
    """``pkg/sub/mod.py`` -> ``pkg.sub.mod``; ``src/`` layouts drop the ``src``."""
    path = PurePosixPath(rel)
    if path.suffix != ".py":
        return None
    parts = list(path.with_suffix("").parts)
    if parts and parts[0] == "src":
        parts = parts[1:]
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts) or None


def _package_of(rel: str) -> list[str]:
    name = module_name(rel) or ""
    parts = name.split(".") if name else []
    return parts if rel.endswith("__init__.py") else parts[:-1]


def _imported(rel: str, tree: ast.Module) -> Iterator[tuple[str, str]]:
    """(module, name) for each ``from module import name`` in a file, relative resolved."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base = _package_of(rel)
            if node.level - 1 > len(base):
                continue
            base = base[:len(base) - (node.level - 1)]
            target = ".".join([*base, *(node.module.split(".") if node.module else [])])
        else:
            target = node.module or ""
        for alias in node.names:
            if alias.name != "*":
                yield target, alias.name


def top_level(body: Iterable[ast.stmt]) -> Iterator[ast.stmt]:
    """Module-level statements, into ``if``/``try``/``with`` blocks (guarded definitions)."""
    for node in body:
        yield node
        if isinstance(node, ast.If | ast.For | ast.While):
            yield from top_level([*node.body, *node.orelse])
        elif isinstance(node, ast.With):
            yield from top_level(node.body)
        elif isinstance(node, ast.Try):
            yield from top_level([*node.body, *node.orelse, *node.finalbody,
                                   *(s for h in node.handlers for s in h.body)])


def targets(node: ast.expr) -> Iterator[str]:
    if isinstance(node, ast.Name):
        yield node.id
    elif isinstance(node, ast.Tuple | ast.List):
        for element in node.elts:
            yield from targets(element)


def defined(tree: ast.Module) -> set[str] | None:
    """The names a module defines at top level; None when it may define anything."""
    names: set[str] = set()
    for node in top_level(tree.body):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
            if node.name == "__getattr__" and not isinstance(node, ast.ClassDef):
                return None
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                names.update(targets(target))
        elif isinstance(node, ast.AnnAssign | ast.AugAssign):
            names.update(targets(node.target))
        elif isinstance(node, ast.Import):
            names.update(a.asname or a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if any(a.name == "*" for a in node.names):
                return None
            names.update(a.asname or a.name for a in node.names)
    return names


def _parse(text: str) -> ast.Module | None:
    try:
        return ast.parse(text)
    except (SyntaxError, ValueError):
        return None


def lost_names(files: Mapping[str, str], changes: Mapping[str, str]) -> list[LostName]:
    """What ``changes`` (path -> new text) drop that the project, as changed, imports.

    ``files`` is the project before the change (project-relative path -> text)."""
    after = {**files, **changes}
    modules = {module_name(rel): rel for rel in after if module_name(rel)}
    lost: list[LostName] = []
    seen: set[tuple[str, str]] = set()
    for importer, text in sorted(after.items()):
        tree = _parse(text) if importer.endswith(".py") else None
        if tree is None:
            continue
        for target, name in _imported(importer, tree):
            rel = modules.get(target)
            if rel is None or rel not in changes or rel == importer or (rel, name) in seen:
                continue
            if f"{target}.{name}" in modules:  # a submodule: ``from pkg import mod``
                continue
            new_tree, old_tree = _parse(changes[rel]), _parse(files.get(rel, ""))
            if new_tree is None or old_tree is None:
                continue  # a syntax error is the tests' to report, with its line
            new, old = defined(new_tree), defined(old_tree)
            if new is None or old is None or name in new or name not in old:
                continue
            seen.add((rel, name))
            lost.append(LostName(rel, name, importer))
    return lost


def _definition(tree: ast.Module, name: str) -> ast.stmt | None:
    """The module-level statement that alone defines ``name``, if there is exactly one."""
    found = [node for node in tree.body if (
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        and node.name == name) or (
        isinstance(node, ast.Assign | ast.AnnAssign) and name in set().union(
            *(targets(t) for t in (node.targets if isinstance(node, ast.Assign)
                                    else [node.target]))))]
    return found[0] if len(found) == 1 else None


def restore(old: str, new: str, names: Iterable[str]) -> str | None:
    """``new`` with the old definitions of ``names`` appended, or None if one of them is
    not a single top-level statement of ``old`` (then the rewrite is turned down instead).

    Appending is safe for functions and classes, whose bodies look names up when called;
    a constant used at import time above it would fail, and the tests would say where."""
    tree = ast.parse(old)
    lines = old.splitlines()
    blocks = []
    for name in names:
        node = _definition(tree, name)
        if node is None or node.end_lineno is None:
            return None
        decorators = getattr(node, "decorator_list", [])
        first = min([node.lineno, *(d.lineno for d in decorators)])
        blocks.append("\n".join(lines[first - 1:node.end_lineno]))
    return new.rstrip("\n") + "\n\n\n" + "\n\n\n".join(blocks) + "\n"
