"""Code in the sandbox against the host's git (issue 22, §1).

The sandbox may write anything in the run's working copy; afterwards the host runs git
there (``Workspace.commit``, ``discard``, ``diff``...). Each test plants, from inside a real
bubblewrap sandbox, something git would run (hooks, ``core.fsmonitor``, ``core.hooksPath``,
an included config, filter/diff drivers with ``.gitattributes``, a signing program, a nested
repository, ``core.worktree`` aimed at a host folder) or a symbolic link the host might
follow, then runs the Workspace operations the agent runs and proves nothing ran, and
nothing was written or read, on the host outside the copy. Every planted program writes a
marker file into a folder the sandbox cannot see; the tests assert that folder stays empty.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from smallhold.apps.code.agent import Agent
from smallhold.apps.code.errors import ProjectError
from smallhold.apps.code.memory import CodeMemory
from smallhold.apps.code.models import Task
from smallhold.apps.code.sandbox import Limits, Sandbox, SandboxResult
from smallhold.apps.code.workspace import Workspace
from smallhold.config import Settings
from smallhold.paths import Paths
from smallhold.runtime.backends.scripted import ScriptedBackend
from smallhold.runtime.runtime import Runtime
from smallhold.store.handle import VaultHandle
from smallhold.store.memory.store import MemoryStore, TextEmbedder

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None or shutil.which("git") is None,
                                reason="needs bubblewrap and git (scripts/setup.sh does it)")
LIMITS = Limits(wall_seconds=30, cpu_seconds=20, memory_bytes=1024**3, processes=64)
HOOKS = ("pre-commit", "prepare-commit-msg", "commit-msg", "post-commit", "post-checkout",
         "reference-transaction", "post-index-change", "pre-auto-gc", "post-rewrite")
KINDS = ("hooks", "fsmonitor", "hooks-path", "alias", "include", "filter", "external-diff",
         "gpg", "worktree")

# Runs in the sandbox (and, for the second line of defence, on the host): writes the
# plant's files into every git directory it can reach, appends its config, runs its
# commands there. Prints what it could not write.
PLANTER = r"""
import json, os, subprocess, sys
plan = json.loads(sys.argv[1])
for rel, text in plan["tree"].items():
    os.makedirs(os.path.dirname(os.path.abspath(rel)), exist_ok=True)
    with open(rel, "w") as f:
        f.write(text)
    os.chmod(rel, 0o755)
for gitdir in plan["gitdirs"]:
    try:
        os.makedirs(os.path.join(gitdir, "hooks"), exist_ok=True)
        for rel, text in plan["git"].items():
            with open(os.path.join(gitdir, rel), "w") as f:
                f.write(text)
            os.chmod(os.path.join(gitdir, rel), 0o755)
        env = {**os.environ, "GIT_DIR": gitdir, "GIT_WORK_TREE": os.getcwd()}
        for command in plan["commands"]:
            subprocess.run(["/bin/sh", "-c", command], env=env, check=True)
        with open(os.path.join(gitdir, "config"), "a") as f:
            f.write(plan["config"])
        print("planted", gitdir)
    except (OSError, subprocess.CalledProcessError) as exc:
        print("refused", gitdir, exc)
"""


def plan(kind: str, work: Path, marks: Path, gitdirs: list[str]) -> dict[str, object]:
    """What one kind of attack writes: files in the tree, in the git dir, config, commands."""
    def program(name: str, tail: str = "") -> str:
        return f"#!/bin/sh\ntouch {marks}/{name}\n{tail}"

    evil = work / "evil"
    tree: dict[str, str] = {}
    git: dict[str, str] = {}
    config, commands = "", []
    if kind == "hooks":
        git = {f"hooks/{name}": program(name) for name in HOOKS}
    elif kind == "fsmonitor":
        tree = {"evil/fsmonitor": program("fsmonitor")}
        config = f"[core]\n\tfsmonitor = {evil}/fsmonitor\n"
    elif kind == "hooks-path":
        tree = {f"evil/hooks/{name}": program(f"hooks-path-{name}") for name in HOOKS}
        config = f"[core]\n\thooksPath = {evil}/hooks\n"
    elif kind == "alias":
        config = "[alias]\n" + "".join(f"\t{name} = !touch {marks}/alias-{name}\n" for name in
                                       ("add", "status", "commit", "diff", "reset", "clean",
                                        "rev-parse", "ls-files", "rev-list"))
    elif kind == "include":
        tree = {"evil/fsmonitor": program("include-fsmonitor"),
                "evil/included.cfg": f"[core]\n\tfsmonitor = {evil}/fsmonitor\n",
                **{f"evil/hooks/{name}": program(f"include-{name}") for name in HOOKS}}
        tree["evil/included.cfg"] += f"\thooksPath = {evil}/hooks\n"
        config = (f"[include]\n\tpath = {evil}/included.cfg\n"
                  f"[includeIf \"gitdir:/\"]\n\tpath = {evil}/included.cfg\n")
    elif kind == "filter":
        tree = {".gitattributes": "* filter=evil diff=evil merge=evil\n",
                "evil/filter": program("filter", "cat\n"),
                "evil/textconv": program("textconv", 'cat "$1"\n'),
                "evil/diffcmd": program("diff-command")}
        config = (f"[filter \"evil\"]\n\tclean = {evil}/filter\n\tsmudge = {evil}/filter\n"
                  f"\tprocess = {evil}/filter\n"
                  f"[diff \"evil\"]\n\ttextconv = {evil}/textconv\n\tcommand = {evil}/diffcmd\n"
                  f"[merge \"evil\"]\n\tdriver = {evil}/filter\n")
    elif kind == "external-diff":
        tree = {"evil/extdiff": program("external-diff")}
        config = f"[diff]\n\texternal = {evil}/extdiff\n"
    elif kind == "gpg":
        tree = {"evil/gpg": program("gpg")}
        config = f"[commit]\n\tgpgSign = true\n[gpg]\n\tprogram = {evil}/gpg\n"
    elif kind == "worktree":  # HEAD gets a file "worktree", the work tree becomes ``marks``
        commands = ["blob=$(echo pwned | git hash-object -w --stdin) && "
                    "git update-index --add --cacheinfo 100644,$blob,worktree && "
                    "git -c user.name=x -c user.email=x@x commit -q --no-verify -m evil"]
        config = f"[core]\n\tworktree = {marks}\n"
    return {"tree": tree, "git": git, "config": config, "commands": commands,
            "gitdirs": gitdirs}


def host_git_dir(ws: Workspace) -> Path:
    """Where the host keeps the copy's history (inside the copy before issue 22)."""
    return Path(getattr(ws, "git_dir", ws.path / ".git"))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "core.py").write_text("def f():\n    return 1\n")
    (root / "test_core.py").write_text("from pkg.core import f\n\ndef test_f():\n"
                                       "    assert f() == 2\n")
    return root


