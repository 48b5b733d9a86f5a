"""The loop on a scripted model: write, test in the sandbox, repair from the evidence, learn."""

from __future__ import annotations

import base64
import binascii
import sqlite3
from contextlib import closing, suppress
from pathlib import Path

from agent_helpers import (
    BUGGY,
    FIXED,
    WRONG,
    MakeAgent,
    edit,
    prompt,
    scripted,
    task_for,
)

from smallhold.apps.code.agent import execute
from smallhold.apps.code.memory import FAILURE, PATTERN, CodeMemory, task_key
from smallhold.config import Settings
from smallhold.paths import Paths
from smallhold.store.handle import VaultHandle
from smallhold.store.memory.store import MemoryStore, TextEmbedder

DIAGNOSIS = "add multiplies; the test expects 5 = 2 + 3"


def test_fails_diagnoses_then_solves(make_agent: MakeAgent, project: Path, paths: Paths,
                                     settings: Settings) -> None:
    backend = scripted([edit("calc.py", WRONG), edit("calc.py", FIXED, DIAGNOSIS)])
    agent = make_agent(backend)
    run = agent.create(task_for(project))
    done = execute(agent, run.id)
    assert done.status == "solved" and done.stop_reason == "solved"
    assert done.iterations == 2 and done.baseline_passed == 1
    assert len(backend.requests) == 2  # one call an iteration: no plan, no reflection step
    first, second = agent.iteration(run.id, 1), agent.iteration(run.id, 2)
    assert not first.ok and first.signature and "AssertionError" in first.signature
    assert second.ok and "+    return a + b" in second.diff
    assert second.hypothesis is not None and second.hypothesis.text == DIAGNOSIS
    assert done.hypotheses[0].status == "supported"
    assert (project / "calc.py").read_text() == BUGGY  # the project is untouched until apply
    assert "+    return a + b" in agent.workspace(done).diff()
    assert {m.kind for m in agent.memory.list()} == {PATTERN, FAILURE}
    direct = prompt(backend, 0)
    assert "The tests before any change" in direct and "returned -1; the test expects 5" in direct
    assert "Diagnosis" not in direct  # the first attempt is a plain write
    repair = prompt(backend, 1)
    assert "add(2, 3) returned 6; the test expects 5." in repair  # read from the evidence
    assert "Diagnosis:" in repair


def test_same_failure_trips_the_breaker_once_no_start_is_left(
        make_agent: MakeAgent, project: Path, paths: Paths, settings: Settings) -> None:
    """Stuck at 3 is no reason to stop while the plain start (5) is ahead: it does not see
    the code the loop is stuck on. After it, the same failure again stops the run."""
    agent = make_agent(scripted([edit("calc.py", WRONG)]))
    run = agent.create(task_for(project, max_iterations=8))
    done = execute(agent, run.id)
    assert done.status == "stopped" and done.stop_reason == "same-failure"
    assert done.iterations == 5


def test_different_wrong_answers_are_not_the_same_failure(
        make_agent: MakeAgent, project: Path, paths: Paths, settings: Settings) -> None:
    """Wrong values differ from one sampled retry to the next: that is exploring, not a
    loop stuck on one failure (the signature alone, values blanked, saw them as one)."""
    wrong = [edit("calc.py", f"def add(a, b):\n    return a + b + {n}\n") for n in (1, 2, 3)]
    agent = make_agent(scripted([*wrong, edit("calc.py", FIXED)]))
    done = execute(agent, agent.create(task_for(project, max_iterations=5)).id)
    assert done.status == "solved" and done.iterations == 4


def test_a_repair_that_brings_back_tried_code_is_drawn_again(
        make_agent: MakeAgent, project: Path, paths: Paths, settings: Settings) -> None:
    """The same wrong code again is not a new experiment: the model is told so and asked
    for another fix, hotter, before anything is tested."""
    backend = scripted([edit("calc.py", WRONG), edit("calc.py", WRONG, "it multiplies"),
                        edit("calc.py", FIXED, DIAGNOSIS)])
    agent = make_agent(backend)
    done = execute(agent, agent.create(task_for(project)).id)
    assert done.status == "solved" and done.iterations == 2 and len(backend.requests) == 3
    second = agent.iteration(done.id, 2)
    assert "brought back code already tried" in second.rejected[0]
    redraw = backend.requests[2]
    assert "already tried" in redraw.messages[-1].content
    assert redraw.params.temperature == 1.0
    assert redraw.params.seed != backend.requests[1].params.seed
    assert second.hypothesis is not None and second.hypothesis.text == DIAGNOSIS


