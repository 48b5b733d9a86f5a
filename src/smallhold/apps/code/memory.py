"""What past runs taught the agent, in the vault's vector memory.

- short-term: the last iterations of this run (plan, diff, tests, reflection), from the
  run's own records; :func:`short_term` renders them for the prompt.
- success patterns (kind ``code.pattern``): the change that solved a task, recalled only for
  a task that asks for the same thing: the same names called by its tests (its
  :func:`task_key`) and a statement close in meaning. Matching on the statement alone
  misled: requests worded alike ("Implement F in solution.py so that it does what its
  docstring says") made one string task's approach the hint for every later task, and 15 of
  19 plans copied it. A pattern is stored only when the tests that judged it were more than
  one trivial check (:func:`checks`), and it is shown only to a repair, never to the first
  attempt, as a hint the model may ignore.
- failure memory (kind ``code.failure``): an error signature (see :mod:`.signatures`) with
  the fix that made it go away, recalled by vector similarity when a new error appears.
"""

from __future__ import annotations

import ast
import builtins
import hashlib
from collections.abc import Callable, Mapping, Sequence

from smallhold.apps.code.models import Iteration
from smallhold.apps.code.signatures import Signature
from smallhold.store.memory.store import Hit, Memory, MemoryStore

PATTERN = "code.pattern"
FAILURE = "code.failure"
KINDS = (PATTERN, FAILURE)
SHORT_TERM = 5
# How close in meaning (cosine of the embeddings) a memory must be to count as "similar".
# Judged on the vector part alone: the hybrid score also rewards a fresh memory, so with a
# threshold of 0.35 on it every pattern stored that day was offered for every task. With
# all-MiniLM-L6-v2, unrelated MBPP task statements average a cosine of 0.33 (p90 0.50, max
# 0.78 over 435 pairs). Measured on 10 MBPP+ tasks (BENCHMARKS.md): 0.6 gave 6/10 hidden
# passes, 0.7 gave 4/10 (the loop's first try is greedy, so the recalled patterns were the
# only difference); at 0.6 one task failed on a neighbour's hint ("squares of a list" for
# "shared elements of two lists", 0.62), at 0.7 two lost the hints that had helped them.
MIN_SIMILARITY = 0.6
PATTERN_DIFF = 1_500  # characters of a solving diff kept in a pattern
MIN_CHECKS = 2  # assertions a passing suite must hold before its solution is worth keeping
_BUILTINS = frozenset(dir(builtins))


def _called(tree: ast.AST) -> set[str]:
    """Names the code calls that it does not define: ``f(x)`` and ``mod.f(x)`` give f."""
    defined = {n.name for n in ast.walk(tree)
               if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)}
    called = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else (
                func.attr if isinstance(func, ast.Attribute) else None)
            if name and name not in _BUILTINS and name not in defined:
                called.add(name)
    return called


def task_key(tests: Mapping[str, str]) -> str:
    """What a task asks of the code, as its tests show it: a digest of the names the test
    files call and do not define. Two tasks with the same key test the same functions."""
    names: set[str] = set()
    for source in tests.values():
        try:
            names |= _called(ast.parse(source))
        except SyntaxError:
            continue
    return "task:" + hashlib.sha256(" ".join(sorted(names)).encode()).hexdigest()[:12]


def checks(tests: Mapping[str, str]) -> int:
    """How many checks the test files hold: assert statements and ``pytest.raises`` blocks,
    a parametrised test counted once per case it lists."""
    total = 0
    for source in tests.values():
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef) or \
                    not fn.name.startswith("test"):
                continue
            inside = sum(isinstance(n, ast.Assert) or (
                isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                and n.func.attr == "raises") for n in ast.walk(fn))
            cases = max((len(d.args[1].elts) for d in fn.decorator_list
                         if isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute)
                         and d.func.attr == "parametrize" and len(d.args) > 1
                         and isinstance(d.args[1], ast.List | ast.Tuple)), default=1)
            total += inside * cases
    return total


