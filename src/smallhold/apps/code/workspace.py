"""The agent works on a copy of the project, never on the project itself.

The copy is a fresh git repository whose first commit is the project as it was (committed
and uncommitted work alike), so each iteration is a commit, ``smallhold code diff`` is
``git diff`` from that base to the last commit, and the project is only written by
``smallhold code apply``, which refuses any file that changed in the project since the copy
was taken. A dirty git tree therefore loses nothing: its edits are in the base and apply
will not overwrite them.

The copy is written by untrusted code (the project's tests, run in the sandbox), and the
host runs git on it afterwards, so git must not take orders from anything in it:

* the repository lives next to the copy (:data:`GIT_DIR_NAME`), outside the folder the
  sandbox binds; git is always told ``--git-dir`` and ``--work-tree``, so a ``.git`` planted
  in the copy is an ordinary, ignored folder;
* the host owns the repository's files and rewrites them on every attach: a config with no
  hooks, drivers or includes, no ``hooks/``, and ``info/attributes`` that switches off
  filters, text conversion and encodings whatever a ``.gitattributes`` in the copy says;
* every git call carries :data:`HARDENED` on its command line (command-line config wins over
  every file and reaches the git processes git starts, in a nested repository too), runs
  with no system or global config and none of the caller's ``GIT_*`` variables;
* what the sandbox leaves in the copy is never followed: read, write and apply refuse
  symbolic links, ``discard`` removes everything untracked, and apply copies the content of
  the last commit, not the files the tests may have changed since.

Runs made before this layout keep ``.git`` inside the copy; :meth:`Workspace.attach` moves it
out and rewrites its config, hooks and attributes before git touches it.
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

from smallhold.apps.code.errors import ApplyConflictError, ProjectError

IGNORED_DIRS = frozenset({".git", ".hg", ".svn", ".venv", "venv", "env", "node_modules",
                          "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache",
                          ".tox", ".nox", "build", "dist", ".eggs", ".idea", ".vscode"})
MAX_FILES = 5_000
MAX_BYTES = 200 * 1024**2
MANIFEST = ".smallhold-base.json"  # kept outside the copy's tree, next to it
GIT_DIR_NAME = ".smallhold-git"  # the copy's repository, next to it, out of the sandbox
GIT_ENV = {"GIT_AUTHOR_NAME": "smallhold", "GIT_AUTHOR_EMAIL": "code@smallhold.invalid",
           "GIT_COMMITTER_NAME": "smallhold", "GIT_COMMITTER_EMAIL": "code@smallhold.invalid",
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
           "GIT_ATTR_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0",
           "GIT_NO_REPLACE_OBJECTS": "1", "GIT_OPTIONAL_LOCKS": "0",
           "GIT_LITERAL_PATHSPECS": "1"}
# Settings no config file can override: nothing git reads may make it run a program.
HARDENED = ("core.hooksPath=/dev/null", "core.fsmonitor=false", "core.untrackedCache=false",
            "core.pager=cat", "core.attributesFile=/dev/null", "core.sshCommand=false",
            "commit.gpgSign=false", "tag.gpgSign=false", "gc.auto=0", "maintenance.auto=false",
            "submodule.recurse=false", "status.submoduleSummary=false", "protocol.allow=never")
GIT_CONFIG = ("[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n"
              "\tlogallrefupdates = true\n")
# $GIT_DIR/info/attributes outranks every .gitattributes: no filter, conversion or driver
GIT_ATTRIBUTES = "* -filter -text -eol -ident -working-tree-encoding -merge diff\n"
DIFF_FLAGS = ("--no-ext-diff", "--no-textconv", "--text", "--no-color")


def _run_git(cwd: Path, args: tuple[str, ...], check: bool,
             repo: tuple[Path, Path] | None) -> bytes:
    if shutil.which("git") is None:
        raise ProjectError("the coding agent needs git to track its edits; install git "
                           "(Debian/Ubuntu: `sudo apt-get install git`).")
    where = ["--git-dir", str(repo[0]), "--work-tree", str(repo[1])] if repo else []
    hardened = [item for setting in HARDENED for item in ("-c", setting)]
    env = {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}
    done = subprocess.run(["git", "--no-pager", *hardened, *where, *args], cwd=cwd,
                          capture_output=True, env={**env, **GIT_ENV})
    if check and done.returncode != 0:
        raise ProjectError(f"git {' '.join(args[:2])} failed in {cwd}: "
                           f"{done.stderr.decode('utf-8', 'replace').strip()[:500]}")
    return done.stdout


def _git(cwd: Path, *args: str, check: bool = True, repo: tuple[Path, Path] | None = None,
         errors: str = "surrogateescape") -> str:
    """Run git with :data:`HARDENED`; ``repo`` is (git dir, work tree) of a working copy."""
    return _run_git(cwd, args, check, repo).decode("utf-8", errors)


def _write_file(path: Path, text: str) -> None:
    """Replace ``path`` by a new file (never writing through a link someone put there)."""
    temp = path.with_name(f".{path.name}.smallhold-tmp")
    temp.unlink(missing_ok=True)
    temp.write_text(text)
    os.replace(temp, path)


def _put_bytes(target: Path, data: bytes, new_mode: int = 0o644) -> None:
    """Replace ``target`` in the project atomically, keeping the mode it had (``new_mode``
    for a new file)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.smallhold-tmp")
    temp.unlink(missing_ok=True)
    temp.write_bytes(data)
    temp.chmod(target.stat().st_mode & 0o7777 if target.is_file() else new_mode)
    os.replace(temp, target)


