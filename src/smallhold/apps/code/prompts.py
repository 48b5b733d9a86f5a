"""The agent's prompts: pure functions from what is known to chat messages.

The stable part (the role and the rules) comes first so the KV cache keeps it between
calls; the project's files, the memories and the last test output follow, newest last.
"""

from __future__ import annotations

from collections.abc import Sequence

from smallhold.apps.code import edits
from smallhold.apps.code.models import Iteration, Plan, Task
from smallhold.apps.code.reflection import MAX_HYPOTHESES, Tried
from smallhold.runtime import Message
from smallhold.runtime.structured import schema_instruction

SYSTEM = (
    "You are a careful Python engineer working on a copy of the user's project. You change "
    "as little as needed to make the task's tests pass, keep the project's style, and never "
    "weaken or delete a test to make it pass. Code runs in a sandbox without network.")
FILE_BUDGET = 12_000  # characters of file contents shown in one prompt


def show_files(files: dict[str, str], first: Sequence[str] = (),
               budget: int = FILE_BUDGET) -> str:
    """Files as fenced blocks, ``first`` first, until ``budget`` characters are used."""
    order = [f for f in first if f in files] + sorted(f for f in files if f not in first)
    shown, used, left_out = [], 0, []
    for rel in order:
        block = f"### {rel}\n```\n{files[rel]}\n```"
        if used + len(block) > budget:
            left_out.append(rel)
            continue
        shown.append(block)
        used += len(block)
    if left_out:
        shown.append("(not shown, over the budget: " + ", ".join(left_out) + ")")
    return "\n\n".join(shown)


def _rules(task: Task) -> str:
    rules = []
    if task.editable:
        rules.append("You may change only: " + ", ".join(task.editable) + ".")
    elif not task.edit_tests:
        rules.append("Do not change existing test files; you may add new ones.")
    return " ".join(rules)


def _context(history: str, hints: str, ledger: Sequence[Tried], last: Iteration | None,
             now: tuple[str, str]) -> str:
    parts = []
    if history:
        parts.append(f"What the earlier iterations did:\n{history}")
    refuted = [t for t in ledger if t.status == "refuted"]
    if refuted:
        parts.append("Hypotheses already tested and refuted (do not try them again):\n" +
                     "\n".join(f"- {t.text} ({t.evidence})" for t in refuted))
    if hints:
        parts.append(hints)
    summary, tail = now
    if last is not None and last.undone:
        parts.append(f"Iteration {last.number}'s change made things worse ({last.undone}) "
                     "and was undone: the files above are as they were before it.")
    if last is None or last.undone:
        if tail:
            when = "before any change" if last is None else "of the files as they are now"
            parts.append(f"Test output {when} ({summary}):\n```\n{tail}\n```")
    else:
        parts.append(f"Test output of the last iteration ({last.test_summary}):\n"
                     f"```\n{last.test_tail}\n```")
    if last is not None and last.hypothesis:
        parts.append(f"Hypothesis to act on now: {last.hypothesis.text}")
    return "\n\n".join(parts)


def plan_messages(task: Task, files: dict[str, str], tree: Sequence[str], history: str,
                  hints: str, ledger: Sequence[Tried], last: Iteration | None,
                  now: tuple[str, str] = ("", "")) -> list[Message]:
    """The planning conversation. ``now`` is the (summary, output) of the tests on the files
    as shown: the baseline before the first change, the best state after an undone one.
    Before the first change the baseline's failures are the most telling thing the model
    can see, so they stand where later test output will."""
    user = "\n\n".join(p for p in [
        f"Task: {task.description}",
        f"Project files: {', '.join(tree)}",
        show_files(files),
        _context(history, hints, ledger, last, now),
        _rules(task),
        "Plan the next change: the problem type, the approach in one or two sentences, and "
        "only the files it must edit or create (usually one; each listed file is rewritten "
        "whole, so leave out files that stay as they are).",
    ] if p)
    return [Message(role="system", content=SYSTEM), Message(role="user", content=user)]


def edit_messages(task: Task, plan_prompt: Sequence[Message], plan: Plan) -> list[Message]:
    """The plan's conversation continued: the same prefix, so the KV cache of the planning
    call is reused and the files are not read (prefilled) a second time."""
    user = " ".join(p for p in [
        f"Plan accepted: {plan.summary}",
        "Now write the change to " + ", ".join(plan.files) + ".",
        _rules(task),
        edits.INSTRUCTIONS,
    ] if p)
    return [*plan_prompt, Message(role="system", content=schema_instruction(Plan)),
            Message(role="assistant", content=plan.model_dump_json()),
            Message(role="user", content=user)]


def reflect_messages(task: Task, it: Iteration, ledger: Sequence[Tried], hints: str
                     ) -> list[Message]:
    tried = "\n".join(f"- {t.text}: {t.status} ({t.evidence})" for t in ledger)
    user = "\n\n".join(p for p in [
        f"Task: {task.description}",
        f"The change ({it.plan.summary if it.plan else 'none'}) gave: {it.test_summary}",
        f"```\n{it.test_tail}\n```",
        f"Diff of the change:\n```diff\n{it.diff[-3000:]}\n```" if it.diff else "",
        f"Hypotheses tried so far:\n{tried}" if tried else "",
        hints,
        "Why do the tests still fail? Give a one-sentence diagnosis and up to "
        f"{MAX_HYPOTHESES} different hypotheses, each with what the test expects and why, and "
        "how confident you are (0 to 1).",
    ] if p)
    return [Message(role="system", content=SYSTEM), Message(role="user", content=user)]
