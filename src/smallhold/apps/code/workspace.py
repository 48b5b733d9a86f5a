"""The agent works on a copy of the project, never on the project itself.

The copy is a fresh git repository whose first commit is the project as it was (committed
and uncommitted work alike), so each iteration is a commit, ``smallhold code diff`` is
``git diff`` against that base, and the project is only written by ``smallhold code apply``,
which refuses any file that changed in the project since the copy was taken. A dirty git
tree therefore loses nothing: its edits are in the base and apply will not overwrite them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from smallhold.errors import ApplyConflictError, ProjectError

IGNORED_DIRS = frozenset({".git", ".hg", ".svn", ".venv", "venv", "env", "node_modules",
                          "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache",
                          ".tox", ".nox", "build", "dist", ".eggs", ".idea", ".vscode"})
MAX_FILES = 5_000
MAX_BYTES = 200 * 1024**2
MANIFEST = ".smallhold-base.json"  # kept outside the copy's tree, next to it
GIT_ENV = {"GIT_AUTHOR_NAME": "smallhold", "GIT_AUTHOR_EMAIL": "code@smallhold.invalid",
           "GIT_COMMITTER_NAME": "smallhold", "GIT_COMMITTER_EMAIL": "code@smallhold.invalid",
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}


def _git(cwd: Path, *args: str, check: bool = True) -> str:
    if shutil.which("git") is None:
        raise ProjectError("the coding agent needs git to track its edits; install git "
                           "(Debian/Ubuntu: `sudo apt-get install git`).")
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV})
    if check and done.returncode != 0:
        raise ProjectError(f"git {' '.join(args[:2])} failed in {cwd}: {done.stderr.strip()}")
    return done.stdout


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def safe_relative(path: str) -> str:
    """A project-relative POSIX path, or ProjectError for anything that leaves the project."""
    pure = PurePosixPath(path.strip().replace("\\", "/"))
    if not path.strip() or pure.is_absolute() or ".." in pure.parts or pure.parts[:1] == (".git",):
        raise ProjectError(f"{path!r} is not a path inside the project")
    return str(pure)


def project_files(project: Path) -> list[str]:
    """The files worth copying: git's view (tracked + untracked, not ignored) or a walk."""
    if (project / ".git").exists():
        listed = _git(project, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
        files = sorted({f for f in listed.split("\0") if f and (project / f).is_file()})
    else:
        files = []
        for root, dirs, names in os.walk(project):
            dirs[:] = sorted(d for d in dirs if d not in IGNORED_DIRS
                             and not d.endswith(".egg-info"))
            rel = Path(root).relative_to(project)
            files += [str(rel / n) if str(rel) != "." else n for n in sorted(names)
                      if not n.endswith((".pyc", ".pyo"))]
    if len(files) > MAX_FILES:
        raise ProjectError(f"{project} has {len(files):,} files; the agent works on projects "
                           f"of up to {MAX_FILES:,}. Point --project at the package you mean.")
    return files


def dirty_files(project: Path) -> list[str]:
    """Uncommitted changes in a git project (empty for a clean tree or no git)."""
    if not (project / ".git").exists():
        return []
    status = _git(project, "status", "--porcelain", "-z", check=False)
    return sorted({entry[3:] for entry in status.split("\0") if len(entry) > 3})


@dataclass(frozen=True)
class Workspace:
    """The working copy of one run: ``path`` holds the files, ``base`` their first commit."""

    path: Path
    project: Path
    base: str

    @classmethod
    def create(cls, project: Path, path: Path) -> Workspace:
        project = Path(project).expanduser().resolve()
        if not project.exists():
            raise ProjectError(f"{project} does not exist; pass --project with a directory.")
        if not project.is_dir():
            raise ProjectError(f"{project} is a file, not a project directory; pass the "
                               "directory that holds it.")
        files = project_files(project)
        if not files:
            raise ProjectError(f"{project} is empty; there is nothing to work on.")
        total = sum((project / f).stat().st_size for f in files)
        if total > MAX_BYTES:
            raise ProjectError(f"{project} holds {total / 1e6:.0f} MB of files; the agent "
                               f"copies projects of up to {MAX_BYTES / 1e6:.0f} MB.")
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        manifest = {}
        for rel in files:
            target = path / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(project / rel, target)
            manifest[rel] = _sha(project / rel)
        (path.parent / MANIFEST).write_text(json.dumps(manifest, indent=0, sort_keys=True))
        _git(path, "init", "-q", "-b", "smallhold")
        _git(path, "add", "-A", "-f")
        _git(path, "commit", "-q", "--no-verify", "-m", f"base: {project}")
        return cls(path, project, _git(path, "rev-parse", "HEAD").strip())

    @classmethod
    def attach(cls, path: Path, project: Path) -> Workspace:
        if not (path / ".git").exists():
            raise ProjectError(f"the run's working copy {path} is gone; start a new run.")
        base = _git(path, "rev-list", "--max-parents=0", "HEAD").split()[0]
        return cls(path, Path(project), base)

    # -- the agent's edits ------------------------------------------------------------------

    def read(self, rel: str) -> str:
        target = self.path / safe_relative(rel)
        if not target.is_file():
            raise ProjectError(f"{rel} is not a file in the project")
        return target.read_text(encoding="utf-8", errors="replace")

    def files(self) -> list[str]:
        return sorted(f for f in _git(self.path, "ls-files", "-z", "--cached", "--others",
                                      "--exclude-standard").split("\0") if f)

    def write(self, rel: str, content: str) -> bool:
        """Replace ``rel`` atomically (a kill never leaves half a file); True if it changed."""
        target = self.path / safe_relative(rel)
        if target.is_file() and target.read_text(encoding="utf-8", errors="replace") == content:
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".{target.name}.smallhold-tmp")
        temp.write_text(content, encoding="utf-8")
        os.replace(temp, target)
        return True

    def commit(self, message: str) -> str:
        """Commit everything (a no-op commit is skipped); returns HEAD."""
        _git(self.path, "add", "-A")
        if _git(self.path, "status", "--porcelain"):
            _git(self.path, "commit", "-q", "--no-verify", "-m", message)
        return _git(self.path, "rev-parse", "HEAD").strip()

    def discard(self) -> None:
        """Drop uncommitted changes: what a killed step left behind before it re-runs."""
        self.reset("HEAD")

    def reset(self, commit: str) -> None:
        """Make ``commit`` the working copy again (HEAD moves back; later commits stay in
        the object store, and each iteration keeps its own diff in the vault)."""
        _git(self.path, "reset", "-q", "--hard", commit)
        _git(self.path, "clean", "-q", "-fd")

    def diff(self, since: str | None = None) -> str:
        return _git(self.path, "diff", since or self.base, "--", ".")

    def changed(self) -> dict[str, str]:
        """{path: 'M'|'A'|'D'} of the run against its base."""
        out = _git(self.path, "diff", "--name-status", "--no-renames", self.base, "--", ".")
        return {line.split("\t", 1)[1]: line[0] for line in out.splitlines() if "\t" in line}

    # -- back into the project ---------------------------------------------------------------

    def conflicts(self) -> list[str]:
        """Files the run changed that also changed in the project since the copy."""
        manifest = json.loads((self.path.parent / MANIFEST).read_text())
        clashes = []
        for rel in self.changed():
            current = self.project / rel
            before = manifest.get(rel)
            now = _sha(current) if current.is_file() else None
            if now != before:
                clashes.append(rel)
        return clashes

    def apply(self, only: Iterable[str] | None = None) -> list[str]:
        """Write the run's changes into the project; refuses (changing nothing) on a clash."""
        clashes = self.conflicts()
        if clashes:
            raise ApplyConflictError(
                f"{len(clashes)} file(s) changed in {self.project} since the run started: "
                f"{', '.join(clashes[:5])}. Nothing was written. Review `smallhold code diff` "
                "and merge by hand, or start a new run on the current project.")
        wanted = set(only) if only is not None else None
        applied = []
        for rel, status in sorted(self.changed().items()):
            if wanted is not None and rel not in wanted:
                continue
            target = self.project / rel
            if status == "D":
                target.unlink(missing_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                temp = target.with_name(f".{target.name}.smallhold-tmp")
                shutil.copy2(self.path / rel, temp)
                os.replace(temp, target)
            applied.append(rel)
        return applied
