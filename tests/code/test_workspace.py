"""The run's copy of the project: edits, diffs, and applying back without losing work."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from smallhold.apps.code.errors import ApplyConflictError, ProjectError
from smallhold.apps.code.workspace import (
    Workspace,
    commit_in_project,
    dirty_files,
    safe_relative,
)


def make_project(root: Path, git: bool = False) -> Path:
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "core.py").write_text("def f():\n    return 1\n")
    (root / "tests").mkdir()
    (root / "tests" / "test_core.py").write_text("from pkg.core import f\n\n"
                                                 "def test_f():\n    assert f() == 2\n")
    (root / ".venv").mkdir()
    (root / ".venv" / "big.bin").write_text("x")
    if git:
        for args in (["init", "-q"], ["add", "-A"],
                     ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "i"]):
            subprocess.run(["git", *args], cwd=root, check=True)
    return root


def test_copy_edit_diff_apply(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    ws = Workspace.create(project, tmp_path / "run" / "work")
    assert "pkg/core.py" in ws.files() and not any(".venv" in f for f in ws.files())
    assert ws.write("pkg/core.py", "def f():\n    return 2\n")
    assert not ws.write("pkg/core.py", "def f():\n    return 2\n")  # same content: no change
    ws.commit("iteration 1")
    assert "+    return 2" in ws.diff()
    assert ws.changed() == {"pkg/core.py": "M"}
    assert project.joinpath("pkg/core.py").read_text().endswith("return 1\n")  # untouched
    assert ws.apply() == ["pkg/core.py"]
    assert project.joinpath("pkg/core.py").read_text().endswith("return 2\n")
    # twice: nothing to write and no clash, the project already holds the run's result
    assert ws.conflicts() == [] and ws.already_applied() == ["pkg/core.py"]
    assert ws.apply() == []


def test_an_applied_run_is_undone_and_a_file_changed_since_blocks_the_undo(
        tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    ws = Workspace.create(project, tmp_path / "run" / "work")
    ws.write("pkg/core.py", "def f():\n    return 2\n")
    ws.write("pkg/extra.py", "X = 1\n")
    ws.commit("iteration 1")
    assert ws.unapply() == []  # not applied yet: nothing to take back
    assert sorted(ws.apply()) == ["pkg/core.py", "pkg/extra.py"]
    assert sorted(ws.unapply()) == ["pkg/core.py", "pkg/extra.py"]
    assert project.joinpath("pkg/core.py").read_text() == "def f():\n    return 1\n"
    assert not project.joinpath("pkg/extra.py").exists()  # added by the run: removed
    ws.apply()
    project.joinpath("pkg/core.py").write_text("def f():\n    return 'mine'\n")
    with pytest.raises(ApplyConflictError, match=r"changed .* since the run was applied"):
        ws.unapply()
    assert project.joinpath("pkg/extra.py").exists()  # refused whole: nothing undone
    assert "mine" in project.joinpath("pkg/core.py").read_text()


def test_commit_in_project_names_the_run_and_runs_no_hook(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", git=True)
    marker = tmp_path / "hook-ran"
    hook = project / ".git" / "hooks" / "pre-commit"
    hook.write_text(f"#!/bin/sh\ntouch {marker}\n")
    hook.chmod(0o755)
    subprocess.run(["git", "config", "user.name", "u"], cwd=project, check=True)
    subprocess.run(["git", "config", "user.email", "u@u"], cwd=project, check=True)
    project.joinpath("pkg/core.py").write_text("def f():\n    return 2\n")
    project.joinpath("notes.txt").write_text("not the run's\n")
    commit = commit_in_project(project, ["pkg/core.py"], "fix f\n\nrun r1")
    shown = subprocess.run(["git", "show", "--stat", "--format=%s%n%b", commit], cwd=project,
                           capture_output=True, text=True, check=True).stdout
    assert "fix f" in shown and "run r1" in shown and "pkg/core.py" in shown
    assert "notes.txt" not in shown  # only the run's files
    assert not marker.exists()
    with pytest.raises(ProjectError, match="not a git repository"):
        commit_in_project(make_project(tmp_path / "plain"), ["pkg/core.py"], "x")


def test_apply_refuses_when_the_project_changed_meanwhile(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    ws = Workspace.create(project, tmp_path / "run" / "work")
    ws.write("pkg/core.py", "def f():\n    return 2\n")
    ws.commit("edit")
    project.joinpath("pkg/core.py").write_text("def f():\n    return 'mine'\n")
    with pytest.raises(ApplyConflictError, match=r"pkg/core\.py"):
        ws.apply()
    assert "mine" in project.joinpath("pkg/core.py").read_text()  # the user's work is intact


def test_dirty_git_tree_is_copied_with_its_uncommitted_work(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", git=True)
    project.joinpath("pkg/core.py").write_text("def f():\n    return 'wip'\n")
    project.joinpath("notes.txt").write_text("untracked\n")
    assert dirty_files(project) == ["notes.txt", "pkg/core.py"]
    ws = Workspace.create(project, tmp_path / "run" / "work")
    assert "wip" in ws.read("pkg/core.py") and "notes.txt" in ws.files()
    assert ws.diff() == ""


def test_discard_drops_what_a_killed_step_left(tmp_path: Path) -> None:
    ws = Workspace.create(make_project(tmp_path / "p"), tmp_path / "run" / "work")
    ws.write("pkg/core.py", "half")
    ws.write("pkg/new.py", "x = 1\n")
    ws.discard()
    assert ws.read("pkg/core.py").endswith("return 1\n") and "pkg/new.py" not in ws.files()


@pytest.mark.parametrize("bad", ["/etc/passwd", "../outside.py", "pkg/../../x", "", ".git/config"])
def test_paths_that_leave_the_project_are_refused(bad: str) -> None:
    with pytest.raises(ProjectError, match="not a path inside the project"):
        safe_relative(bad)


def test_bad_projects_get_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="does not exist"):
        Workspace.create(tmp_path / "missing", tmp_path / "w")
    (tmp_path / "file.py").write_text("x")
    with pytest.raises(ProjectError, match="is a file"):
        Workspace.create(tmp_path / "file.py", tmp_path / "w")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ProjectError, match="empty"):
        Workspace.create(tmp_path / "empty", tmp_path / "w")
