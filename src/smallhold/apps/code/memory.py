"""What past runs taught the agent, in the vault's vector memory.

- short-term: the last iterations of this run (plan, diff, tests, reflection), from the
  run's own records; :func:`short_term` renders them for the prompt.
- success patterns (kind ``code.pattern``): the approach that solved a task, tagged with
  its problem type, recalled for similar new tasks.
- failure memory (kind ``code.failure``): an error signature (see :mod:`.signatures`) with
  the fix that made it go away, recalled by vector similarity when a new error appears.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from smallhold.apps.code.models import Iteration, Plan
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


def short_term(iterations: Sequence[Iteration], keep: int = SHORT_TERM) -> str:
    lines = []
    for it in iterations[-keep:]:
        lines.append(f"Iteration {it.number}: plan: {it.plan.summary if it.plan else '-'}")
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
        if it.hypothesis:
            lines.append(f"  next hypothesis: {it.hypothesis.text}")
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

    def patterns(self, task: str, k: int = 2) -> list[Hit]:
        return [h for h in self.store.recall(task, k, kind=PATTERN)
                if h.vector >= MIN_SIMILARITY]

    def failure_hints(self, signature: Signature, k: int = 2) -> list[Hit]:
        exact = [h for h in self.store.recall(signature.text, k, kind=FAILURE,
                                              tags=[signature.key])]
        seen = {e.memory.id for e in exact}
        similar = [h for h in self.store.recall(signature.text, k, kind=FAILURE)
                   if h.vector >= MIN_SIMILARITY and h.memory.id not in seen]
        return (exact + similar)[:k]

    def learn_pattern(self, task: str, plan: Plan, changed: Sequence[str]) -> Memory:
        """Store what solved ``task``, indexed by the task's own words: recall compares a new
        task with old tasks, and the approach in the text would only blur that match."""
        text = (f"[{plan.problem_type}] task: {task}\napproach that worked: {plan.summary}\n"
                f"files changed: {', '.join(changed) or '-'}")
        return self.store.remember(text, kind=PATTERN, tags=[plan.problem_type],
                                   importance=0.6, vector=self.store.embed(task))

    def learn_fix(self, signature: Signature, fix: str) -> Memory:
        """Store the fix for ``signature``; the same signature again reinforces, not repeats."""
        for hit in self.store.recall(signature.text, 1, kind=FAILURE, tags=[signature.key]):
            return self.store.reinforce(hit.memory.id, "the same fix worked again")
        text = f"{signature.text}\nfix that worked: {fix}"
        return self.store.remember(text, kind=FAILURE, tags=[signature.key], importance=0.7)

    def list(self, kind: str | None = None, limit: int = 100) -> list[Memory]:
        kinds = [kind] if kind else list(KINDS)
        found = [m for k in kinds for m in self.store.list(kind=k, limit=limit)]
        return sorted(found, key=lambda m: -m.created_at)[:limit]


def render_hints(patterns: Sequence[Hit], failures: Sequence[Hit]) -> str:
    parts = []
    if patterns:
        parts.append("Approaches that solved similar tasks before:\n" +
                     "\n".join(f"- {h.memory.text}" for h in patterns))
    if failures:
        parts.append("This error was seen before; the fix that worked then:\n" +
                     "\n".join(f"- {h.memory.text}" for h in failures))
    return "\n\n".join(parts)