@pytest.fixture
def marks(tmp_path: Path) -> Path:
    folder = tmp_path / "marks"
    folder.mkdir()
    return folder


@pytest.fixture
def ws(project: Path, tmp_path: Path) -> Workspace:
    return Workspace.create(project, tmp_path / "run" / "work")


def in_sandbox(ws: Workspace, code: str, *args: str) -> SandboxResult:
    result = Sandbox(ws.path, limits=LIMITS).run([sys.executable, "-c", code, *args])
    assert result.returncode == 0, result.stderr
    return result


def agent_operations(ws: Workspace, attach: bool = True) -> None:
    """What the agent and ``smallhold code`` run on the host after the sandbox ran."""
    if attach:  # as each step of the agent does
        ws = Workspace.attach(ws.path, ws.project)
    ws.discard()
    before = ws.commit("(nothing pending)")
    ws.files()
    ws.write("pkg/core.py", "def f():\n    return 2\n")
    ws.commit("iteration 1")
    ws.diff(before)
    ws.diff()
    ws.changed()
    ws.conflicts()
    ws.apply()
    ws.reset(before)
    ws.discard()


@pytest.mark.parametrize("kind", KINDS)
def test_git_files_planted_from_the_sandbox_never_run_on_the_host(
        ws: Workspace, marks: Path, kind: str) -> None:
    gitdir = host_git_dir(ws)
    attack = plan(kind, ws.path, marks, [".git", str(gitdir)])
    in_sandbox(ws, PLANTER, json.dumps(attack))
    if attack["config"]:  # the host's git dir was out of the sandbox's reach
        assert str(attack["config"]) not in (gitdir / "config").read_text()
    assert not any((gitdir / "hooks" / name).exists() for name in HOOKS)
    agent_operations(ws)
    assert sorted(os.listdir(marks)) == []


@pytest.mark.parametrize("kind", KINDS)
def test_a_poisoned_git_dir_is_inert_on_the_host_too(ws: Workspace, marks: Path,
                                                      kind: str) -> None:
    """The second line: were the git dir ever written by untrusted code (a bind mistake,
    a copy made by an older version), git still runs with hooks, fsmonitor, drivers and
    signing off, and with the work tree the host names, even before attach rewrites it."""
    attack = plan(kind, ws.path, marks, [str(host_git_dir(ws))])
    subprocess.run([sys.executable, "-c", PLANTER, json.dumps(attack)], cwd=ws.path,
                   check=True, capture_output=True)
    agent_operations(ws, attach=False)
    assert sorted(os.listdir(marks)) == []


def plant_nested_repository(ws: Workspace, marks: Path) -> None:
    """A repository at ``sub/`` whose own config and hooks would run programs."""
    plant = (f"set -e; mkdir -p sub; cd sub; git init -q; echo x > f; "
             f"printf '#!/bin/sh\\ntouch {marks}/nested-$1\\n' > mon; chmod +x mon; "
             f"git config core.fsmonitor \"$PWD/mon\"; "
             f"git -c user.name=x -c user.email=x@x commit -q --allow-empty -m x; "
             f"for h in {' '.join(HOOKS)}; do cp mon .git/hooks/$h; done; echo y > g")
    in_sandbox(ws, "import subprocess, sys; subprocess.run(['/bin/sh', '-c', sys.argv[1]], "
                   "check=True)", plant)


