"""The sandbox against code that tries to get out: every escape is contained and reported."""

from __future__ import annotations

import shutil
import socket
import sys
from pathlib import Path

import pytest

from smallhold.apps.code.errors import SandboxUnavailableError
from smallhold.apps.code.sandbox import Limits, Sandbox

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None,
                                reason="bubblewrap is not installed (scripts/setup.sh does it)")
LIMITS = Limits(wall_seconds=4, cpu_seconds=2, memory_bytes=512 * 1024**2, processes=32)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / "data.txt").write_text("inside\n")
    return root


@pytest.fixture
def sandbox(project: Path) -> Sandbox:
    return Sandbox(project, limits=LIMITS)


def run(sandbox: Sandbox, code: str):
    return sandbox.run([sys.executable, "-c", code])


def test_runs_in_the_project_and_may_write_there(sandbox: Sandbox, project: Path) -> None:
    result = run(sandbox, "print(open('data.txt').read().strip()); open('out.txt','w').write('x')")
    assert result.ok and result.stdout.strip() == "inside"
    assert (project / "out.txt").read_text() == "x"
    assert result.contained == []


def test_cannot_read_a_file_outside_the_project(sandbox: Sandbox, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do not read")
    result = run(sandbox, f"print(open({str(secret)!r}).read())")
    assert not result.ok and "do not read" not in result.stdout
    assert "No such file" in result.stderr


def test_cannot_write_outside_the_project(sandbox: Sandbox, tmp_path: Path) -> None:
    result = run(sandbox, "open('/usr/smallhold-escape.txt', 'w').write('x')")
    assert not result.ok
    assert not Path("/usr/smallhold-escape.txt").exists()
    assert any("outside the project" in note or "refused" in note for note in result.contained) \
        or "Permission denied" in result.stderr or "Read-only" in result.stderr
    sibling = tmp_path / "sibling.txt"
    run(sandbox, f"open({str(sibling)!r}, 'w').write('x')")
    assert not sibling.exists()


def test_private_tmp_is_thrown_away(sandbox: Sandbox) -> None:
    run(sandbox, "open('/tmp/left.txt','w').write('x')")
    assert not Path("/tmp/left.txt").exists()


def test_no_network_not_even_loopback(sandbox: Sandbox) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        result = run(sandbox, f"import socket; socket.create_connection(('127.0.0.1', {port}), "
                              "timeout=2); print('connected')")
        assert "connected" not in result.stdout and not result.ok
        outside = run(sandbox, "import socket; socket.create_connection(('1.1.1.1', 80), "
                               "timeout=2)")
        assert not outside.ok
        assert any("network" in note for note in outside.contained)
    finally:
        server.close()


def test_fork_bomb_is_capped_and_killed(sandbox: Sandbox) -> None:
    result = run(sandbox, "import os\nwhile True:\n    try:\n        os.fork()\n"
                          "    except OSError:\n        pass\n")
    assert result.timed_out
    if sandbox.process_limit == "cgroup":
        assert result.forks_refused > 0
    assert result.contained


def test_allocating_8_gb_fails_at_the_memory_limit(sandbox: Sandbox) -> None:
    result = run(sandbox, "x = bytearray(8 * 1024**3)")
    assert not result.ok
    assert "an allocation failed at the memory limit" in result.contained


def test_spinning_forever_is_stopped_by_cpu_limit(sandbox: Sandbox) -> None:
    result = run(sandbox, "while True: pass")
    assert not result.ok
    assert result.signal in ("SIGXCPU", "SIGKILL") or result.timed_out
    assert result.contained


def test_sleeping_forever_is_stopped_by_the_wall_clock(sandbox: Sandbox) -> None:
    result = run(sandbox, "import time; time.sleep(1000)")
    assert result.timed_out and not result.ok
    assert result.seconds < 30


def test_background_process_left_behind_is_killed_and_reported(sandbox: Sandbox) -> None:
    result = run(sandbox, "import subprocess; subprocess.Popen(['sleep', '777']); print('ok')")
    assert result.ok
    assert any("sleep 777" in item for item in result.leftover)
    assert any("background" in note for note in result.contained)


def test_missing_bubblewrap_refuses_to_run(project: Path) -> None:
    with pytest.raises(SandboxUnavailableError, match="apt-get install bubblewrap"):
        Sandbox(project, bwrap="/nonexistent/bwrap").check()