def _own_git_dir(git_dir: Path) -> None:
    """Put back the host's config, attributes and (no) hooks in ``git_dir``."""
    for name in ("hooks", "info"):
        folder = git_dir / name
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            folder.unlink()
        elif name == "hooks" and folder.exists():
            shutil.rmtree(folder)
    (git_dir / "info").mkdir(exist_ok=True)
    for path, text in ((git_dir / "config", GIT_CONFIG),
                       (git_dir / "info" / "attributes", GIT_ATTRIBUTES),
                       (git_dir / "info" / "exclude", "")):
        if path.is_symlink() or not path.is_file() or path.read_text() != text:
            _write_file(path, text)
    for stray in (git_dir / "objects" / "info" / "alternates", git_dir / "commondir",
                  git_dir / "config.worktree"):
        if stray.is_symlink() or stray.exists():
            stray.unlink()


def _migrate(legacy: Path, git_dir: Path) -> None:
    """Move a git dir an older version kept inside the copy out of it, made the host's.

    Untrusted code could write it, so a link anywhere in it (git would follow it out of
    the folder) makes the run unusable rather than trusted."""
    staging = git_dir.with_name(f"{git_dir.name}.migrating")
    if not staging.exists():  # else a migration was cut short: finish it
        if legacy.is_symlink() or not legacy.is_dir():
            raise ProjectError(f"the run's working copy {legacy.parent} has a .git that is "
                               "not a folder (code run in the sandbox replaced it); start a "
                               "new run.")
        os.rename(legacy, staging)
    for root, dirs, files in os.walk(staging):
        for name in dirs + files:
            if os.path.islink(os.path.join(root, name)):
                raise ProjectError(
                    f"the run's repository {staging} holds a symbolic link "
                    f"({os.path.join(root, name)}), which code run in the sandbox put there; "
                    "smallhold does not use it. Start a new run.")
    _own_git_dir(staging)
    os.rename(staging, git_dir)


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


def _plain(rel: str) -> bool:
    """``rel`` names a path inside a project: relative, no ``..``, nothing under ``.git``
    (git refuses such names; a repository written by untrusted code need not)."""
    pure = PurePosixPath(rel)
    return bool(rel) and not pure.is_absolute() and ".." not in pure.parts \
        and ".git" not in (part.lower() for part in pure.parts)


