"""The loop on a scripted model: plan, write, test in the sandbox, reflect, learn."""

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
    kind,
    plan,
    reflect,
    scripted,
    task_for,
)

from smallhold.apps.code.agent import execute
from smallhold.apps.code.memory import FAILURE, PATTERN, CodeMemory
from smallhold.apps.code.models import Plan
from smallhold.config import Settings
from smallhold.paths import Paths
from smallhold.store.handle import VaultHandle
from smallhold.store.memory.store import MemoryStore, TextEmbedder


def test_fails_reflects_then_solves(make_agent: MakeAgent, project: Path, paths: Paths,
                                    settings: Settings) -> None:
    backend = scripted({"Plan": [plan(["calc.py"])], "Edit": [edit("calc.py", WRONG),
                                                              edit("calc.py", FIXED)],
                        "Reflection": [reflect()]})
    agent = make_agent(backend)
    run = agent.create(task_for(project))
    done = execute(agent, run.id)
    assert done.status == "solved" and done.stop_reason == "solved"
    assert done.iterations == 2 and done.baseline_passed == 1
    first, second = agent.iteration(run.id, 1), agent.iteration(run.id, 2)
    assert not first.ok and first.signature and "AssertionError" in first.signature
    assert first.hypothesis is not None
    assert second.ok and "+    return a + b" in second.diff
    assert done.hypotheses[0].status == "supported"
    assert (project / "calc.py").read_text() == BUGGY  # the project is untouched until apply
    assert "+    return a + b" in agent.workspace(done).diff()
    kinds = {m.kind for m in agent.memory.list()}
    assert kinds == {PATTERN, FAILURE}
    first_plan = " ".join(m.content for m in next(
        r for r in backend.requests if kind(r) == "Plan").messages)
    assert "Test output before any change" in first_plan and "assert -1 == 5" in first_plan


def test_same_failure_trips_the_breaker(make_agent: MakeAgent, project: Path, paths: Paths,
                                        settings: Settings) -> None:
    backend = scripted({"Plan": [plan(["calc.py"])], "Edit": [edit("calc.py", WRONG)],
                        "Reflection": [reflect()]})
    agent = make_agent(backend)
    run = agent.create(task_for(project, max_iterations=5))
    done = execute(agent, run.id)
    assert done.status == "stopped" and done.stop_reason == "same-failure"
    assert done.iterations == 3


def test_unparseable_plan_is_reported_and_the_run_ends(make_agent: MakeAgent, project: Path,
                                                        paths: Paths, settings: Settings) -> None:
    backend = scripted({"Plan": ["this is not json"], "Edit": [edit("calc.py", FIXED)],
                        "Reflection": [reflect()]})
    agent = make_agent(backend)
    run = agent.create(task_for(project, max_iterations=3))
    done = execute(agent, run.id)
    assert done.status == "stopped"
    first = agent.iteration(run.id, 1)
    assert first.plan is None and "could not be read" in first.rejected[0]


def test_tests_are_not_edited_and_dangerous_code_needs_approval(
        make_agent: MakeAgent, project: Path, paths: Paths, settings: Settings) -> None:
    cheat = edit("test_calc.py", "def test_add():\n    pass\n")
    network = edit("calc.py", "import urllib.request\n\n\ndef add(a, b):\n"
                              "    urllib.request.urlopen('http://x')\n    return a + b\n")
    backend = scripted({"Plan": [plan(["test_calc.py"]), plan(["calc.py"])],
                        "Edit": [cheat, network], "Reflection": [reflect("x"), reflect("y")]})
    agent = make_agent(backend)
    run = agent.create(task_for(project, max_iterations=2))
    done = execute(agent, run.id)
    first, second = agent.iteration(run.id, 1), agent.iteration(run.id, 2)
    assert "existing test" in first.rejected[0] and first.changed == []
    assert any("not approved" in r for r in second.rejected) and second.changed == []
    assert done.status == "stopped"
    events = agent.runtime.trace.list(kind="event") if agent.runtime.trace else []
    assert any(getattr(e, "kind", "") == "code.approval" for e in events)


def test_a_rewrite_that_drops_an_imported_function_gets_it_back(
        make_agent: MakeAgent, project: Path, paths: Paths, settings: Settings) -> None:
    partial = edit("calc.py", "def plus(a, b):\n    return a + b\n")
    backend = scripted({"Plan": [plan(["calc.py"])], "Edit": [partial, edit("calc.py", FIXED)],
                        "Reflection": [reflect()]})
    agent = make_agent(backend)
    run = agent.create(task_for(project, max_iterations=3))
    done = execute(agent, run.id)
    first = agent.iteration(run.id, 1)
    assert first.changed == ["calc.py"] and first.rejected == []
    assert first.repaired == ["calc.py: add kept as it was (the rewrite left it out and "
                              "test_calc.py imports it)"]
    assert "+def plus(a, b):" in first.diff and "-def add" not in first.diff
    assert first.passed == 1  # collected and run, not an ImportError for the whole module
    second_plan = " ".join(m.content for m in [
        r for r in backend.requests if kind(r) == "Plan"][1].messages)
    assert "put back: calc.py: add kept" in second_plan  # the next iteration is told
    assert done.status == "solved" and done.iterations == 2


