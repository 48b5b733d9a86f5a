"""Two profiles, a relay process, random offline edits and ``kill -9`` during sync: converge.

Every ``smallhold sync now`` here is a real process that talks to the relay through a small
proxy, and the proxy kills it with SIGKILL at a chosen request: before the relay saw an upload,
after the relay stored it but before the device heard back, or as a page of batches is on its
way to be applied. Afterwards both devices must hold the same records, the same history (every
version either device wrote, once), and the same conflict records: nothing lost or duplicated.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from smallhold.paths import resolve_paths
from smallhold.store.sync.history import list_conflicts
from smallhold.store.vault import open_vault

EDITOR = Path(__file__).with_name("sync_editor.py")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def env_for(home: Path) -> dict[str, str]:
    env = os.environ.copy()
    env.update(SMALLHOLD_HOME=str(home), PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")
    return env


def smallhold(env: dict[str, str], *args: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-m", "smallhold", *args, "--json"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def snapshot(home: Path, profile: str) -> tuple[object, ...]:
    os.environ["SMALLHOLD_HOME"] = str(home)
    with open_vault(resolve_paths(), profile, create_default=True) as handle:
        records = handle.conn.execute(
            "SELECT id, data, version, deleted FROM records WHERE collection = 'notes' "
            "ORDER BY id").fetchall()
        versions = handle.conn.execute(
            "SELECT version, op, data, parents FROM changes WHERE collection = 'notes' "
            "ORDER BY version").fetchall()
        conflicts = [c.version for c in list_conflicts(handle)]
    return records, versions, conflicts


class KillingProxy:
    """Forwards to the relay; at request number ``kill_at`` SIGKILLs the client ``pid``."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.pid = 0
        self.kill_at = 0
        self.after = False
        self.count = 0
        self.kills = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self.forward()

            def do_POST(self) -> None:
                self.forward()

            def do_PUT(self) -> None:
                self.forward()

            def forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                proxy.count += 1
                kill = proxy.count == proxy.kill_at
                if kill and not proxy.after:
                    proxy.kill()
                    return
                answer = httpx.request(self.command, proxy.upstream + self.path, content=body,
                                       headers={k: v for k, v in self.headers.items()
                                                if k.lower() != "host"}, timeout=30)
                if kill:
                    proxy.kill()
                    return
                self.send_response(answer.status_code)
                self.send_header("content-type", answer.headers.get("content-type", ""))
                self.send_header("content-length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        self.kills += 1

    def arm(self, pid: int, kill_at: int, after: bool) -> None:
        self.pid, self.kill_at, self.after, self.count = pid, kill_at, after, 0


@pytest.fixture
def relay_url(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "smallhold", "sync", "serve", "--port",
                             str(port), "--db", str(tmp_path / "relay.db")],
                            env=env_for(tmp_path / "relay-home"), stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def test_kill_during_sync_then_converge(tmp_path: Path, relay_url: str,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMALLHOLD_HOME", str(tmp_path))
    homes = {name: tmp_path / name for name in ("a", "b")}
    envs = {name: env_for(home) for name, home in homes.items()}
    code = smallhold(envs["a"], "sync", "pair", "--relay", relay_url)["code"]
    smallhold(envs["b"], "sync", "join", str(code), "--relay", relay_url)

    proxy = KillingProxy(relay_url)
    rng = random.Random(5)
    for round_no in range(8):
        for name, env in envs.items():
            subprocess.run([sys.executable, str(EDITOR), "default", str(round_no * 10 +
                            (name == "b")), "25"], env=env, check=True, timeout=60)
            if round_no == 0:  # a collection can be enabled once the vault holds it
                smallhold(env, "sync", "enable", "notes")
        for env in envs.values():
            proc = subprocess.Popen([sys.executable, "-m", "smallhold", "sync", "now", "--relay",
                                     proxy.url, "--batch-changes", "4", "--json"], env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            proxy.arm(proc.pid, kill_at=rng.randint(1, 12), after=rng.random() < 0.5)
            proc.wait(timeout=120)
            if proc.returncode != -signal.SIGKILL:
                assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
            proc.stderr and proc.stderr.close()
    proxy.server.shutdown()
    assert proxy.kills >= 6, "most syncs are meant to die part way"

    for _ in range(6):
        reports = [smallhold(envs[n], "sync", "now", "--relay", relay_url) for n in ("a", "b")]
        if all(r["pushed_changes"] == 0 and r["applied"] == 0 for r in reports):
            break
    else:
        pytest.fail(f"sync did not settle: {reports}")
    snap_a, snap_b = (snapshot(homes[n], "default") for n in ("a", "b"))
    records, versions, conflicts = snap_a
    assert snap_a == snap_b
    assert len(records) > 0 and len(versions) >= 2 * 8 * 20  # nothing lost on the way
    assert len({v[0] for v in versions}) == len(versions)  # nor applied twice
    assert len(conflicts) > 0  # the pool is small, so concurrent edits did conflict

    # the user looks at a conflict and restores it; after a sync both devices agree again
    listed = smallhold(envs["a"], "sync", "conflicts", "list")["conflicts"]
    assert [c["version"] for c in listed] == conflicts
    suffix = str(listed[0]["version"])[:29]
    shown = smallhold(envs["a"], "sync", "conflicts", "show", suffix)
    assert shown["version"] == listed[0]["version"]
    restored = smallhold(envs["a"], "sync", "conflicts", "restore", suffix)
    assert restored["restored"] == listed[0]["version"]
    status = smallhold(envs["a"], "sync", "status")  # the restore settles that record
    assert status["conflicts"] < len(conflicts)
    assert status["collections"] == [{"name": "notes", "enabled": True, "pending": 1}]
    for name in ("a", "b", "a"):
        smallhold(envs[name], "sync", "now", "--relay", relay_url)
    assert snapshot(homes["a"], "default") == snapshot(homes["b"], "default")
    after = snapshot(homes["b"], "default")[2]
    assert listed[0]["version"] not in after and len(after) == status["conflicts"]
