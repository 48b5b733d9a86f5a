"""Every command the coding agent runs goes through here: bubblewrap, limits, a report.

The sandbox sees a read-only system (``/usr``, the libraries, a few files of ``/etc``, the
Python that runs the tests), the project directory read-write, a private ``/tmp`` and no
network (its own empty network namespace) unless the caller passes ``network=True`` after
an approval. Inside, :mod:`.sandbox_launcher` lowers the limits for the command (address
space, CPU seconds, file size, processes), enforces the wall clock and reports what was
left running. The number of processes is capped by a ``pids`` cgroup where this process may
create one (cgroup v1 or a delegated v2 subtree), else by ``RLIMIT_NPROC`` for a non-root
user; :attr:`Sandbox.process_limit` says which, so a report never claims a limit it did not
have. Without a working bubblewrap the agent refuses to run generated code at all.

The command holds no capabilities (``--cap-drop ALL``: bubblewrap started by root otherwise
leaves them, and with ``CAP_SYS_ADMIN`` the command remounts ``/usr`` writable). The report
is trusted only as far as it can be checked: it is read whatever its size while the sandbox
runs, it must parse as the launcher's report, and its returncode must match the exit status
bubblewrap gives the host (:func:`.sandbox_launcher.exit_status`); any other report makes a
failed result that says so, never an exception and never a pass.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from smallhold.apps.code.errors import SandboxUnavailableError
from smallhold.apps.code.sandbox_launcher import exit_status

LAUNCHER = Path(__file__).with_name("sandbox_launcher.py")
LAUNCHER_IN_SANDBOX = "/run/smallhold/sandbox_launcher.py"
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime",
             "passwd", "group", "nsswitch.conf", "ssl", "ca-certificates", "mime.types",
             "hosts")
NETWORK_ETC = ("resolv.conf", "gai.conf")
OUTPUT_LIMIT = 200_000  # characters of stdout and stderr kept in a result
REPORT_LIMIT = 1024**2  # bytes of the launcher's report read; a longer one is not its own
BACKSTOP_SECONDS = 30.0  # past the wall clock, the host kills a sandbox that did not end
INSTALL_HINT = ("Install bubblewrap (Debian/Ubuntu: `sudo apt-get install bubblewrap`; "
                "Fedora: `sudo dnf install bubblewrap`); `bash scripts/setup.sh` does it. If "
                "it is installed, unprivileged user namespaces may be off "
                "(`sysctl kernel.unprivileged_userns_clone=1`).")


@dataclass(frozen=True)
class Limits:
    wall_seconds: float = 120.0
    cpu_seconds: int = 120
    memory_bytes: int = 2 * 1024**3
    file_bytes: int = 256 * 1024**2
    processes: int = 128


@dataclass(frozen=True)
class SandboxResult:
    command: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool = False
    signal: str | None = None
    cpu_seconds: float = 0.0
    max_rss_mb: float = 0.0
    leftover: tuple[str, ...] = ()
    forks_refused: int = 0
    network: bool = False
    process_limit: str = "none"

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    @property
    def contained(self) -> list[str]:
        """What the sandbox stopped, in words, for the user and the model."""
        notes = []
        if self.timed_out:
            notes.append(f"killed after the wall-clock limit ({self.seconds:.0f} s)")
        if self.signal == "SIGXCPU" or (self.signal == "SIGKILL" and not self.timed_out):
            notes.append(f"stopped by the CPU-time limit ({self.cpu_seconds:.0f} s used)")
        if self.forks_refused:
            notes.append(f"the process limit refused {self.forks_refused} forks")
        if "MemoryError" in self.stderr or "Cannot allocate memory" in self.stderr:
            notes.append("an allocation failed at the memory limit")
        if "Read-only file system" in self.stderr:
            notes.append("a write outside the project was refused (read-only file system)")
        if not self.network and ("Network is unreachable" in self.stderr
                                 or "Temporary failure in name resolution" in self.stderr):
            notes.append("a network connection was refused (no network in the sandbox)")
        if self.leftover:
            notes.append(f"{len(self.leftover)} background process(es) left behind were "
                         f"killed: {', '.join(self.leftover)[:200]}")
        return notes


@dataclass
class _PidsCgroup:
    """A pids cgroup for one run; ``None`` from :meth:`create` where none can be made."""

    path: Path
    created: list[Path] = field(default_factory=list)

    @classmethod
    def create(cls, limit: int) -> _PidsCgroup | None:
        for base in _pids_cgroup_bases():
            target = base / f"smallhold-{uuid.uuid4().hex[:12]}"
            try:
                target.mkdir()
                (target / "pids.max").write_text(str(limit))
            except OSError:
                with contextlib.suppress(OSError):
                    target.rmdir()
                continue
            return cls(target)
        return None

    def refused(self) -> int:
        try:
            for line in (self.path / "pids.events").read_text().splitlines():
                name, _, count = line.partition(" ")
                if name == "max":
                    return int(count)
        except (OSError, ValueError):
            pass
        return 0

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            self.path.rmdir()


def _pids_cgroup_bases() -> list[Path]:
    bases = [Path("/sys/fs/cgroup/pids")]
    root = Path("/sys/fs/cgroup")
    try:  # cgroup v2: our own cgroup, if it was delegated to us
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                own = root / line[3:].lstrip("/")
                if "pids" in (own / "cgroup.controllers").read_text().split():
                    bases.append(own)
    except OSError:
        pass
    return [b for b in bases if (b / "cgroup.procs").exists() and os.access(b, os.W_OK)]


def python_roots(python: str) -> list[str]:
    """Directories the sandbox needs to run ``python``: its venv and the base install."""
    exe = Path(python)
    roots: set[Path] = set()
    venv = exe.parent.parent
    cfg = venv / "pyvenv.cfg"
    if cfg.exists():
        roots.add(venv)
        for line in cfg.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "home":
                roots.add(Path(value.strip()).parent)
    roots.add(Path(os.path.realpath(exe)).parent.parent)
    roots.add(Path(sys.base_prefix))
    return sorted(str(r) for r in roots if not any(str(r).startswith(s) for s in SYSTEM_DIRS))


class Sandbox:
    """Runs commands for one project directory under bubblewrap with :class:`Limits`."""

    def __init__(self, project: Path, *, python: str | None = None, limits: Limits = Limits(),
                 bwrap: str | None = None) -> None:
        self.project = Path(project).resolve()
        self.python = python or sys.executable
        self.limits = limits
        found = bwrap or shutil.which("bwrap")
        if not found:
            raise SandboxUnavailableError(
                "bubblewrap (bwrap) is not installed, and the coding agent does not run "
                f"generated code outside a sandbox. {INSTALL_HINT}")
        self.bwrap = found
        self.process_limit = "cgroup" if _pids_cgroup_bases() else (
            "rlimit" if os.getuid() != 0 else "none")
        self._checked = False

    def check(self) -> None:
        """Run ``true`` in the sandbox once; a sandbox that cannot start is refused."""
        if self._checked:
            return
        try:
            done = subprocess.run([*self._argv(False), "--", "true"], capture_output=True,
                                  text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SandboxUnavailableError(f"bubblewrap does not start: {exc}. {INSTALL_HINT}"
                                          ) from exc
        if done.returncode != 0:
            raise SandboxUnavailableError(
                f"bubblewrap cannot create a sandbox here: {done.stderr.strip()[:300]}. "
                f"{INSTALL_HINT}")
        self._checked = True

    def _argv(self, network: bool) -> list[str]:
        argv = [self.bwrap, "--unshare-all", "--cap-drop", "ALL", "--die-with-parent",
                "--new-session",
                "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--tmpfs", "/run"]
        if network:
            argv.append("--share-net")
        for directory in SYSTEM_DIRS:
            if os.path.lexists(directory):
                argv += ["--ro-bind", directory, directory] if not os.path.islink(directory) \
                    else ["--symlink", os.readlink(directory), directory]
        for name in ETC_FILES + (NETWORK_ETC if network else ()):
            path = f"/etc/{name}"
            if os.path.exists(path):
                argv += ["--ro-bind", path, path]
        for root in python_roots(self.python):
            if not str(self.project).startswith(root) and os.path.isdir(root):
                argv += ["--ro-bind", root, root]
        argv += ["--bind", str(self.project), str(self.project), "--chdir", str(self.project),
                 "--ro-bind", str(LAUNCHER), LAUNCHER_IN_SANDBOX,
                 "--clearenv", "--setenv", "PATH", f"{Path(self.python).parent}:/usr/bin:/bin",
                 "--setenv", "HOME", "/tmp", "--setenv", "TMPDIR", "/tmp",
                 "--setenv", "LANG", "C.UTF-8", "--setenv", "PYTHONDONTWRITEBYTECODE", "1",
                 "--setenv", "PYTHONHASHSEED", "0"]
        return argv

    def run(self, command: Sequence[str], *, network: bool = False,
            limits: Limits | None = None) -> SandboxResult:
        """Run ``command`` in the project directory; never raises for what the command does."""
        self.check()
        limits = limits or self.limits
        cgroup = _PidsCgroup.create(limits.processes + 4) if self.process_limit == "cgroup" \
            else None
        inner = {"wall_seconds": limits.wall_seconds, "cpu_seconds": limits.cpu_seconds,
                 "memory_bytes": limits.memory_bytes, "file_bytes": limits.file_bytes,
                 "nproc": limits.processes if self.process_limit == "rlimit" else 0}
        read_fd, write_fd = os.pipe()
        argv = [*self._argv(network), "--", self.python, "-I", LAUNCHER_IN_SANDBOX,
                str(write_fd), json.dumps(inner), "--", *command]
        if cgroup is not None:  # join the cgroup before bwrap forks anything
            argv = ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"',
                    str(cgroup.path), *argv]
        raw = bytearray()
        reader = threading.Thread(target=_drain, args=(read_fd, raw), daemon=True)
        backstop = False
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            try:
                proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                        pass_fds=(write_fd,), start_new_session=True)
            except BaseException:
                os.close(read_fd)
                raise
            finally:
                os.close(write_fd)
            reader.start()  # a report longer than a pipe holds must not stall the launcher
            try:  # the launcher enforces the wall clock; this is the backstop
                proc.wait(timeout=limits.wall_seconds + BACKSTOP_SECONDS)
            except subprocess.TimeoutExpired:
                backstop = True
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            reader.join(timeout=5)
            stdout, stderr = _read(out), _read(err)
        refused = cgroup.refused() if cgroup else 0
        if cgroup:
            cgroup.remove()
        base = SandboxResult(tuple(command), returncode=125, stdout=stdout, stderr=stderr,
                             seconds=0.0, network=network, process_limit=self.process_limit,
                             forks_refused=refused)
        status = proc.returncode
        if backstop:
            return replace(base, returncode=status or -signal.SIGKILL, timed_out=True,
                           seconds=limits.wall_seconds + BACKSTOP_SECONDS,
                           stderr=_note(stderr, f"the sandbox did not end {BACKSTOP_SECONDS:.0f}"
                                        " s after its wall-clock limit and was killed by the "
                                        "host; no report"))
        report, problem = _parse_report(bytes(raw))
        if report is None:
            return replace(base, returncode=status or 125,
                           stderr=_note(stderr, f"the sandbox ended (status {status}) {problem};"
                                        " the command counts as failed"))
        code = report["returncode"]
        if exit_status(code) != status:
            return replace(base, returncode=status or 125,
                           stderr=_note(stderr, f"the sandbox's report says returncode {code} "
                                        f"but the sandbox ended with status {status}: the "
                                        "report was tampered with or the launcher was killed; "
                                        "the command counts as failed"))
        return replace(
            base, returncode=code,
            stderr=stderr + (f"\n{report['spawn_error']}" if "spawn_error" in report else ""),
            seconds=report["seconds"], timed_out=report["timed_out"],
            signal=_signal_name(-code) if code < 0 else None,
            cpu_seconds=report["cpu_seconds"], max_rss_mb=report["max_rss_kb"] / 1024,
            leftover=report["leftover"])


class Runner(Protocol):
    """What the agent needs of a sandbox: run a command in the working copy, within limits,
    and say what happened. :class:`Sandbox` is the real one; tests on a machine without
    bubblewrap pass their own through the agent's ``sandboxes`` factory."""

    project: Path  # the working copy, read-write inside at the same path
    limits: Limits

    def check(self) -> None:
        """Raise :class:`SandboxUnavailableError` if commands cannot run here."""
        ...

    def run(self, command: Sequence[str], *, network: bool = False,
            limits: Limits | None = None) -> SandboxResult: ...


