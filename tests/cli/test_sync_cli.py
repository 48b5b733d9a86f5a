"""`smallhold sync serve` as a real process on loopback."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from click.testing import CliRunner

from smallhold.cli import main
from smallhold.store.sync import crypto


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_relay_process_accepts_a_sealed_batch_and_keeps_it(tmp_path: Path) -> None:
    port = free_port()
    db = tmp_path / "relay.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "smallhold", "sync", "serve", "--port", str(port), "--db",
         str(db), "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=os.environ.copy())
    try:
        assert proc.stdout is not None
        started = json.loads(proc.stdout.readline())
        assert started["url"] == f"http://127.0.0.1:{port}" and started["db"] == str(db)
        keys = crypto.GroupKeys.from_sync_key(crypto.new_sync_key())
        blob = crypto.seal(keys, "dev-a", "1-1", b'{"changes": []}')
        with httpx.Client(base_url=started["url"], trust_env=False, timeout=5) as client:
            for _ in range(100):
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.05)
            assert client.put(f"/v1/groups/{keys.group_id}", headers={
                "Authorization": f"Bearer {keys.token}"}, json={}).status_code == 201
            response = client.post(f"/v1/groups/{keys.group_id}/batches",
                                   headers={"Authorization": f"Bearer {keys.token}"},
                                   json={"device": "dev-a", "batch_id": "1-1",
                                         "blob": base64.b64encode(blob).decode()})
            assert response.json() == {"seq": 1, "duplicate": False}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert db.exists() and b'"changes"' not in db.read_bytes()


def test_a_remote_address_needs_allow_remote() -> None:
    result = CliRunner().invoke(main, ["sync", "serve", "--host", "0.0.0.0"])
    assert result.exit_code == 2 and "--allow-remote" in result.output
