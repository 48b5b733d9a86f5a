"""Where in a project a change belongs, read from the source before the model is asked.

A person fixing a bug in an unfamiliar project reads the request for names first, then the
failing test's traceback, then the functions the tests call. A 1.5B model shown five modules
whole does none of that reliably. So the project's definitions are mapped (``ast``: top-level
functions and classes, and methods) and a short "where to look" list is put in the prompt:
the definitions the request names (``words()``, ``appconfig.coerce.coerce``), the modules
it names by path, where the failing checks raised, and the project functions the tests
call. Nothing is decided for the model: it is a list of places with the reason for each.

Only a project with more than one module gets the list; with one, there is nowhere else.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from smallhold.apps.code.imports import module_name

MAX_PLACES = 6
_DOTTED = re.compile(r"[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*")
_PATH = re.compile(r"[\w./-]+\.py\b")
_FRAME = re.compile(r"^\s*(?:raised in )?(?P<file>[\w./-]+\.py):\d+(?: \((?P<func>[\w.<>]+)\))?",
                    re.M)


@dataclass(frozen=True)
class Place:
    """A definition (or a whole module when ``name`` is empty) and why it is listed."""

    file: str
    name: str
    why: str

    def describe(self) -> str:
        where = f"{self.file}: {self.name}" if self.name else self.file
        return f"- {where} ({self.why})"


def definitions(files: Mapping[str, str]) -> dict[str, list[str]]:
    """{file: qualified names of its functions, classes and methods}, for the project's
    Python files that parse (tests included: they are where the calls come from)."""
    found: dict[str, list[str]] = {}
    for rel, source in files.items():
        if not rel.endswith(".py"):
            continue
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):
            continue
        names: list[str] = []
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.append(node.name)
            if isinstance(node, ast.ClassDef):
                names += [f"{node.name}.{m.name}" for m in node.body
                          if isinstance(m, ast.FunctionDef | ast.AsyncFunctionDef)]
        found[rel] = names
    return found


def _called(source: str) -> set[str]:
    """Names a test file calls: ``f(...)`` and ``obj.f(...)`` as ``f``."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return set()
    called = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Name):
                called.add(node.func.id)
            elif isinstance(node.func, ast.Attribute):
                called.add(node.func.attr)
    return called


def _looks_like_code(text: str, match: re.Match[str]) -> bool:
    """Whether a bare word is written as code (``words()``, ```load```, ``top_words``),
    not as English that happens to be a function's name ("done", "items")."""
    before, after = text[:match.start()], text[match.end():]
    return after.startswith("(") or (before.endswith("`") and after.startswith("`")) or \
        "_" in match.group()


def places(description: str, files: Mapping[str, str], tests: Sequence[str],
           failures: str = "") -> list[Place]:
    """Where to look, most telling first: what the request names, then what the failing
    checks went through, then what the tests call. ``files`` maps project paths to source
    (tests included), ``tests`` names the test files, ``failures`` is the explained test
    output (``evidence.explain``)."""
    source_files = {f: s for f, s in files.items() if f.endswith(".py") and f not in tests}
    defs = definitions(source_files)
    if len([f for f in defs if not f.endswith("__init__.py")]) < 2:
        return []
    by_name: dict[str, list[tuple[str, str]]] = {}
    for rel, names in defs.items():
        for qualified in names:
            by_name.setdefault(qualified.split(".")[-1], []).append((rel, qualified))
    by_module = {module_name(rel): rel for rel in defs}
    found: list[Place] = []

    def add(rel: str, name: str, why: str) -> None:
        if not any(p.file == rel and p.name in ("", name) for p in found):
            found.append(Place(rel, name, why))

    for path in _PATH.findall(description):  # a module named by its path
        rel = path.removeprefix("./")
        if rel in defs:
            add(rel, "", "named in the task")
    for match in _DOTTED.finditer(description):
        token = match.group()
        parts = token.split(".")
        for cut in range(len(parts), 0, -1):  # appconfig.coerce.coerce: module + name
            module = ".".join(parts[:cut])
            if module in by_module and cut < len(parts):
                rel = by_module[module]
                name = parts[cut]
                if name in {q.split(".")[-1] for q in defs[rel]}:
                    add(rel, next(q for q in defs[rel] if q.split(".")[-1] == name),
                        "named in the task")
                break
        else:
            hits = by_name.get(parts[-1], [])
            if len(parts) == 1 and len(hits) <= 2 and _looks_like_code(description, match):
                for rel, qualified in hits:
                    add(rel, qualified, "named in the task")
    for match in _FRAME.finditer(failures):  # where a failing check raised
        rel, func = match.group("file"), match.group("func") or ""
        if rel in defs:
            name = next((q for q in defs[rel] if q.split(".")[-1] == func.split(".")[-1]), "")
            add(rel, name, "a failing test raised here")
    called = set().union(*(_called(files[t]) for t in tests if t in files)) if tests else set()
    for name in sorted(called):
        hits = by_name.get(name, [])
        if 1 <= len(hits) <= 2:
            for rel, qualified in hits:
                add(rel, qualified, "the tests call it")
    return found[:MAX_PLACES]


def where_to_look(found: Sequence[Place]) -> str:
    """The prompt's section, or empty."""
    if not found:
        return ""
    return "Where to look first:\n" + "\n".join(p.describe() for p in found)