def test_an_unreadable_reply_is_reported_and_the_run_goes_on(
        make_agent: MakeAgent, project: Path, paths: Paths, settings: Settings) -> None:
    backend = scripted(["no code here"] * 3 + [edit("calc.py", FIXED, DIAGNOSIS)])
    agent = make_agent(backend)
    done = execute(agent, agent.create(task_for(project, max_iterations=3)).id)
    first = agent.iteration(done.id, 1)
    assert first.plan is None and "could not be read" in first.rejected[0]
    assert done.status == "solved" and done.iterations == 2


def test_tests_are_not_edited_and_dangerous_code_needs_approval(
        make_agent: MakeAgent, project: Path, paths: Paths, settings: Settings) -> None:
    cheat = edit("test_calc.py", "def test_add():\n    pass\n")
    network = edit("calc.py", "import urllib.request\n\n\ndef add(a, b):\n"
                              "    urllib.request.urlopen('http://x')\n    return a + b\n")
    backend = scripted([cheat, network])
    agent = make_agent(backend)
    run = agent.create(task_for(project, max_iterations=2))
    done = execute(agent, run.id)
    first, second = agent.iteration(run.id, 1), agent.iteration(run.id, 2)
    assert "existing test" in first.rejected[0] and first.changed == []
    assert "Tests are never changed to pass" in prompt(backend, 1)  # told why, and what to do
    assert any("not approved" in r for r in second.rejected) and second.changed == []
    assert done.status == "stopped"
    events = agent.runtime.trace.list(kind="event") if agent.runtime.trace else []
    assert any(getattr(e, "kind", "") == "code.approval" for e in events)


def test_a_rewritten_docstring_is_put_back(make_agent: MakeAgent, project: Path, paths: Paths,
                                           settings: Settings) -> None:
    """Changing the docstring's examples to match wrong code is editing the tests elsewhere."""
    spec = '"""Add two numbers.\n\n    >>> add(2, 3)\n    5\n    """'
    (project / "calc.py").write_text(f"def add(a, b):\n    {spec}\n    return a - b\n")
    cheat = ('def add(a, b):\n    """Add two numbers.\n\n    >>> add(2, 3)\n    -1\n    """\n'
             "    return a + b\n")
    agent = make_agent(scripted([edit("calc.py", cheat)]))
    done = execute(agent, agent.create(task_for(project)).id)
    first = agent.iteration(done.id, 1)
    assert done.status == "solved"
    assert first.repaired == ["calc.py: the docstring of add kept as it was (docstrings are "
                              "the specification)"]
    assert "-1" not in agent.workspace(done).diff() and spec not in agent.workspace(done).diff()


def test_docstrings_the_reply_leaves_out_are_kept_without_a_word(
        make_agent: MakeAgent, project: Path, paths: Paths, settings: Settings) -> None:
    """The prompts ask for docstrings to be left out (copying them was most of a small
    task's reply): the file keeps them, and nothing is reported as put back."""
    spec = '"""Add two numbers.\n\n    >>> add(2, 3)\n    5\n    """'
    (project / "calc.py").write_text(f'"""Arithmetic."""\n\n\ndef add(a, b):\n    {spec}\n'
                                     "    return a - b\n")
    backend = scripted([edit("calc.py", FIXED)])
    agent = make_agent(backend)
    done = execute(agent, agent.create(task_for(project)).id)
    assert done.status == "solved" and agent.iteration(done.id, 1).repaired == []
    assert agent.workspace(done).read("calc.py") == (
        f'"""Arithmetic."""\n\n\ndef add(a, b):\n    {spec}\n    return a + b\n')
    assert "leave them out" in backend.requests[0].messages[-1].content


def test_a_rewrite_that_drops_an_imported_function_gets_it_back(
        make_agent: MakeAgent, project: Path, paths: Paths, settings: Settings) -> None:
    partial = edit("calc.py", "def plus(a, b):\n    return a + b\n")
    backend = scripted([partial, edit("calc.py", FIXED, DIAGNOSIS)])
    agent = make_agent(backend)
    run = agent.create(task_for(project, max_iterations=3))
    done = execute(agent, run.id)
    first = agent.iteration(run.id, 1)
    assert first.changed == ["calc.py"] and first.rejected == []
    assert first.repaired == ["calc.py: add kept from the file as it was (the reply left "
                              "them out)"]
    assert "+def plus(a, b):" in first.diff and "-def add" not in first.diff
    assert first.passed == 1  # collected and run, not an ImportError for the whole module
    assert "put back: calc.py: add kept" in prompt(backend, 1)  # the next iteration is told
    assert done.status == "solved" and done.iterations == 2


