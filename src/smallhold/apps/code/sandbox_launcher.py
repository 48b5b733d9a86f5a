"""Runs inside the bubblewrap sandbox as PID 2, before the untrusted command.

Standard library only: it runs with whatever Python the sandbox can see. It lowers the
resource limits for the command (not for itself), runs it in its own session, enforces the
wall-clock limit, then lists every process still alive in the sandbox's PID namespace
(a daemon the command left behind), kills them and writes a JSON report to the file
descriptor the host passed.

The command runs as the same user in the same PID namespace, so without care it could open
the report through ``/proc/2/fd/N``, or ptrace this process, write a report of its own and
kill the launcher. Two things stop that: the launcher makes itself non-dumpable before the
command starts (``PR_SET_DUMPABLE`` 0: its ``/proc`` entries and ptrace are closed to a
process without ``CAP_SYS_PTRACE``, and bubblewrap leaves the command no capabilities),
and it exits with :func:`exit_status` of the command's returncode, a status the host gets
from bubblewrap itself and checks the report against.

    python sandbox_launcher.py REPORT_FD LIMITS_JSON -- command args...
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
import time

PR_SET_DUMPABLE = 4
MAX_LEFTOVER = 100  # processes named in the report: it stays far below a pipe's buffer


def exit_status(returncode: int) -> int:
    """The launcher's exit status for the command's ``returncode`` (what a shell reports:
    ``128 + n`` for a command killed by signal ``n``); the host compares it with the
    report, so 0 means the command itself exited 0."""
    return 128 - returncode if returncode < 0 else min(returncode, 255)


def _protect() -> str | None:
    """Make this process non-dumpable; None on success, else why not."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
            return f"prctl(PR_SET_DUMPABLE) failed: {os.strerror(ctypes.get_errno())}"
    except (OSError, AttributeError) as exc:
        return f"prctl is not available: {exc}"
    return None


def _limit(kind: int, value: int) -> None:
    _, hard = resource.getrlimit(kind)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(kind, (value, value if kind != resource.RLIMIT_CPU else value + 1))


def _apply(limits: dict[str, int]) -> None:
    """In the child, between fork and exec (the launcher has one thread: safe)."""
    os.umask(0o022)
    _limit(resource.RLIMIT_CORE, 0)
    if limits.get("memory_bytes"):
        _limit(resource.RLIMIT_AS, limits["memory_bytes"])
    if limits.get("cpu_seconds"):
        _limit(resource.RLIMIT_CPU, limits["cpu_seconds"])
    if limits.get("file_bytes"):
        _limit(resource.RLIMIT_FSIZE, limits["file_bytes"])
    if limits.get("nproc"):
        _limit(resource.RLIMIT_NPROC, limits["nproc"])


def _others() -> dict[int, str]:
    """Processes in this PID namespace other than bwrap's init (1) and this launcher."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in (1, os.getpid()):
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        found[int(entry)] = cmdline or "?"
    return found


def _kill_all() -> dict[int, str]:
    killed: dict[int, str] = {}
    for _ in range(50):  # a fork bomb keeps forking: repeat until nothing is left
        others = _others()
        if not others:
            break
        killed.update(others)
        for pid in others:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            pass
        time.sleep(0.02)
    return killed


def main(argv: list[str]) -> int:
    report_fd, limits = int(argv[1]), json.loads(argv[2])
    command = argv[argv.index("--") + 1:]
    started = time.monotonic()
    report: dict[str, object] = {"started": True}
    unprotected = _protect()
    child = None
    if unprotected:  # the command could forge the report: do not run it
        report.update(spawn_error=f"the sandbox cannot protect its report ({unprotected}); "
                                  "the command was not run", returncode=126)
    else:
        try:
            child = subprocess.Popen(command, preexec_fn=lambda: _apply(limits),
                                     start_new_session=True, stdin=subprocess.DEVNULL)
        except OSError as exc:
            report.update(spawn_error=f"{type(exc).__name__}: {exc}", returncode=127)
    if child is not None:
        timeout = limits.get("wall_seconds") or None
        try:
            report["returncode"] = child.wait(timeout=timeout)
            report["timed_out"] = False
        except subprocess.TimeoutExpired:
            report["timed_out"] = True
            # the command first, and reaped by Popen: a status reaped elsewhere is lost
            # and Popen then reports 0
            child.kill()
            report["returncode"] = child.wait()
            _kill_all()
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        report["cpu_seconds"] = round(usage.ru_utime + usage.ru_stime, 3)
        report["max_rss_kb"] = usage.ru_maxrss
    report["leftover"] = [{"pid": pid, "cmdline": cmd[:200]}
                          for pid, cmd in sorted(_kill_all().items())[:MAX_LEFTOVER]]
    report["seconds"] = round(time.monotonic() - started, 3)
    with os.fdopen(report_fd, "w") as out:
        json.dump(report, out)
    code = report["returncode"]
    return exit_status(code if isinstance(code, int) else 125)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
