"""The agent's prompts: pure functions from what is known to chat messages.

There are four. The first iteration asks for the change directly, the way one careful
single attempt would (task, files, the tests' failures, write the files): planning and
reflecting first made that attempt worse than a plain single shot. A repair shows the files
as they stand, what the failing check shows (expected against actual, not the raw tail),
what was tried, and asks for one line of diagnosis before the corrected files, in one call.
A fresh attempt (iteration 3) shows the files as they were and the failing check,
not the failed code, which repairs copy and stay anchored on. The plain start (iteration 5)
shows only the task and the files, as a single shot would see them.
The stable part comes first so the KV cache keeps it between calls: the role, the task,
and the files no iteration changes (tests, read-only modules) before those it may. The rules
and the edit format end the prompt, where a small model reads them (in the system turn,
cached across tasks, the first attempts passed fewer tasks: BENCHMARKS.md, v4-mem50).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from smallhold.apps.code import edits
from smallhold.apps.code.models import Iteration, Task
from smallhold.apps.code.reflection import Tried
from smallhold.apps.code.testing import is_test_file
from smallhold.runtime import Message

SYSTEM = (
    "You are a careful Python engineer working on a copy of the user's project. You change "
    "as little as needed to make the task's tests pass, keep the project's style, and never "
    "weaken or delete a test to make it pass. Code runs in a sandbox without network.")
# Docstrings are put back by the write step (``docstrings``): copying them was most of what
# a small task's reply generated, and generation is the slow half of a call.
KEEP_SPEC = ("Keep the function signatures. Docstrings already in the files are the "
             "specification and stay as they are: leave them out of the files you write.")
DIAGNOSIS = "Diagnosis:"
REDRAW = ("That is code that was already tried, and the tests failed on it. Find another "
          "cause in the failing check and write a different fix: `Diagnosis:` first, then the "
          "file(s).")
TAIL_SHOWN = 1_500  # characters of raw test output beside the explained failures
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


def _fixed_first(task: Task, files: dict[str, str]) -> list[str]:
    """The files no iteration changes (tests, read-only modules), to be shown before those
    it may: the prompt up to the first changed file is then the same on every iteration,
    and llama.cpp reuses its KV cache instead of reading it again."""
    return sorted(f for f in files if (f not in task.editable if task.editable is not None
                                       else is_test_file(f)))


def _rules(task: Task) -> str:
    rules = []
    if task.editable:
        rules.append("You may change only: " + ", ".join(task.editable) + (
            "; write only the files your change needs." if len(task.editable) > 1 else "."))
    elif not task.edit_tests:
        rules.append("Do not change existing test files; you may add new ones.")
    rules.append(KEEP_SPEC)
    return " ".join(rules)


def test_output(summary: str, explained: str, tail: str) -> str:
    """A test run for the prompt: the explained failures, else the raw tail (a collection
    error, another runner), with the summary line."""
    if explained:
        return f"{summary}\n{explained}"
    shown = tail if len(tail) <= TAIL_SHOWN * 2 else "..." + tail[-TAIL_SHOWN * 2:]
    return f"{summary}\n```\n{shown}\n```" if shown else summary


_NOT_YET = re.compile(r"(NameError: name '[^']+' is not defined|ImportError: cannot import "
                      r"name '[^']+'|AttributeError: module '[^']+' has no attribute '[^']+')")


def baseline_output(summary: str, explained: str, tail: str) -> str:
    """The tests before any change, for the first attempt. When every failure is only that
    the code under test does not exist yet, one line says so: the tests shown above already
    say what they call, and a small task's prompt is read again on every call."""
    failures = [block for block in explained.split("Failing test: ")[1:] if block.strip()]
    missing = [_NOT_YET.search(block) for block in failures]
    if failures and all(missing) and "more failing" not in explained:
        names = sorted({m.group(1) for m in missing if m})
        return "they fail because what they call is not written yet (" + "; ".join(names) + ")"
    return test_output(summary, explained, tail)


