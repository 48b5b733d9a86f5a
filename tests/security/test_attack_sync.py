"""Attacks on sync (issue 22, §4 and §6): each test replays one against the real relay.

The relay holds only ciphertext and every member of a group holds its token, so a member (or
whoever runs the relay) can post anything: these tests check that garbage costs a quarantine
row and nothing else, that the relay refuses malformed input with a 4xx instead of storing it
or failing with a 500, that groups exist only when pairing registers them and stay within a
quota, and that the CLI answers bad input with one line.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from pydantic import BaseModel, Field
from starlette.testclient import TestClient

from smallhold.cli import main
from smallhold.errors import RelayRefusedError
from smallhold.paths import resolve_paths
from smallhold.relay.app import (
    MAX_BODY_BYTES,
    RelayStore,
    create_relay_app,
    relay_policy,
)
from smallhold.store import sqlcipher
from smallhold.store.collections import Collection
from smallhold.store.handle import VaultHandle
from smallhold.store.sync import crypto
from smallhold.store.sync.client import SyncClient, SyncReport, SyncSettings, pack
from smallhold.store.sync.transport import RelayClient
from smallhold.store.vault import open_vault

FORGED = {"device": "x", "batch_id": "y", "blob": "AAAA"}  # the payload from the issue


class Note(BaseModel):
    title: str = Field(min_length=1)


def auth(keys: crypto.GroupKeys) -> dict[str, str]:
    return {"Authorization": f"Bearer {keys.token}"}


class Device:
    """A vault with a ``notes`` collection enabled, in a group on the in-process relay."""

    def __init__(self, tmp_path: Path, name: str, http: TestClient, key: bytes) -> None:
        path = tmp_path / f"{name}.db"
        self.handle = VaultHandle(sqlcipher.connect(path, os.urandom(32)), path=path,
                                  profile=name)
        self.notes = Collection(self.handle, "notes", Note)
        self.settings = SyncSettings(self.handle)
        self.settings.join(key, "http://relay")
        self.settings.enable("notes")
        self.http = http

    def sync(self) -> SyncReport:
        relay = RelayClient("http://relay", self.settings.keys(), http=self.http)
        return SyncClient(self.handle, relay, models={"notes": Note}).run()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RelayStore]:
    relay = RelayStore(tmp_path / "relay.db")
    yield relay
    relay.close()


@pytest.fixture
def http(store: RelayStore) -> Iterator[TestClient]:
    with TestClient(create_relay_app(store), base_url="http://relay") as client:
        yield client


@pytest.fixture
def devices(tmp_path: Path, http: TestClient) -> Iterator[tuple[Device, Device]]:
    key = crypto.new_sync_key()
    http.put(f"/v1/groups/{crypto.GroupKeys.from_sync_key(key).group_id}",
             headers=auth(crypto.GroupKeys.from_sync_key(key)), json={})  # as `sync pair`
    a, b = Device(tmp_path, "a", http, key), Device(tmp_path, "b", http, key)
    yield a, b
    a.handle.close()
    b.handle.close()


def test_a_member_cannot_squat_the_name_of_another_devices_next_batch(
        devices: tuple[Device, Device], http: TestClient) -> None:
    """The relay keeps one upload per (device, batch id): a name another member can predict
    lets that member's garbage stand in for the real batch, which is then never delivered."""
    a, b = devices
    keys = a.settings.keys()
    note = a.notes.put({"title": "the real one"})
    with a.handle.lock:
        seqs = [r[0] for r in a.handle.conn.execute(
            "SELECT seq FROM changes WHERE origin = ? ORDER BY seq", (a.handle.device_id,))]
    for guess in {f"{seqs[0]}-{seqs[-1]}", f"{seqs[-1]}-{seqs[-1]}", "1-1"}:
        squat = {"device": a.handle.device_id, "batch_id": guess, "blob": "AAAA"}
        assert http.post(f"/v1/groups/{keys.group_id}/batches", headers=auth(keys),
                         json=squat).status_code == 200
    a.sync()
    b.sync()
    assert b.notes.get(note.id).value.title == "the real one"


# -- §4: one forged batch must not stop a device's sync -------------------------------------