def _through_link(root: Path, rel: str) -> str | None:
    """The first part of ``root/rel`` that is a symbolic link, or None."""
    current = root
    for part in PurePosixPath(rel).parts:
        current = current / part
        if current.is_symlink():
            return str(current.relative_to(root))
    return None


@dataclass(frozen=True)
class Workspace:
    """The working copy of one run: ``path`` holds the files, ``base`` their first commit;
    the repository is :attr:`git_dir`, next to ``path`` and out of the sandbox's reach."""

    path: Path
    project: Path
    base: str

    @property
    def git_dir(self) -> Path:
        return self.path.parent / GIT_DIR_NAME

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
        git_dir = path.parent / GIT_DIR_NAME
        for old in (path, git_dir):
            if old.exists():
                shutil.rmtree(old)
        path.mkdir(parents=True)
        manifest = {}
        for rel in files:
            target = path / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(project / rel, target)
            manifest[rel] = _sha(project / rel)
        (path.parent / MANIFEST).write_text(json.dumps(manifest, indent=0, sort_keys=True))
        _git(path.parent, "init", "-q", "--bare", "--template=", "-b", "smallhold",
             str(git_dir))
        _own_git_dir(git_dir)
        ws = cls(path, project, "")
        ws._git("add", "-A", "-f")
        ws._git("commit", "-q", "--no-verify", "-m", f"base: {project}")
        return cls(path, project, ws._git("rev-parse", "HEAD").strip())

    @classmethod
    def attach(cls, path: Path, project: Path) -> Workspace:
        git_dir = path.parent / GIT_DIR_NAME
        legacy, staging = path / ".git", path.parent / f"{GIT_DIR_NAME}.migrating"
        if path.is_dir() and not git_dir.exists() and (os.path.lexists(legacy)
                                                       or staging.exists()):
            _migrate(legacy, git_dir)  # a run made before the repository moved out
        if not path.is_dir() or not (git_dir / "HEAD").is_file():
            raise ProjectError(f"the run's working copy {path} is gone; start a new run.")
        _own_git_dir(git_dir)
        ws = cls(path, Path(project), "")
        return cls(path, Path(project), ws._git("rev-list", "--max-parents=0", "HEAD").split()[0])

    def _git(self, *args: str, check: bool = True, errors: str = "surrogateescape") -> str:
        return _git(self.path, *args, check=check, repo=(self.git_dir, self.path),
                    errors=errors)

    def _inside(self, rel: str) -> Path:
        """``path/rel`` for a safe ``rel`` that goes through no symbolic link."""
        rel = safe_relative(rel)
        link = _through_link(self.path, rel)
        if link is not None:
            raise ProjectError(
                f"{rel} is or goes through a symbolic link ({link}) in the run's copy, made "
                "by code run in the sandbox; the agent never follows links out of its copy. "
                "Review `smallhold code diff`, or start a new run.")
        return self.path / rel

    # -- the agent's edits ------------------------------------------------------------------

    def read(self, rel: str) -> str:
        target = self._inside(rel)
        if not target.is_file():
            raise ProjectError(f"{rel} is not a file in the project")
        return target.read_text(encoding="utf-8", errors="replace")

    def original(self, rel: str) -> str | None:
        """``rel`` as it was before the run (None if the run added it)."""
        if not self._git("ls-tree", "--name-only", self.base, "--", rel).strip():
            return None
        return _run_git(self.path, ("cat-file", "blob", f"{self.base}:{rel}"), True,
                        (self.git_dir, self.path)).decode("utf-8", "replace")

    def files(self) -> list[str]:
        """The copy's files, tracked or not (not ignored); never a link or what is behind one."""
        listed = self._git("ls-files", "-z", "--cached", "--others", "--exclude-standard")
        return sorted(f for f in set(listed.split("\0")) if f
                      and _through_link(self.path, f) is None and (self.path / f).is_file())

    def write(self, rel: str, content: str) -> bool:
        """Replace ``rel`` atomically (a kill never leaves half a file); True if it changed."""
        target = self._inside(rel)
        if target.is_file() and target.read_text(encoding="utf-8", errors="replace") == content:
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".{target.name}.smallhold-tmp")
        temp.unlink(missing_ok=True)
        temp.write_text(content, encoding="utf-8")
        os.replace(temp, target)
        return True

    def commit(self, message: str) -> str:
        """Commit everything (a no-op commit is skipped); returns HEAD."""
        self._git("add", "-A")
        if self._git("diff", "--cached", "--name-only", "-z", "--no-ext-diff"):
            self._git("commit", "-q", "--no-verify", "-m", message)
        return self._git("rev-parse", "HEAD").strip()

    def discard(self) -> None:
        """Drop uncommitted changes: what a killed step or a test run left behind."""
        self.reset("HEAD")

    def reset(self, commit: str) -> None:
        """Make ``commit`` the working copy again (HEAD moves back; later commits stay in
        the object store, and each iteration keeps its own diff in the vault). Everything
        untracked goes, ignored files and nested repositories too: nothing the sandbox
        planted (a link behind a ``.gitignore``) outlives it."""
        self._git("reset", "-q", "--hard", commit)
        self._git("clean", "-q", "-ffdx")

    def diff(self, since: str | None = None) -> str:
        """What the commits since ``since`` (the base) changed, as a unified diff."""
        return self._git("diff", *DIFF_FLAGS, since or self.base, "HEAD", "--", ".",
                         errors="replace")

    def changed(self) -> dict[str, str]:
        """{path: 'M'|'A'|'D'|'T'} of the last commit against the base."""
        out = self._git("diff", "--name-status", "-z", "--no-renames", "--no-ext-diff",
                        self.base, "HEAD", "--", ".").split("\0")
        return {path: status[:1] for status, path in zip(out[::2], out[1::2], strict=False)
                if status and path}

    # -- back into the project ---------------------------------------------------------------

    def _result_sha(self, rel: str, status: str) -> str | None:
        """The sha256 the project's file has once the run's change to it is applied."""
        if status == "D":
            return None
        blob = self._committed().get(rel)
        if blob is None:
            return None
        data = _run_git(self.path, ("cat-file", "blob", blob[1]), True,
                        (self.git_dir, self.path))
        return hashlib.sha256(data).hexdigest()

    def _states(self) -> dict[str, str]:
        """{path: 'pending' | 'applied' | 'clash'} for each file the run changed: the project
        still has it as the copy did, already has the run's result, or has something else."""
        manifest = json.loads((self.path.parent / MANIFEST).read_text())
        states = {}
        for rel, status in self.changed().items():
            current = self.project / rel
            now = _sha(current) if current.is_file() else None
            if now == manifest.get(rel):
                states[rel] = "pending"
            elif now == self._result_sha(rel, status):
                states[rel] = "applied"
            else:
                states[rel] = "clash"
        return states

    def conflicts(self) -> list[str]:
        """Files the run changed that also changed in the project since the copy (a file
        that now holds exactly the run's result is applied, not a clash)."""
        return [rel for rel, state in self._states().items() if state == "clash"]

    def already_applied(self) -> list[str]:
        """Files the run changed that the project already holds as the run left them."""
        return [rel for rel, state in self._states().items() if state == "applied"]

    def _committed(self) -> dict[str, tuple[str, str]]:
        """{path: (mode, blob)} of every entry in HEAD."""
        entries = {}
        for line in self._git("ls-tree", "-r", "-z", "--full-tree", "HEAD").split("\0"):
            meta, _, rel = line.partition("\t")
            if rel:
                mode, _kind, blob = meta.split(" ")
                entries[rel] = (mode, blob)
        return entries

    def unapply(self) -> list[str]:
        """Take an applied run back out of the project: each file that still holds the run's
        result gets its content from before the run (a file the run added is removed).
        Refuses, changing nothing, if any of them changed since it was applied."""
        states = self._states()
        changed_since = [rel for rel, state in states.items() if state == "clash"]
        if changed_since:
            raise ApplyConflictError(
                f"{len(changed_since)} file(s) changed in {self.project} since the run was "
                f"applied: {', '.join(changed_since[:5])}. Nothing was undone. Undo those "
                "by hand (`smallhold code diff` shows what the run did).")
        statuses = self.changed()
        restored = []
        for rel, state in sorted(states.items()):
            if state != "applied" or not _plain(rel):
                continue
            target = self.project / rel
            if statuses[rel] == "A":
                target.unlink(missing_ok=True)
            else:
                _put_bytes(target, _run_git(self.path, ("cat-file", "blob", f"{self.base}:{rel}"),
                                            True, (self.git_dir, self.path)))
            restored.append(rel)
        return restored

    def apply(self, only: Iterable[str] | None = None) -> list[str]:
        """Write the run's changes into the project; refuses (changing nothing) on a clash.
        Returns the files written: a file that already holds the run's result is left as it
        is (applying twice writes nothing and is not a clash).

        The content comes from the run's last commit, not from the copy's files: the tests
        ran after it and may have changed them. Only regular files are written."""
        clashes = self.conflicts()
        if clashes:
            raise ApplyConflictError(
                f"{len(clashes)} file(s) changed in {self.project} since the run started: "
                f"{', '.join(clashes[:5])}. Nothing was written. Review `smallhold code diff` "
                "and merge by hand, or start a new run on the current project.")
        wanted = set(only) if only is not None else None
        done = set(self.already_applied())
        changes = {rel: status for rel, status in sorted(self.changed().items())
                   if (wanted is None or rel in wanted) and rel not in done}
        committed = self._committed()
        odd = [rel for rel, status in changes.items() if not _plain(rel) or (
            status != "D" and committed.get(rel, ("",))[0] not in ("100644", "100755"))]
        if odd:
            raise ProjectError(
                f"the run's changes include {', '.join(odd[:5])}, which is not a regular file "
                "(a symbolic link, a nested repository or a path out of the project, made by "
                "code run in the sandbox); "
                "smallhold applies files only. Nothing was written. Review `smallhold code "
                "diff` and copy what you want by hand, or start a new run.")
        applied = []
        for rel, status in changes.items():
            target = self.project / rel
            if status == "D":
                target.unlink(missing_ok=True)
            else:
                mode, blob = committed[rel]
                _put_bytes(target, _run_git(self.path, ("cat-file", "blob", blob), True,
                                            (self.git_dir, self.path)),
                           0o755 if mode == "100755" else 0o644)
            applied.append(rel)
        return applied