def test_a_nested_repository_planted_in_the_copy_is_removed_and_runs_nothing(
        ws: Workspace, marks: Path) -> None:
    plant_nested_repository(ws, marks)
    agent_operations(ws)
    assert sorted(os.listdir(marks)) == []
    assert not (ws.path / "sub").exists()


def test_a_nested_repository_committed_runs_nothing_and_is_never_applied(
        ws: Workspace, marks: Path) -> None:
    plant_nested_repository(ws, marks)
    ws.commit("with a nested repository")  # `git add -A` records it
    (ws.path / "sub" / "f").write_text("changed\n")
    assert ws.changed() == {"sub": "A"}
    ws.diff()
    ws.commit("again")
    with pytest.raises(ProjectError, match="not a regular file"):
        ws.apply()
    assert not (ws.project / "sub").exists()
    assert sorted(os.listdir(marks)) == []


def test_the_sandbox_cannot_write_the_hosts_git_dir(ws: Workspace) -> None:
    gitdir = host_git_dir(ws)
    config_before = (gitdir / "config").read_bytes()
    result = in_sandbox(ws, "import sys\nfor p in sys.argv[1:]:\n    try:\n"
                            "        open(p, 'a').write('x')\n        print('wrote', p)\n"
                            "    except OSError as exc:\n        print('refused', p, exc)\n",
                        str(gitdir / "config"), str(gitdir / "hooks" / "post-commit"),
                        str(gitdir / "HEAD"))
    assert "refused" in result.stdout
    assert (gitdir / "config").read_bytes() == config_before
    assert not (gitdir / "hooks" / "post-commit").exists()


def legacy(ws: Workspace) -> None:
    """Turn ``ws`` into the layout older versions made: the git dir inside the copy."""
    if host_git_dir(ws) != ws.path / ".git":
        os.rename(host_git_dir(ws), ws.path / ".git")


def test_a_run_made_by_an_older_version_is_migrated_and_what_was_planted_stays_inert(
        ws: Workspace, marks: Path) -> None:
    base = ws.base
    ws.write("pkg/core.py", "def f():\n    return 3\n")
    ws.commit("iteration 1")
    legacy(ws)
    for kind in ("hooks", "fsmonitor", "hooks-path", "include", "filter", "gpg", "worktree"):
        in_sandbox(ws, PLANTER, json.dumps(plan(kind, ws.path, marks, [".git"])))
    again = Workspace.attach(ws.path, ws.project)
    assert again.base == base
    assert not (again.path / ".git").exists()
    assert "+    return 3" in again.diff()
    agent_operations(again)
    assert sorted(os.listdir(marks)) == []


def test_resuming_an_older_run_moves_its_repository_out_before_the_sandbox_runs(
        project: Path, vault: VaultHandle, settings: Settings, paths: Paths,
        embedder: TextEmbedder) -> None:
    runtime = Runtime(settings, paths, backend=ScriptedBackend(reply=lambda _r: ""),
                      app="code")
    agent = Agent(runtime, vault, CodeMemory(MemoryStore(vault, embedder)),
                  paths.data_dir / "runs", limits=LIMITS)
    run = agent.create(Task(description="fix f", project=str(project),
                            test_command=["true"], python=sys.executable))
    ws = agent.workspace(run)
    legacy(ws)
    agent.sandbox(run)
    assert not (ws.path / ".git").exists() and (ws.git_dir / "HEAD").is_file()
    assert agent.test(run).ok


def test_write_never_follows_a_link_the_sandbox_put_in_place_of_a_folder(
        ws: Workspace, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    in_sandbox(ws, "import os, shutil, sys; shutil.rmtree('pkg'); os.symlink(sys.argv[1], 'pkg')",
               str(outside))
    with pytest.raises(ProjectError, match="link"):
        ws.write("pkg/core.py", "def f():\n    return 2\n")
    assert list(outside.iterdir()) == []


def test_discard_removes_a_link_hidden_by_an_ignore_file(ws: Workspace, tmp_path: Path
                                                         ) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    in_sandbox(ws, "import os, sys; open('pkg/.gitignore', 'w').write('.gitignore\\nevil\\n'); "
                   "os.symlink(sys.argv[1], 'pkg/evil')", str(outside))
    ws.discard()
    assert not os.path.lexists(ws.path / "pkg" / "evil")
    ws.write("pkg/evil/new.py", "x = 1\n")
    assert list(outside.iterdir()) == []


def test_read_and_apply_never_follow_a_link_out_of_the_copy(ws: Workspace, tmp_path: Path
                                                            ) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("the host's secret\n")
    in_sandbox(ws, "import os, sys; os.remove('pkg/core.py'); "
                   "os.symlink(sys.argv[1], 'pkg/core.py')", str(secret))
    assert "pkg/core.py" not in ws.files()
    with pytest.raises(ProjectError, match="link"):
        ws.read("pkg/core.py")
    ws.commit("the tests replaced a file by a link")
    with pytest.raises(ProjectError, match="link"):
        ws.apply()
    assert "secret" not in (ws.project / "pkg" / "core.py").read_text()
