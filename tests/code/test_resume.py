"""kill -9 in the middle of a run, then `resume`: finished steps are not repeated."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from agent_helpers import BUGGY, FIXED, SANDBOXES, WRONG, edit, prompt, scripted
from click.testing import CliRunner

from smallhold.apps.code import APP
from smallhold.apps.code.agent import Agent, execute
from smallhold.apps.code.errors import RunFormatError
from smallhold.cli import main
from smallhold.kit import Home, Overrides, ScriptedIO

HERE = Path(__file__).parent

# A process that starts a run and dies by SIGKILL when the model is asked for its repair.
DOOMED = textwrap.dedent("""
    import os, signal, sys
    import importlib.util
    sys.path[:0] = [{here!r}]
    from agent_helpers import WRONG, edit, scripted, task_for
    spec = importlib.util.spec_from_file_location("root_conftest", {tests!r} + "/conftest.py")
    root_conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(root_conftest)
    HashingEmbedder = root_conftest.HashingEmbedder
    from agent_helpers import SANDBOXES
    from smallhold.apps.code import APP
    from smallhold.apps.code.agent import Agent, execute
    from smallhold.kit import Home, Overrides, ScriptedIO

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    backend = scripted([edit("calc.py", WRONG)])
    inner = backend._reply
    def reply(request):
        if "Diagnosis:" in request.messages[-1].content:  # iteration 2 asks for a repair
            print(run.id, flush=True)
            die()
        return inner(request)
    backend._reply = reply
    overrides = Overrides(backend=backend, embedder=HashingEmbedder(), io=ScriptedIO())
    with Home.open(app=APP, overrides=overrides) as home:
        agent = Agent.on(home, sandboxes=SANDBOXES)
        from pathlib import Path
        run = agent.create(task_for(Path({project!r})))
        execute(agent, run.id)
""")


def _kill_mid_run(project: Path, tmp_path: Path) -> str:
    script = tmp_path / "doomed.py"
    script.write_text(DOOMED.format(here=str(HERE), tests=str(HERE.parent),
                                    project=str(project)))
    env = {**os.environ, "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


def test_resume_after_kill_continues_where_it_stopped(project: Path, tmp_path: Path,
                                                      monkeypatch, embedder) -> None:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    run_id = _kill_mid_run(project, tmp_path)
    backend = scripted([edit("calc.py", FIXED, "add multiplies")])
    overrides = Overrides(backend=backend, embedder=embedder, io=ScriptedIO())
    with Home.open(app=APP, overrides=overrides) as home:
        agent = Agent.on(home, sandboxes=SANDBOXES)
        before = agent.run(run_id)
        assert before.status == "running" and agent.iteration(run_id, 1).changed == ["calc.py"]
        assert WRONG in agent.workspace(before).read("calc.py")
        done = execute(agent, run_id, resume=True)
        assert done.status == "solved" and done.iterations == 2
        # iteration 1's write, apply and test were checkpointed: only the repair was asked
        assert len(backend.requests) == 1 and "Diagnosis:" in prompt(backend, 0)
        assert "add(2, 3) returned 6" in prompt(backend, 0)
    assert (project / "calc.py").read_text() == BUGGY

    runner = CliRunner()
    shown = runner.invoke(main, ["code", "diff", run_id])
    assert shown.exit_code == 0 and "+    return a + b" in shown.output
    listed = runner.invoke(main, ["code", "runs", "--json"])
    assert run_id in listed.output
    table = runner.invoke(main, ["code", "runs"])  # 80 columns: the id is whole, to paste
    assert run_id in table.output, table.output
    again = runner.invoke(main, ["code", "resume", run_id])
    assert again.exit_code == 0 and "already ended" in again.output
    applied = runner.invoke(main, ["code", "apply", run_id])
    assert applied.exit_code == 0, applied.output
    assert (project / "calc.py").read_text() == FIXED
    twice = runner.invoke(main, ["code", "apply", run_id])
    assert twice.exit_code == 0 and "already applied" in flat(twice.output), twice.output
    assert "merge by hand" not in twice.output
    undone = runner.invoke(main, ["code", "undo", run_id])
    assert undone.exit_code == 0 and "undid run" in flat(undone.output), undone.output
    assert (project / "calc.py").read_text() == BUGGY


def test_a_run_of_the_older_loop_is_refused_with_what_to_do(project: Path, embedder) -> None:
    """Format 1 planned and reflected in steps of their own: DBOS would replay its
    checkpoints against steps that no longer line up, so it is refused, not resumed."""
    overrides = Overrides(backend=scripted([edit("calc.py", FIXED)]), embedder=embedder,
                          io=ScriptedIO())
    with Home.open(app=APP, overrides=overrides) as home:
        agent = Agent.on(home, sandboxes=SANDBOXES)
        from agent_helpers import task_for

        old = agent.create(task_for(project)).model_copy(update={"format": 1})
        agent.save(old)
        with pytest.raises(RunFormatError, match=r"older smallhold .* code diff"):
            execute(agent, old.id, resume=True)
        assert agent.run(old.id).status == "running"  # kept, for `code diff`


def flat(text: str) -> str:
    """Terminal output without rich's line wrapping."""
    return " ".join(text.split())


def test_cli_bad_input(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    runner = CliRunner()
    missing = runner.invoke(main, ["code", "fix it", "--project", str(tmp_path / "nope")])
    assert missing.exit_code != 0 and "not a directory" in flat(missing.output)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "app.py").write_text("x = 1\n")
    no_tests = runner.invoke(main, ["code", "fix it", "--project", str(tmp_path / "empty")])
    assert no_tests.exit_code != 0 and "no tests" in flat(no_tests.output)
    unknown = runner.invoke(main, ["code", "diff", "r-nope"])
    assert unknown.exit_code != 0 and "no coding run" in flat(unknown.output)
    assert "resume" in runner.invoke(main, ["code", "--help"]).output