def commit_in_project(project: Path, files: Iterable[str], message: str) -> str:
    """Commit ``files`` in the user's own repository with the user's identity; returns the
    new commit. The files came from a sandboxed run, so git runs with :data:`HARDENED` and
    ``--no-verify``: no hook, fsmonitor or configured program of the project runs on them
    (a run may have changed ``.pre-commit-config.yaml``)."""
    paths = [rel for rel in files if _plain(rel)]
    if not paths:
        raise ProjectError("nothing to commit: the run changed no files in the project.")
    env = {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}
    env["GIT_TERMINAL_PROMPT"] = "0"
    hardened = [item for setting in HARDENED for item in ("-c", setting)]

    def git(*args: str) -> str:
        done = subprocess.run(["git", "--no-pager", *hardened, *args], cwd=project,
                              capture_output=True, env=env)
        if done.returncode != 0:
            raise ProjectError(f"git {args[0]} failed in {project}: "
                               f"{done.stderr.decode('utf-8', 'replace').strip()[:500]}")
        return done.stdout.decode("utf-8", "replace")

    if shutil.which("git") is None or subprocess.run(
            ["git", "--no-pager", *hardened, "rev-parse", "--is-inside-work-tree"],
            cwd=project, capture_output=True, env=env).returncode != 0:
        raise ProjectError(f"{project} is not a git repository; the files are written, "
                           "commit them yourself (or leave out --commit).")
    git("add", "-A", "--", *paths)
    git("commit", "-q", "--no-verify", "-m", message, "--", *paths)
    return git("rev-parse", "HEAD").strip()