def test_hanging_test_suite_is_a_clear_stop(make_agent: MakeAgent, project: Path,
                                            paths: Paths, settings: Settings) -> None:
    (project / "test_hang.py").write_text("import time\n\n\ndef test_hang():\n"
                                          "    time.sleep(600)\n")
    agent = make_agent(scripted([edit("calc.py", FIXED)]))
    run = agent.create(task_for(project, timeout_s=3))
    done = execute(agent, run.id)
    assert done.status == "failed" and done.stop_reason == "tests-hang"
    assert "did not finish" in (done.stop_detail or "")


def test_a_change_that_makes_things_worse_is_undone(make_agent: MakeAgent, project: Path,
                                                    paths: Paths, settings: Settings) -> None:
    broken = "def add(a, b):\n    return a +\n"  # breaks collection: test_zero fails too
    backend = scripted([edit("calc.py", broken), edit("calc.py", FIXED, DIAGNOSIS)])
    agent = make_agent(backend)
    run = agent.create(task_for(project, max_iterations=3))
    done = execute(agent, run.id)
    first, second = agent.iteration(run.id, 1), agent.iteration(run.id, 2)
    assert first.undone == "0 test(s) passed, 1 before" and not second.undone
    assert done.status == "solved" and done.iterations == 2
    repair = prompt(backend, 1)
    assert "made things worse" in repair and "+    return a +" in repair  # its diff, shown
    assert "return a +\n" not in repair.split("What the earlier")[0]  # files as before
    assert "-    return a - b\n+    return a + b" in second.diff  # built on the best state
    writes = [r.params for r in backend.requests]
    assert writes[0].temperature == 0.0  # the first try is greedy
    assert writes[1].temperature >= 0.5 and writes[1].seed != writes[0].seed  # a retry samples
    assert "return a +\n" not in agent.workspace(done).diff()
    assert all("SyntaxError" not in m.text for m in agent.memory.list())


def test_a_stopped_run_leaves_its_best_state(make_agent: MakeAgent, project: Path,
                                             paths: Paths, settings: Settings) -> None:
    broken = "def add(a, b):\n    return a +\n"
    agent = make_agent(scripted([edit("calc.py", broken)]))
    run = agent.create(task_for(project, max_iterations=2))
    done = execute(agent, run.id)
    assert done.status == "stopped"
    assert agent.workspace(done).diff() == ""  # nothing worse than the start is left to apply


def test_a_success_pattern_is_recalled_for_the_same_task_only(
        vault: VaultHandle, embedder: TextEmbedder) -> None:
    memory = CodeMemory(MemoryStore(vault, embedder))
    key = task_key({"test_calc.py": "def test_add():\n    assert add(2, 3) == 5\n"})
    memory.learn_pattern("fix add so that it returns the sum of its two arguments", key,
                         "-    return a - b\n+    return a + b\n")
    assert memory.patterns("fix add so that it returns the sum of its arguments", key)
    # the same words, other functions under test: a request worded alike is not a match
    other = task_key({"test_words.py": "def test_split():\n    assert words('a b') == 2\n"})
    assert not memory.patterns("fix add so that it returns the sum of its arguments", other)
    assert not memory.patterns("write a function to find the volume of a triangular prism", key)


def test_a_trivial_suite_teaches_no_pattern(make_agent: MakeAgent, project: Path, paths: Paths,
                                            settings: Settings) -> None:
    """One check is weak evidence: wrong code passing it must not become a 'success'."""
    (project / "test_calc.py").write_text("from calc import add\n\n\ndef test_add():\n"
                                          "    assert add(2, 3) == 5\n")
    agent = make_agent(scripted([edit("calc.py", "def add(a, b):\n    return 5\n")]))
    done = execute(agent, agent.create(task_for(project)).id)
    assert done.status == "solved" and done.checks == 1
    assert not agent.memory.list(kind=PATTERN)


def test_a_fix_that_worked_is_offered_when_the_same_error_comes_back(
        make_agent: MakeAgent, project: Path, paths: Paths, settings: Settings) -> None:
    first = scripted([edit("calc.py", WRONG), edit("calc.py", FIXED, "use + in add, not -")])
    agent = make_agent(first)
    assert execute(agent, agent.create(task_for(project)).id).status == "solved"
    hint = "This kind of error was seen before"
    assert not any(hint in m.content for r in first.requests for m in r.messages)
    # another task, same error: offered to the repair, never to the first attempt
    second = scripted([edit("calc.py", WRONG), edit("calc.py", FIXED, DIAGNOSIS)])
    agent = make_agent(second)
    run = agent.create(task_for(project, "make the sum in calc right"))
    assert execute(agent, run.id).iterations == 2
    assert hint not in prompt(second, 0)
    repair = prompt(second, 1)
    assert hint in repair and "use + in add, not -" in repair.split(hint, 1)[1]