def test_the_forged_batch_from_the_issue_is_quarantined_and_later_batches_apply(
        devices: tuple[Device, Device], http: TestClient) -> None:
    a, b = devices
    keys = a.settings.keys()
    posted = http.post(f"/v1/groups/{keys.group_id}/batches", headers=auth(keys), json=FORGED)
    assert posted.status_code == 200  # opaque to the relay: any member may post it
    note = a.notes.put({"title": "after the forgery"})
    a.sync()

    first = b.sync()  # failed with "too short to be a sealed batch" every time before
    assert first.quarantined_batches == 1 and first.applied == 1
    assert b.notes.get(note.id).value.title == "after the forgery"
    [row] = b.settings.quarantined_batches()
    assert (row["device"], row["batch_id"], row["relay_seq"]) == ("x", "y", posted.json()["seq"])
    assert "too short" in row["reason"]
    assert (row["size"], row["sha256"]) == (3, hashlib.sha256(b"\0\0\0").hexdigest())
    assert b.settings.status()["quarantined_batches"] == 1
    assert b.settings.status()["relay_cursor"] > posted.json()["seq"]  # moved past it

    second = b.sync()
    assert (second.quarantined_batches, second.applied, second.pulled_batches) == (0, 0, 0)
    b.settings.enable("notes")  # re-reads the relay from the start: the same row, not two
    assert b.sync().quarantined_batches == 0 and len(b.settings.quarantined_batches()) == 1


def test_every_kind_of_unreadable_batch_is_quarantined_with_its_reason(
        devices: tuple[Device, Device], store: RelayStore) -> None:
    a, b = devices
    keys = a.settings.keys()
    stranger = crypto.GroupKeys.from_sync_key(crypto.new_sync_key())
    bomb = zlib.compress(b" " * (65 * 2**20), 9)
    unreadable = {
        "1-1": crypto.seal(stranger, "devz", "1-1", pack({"format": 1, "changes": []})),
        "2-2": crypto.seal(keys, "devz", "moved", pack({"format": 1, "changes": []})),
        "3-3": crypto.seal(keys, "devz", "3-3", b'{"format": 1, "changes": []}'),
        "4-4": crypto.seal(keys, "devz", "4-4", bomb),
        "5-5": crypto.seal(keys, "devz", "5-5", pack({"format": 1, "changes": [{"op": 1}]})),
        "6-6": crypto.seal(keys, "devz", "6-6", zlib.compress(b"[1, 2")),
    }
    for batch_id, blob in unreadable.items():
        store.put_batch(keys.group_id, "devz", batch_id, blob)
    note = a.notes.put({"title": "still arrives"})
    a.sync()

    report = b.sync()
    assert report.quarantined_batches == len(unreadable) and report.applied == 1
    assert [r.value.title for r in b.notes.all()] == ["still arrives"]
    reasons = {q["batch_id"]: q["reason"] for q in b.settings.quarantined_batches()}
    assert "failed authentication" in reasons["1-1"] and "failed authentication" in reasons["2-2"]
    assert "not compressed JSON" in reasons["3-3"] and "inflates past" in reasons["4-4"]
    assert "not in the sync format" in reasons["5-5"] and "changes.0" in reasons["5-5"]
    assert "not in the sync format" in reasons["6-6"]
    assert b.sync().quarantined_batches == 0
    assert b.notes.get(note.id).value.title == "still arrives"


def test_a_good_batch_in_the_same_page_as_a_forged_one_applies_with_it(
        devices: tuple[Device, Device], store: RelayStore) -> None:
    a, b = devices
    keys = a.settings.keys()
    a.notes.put({"title": "before"})
    a.sync()
    store.put_batch(keys.group_id, "x", "y", b"\0" * 3)
    a.notes.put({"title": "after"})
    a.sync()
    report = b.sync()  # one page: good, forged, good, in one transaction with the cursor
    assert (report.pulled_batches, report.quarantined_batches) == (2, 1)
    assert sorted(r.value.title for r in b.notes.all()) == ["after", "before"]


# -- §4: the relay validates what it stores -------------------------------------------------