SandboxFactory = Callable[[Path, str, Limits], Runner]


def bubblewrap(project: Path, python: str, limits: Limits) -> Runner:
    """The default :data:`SandboxFactory`: :class:`Sandbox` on ``project``."""
    return Sandbox(project, python=python, limits=limits)


def _drain(fd: int, into: bytearray) -> None:
    """Read ``fd`` to its end, keeping the first :data:`REPORT_LIMIT` (+1) bytes."""
    with os.fdopen(fd, "rb", buffering=0) as pipe:
        while chunk := pipe.read(65536):
            if len(into) <= REPORT_LIMIT:
                into += chunk[:REPORT_LIMIT + 1 - len(into)]


def _note(stderr: str, note: str) -> str:
    return f"{stderr.rstrip()}\n{note}" if stderr.strip() else note


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) \
        and value == value and abs(value) != float("inf")


def _parse_report(raw: bytes) -> tuple[dict[str, Any] | None, str]:
    """The launcher's report, checked field by field, or (None, why it cannot be used).

    The report crosses from the sandbox to the host, so nothing in it is assumed: it never
    raises, and a report that is not exactly the launcher's shape is no report."""
    if not raw.strip():
        return None, "without a report"
    if len(raw) > REPORT_LIMIT:
        return None, f"with a report over {REPORT_LIMIT} bytes (unreadable)"
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        return None, f"with an unreadable report ({type(exc).__name__})"
    if not isinstance(data, dict):
        return None, "with an unreadable report (not an object)"
    code = data.get("returncode")
    if not isinstance(code, int) or isinstance(code, bool) or not -64 <= code <= 255:
        return None, "with an unreadable report (no returncode)"
    leftover = data.get("leftover", [])
    if not isinstance(leftover, list) or not all(
            isinstance(item, dict) and isinstance(item.get("cmdline"), str)
            for item in leftover):
        return None, "with an unreadable report (leftover)"
    numbers = {key: data.get(key, 0) for key in ("seconds", "cpu_seconds", "max_rss_kb")}
    if not all(_number(value) for value in numbers.values()):
        return None, "with an unreadable report (a number is not one)"
    timed_out = data.get("timed_out", False)
    spawn_error = data.get("spawn_error", "")
    if not isinstance(timed_out, bool) or not isinstance(spawn_error, str):
        return None, "with an unreadable report (wrong types)"
    report: dict[str, Any] = {
        "returncode": code, "timed_out": timed_out,
        "leftover": tuple(item["cmdline"] for item in leftover),
        **{key: float(value) for key, value in numbers.items()}}
    if spawn_error:
        report["spawn_error"] = spawn_error
    return report, ""


def _read(handle: object) -> str:
    assert hasattr(handle, "seek") and hasattr(handle, "read")
    handle.seek(0)
    data: bytes = handle.read(OUTPUT_LIMIT * 4)
    text = data.decode("utf-8", errors="replace")
    return text if len(text) <= OUTPUT_LIMIT else text[:OUTPUT_LIMIT] + "\n[output truncated]"