def write_messages(task: Task, files: dict[str, str], tree: Sequence[str],
                   baseline: str, where: str = "") -> list[Message]:
    """The first iteration: the change asked for directly. ``baseline`` is the tests'
    output before any change (:func:`test_output`), the most telling thing there is;
    ``where`` the places to look first (``locate.where_to_look``), if any."""
    user = "\n\n".join(p for p in [
        f"Task: {task.description}",
        f"Project files: {', '.join(tree)}",
        show_files(files, _fixed_first(task, files)),
        where,
        f"The tests before any change: {baseline}" if baseline else "",
        _rules(task),
        f"Write the change that does the task. {edits.INSTRUCTIONS}",
    ] if p)
    return [Message(role="system", content=SYSTEM), Message(role="user", content=user)]


def fresh_messages(task: Task, files: dict[str, str], tree: Sequence[str],
                   failing: str, where: str = "") -> list[Message]:
    """A fresh attempt: the files as they were before any change and what the last attempt
    failed, without its code, so the answer is not anchored on it."""
    user = "\n\n".join(p for p in [
        f"Task: {task.description}",
        f"Project files: {', '.join(tree)}",
        show_files(files, _fixed_first(task, files)),
        where,
        f"An earlier attempt, not shown, failed the tests like this: {failing}",
        _rules(task),
        "Write the change that does the task, thinking afresh about what the tests check. "
        f"{edits.INSTRUCTIONS}",
    ] if p)
    return [Message(role="system", content=SYSTEM), Message(role="user", content=user)]


def plain_messages(task: Task, files: dict[str, str], tree: Sequence[str]) -> list[Message]:
    """A plain start: the first attempt's prompt over ``files`` as they were, without the
    tests, their output or places to look, as one careful single attempt would see it. The
    other attempts all read the tests' output; when it misleads them, this one is not."""
    return write_messages(task, files, tree, baseline="")


def _refused_tests(last: Iteration) -> str:
    tests = [r for r in last.rejected if "test" in r and ("existing test" in r or
                                                           "not one of the files" in r)]
    if not tests:
        return ""
    return ("Your last reply tried to change a test (" + "; ".join(tests) + "). Tests are "
            "never changed to pass: change the code so that the failing check passes as it "
            "is written.")


def repair_messages(task: Task, files: dict[str, str], tree: Sequence[str], history: str,
                    hints: str, ledger: Sequence[Tried], last: Iteration,
                    failing: str, where: str = "") -> list[Message]:
    """A later iteration: fix what ``failing`` (the last tests' output, explained) shows.
    ``last`` is the previous iteration; when it was undone the files are as before it, and
    its diff is shown so the model knows what not to write again."""
    refuted = [t for t in ledger if t.status == "refuted"]
    parts = [
        f"Task: {task.description}",
        f"Project files: {', '.join(tree)}",
        show_files(files, _fixed_first(task, files)),
        where,
        f"What the earlier iterations did:\n{history}" if history else "",
        "Diagnoses already acted on without success (look for another cause):\n" +
        "\n".join(f"- {t.text} ({t.evidence})" for t in refuted) if refuted else "",
        hints,
    ]
    if last.undone:
        parts.append(f"Iteration {last.number}'s change made things worse ({last.undone}) and "
                     f"was undone; the files above are as they were before it. Its diff:\n"
                     f"```diff\n{last.diff[-2000:]}\n```")
    parts += [
        _refused_tests(last),
        f"The tests after iteration {last.number}: {failing}",
        _rules(task),
        f"First write one line starting `{DIAGNOSIS}` that says what in the code is wrong, "
        "reading the failing check above (what it returned against what the test expects). "
        f"Then write the corrected file(s). {edits.INSTRUCTIONS}",
    ]
    user = "\n\n".join(p for p in parts if p)
    return [Message(role="system", content=SYSTEM), Message(role="user", content=user)]


def diagnosis(reply: str) -> str:
    """The reply's ``Diagnosis:`` line (without the label), or empty."""
    for line in reply.splitlines():
        text = line.strip().lstrip("*#>- ").replace("**", "")
        if text.lower().startswith(DIAGNOSIS.lower()):
            return text[len(DIAGNOSIS):].strip()[:300]
    return ""