def test_a_wrong_value_fix_is_offered_only_to_tasks_testing_the_same_functions(
        make_agent: MakeAgent, project: Path, tmp_path: Path, paths: Paths,
        settings: Settings) -> None:
    """A failed assertion's fix is about that task's code: shown to an unrelated task with
    the same failure shape it became that task's diagnosis (v4-mem50, four tasks)."""
    first = scripted([edit("calc.py", WRONG), edit("calc.py", FIXED, "use + in add, not -")])
    agent = make_agent(first)
    assert execute(agent, agent.create(task_for(project)).id).status == "solved"
    other = tmp_path / "other"
    other.mkdir()
    (other / "twice.py").write_text("def twice(x):\n    return x\n")
    (other / "test_twice.py").write_text("from twice import twice\n\n\ndef test_twice():\n"
                                         "    assert twice(2) == 4\n    assert twice(0) == 0\n")
    second = scripted([edit("twice.py", "def twice(x):\n    return x + 1\n"),
                       edit("twice.py", "def twice(x):\n    return 2 * x\n", DIAGNOSIS)])
    agent = make_agent(second)
    assert execute(agent, agent.create(task_for(other, "fix twice")).id).status == "solved"
    assert "seen before" not in prompt(second, 1)


def _durable_cells(database: Path) -> list[bytes]:
    """Every value in DBOS's database, and its base64 decoding (DBOS stores pickles so)."""
    cells: list[bytes] = []
    with closing(sqlite3.connect(database)) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in db.execute(f'SELECT * FROM "{table}"'):
                for value in row:
                    raw = value.encode() if isinstance(value, str) else value
                    if not isinstance(raw, bytes):
                        continue
                    cells.append(raw)
                    with suppress(binascii.Error, ValueError):
                        cells.append(base64.b64decode(raw, validate=True))
    return cells


def test_the_durable_database_holds_no_words_of_the_run(make_agent: MakeAgent, project: Path,
                                                         paths: Paths,
                                                         settings: Settings) -> None:
    """DBOS's database is plain SQLite outside the vault: only control data may go there."""
    secret = "the carry flag of zanzibar is inverted"
    backend = scripted([edit("calc.py", WRONG), edit("calc.py", FIXED, f"maybe {secret}")])
    agent = make_agent(backend)
    done = execute(agent, agent.create(task_for(project)).id)
    assert done.status == "solved" and agent.iteration(done.id, 2).hypothesis is not None
    cells = _durable_cells(paths.profile_dir(settings.profile) / "durable.sqlite")
    assert any(b"tokens" in cell for cell in cells)  # the scan does see step results
    for needle in (b"zanzibar", b"return a * b", b"def add"):
        assert not any(needle in cell for cell in cells), needle


def test_memory_off_neither_learns_nor_recalls(make_agent: MakeAgent, project: Path,
                                               paths: Paths, settings: Settings) -> None:
    teach = scripted([edit("calc.py", WRONG), edit("calc.py", FIXED, "use + in add, not -")])
    agent = make_agent(teach)
    assert execute(agent, agent.create(task_for(project)).id).status == "solved"
    learnt = len(agent.memory.list())
    assert learnt > 0
    quiet = scripted([edit("calc.py", WRONG), edit("calc.py", FIXED, DIAGNOSIS)])
    agent = make_agent(quiet)
    done = execute(agent, agent.create(task_for(project, memory=False)).id)
    assert done.status == "solved" and len(agent.memory.list()) == learnt
    assert "seen before" not in prompt(quiet, 1) and "earlier run" not in prompt(quiet, 1)


def test_the_reply_is_watched_as_it_is_generated(make_agent: MakeAgent, project: Path,
                                                 paths: Paths, settings: Settings) -> None:
    agent = make_agent(scripted([edit("calc.py", FIXED)]))
    pieces: list[str] = []
    agent.watch = pieces.append
    done = execute(agent, agent.create(task_for(project)).id)
    assert done.status == "solved" and len(pieces) > 3  # word by word, not one block
    assert "return a + b" in "".join(pieces)


def test_the_example_path_copied_from_the_instructions_means_the_one_editable_file(
        make_agent: MakeAgent, project: Path, paths: Paths, settings: Settings) -> None:
    agent = make_agent(scripted([edit("pkg/module.py", FIXED)]))
    done = execute(agent, agent.create(task_for(project, editable=["calc.py"])).id)
    first = agent.iteration(done.id, 1)
    assert done.status == "solved" and first.changed == ["calc.py"]
    assert "written to calc.py" in first.repaired[0]