@pytest.mark.parametrize("body", [
    {"device": "x", "batch_id": "y", "blob": None},
    {"device": [1], "batch_id": "y", "blob": "AAAA"},
    {"device": "x", "batch_id": 7, "blob": "AAAA"},
    {"device": "", "batch_id": "y", "blob": "AAAA"},
    {"device": "x" * 129, "batch_id": "y", "blob": "AAAA"},
    {"device": "x|z", "batch_id": "y", "blob": "AAAA"},
    {"device": "x", "batch_id": "y", "blob": "not base64!"},
    ["device", "x"],
])
def test_the_relay_refuses_ill_typed_batches_with_a_json_error(
        devices: tuple[Device, Device], http: TestClient, store: RelayStore,
        body: object) -> None:
    keys = devices[0].settings.keys()
    response = http.post(f"/v1/groups/{keys.group_id}/batches", headers=auth(keys), json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "bad_batch"
    assert store.conn.execute("SELECT count(*) FROM batches").fetchone()[0] == 0


@pytest.mark.parametrize("after", [str(10**30), str(2**63), "-1", "1e3", "", "\u00b2"])
def test_a_cursor_outside_63_bits_is_a_400_not_a_500(
        devices: tuple[Device, Device], http: TestClient, after: str) -> None:
    keys = devices[0].settings.keys()
    response = http.get(f"/v1/groups/{keys.group_id}/batches", headers=auth(keys),
                        params={"after": after})
    assert response.status_code == 400 and response.json()["error"]["code"] == "bad_query"
    ok = http.get(f"/v1/groups/{keys.group_id}/batches", headers=auth(keys),
                  params={"after": str(2**63 - 1), "limit": "500000"})
    assert ok.status_code == 200 and ok.json() == {"batches": []}


def test_an_unknown_group_is_refused_and_never_created(http: TestClient,
                                                         store: RelayStore) -> None:
    keys = crypto.GroupKeys.from_sync_key(crypto.new_sync_key())
    url = f"/v1/groups/{keys.group_id}/batches"
    assert http.post(url, headers={"Authorization": "Bearer anything"},
                     json=FORGED).status_code == 404
    refused = http.get(url, headers=auth(keys))
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "unknown_group"
    assert store.conn.execute("SELECT count(*) FROM groups").fetchone()[0] == 0
    assert store.conn.execute("SELECT count(*) FROM batches").fetchone()[0] == 0
    relay = RelayClient("http://relay", keys, http=http)
    with pytest.raises(RelayRefusedError, match="sync pair"):
        relay.batches(0)
    # registering is explicit, idempotent for the group's token, refused for another token
    assert relay.create_group() is True and relay.create_group() is False
    assert http.put(f"/v1/groups/{keys.group_id}", headers={"Authorization": "Bearer other"},
                    json={}).status_code == 403
    assert relay.batches(0) == []


def test_quotas_refuse_with_a_message_and_keep_uploads_idempotent(tmp_path: Path) -> None:
    store = RelayStore(tmp_path / "quota.db", max_groups=1, group_max_batches=2,
                       group_max_bytes=100)
    with TestClient(create_relay_app(store), base_url="http://relay") as http:
        keys = crypto.GroupKeys.from_sync_key(crypto.new_sync_key())
        relay = RelayClient("http://relay", keys, http=http)
        relay.create_group()
        relay.put_batch("dev-a", "1-1", b"a" * 40)
        with pytest.raises(RelayRefusedError, match="quota on the relay is full"):
            relay.put_batch("dev-a", "2-2", b"b" * 61)  # 101 bytes: over
        relay.put_batch("dev-a", "2-2", b"b" * 60)
        assert relay.put_batch("dev-a", "2-2", b"b" * 60) is True  # a re-send still works
        refused = http.post(f"/v1/groups/{keys.group_id}/batches", headers=auth(keys),
                            json={"device": "dev-a", "batch_id": "3-3", "blob": "AAAA"})
        assert refused.status_code == 507
        assert "--group-max-batches" in refused.json()["error"]["message"]
        other = RelayClient("http://relay", crypto.GroupKeys.from_sync_key(
            crypto.new_sync_key()), http=http)
        with pytest.raises(RelayRefusedError, match="maximum of 1 groups"):
            other.create_group()
    assert store.conn.execute("SELECT count(*) FROM groups").fetchone()[0] == 1
    store.close()


def test_bodies_must_be_json_and_bounded(devices: tuple[Device, Device], http: TestClient,
                                         store: RelayStore) -> None:
    keys = devices[0].settings.keys()
    url = f"/v1/groups/{keys.group_id}/batches"
    plain = http.post(url, headers={**auth(keys), "Content-Type": "text/plain"},
                      content=json.dumps(FORGED))
    assert plain.status_code == 415
    form = http.put("/v1/pairings/abc", data={"blob": "AAAA"})
    assert form.status_code == 415
    huge = b'{"device": "x", "batch_id": "y", "blob": "' + b"A" * MAX_BODY_BYTES + b'"}'
    assert http.post(url, headers={**auth(keys), "Content-Type": "application/json"},
                     content=huge).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the relay stops reading at the limit
        yield b'{"blob": "'
        for _ in range(9):
            yield b"A" * 2**10
        yield b'"}'

    streamed = http.put("/v1/pairings/abc", headers={"Content-Type": "application/json"},
                        content=chunks())
    assert streamed.status_code == 413
    assert store.conn.execute("SELECT count(*) FROM batches").fetchone()[0] == 0
    assert store.conn.execute("SELECT count(*) FROM pairings").fetchone()[0] == 0


def test_on_loopback_the_relay_answers_only_to_local_host_names(store: RelayStore) -> None:
    app = create_relay_app(store, policy=relay_policy({"127.0.0.1", "localhost", "::1"}, 8738))
    with TestClient(app, base_url="http://127.0.0.1:8738") as client:
        assert client.get("/health").status_code == 200
        assert client.get("/health", headers={"Host": "localhost:8738"}).status_code == 200
        assert client.get("/health", headers={"Host": "[::1]:8738"}).status_code == 200
        for host in ("rebound.example.com", "rebound.example.com:8738", "127.0.0.1.evil",
                     "127.0.0.1:9999", ""):
            refused = client.get("/health", headers={"Host": host})
            assert refused.status_code == 400, host
            assert refused.json()["error"]["code"] == "invalid_host"


# -- §6: one-line errors from the CLI -------------------------------------------------------

def test_enabling_a_name_that_is_not_a_synced_collection_is_an_error() -> None:
    result = CliRunner().invoke(main, ["sync", "enable", "memories"])
    assert result.exit_code != 0
    message = result.output.strip()
    assert "Syncing" not in message and len(message.splitlines()) == 1, message
    assert "'memories'" in message and "pocket.turns" in message
    ok = CliRunner().invoke(main, ["sync", "enable", "pocket.turns", "--json"])
    assert ok.exit_code == 0 and json.loads(ok.output) == {"enabled": ["pocket.turns"]}


def test_serve_on_an_impossible_database_path_is_one_line() -> None:
    result = CliRunner().invoke(main, ["sync", "serve", "--db", "/proc/nope/relay.db",
                                       "--port", "9"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output and result.exception is not None
    assert isinstance(result.exception, SystemExit)
    assert "/proc/nope/relay.db" in result.output and "--db" in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


# -- the whole story on a real relay process ------------------------------------------------

def stored_sync_key() -> bytes:
    """The sync key ``sync pair`` stored in the default profile's vault."""
    with open_vault(resolve_paths(), "default", create_default=True) as handle:
        saved = SyncSettings(handle).sync_key
    assert saved is not None
    return saved


def test_pair_registers_the_group_and_sync_now_survives_the_forgery(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    proc = subprocess.Popen([sys.executable, "-m", "smallhold", "sync", "serve", "--port",
                             str(port), "--db", str(tmp_path / "relay.db"), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=os.environ.copy())
    try:
        assert proc.stdout is not None
        url = json.loads(proc.stdout.readline())["url"]
        with httpx.Client(base_url=url, trust_env=False, timeout=10) as client:
            for _ in range(200):
                try:
                    client.get("/health")
                    break
                except httpx.TransportError:
                    assert proc.poll() is None, "the relay exited"
                    time.sleep(0.05)
            assert client.get("/health", headers={"Host": "rebound.example"}
                              ).status_code == 400

            runner = CliRunner()
            code = runner.invoke(main, ["sync", "pair", "--relay", url, "--json"])
            assert code.exit_code == 0, code.output
            runner.invoke(main, ["sync", "enable", "pocket.turns"])
            keys = crypto.GroupKeys.from_sync_key(stored_sync_key())
            forged = client.post(f"/v1/groups/{keys.group_id}/batches", headers=auth(keys),
                                 json=FORGED)
            assert forged.status_code == 200  # pairing registered the group
            for _ in range(2):
                done = runner.invoke(main, ["sync", "now", "--json"])
                assert done.exit_code == 0, done.output
            status = json.loads(runner.invoke(main, ["sync", "status", "--json"]).output)
            assert status["quarantined_batches"] == 1
            listed = json.loads(runner.invoke(main, ["sync", "quarantine", "--json"]).output)
            assert [(b["device"], b["batch_id"]) for b in listed["batches"]] == [("x", "y")]
            shown = runner.invoke(main, ["sync", "status"])
            assert shown.exit_code == 0 and "1 quarantined batch" in shown.output
            shown = runner.invoke(main, ["sync", "quarantine"])
            assert shown.exit_code == 0 and "too short" in shown.output
    finally:
        proc.terminate()
        proc.wait(timeout=10)
