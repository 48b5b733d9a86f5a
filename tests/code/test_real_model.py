"""End to end on the real bundled coder model: the CLI, a small repo task, the sandbox."""

from __future__ import annotations

import hashlib
import json
import textwrap
from pathlib import Path

import pytest
from agent_helpers import needs_bwrap
from click.testing import CliRunner

from smallhold.cli import main

CALC = textwrap.dedent('''\
    """Small arithmetic helpers."""


    def add(a: int, b: int) -> int:
        """The sum of a and b."""
        return a - b


    def double(a: int) -> int:
        """Twice a."""
        return add(a, a)
    ''')
TESTS = textwrap.dedent('''\
    from calc import add, double


    def test_add():
        assert add(2, 3) == 5


    def test_add_negative():
        assert add(-1, -1) == -2


    def test_double():
        assert double(4) == 8
    ''')


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and ".git" not in p.parts}


@pytest.mark.model
@needs_bwrap
def test_the_coder_model_fixes_a_small_repo(tmp_path: Path, smallhold_home: Path,
                                            real_models_dir: Path) -> None:
    project = tmp_path / "calc"
    (project / "tests").mkdir(parents=True)
    (project / "calc.py").write_text(CALC)
    (project / "tests" / "test_calc.py").write_text(TESTS)
    (project / "pyproject.toml").write_text('[tool.pytest.ini_options]\npythonpath = ["."]\n')
    before = _digest(project)
    runner = CliRunner()
    task = "add(2, 3) gives -1: add in calc.py subtracts instead of adding. Fix it"
    done = runner.invoke(main, ["code", "run", task, "--project", str(project),
                                "-n", "3", "--timeout", "60", "--json"])
    assert done.exit_code in (0, 1), done.output
    run = json.loads(done.stdout)
    assert _digest(project) == before  # the agent works on a copy, never the project
    shown = runner.invoke(main, ["code", "show", run["id"], "--json"])
    iterations = json.loads(shown.stdout)["iterations"]
    first = iterations[0]
    assert first["plan"] is not None, first["rejected"]  # a plan the loop could read
    assert not any("could not be read" in r for r in first["rejected"]), first["rejected"]
    assert first["test_summary"]  # its change was tested in the sandbox
    tried = [(it["plan"], it["rejected"], it["test_summary"]) for it in iterations]
    assert run["status"] == "solved", (run["reason"], tried)
    diff = runner.invoke(main, ["code", "diff", run["id"]])
    assert "+    return a + b" in diff.stdout
