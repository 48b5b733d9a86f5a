"""What ``bench_ops.py``'s parts share: throwaway databases, child processes, statistics.

Everything a benchmark creates (a PostgreSQL database, a worker process, a temporary
home folder) is registered with a :class:`Cleanup` the moment it exists, and the parts
run inside ``with Cleanup() as cleanup:``, so an exception, Ctrl+C or SIGTERM half-way
still stops every process and drops every database. Processes are ended by their own pid,
never by name.
"""

from __future__ import annotations

import contextlib
import math
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from _common import log

BENCH_DIR = Path(__file__).resolve().parent
WORKER_SCRIPT = BENCH_DIR / "bench_ops_worker.py"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
BARE_QUEUE = "bare"
BARE_WORKFLOW = "bare_handle"  # the name DBOS registers bench_ops_worker.bare_handle under
TERMINAL = ("SUCCESS", "ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED")


# -- statistics ---------------------------------------------------------------------------

def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear between the two nearest ranks (numpy's
    default); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


# -- cleanup ------------------------------------------------------------------------------

class Cleanup:
    """Owns the processes, databases and folders a run makes; releases them all on exit
    (latest first), whatever happened."""

    def __init__(self, admin_url: str = DEFAULT_PG) -> None:
        self.admin_url = admin_url
        self._undo: list[tuple[str, Callable[[], None]]] = []
        self._previous: Any = None

    def __enter__(self) -> Cleanup:
        # SIGTERM becomes an exception, so the ``finally`` blocks and __exit__ run
        self._previous = signal.signal(signal.SIGTERM, _raise_exit)
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.release_all()
        signal.signal(signal.SIGTERM, self._previous or signal.SIG_DFL)

    def add(self, what: str, undo: Callable[[], None]) -> None:
        self._undo.append((what, undo))

    def release(self, what: str) -> None:
        """Undo one registered thing now (by its label), e.g. a part's database."""
        for i in range(len(self._undo) - 1, -1, -1):
            label, undo = self._undo[i]
            if label == what:
                del self._undo[i]
                _quietly(label, undo)
                return

    def release_all(self) -> None:
        while self._undo:
            label, undo = self._undo.pop()
            _quietly(label, undo)

    # things it makes ------------------------------------------------------------------
    def tempdir(self, prefix: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=prefix))
        self.add(f"dir {path}", lambda: shutil.rmtree(path, ignore_errors=True))
        return path

    def database(self) -> tuple[str, str]:
        """A fresh PostgreSQL database next to the admin one: (name, url). Dropped (with
        any connection left to it) when released."""
        import psycopg

        name = f"bench_ops_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.add(f"database {name}", lambda: self._drop(name))
        head, _, _ = self.admin_url.rpartition("/")
        return name, f"{head}/{name}"

    def _drop(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        log(f"dropped database {name}")

    def process(self, label: str, argv: list[str], *, env: dict[str, str], log_path: Path,
                stdout: int | None = None) -> subprocess.Popen[bytes]:
        """Start a child (stderr, and stdout unless piped, to ``log_path``); on release it
        gets SIGTERM, then SIGKILL after 20 s."""
        handle = log_path.open("ab")
        proc = subprocess.Popen(argv, env=env, stdout=stdout if stdout is not None else handle,
                                stderr=handle, cwd=BENCH_DIR.parent)
        handle.close()
        self.add(f"process {label}", lambda: stop_process(proc, label))
        return proc


def _raise_exit(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _quietly(label: str, undo: Callable[[], None]) -> None:
    try:
        undo()
    except Exception as exc:  # one failure must not leave the rest behind
        log(f"cleanup of {label} failed: {exc}")


def stop_process(proc: subprocess.Popen[bytes], label: str, grace: float = 20.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        log(f"{label} ignored SIGTERM for {grace:.0f} s: SIGKILL")
        proc.kill()
        proc.wait(10)


def wait_ready(proc: subprocess.Popen[bytes], label: str, timeout: float = 120.0) -> None:
    """Block until the child prints its ``ready`` line on stdout (a worker has launched
    DBOS and registered its queue)."""
    assert proc.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    buffer = b""
    try:
        while b"ready" not in buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"{label} was not ready in {timeout:.0f} s")
            if not selector.select(min(left, 1.0)):
                if proc.poll() is not None:
                    raise RuntimeError(f"{label} exited ({proc.returncode}) before ready")
                continue
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                raise RuntimeError(f"{label} exited ({proc.wait()}) before ready")
            buffer += chunk
    finally:
        selector.close()


def wait_for_text(path: Path, text: str, proc: subprocess.Popen[bytes], label: str,
                  timeout: float = 120.0) -> None:
    """Block until ``text`` appears in a child's log (``smallhold ops worker`` says it is
    running on stderr)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"{label} exited ({proc.returncode}); log:\n"
                               + tail(path))
        time.sleep(0.2)
    raise RuntimeError(f"{label} did not say {text!r} in {timeout:.0f} s; log:\n" + tail(path))


def tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


def child_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of every child: its own SMALLHOLD_HOME (a fresh profile), no OS
    keyring (the vault uses its key file), and nothing of the caller's SMALLHOLD_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMALLHOLD_")}
    env.update({"SMALLHOLD_HOME": str(home), "PYTHON_KEYRING_BACKEND":
                "keyring.backends.fail.Keyring", "PYTHONUNBUFFERED": "1", **extra})
    return env


def python() -> str:
    return sys.executable


def profile_sqlite_url(home: Path) -> str:
    """The profile's own durable.sqlite under ``home``: where a user's SQLite runs live."""
    from smallhold.paths import resolve_paths

    folder = resolve_paths({"SMALLHOLD_HOME": str(home)}).profile_dir("default")
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'durable.sqlite'}"


def status_table(url: str) -> str:
    return "workflow_status" if url.startswith("sqlite") else "dbos.workflow_status"


@contextlib.contextmanager
def sql_engine(url: str) -> Any:
    """A SQLAlchemy engine on a workflow database (the driver's own reads: counts)."""
    from sqlalchemy import create_engine

    from smallhold.apps.ops.state import engine_url

    engine = create_engine(engine_url(url), future=True,
                           **({"connect_args": {"timeout": 30}} if url.startswith("sqlite")
                              else {}))
    try:
        yield engine
    finally:
        engine.dispose()


__all__ = ["BARE_QUEUE", "BARE_WORKFLOW", "DEFAULT_PG", "TERMINAL", "WORKER_SCRIPT", "Cleanup",
           "child_env", "percentile", "profile_sqlite_url", "python", "sql_engine",
           "status_table", "stop_process", "tail", "wait_for_text", "wait_ready"]