def short_term(iterations: Sequence[Iteration], keep: int = SHORT_TERM) -> str:
    lines = []
    for it in iterations[-keep:]:
        lines.append(f"Iteration {it.number}: {it.plan.summary if it.plan else 'no edit'}")
        if it.changed:
            lines.append(f"  changed: {', '.join(it.changed)}")
        if it.rejected:
            lines.append(f"  not applied: {'; '.join(it.rejected)}")
        if it.repaired:
            lines.append(f"  put back: {'; '.join(it.repaired)}")
        lines.append(f"  tests: {it.test_summary}")
        if it.signature:
            lines.append(f"  error: {it.signature.splitlines()[0]}")
        if it.undone:
            lines.append(f"  undone: {it.undone}")
    return "\n".join(lines)


class CodeMemory:
    """The agent's long-term memories; the store (and its embedding model) opens on first
    use, so commands that only read runs never load the embedder."""

    def __init__(self, store: MemoryStore | Callable[[], MemoryStore]) -> None:
        self._store = store

    @property
    def store(self) -> MemoryStore:
        if not isinstance(self._store, MemoryStore):
            self._store = self._store()
        return self._store

    def patterns(self, task: str, key: str, k: int = 1) -> list[Hit]:
        """Solutions of earlier tasks with the same :func:`task_key` and a close statement."""
        return [h for h in self.store.recall(task, k, kind=PATTERN, tags=[key])
                if h.vector >= MIN_SIMILARITY]

    def failure_hints(self, signature: Signature, key: str | None = None, k: int = 2
                      ) -> list[Hit]:
        """Fixes of an error of this shape. A failed assertion's fix is about the code the
        test checks, so it is offered only to a task whose tests call the same functions
        (``key``): offered by its shape alone, one task's "the digit sums are wrong" became
        the diagnosis of four unrelated tasks (v4-mem50). Other errors (an import, a name, a
        type) are offered by their shape, exactly or closely."""
        if signature.exception == "AssertionError":
            return [] if not key else self.store.recall(
                signature.text, k, kind=FAILURE, tags=[signature.key, key])
        exact = [h for h in self.store.recall(signature.text, k, kind=FAILURE,
                                              tags=[signature.key])]
        seen = {e.memory.id for e in exact}
        similar = [h for h in self.store.recall(signature.text, k, kind=FAILURE)
                   if h.vector >= MIN_SIMILARITY and h.memory.id not in seen]
        return (exact + similar)[:k]

    def learn_pattern(self, task: str, key: str, diff: str) -> Memory:
        """Store the change that solved ``task``, indexed by the task's own words: recall
        compares a new task with old tasks, and the code in the text would only blur that."""
        text = f"task: {task}\nthe change that made its tests pass:\n{diff[:PATTERN_DIFF]}"
        return self.store.remember(text, kind=PATTERN, tags=[key], importance=0.6,
                                   vector=self.store.embed(task))

    def learn_fix(self, signature: Signature, fix: str, key: str | None = None) -> Memory:
        """Store the fix for ``signature`` (tagged with the task's ``key`` too, for
        :meth:`failure_hints`); the same signature again reinforces, not repeats."""
        tags = [signature.key, *([key] if key else [])]
        for hit in self.store.recall(signature.text, 1, kind=FAILURE, tags=tags):
            return self.store.reinforce(hit.memory.id, "the same fix worked again")
        text = f"{signature.text}\nfix that worked: {fix}"
        return self.store.remember(text, kind=FAILURE, tags=tags, importance=0.7)

    def list(self, kind: str | None = None, limit: int = 100) -> list[Memory]:
        kinds = [kind] if kind else list(KINDS)
        found = [m for k in kinds for m in self.store.list(kind=k, limit=limit)]
        return sorted(found, key=lambda m: -m.created_at)[:limit]


def render_hints(patterns: Sequence[Hit], failures: Sequence[Hit]) -> str:
    parts = []
    if patterns:
        parts.append("A hint from an earlier run of a task that tests the same functions "
                     "(use it only if it fits this task):\n" +
                     "\n".join(h.memory.text for h in patterns))
    if failures:
        parts.append("This kind of error was seen before; what fixed it then (a hint, not "
                     "a rule):\n" + "\n".join(f"- {h.memory.text}" for h in failures))
    return "\n\n".join(parts)
