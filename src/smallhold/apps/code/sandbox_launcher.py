"""Runs inside the bubblewrap sandbox as PID 2, before the untrusted command.

Standard library only: it runs with whatever Python the sandbox can see. It lowers the
resource limits for the command (not for itself), runs it in its own session, enforces the
wall-clock limit, then lists every process still alive in the sandbox's PID namespace
(a daemon the command left behind), kills them and writes a JSON report to the file
descriptor the host passed. The command never holds that descriptor, so it cannot forge
the report.

    python sandbox_launcher.py REPORT_FD LIMITS_JSON -- command args...
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import time


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
    try:
        child = subprocess.Popen(command, preexec_fn=lambda: _apply(limits),
                                 start_new_session=True, stdin=subprocess.DEVNULL)
    except OSError as exc:
        report.update(spawn_error=f"{type(exc).__name__}: {exc}", returncode=127)
        child = None
    if child is not None:
        timeout = limits.get("wall_seconds") or None
        try:
            report["returncode"] = child.wait(timeout=timeout)
            report["timed_out"] = False
        except subprocess.TimeoutExpired:
            report["timed_out"] = True
            _kill_all()
            report["returncode"] = child.wait()
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        report["cpu_seconds"] = round(usage.ru_utime + usage.ru_stime, 3)
        report["max_rss_kb"] = usage.ru_maxrss
    report["leftover"] = [{"pid": pid, "cmdline": cmd[:200]}
                          for pid, cmd in sorted(_kill_all().items())]
    report["seconds"] = round(time.monotonic() - started, 3)
    with os.fdopen(report_fd, "w") as out:
        json.dump(report, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