def test_with_no_list_of_files_the_example_path_means_the_one_source_file(
        make_agent: MakeAgent, project: Path, paths: Paths, settings: Settings) -> None:
    agent = make_agent(scripted([edit("pkg/module.py", FIXED)]))
    done = execute(agent, agent.create(task_for(project)).id)
    first = agent.iteration(done.id, 1)
    assert done.status == "solved" and first.changed == ["calc.py"]
    assert not Path(done.workspace, "pkg").exists()


def test_every_prompt_ends_with_the_rules_and_the_edit_format(
        make_agent: MakeAgent, project: Path, paths: Paths, settings: Settings) -> None:
    """Where a small model reads them: in the system turn the first attempts passed fewer
    tasks (BENCHMARKS.md, v4-mem50)."""
    backend = scripted([edit("calc.py", WRONG), edit("calc.py", FIXED)])
    agent = make_agent(backend)
    execute(agent, agent.create(task_for(project)).id)
    assert len(backend.requests) == 2
    for request in backend.requests:
        user = request.messages[-1].content
        assert "leave them out" in user and user.endswith("no ellipsis; nothing else.")
        assert "FILE:" not in request.messages[0].content


def test_of_several_editable_files_the_example_path_means_the_one_with_its_names(
        make_agent: MakeAgent, project: Path, paths: Paths, settings: Settings) -> None:
    (project / "util.py").write_text("def double(x):\n    return 2 * x\n")
    (project / "other.py").write_text("def triple(x):\n    return 3 * x\n")
    agent = make_agent(scripted([edit("pkg/module.py", FIXED)]))
    done = execute(agent, agent.create(task_for(
        project, editable=["util.py", "calc.py", "other.py"])).id)
    first = agent.iteration(done.id, 1)
    assert done.status == "solved" and first.changed == ["calc.py"]
    # names shared with none of them: not guessed, turned down
    agent = make_agent(scripted([edit("pkg/module.py", "def halve(x):\n    return x / 2\n")]))
    done = execute(agent, agent.create(task_for(
        project, editable=["util.py", "calc.py"], max_iterations=1)).id)
    assert "pkg/module.py is not one of the files" in agent.iteration(done.id, 1).rejected[0]


def test_a_project_of_several_modules_gets_where_to_look(
        make_agent: MakeAgent, project: Path, paths: Paths, settings: Settings) -> None:
    (project / "util.py").write_text("def double(x):\n    return 2 * x\n")
    backend = scripted([edit("calc.py", FIXED)])
    agent = make_agent(backend)
    execute(agent, agent.create(task_for(project, description="add() multiplies")).id)
    assert "Where to look first:\n- calc.py: add (named in the task)" in prompt(backend, 0)


def test_the_third_iteration_starts_afresh_without_the_failed_code(
        make_agent: MakeAgent, project: Path, paths: Paths, settings: Settings) -> None:
    wrong = [edit("calc.py", f"def add(a, b):\n    return a * b + {n}\n") for n in (1, 2)]
    backend = scripted([*wrong, edit("calc.py", FIXED)])
    agent = make_agent(backend)
    done = execute(agent, agent.create(task_for(project, max_iterations=3)).id)
    assert done.status == "solved" and done.iterations == 3
    fresh = prompt(backend, 2)
    assert "An earlier attempt, not shown, failed" in fresh
    assert "return a - b" in fresh  # the file as it was before the run
    assert "a * b + 2" not in fresh and "Diagnosis" not in fresh  # not the failed code
    assert agent.iteration(done.id, 3).plan.summary.startswith("a fresh attempt")


def test_the_fifth_iteration_starts_plain_as_a_single_shot_would(
        make_agent: MakeAgent, project: Path, paths: Paths, settings: Settings) -> None:
    wrong = [edit("calc.py", f"def add(a, b):\n    return a * b + {n}\n") for n in range(4)]
    backend = scripted([*wrong, edit("calc.py", FIXED)])
    agent = make_agent(backend)
    done = execute(agent, agent.create(task_for(project, max_iterations=5)).id)
    assert done.status == "solved" and done.iterations == 5
    plain, request = prompt(backend, 4), backend.requests[4]
    assert "return a - b" in plain  # the file as it was before the run
    assert "test_add" not in plain and "failed" not in plain  # neither tests nor failures
    assert "a * b" not in plain and "Diagnosis" not in plain
    assert request.params.temperature == 0.0
    assert agent.iteration(done.id, 5).plan.summary == "a plain attempt from the task alone"
