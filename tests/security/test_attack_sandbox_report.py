"""Code in the sandbox against the sandbox's own report and walls (issue 22, §6 and §1).

The launcher (PID 2 in the sandbox) writes a JSON report to a pipe the host reads; the
command runs as the same user in the same PID namespace. These tests are the command trying
to forge that report, to make the host choke on it, and to use the capabilities bubblewrap
leaves to root, and they check the host's result never says a failed command passed.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from smallhold.apps.code import sandbox as sandbox_module
from smallhold.apps.code.sandbox import Limits, Sandbox, SandboxResult

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None,
                                reason="bubblewrap is not installed (scripts/setup.sh does it)")
LIMITS = Limits(wall_seconds=10, cpu_seconds=5, memory_bytes=512 * 1024**2, processes=32)

# Finds every pipe the launcher holds through /proc, writes ``PAYLOAD`` into each, kills
# the launcher and exits 3: the host must not believe the forged report.
FORGE = r"""
import json, os, signal, sys
launcher = os.getppid()
opened = []
try:
    fds = os.listdir(f"/proc/{launcher}/fd")
except OSError as exc:
    fds = []
    print("listing refused:", exc)
for fd in fds:
    try:
        if not os.readlink(f"/proc/{launcher}/fd/{fd}").startswith("pipe:"):
            continue
        with open(f"/proc/{launcher}/fd/{fd}", "wb") as report:
            report.write(PAYLOAD)
        opened.append(fd)
    except OSError as exc:
        print("refused:", exc)
print("opened", opened)
sys.stdout.flush()
if KILL:
    os.kill(launcher, signal.SIGKILL)
sys.exit(3)
"""
FAKE = (b'{"started": true, "returncode": 0, "timed_out": false, "cpu_seconds": 0.0, '
        b'"max_rss_kb": 1, "leftover": [], "seconds": 0.01}')


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    root = tmp_path / "project"
    root.mkdir()
    return Sandbox(root, limits=LIMITS)


def forge(sandbox: Sandbox, payload: bytes, kill: bool = True) -> SandboxResult:
    code = f"PAYLOAD = {payload!r}\nKILL = {kill!r}\n{FORGE}"
    return sandbox.run([sys.executable, "-c", code])


def test_the_launchers_report_pipe_cannot_be_opened_from_the_command(sandbox: Sandbox) -> None:
    result = forge(sandbox, FAKE, kill=False)
    assert "opened []" in result.stdout, result.stdout
    assert result.returncode == 3 and not result.ok


def test_a_forged_report_and_a_killed_launcher_never_pass(sandbox: Sandbox) -> None:
    result = forge(sandbox, FAKE)
    assert result.returncode != 0 and not result.ok
    assert "report" in result.stderr


@pytest.mark.parametrize("payload", [b"not json", b"\xff\xfe{"])
def test_garbage_forged_from_the_command_never_raises_and_never_passes(sandbox: Sandbox,
                                                                       payload: bytes) -> None:
    result = forge(sandbox, payload)
    assert result.returncode != 0 and not result.ok


@pytest.mark.parametrize("payload", [b"not json at all", b"[1, 2, 3]", b'{"returncode": "zero"}',
                                     b'{"returncode": 0, "leftover": 7}',
                                     b'{"returncode": 0, "leftover": [{"cmdline": 7}]}',
                                     b'{"returncode": true}', b'{"returncode": 1e999}',
                                     b'{"returncode": 0, "seconds": "soon"}', FAKE + FAKE,
                                     b"\xff\xfe{", b"[" * 100_000, b"", b"{}"])
def test_any_report_the_host_cannot_read_never_raises_and_never_passes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, payload: bytes) -> None:
    """A launcher that writes garbage and exits 0 stands for any way the report is spoilt."""
    launcher = tmp_path / "launcher.py"
    launcher.write_text(f"import os, sys\nos.write(int(sys.argv[1]), {payload!r})\n")
    monkeypatch.setattr(sandbox_module, "LAUNCHER", launcher)
    root = tmp_path / "project"
    root.mkdir()
    result = Sandbox(root, limits=LIMITS).run(["true"])
    assert result.returncode != 0 and not result.ok
    assert "report" in result.stderr


def test_a_killed_launcher_without_a_report_does_not_pass(sandbox: Sandbox) -> None:
    result = sandbox.run([sys.executable, "-c",
                          "import os, signal; os.kill(os.getppid(), signal.SIGKILL)"])
    assert result.returncode != 0 and not result.ok


def test_a_command_killed_at_the_wall_clock_reports_a_nonzero_returncode(tmp_path: Path
                                                                         ) -> None:
    box = Sandbox(tmp_path, limits=Limits(wall_seconds=1, cpu_seconds=5))
    result = box.run([sys.executable, "-c", "import time; time.sleep(1000)"])
    assert result.timed_out and result.returncode != 0 and not result.ok


def test_a_stopped_launcher_is_killed_by_the_backstop_and_counts_as_timed_out(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox_module, "BACKSTOP_SECONDS", 1.0)
    box = Sandbox(tmp_path, limits=Limits(wall_seconds=1, cpu_seconds=5))
    result = box.run([sys.executable, "-c",
                      "import os, signal; os.kill(os.getppid(), signal.SIGSTOP)"])
    assert result.timed_out and result.returncode != 0 and not result.ok


def test_the_command_holds_no_capabilities(sandbox: Sandbox) -> None:
    result = sandbox.run([sys.executable, "-c", "print(open('/proc/self/status').read())"])
    caps = dict(line.split(":\t", 1) for line in result.stdout.splitlines() if ":\t" in line)
    for name in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(caps[name], 16) == 0, f"{name} = {caps[name]}"


def test_read_only_system_directories_cannot_be_remounted_writable(sandbox: Sandbox) -> None:
    probe = Path("/usr/lib/smallhold-remount-probe")
    result = sandbox.run(["/bin/sh", "-c", f"mount -o remount,bind,rw /usr; touch {probe}"])
    try:
        assert not probe.exists()
        assert not result.ok
    finally:
        probe.unlink(missing_ok=True)