def test_hanging_test_suite_is_a_clear_stop(make_agent: MakeAgent, project: Path,
                                            paths: Paths, settings: Settings) -> None:
    (project / "test_hang.py").write_text("import time\n\n\ndef test_hang():\n"
                                          "    time.sleep(600)\n")
    agent = make_agent(scripted({"Plan": [plan(["calc.py"])]}))
    run = agent.create(task_for(project, timeout_s=3))
    done = execute(agent, run.id)
    assert done.status == "failed" and done.stop_reason == "tests-hang"
    assert "did not finish" in (done.stop_detail or "")


def test_a_change_that_makes_things_worse_is_undone(make_agent: MakeAgent, project: Path,
                                                    paths: Paths, settings: Settings) -> None:
    broken = "def add(a, b):\n    return a +\n"  # breaks collection: test_zero fails too
    backend = scripted({"Plan": [plan(["calc.py"])], "Edit": [edit("calc.py", broken),
                                                              edit("calc.py", FIXED)],
                        "Reflection": [reflect()]})
    agent = make_agent(backend)
    run = agent.create(task_for(project, max_iterations=3))
    done = execute(agent, run.id)
    first, second = agent.iteration(run.id, 1), agent.iteration(run.id, 2)
    assert first.undone == "0 test(s) passed, 1 before" and not second.undone
    assert done.status == "solved" and done.iterations == 2
    second_plan = " ".join(m.content for m in [
        r for r in backend.requests if kind(r) == "Plan"][1].messages)
    assert "made things worse" in second_plan
    assert "return a +\n" not in second_plan.split("What the earlier")[0]  # files as before
    assert "assert -1 == 5" in second_plan  # the test output of the files as they are now
    assert "-    return a - b\n+    return a + b" in second.diff  # built on the best state
    writes = [r.params for r in backend.requests if kind(r) == "Edit"]
    assert writes[0].temperature == 0.0  # the first try is greedy
    assert writes[1].temperature > 0.0 and writes[1].seed != writes[0].seed  # a retry samples
    assert "return a +\n" not in agent.workspace(done).diff()
    assert all("SyntaxError" not in m.text for m in agent.memory.list())


def test_a_stopped_run_leaves_its_best_state(make_agent: MakeAgent, project: Path,
                                             paths: Paths, settings: Settings) -> None:
    broken = "def add(a, b):\n    return a +\n"
    backend = scripted({"Plan": [plan(["calc.py"])], "Edit": [edit("calc.py", broken)],
                        "Reflection": [reflect()]})
    agent = make_agent(backend)
    run = agent.create(task_for(project, max_iterations=2))
    done = execute(agent, run.id)
    assert done.status == "stopped"
    assert agent.workspace(done).diff() == ""  # nothing worse than the start is left to apply


def test_a_success_pattern_is_recalled_for_a_similar_task_only(
        vault: VaultHandle, embedder: TextEmbedder) -> None:
    memory = CodeMemory(MemoryStore(vault, embedder))
    memory.learn_pattern("fix add so that it returns the sum of its two arguments",
                         Plan(problem_type="bugfix", summary="return a + b, not a - b",
                              files=["calc.py"]), ["calc.py"])
    assert memory.patterns("fix add so that it returns the sum of its arguments")
    # recency lifts a fresh memory's hybrid score; whether it is a hint is judged on meaning
    assert not memory.patterns("write a function to find the volume of a triangular prism")


def test_a_fix_that_worked_is_offered_when_the_same_error_comes_back(
        make_agent: MakeAgent, project: Path, paths: Paths, settings: Settings) -> None:
    first = scripted({"Plan": [plan(["calc.py"], "use + in add, not -")],
                      "Edit": [edit("calc.py", WRONG), edit("calc.py", FIXED)],
                      "Reflection": [reflect()]})
    agent = make_agent(first)
    assert execute(agent, agent.create(task_for(project)).id).status == "solved"
    hint = "This error was seen before; the fix that worked then"
    assert not any(hint in m.content for r in first.requests for m in r.messages)
    # another task, same error: the baseline's failed assert has the learnt signature
    second = scripted({"Plan": [plan(["calc.py"])], "Edit": [edit("calc.py", FIXED)],
                       "Reflection": [reflect()]})
    agent = make_agent(second)
    run = agent.create(task_for(project, "make the sum in calc right"))
    assert execute(agent, run.id).iterations == 1
    prompt = " ".join(m.content for m in next(
        r for r in second.requests if kind(r) == "Plan").messages)
    assert hint in prompt and "use + in add, not -" in prompt.split(hint, 1)[1]


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
    backend = scripted({"Plan": [plan(["calc.py"], summary=f"fix {secret}")],
                        "Edit": [edit("calc.py", WRONG), edit("calc.py", FIXED)],
                        "Reflection": [reflect(f"maybe {secret}")]})
    agent = make_agent(backend)
    done = execute(agent, agent.create(task_for(project)).id)
    assert done.status == "solved" and agent.iteration(done.id, 1).hypothesis is not None
    cells = _durable_cells(paths.profile_dir(settings.profile) / "durable.sqlite")
    assert any(b"tokens" in cell for cell in cells)  # the scan does see step results
    for needle in (b"zanzibar", b"return a * b", b"def add"):
        assert not any(needle in cell for cell in cells), needle
