"""Device sync through an in-process relay: permission, conflicts, replays, bad input."""

from __future__ import annotations

import base64
import json
import os
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel, Field
from starlette.testclient import TestClient

from smallhold.errors import (
    PairingError,
    RelayUnreachableError,
    SyncError,
    SyncNotAllowedError,
)
from smallhold.relay.app import RelayStore, create_relay_app
from smallhold.store import sqlcipher
from smallhold.store.collections import Collection
from smallhold.store.handle import VaultHandle
from smallhold.store.sync import crypto, pairing
from smallhold.store.sync.client import SyncClient, SyncSettings, pack
from smallhold.store.sync.history import find_conflict, list_conflicts, restore_conflict
from smallhold.store.sync.transport import RelayClient


class Note(BaseModel):
    title: str = Field(min_length=1)
    body: str = ""


class Device:
    """One vault with a notes collection, paired to the shared test relay."""

    def __init__(self, tmp_path: Path, name: str, http: TestClient, sync_key: bytes) -> None:
        path = tmp_path / f"{name}.db"
        self.handle = VaultHandle(sqlcipher.connect(path, os.urandom(32)), path=path,
                                  profile=name)
        self.notes = Collection(self.handle, "notes", Note)
        self.settings = SyncSettings(self.handle)
        self.settings.join(sync_key, "http://relay")
        self.http = http
        RelayClient("http://relay", self.settings.keys(), http=http).create_group()  # pairing

    def client(self) -> SyncClient:
        relay = RelayClient("http://relay", self.settings.keys(), http=self.http)
        return SyncClient(self.handle, relay, models={"notes": Note})

    def sync(self) -> dict[str, object]:
        return self.client().run().as_dict()

    def state(self) -> dict[str, tuple[str, str, bool]]:
        rows = self.handle.conn.execute(
            "SELECT id, data, version, deleted FROM records WHERE collection = 'notes'")
        return {r[0]: (r[1], r[2], bool(r[3])) for r in rows}


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[tuple[TestClient, RelayStore]]:
    store = RelayStore(tmp_path / "relay.db")
    with TestClient(create_relay_app(store), base_url="http://relay") as http:
        yield http, store
    store.close()


@pytest.fixture
def pair(tmp_path: Path, relay: tuple[TestClient, RelayStore]) -> Iterator[tuple[Device,
                                                                                   Device]]:
    key = crypto.new_sync_key()
    a, b = (Device(tmp_path, n, relay[0], key) for n in ("a", "b"))
    for d in (a, b):
        d.settings.enable("notes")
    yield a, b
    a.handle.close()
    b.handle.close()


def converge(a: Device, b: Device) -> None:
    for _ in range(3):
        a.sync()
        b.sync()
    assert a.state() == b.state()


def test_changes_flow_both_ways_and_deletes_follow(pair: tuple[Device, Device]) -> None:
    a, b = pair
    note = a.notes.put({"title": "groceries", "body": "oat milk"})
    report = a.sync()
    assert report["pushed_changes"] == 1
    assert b.sync()["applied"] == 1
    assert b.notes.get(note.id).value.body == "oat milk"
    b.notes.put({"title": "groceries", "body": "oat milk, bread"}, note.id)
    b.sync()
    a.sync()
    assert a.notes.get(note.id).value.body == "oat milk, bread"
    assert list_conflicts(a.handle) == []  # a sequence of edits is not a conflict
    a.notes.delete(note.id)
    converge(a, b)
    assert b.notes.all() == []


def test_a_collection_not_enabled_never_reaches_the_relay(
        pair: tuple[Device, Device], relay: tuple[TestClient, RelayStore]) -> None:
    a, b = pair
    private = Collection(a.handle, "diary", Note)
    private.put({"title": "dear diary", "body": "nobody should read this"})
    a.notes.put({"title": "shared"})
    assert a.sync()["pushed_changes"] == 1
    rows = relay[1].conn.execute("SELECT device, batch_id, blob FROM batches").fetchall()
    assert len(rows) == 1
    keys = a.settings.keys()
    opened = json.loads(zlib.decompress(crypto.open_sealed(keys, rows[0][0], rows[0][1],
                                                           rows[0][2])))
    assert {c["collection"] for c in opened["changes"]} == {"notes"}
    # enabling later sends the history, and a receiver that has not enabled it skips it
    a.settings.enable("diary")
    assert a.sync()["pushed_changes"] == 1
    report = b.sync()
    assert report["not_enabled"] == 1
    assert Collection(b.handle, "diary", Note).all() == []
    b.settings.enable("diary")  # re-reads the relay from the start
    b.sync()
    assert Collection(b.handle, "diary", Note).all()[0].value.title == "dear diary"
    b.settings.disable("diary")
    with pytest.raises(SyncNotAllowedError):
        b.settings.disable("diary")


def test_concurrent_edits_keep_local_here_and_the_loser_as_a_conflict(
        pair: tuple[Device, Device]) -> None:
    a, b = pair
    note = a.notes.put({"title": "plan", "body": "v0"})
    converge(a, b)
    a.notes.put({"title": "plan", "body": "from a"}, note.id)
    b.notes.put({"title": "plan", "body": "from b"}, note.id)
    a.sync()  # a sends its edit; nothing to merge yet
    report = b.sync()  # b sees a concurrent edit: b's own wins on b
    assert report["merged"] == 1
    assert b.notes.get(note.id).value.body == "from b"
    lost = list_conflicts(b.handle)
    assert [(c.data["body"], c.shown_data["body"]) for c in lost] == [("from a", "from b")]
    converge(a, b)
    final = a.notes.get(note.id).value.body
    assert final == b.notes.get(note.id).value.body
    for device in (a, b):  # nothing silently dropped: the other edit is a conflict record
        bodies = {c.data["body"] for c in list_conflicts(device.handle)}
        assert bodies == {"from a", "from b"} - {final}
    # restoring the conflict makes it the value everywhere and clears it
    conflict = find_conflict(b.handle, list_conflicts(b.handle)[0].version[:29])
    restore_conflict(b.handle, conflict)
    converge(a, b)
    assert a.notes.get(note.id).value.body == conflict.data["body"]
    assert list_conflicts(a.handle) == list_conflicts(b.handle) == []


def test_both_devices_merging_at_once_settle_without_ping_pong(
        pair: tuple[Device, Device]) -> None:
    a, b = pair
    note = a.notes.put({"title": "plan", "body": "v0"})
    converge(a, b)
    a.notes.put({"title": "plan", "body": "from a"}, note.id)
    b.notes.put({"title": "plan", "body": "from b"}, note.id)
    a.sync()
    b.sync()  # b merges (keeps b) and sends the merge
    report_a = a.sync()  # a pulls b's edit and merge, merges too (keeps a)
    assert report_a["merged"] == 1
    converge(a, b)
    for _ in range(3):  # quiescent: nothing new is written once settled
        assert a.sync()["pushed_changes"] == 0
        assert b.sync()["pushed_changes"] == 0


def test_replayed_and_resent_batches_apply_nothing_twice(
        pair: tuple[Device, Device], relay: tuple[TestClient, RelayStore]) -> None:
    a, b = pair
    a.notes.put({"title": "once"})
    a.sync()
    b.sync()
    store = relay[1]
    device, batch_id, blob = store.conn.execute(
        "SELECT device, batch_id, blob FROM batches").fetchone()
    # a relay that serves everything again (a replay) changes nothing
    b.handle.set_meta("sync.pulled_seq", "0")
    report = b.sync()
    assert report["pulled_batches"] == 1 and report["already_known"] == 1
    assert report["applied"] == 0 and len(b.notes.all()) == 1
    # the same batch re-sent by its device (crash before the cursor moved) is stored once
    http = relay[0]
    keys = a.settings.keys()
    response = http.post(f"/v1/groups/{keys.group_id}/batches",
                         headers={"Authorization": f"Bearer {keys.token}"},
                         json={"device": device, "batch_id": batch_id,
                               "blob": base64.b64encode(blob).decode()})
    assert response.json()["duplicate"] is True


def test_a_batch_moved_under_another_name_is_quarantined_and_nothing_applied(
        pair: tuple[Device, Device], relay: tuple[TestClient, RelayStore]) -> None:
    a, b = pair
    a.notes.put({"title": "first"})
    a.sync()
    store = relay[1]
    store.conn.execute("UPDATE batches SET batch_id = 'forged'")
    before = b.state()
    assert b.sync()["quarantined_batches"] == 1
    assert b.state() == before
    [kept] = b.settings.quarantined_batches()
    assert kept["batch_id"] == "forged" and "failed authentication" in kept["reason"]
    assert b.settings.status()["relay_cursor"] == 1  # skipped: it can never open


def test_relay_garbage_is_quarantined_and_unreachable_is_a_typed_error(
        pair: tuple[Device, Device], relay: tuple[TestClient, RelayStore]) -> None:
    a, _ = pair
    a.notes.put({"title": "kept locally"})
    store = relay[1]
    store.conn.execute("INSERT INTO batches (group_id, device, batch_id, blob, received_at) "
                       "VALUES (?, 'other', '1-1', x'00', 0)", (a.settings.keys().group_id,))
    assert a.sync()["quarantined_batches"] == 1
    assert "too short" in a.settings.quarantined_batches()[0]["reason"]
    dead = RelayClient("http://127.0.0.1:9", a.settings.keys(), timeout_s=2)
    with pytest.raises(RelayUnreachableError, match="did not answer"):
        SyncClient(a.handle, dead).run()
    assert [r.value.title for r in a.notes.all()] == ["kept locally"]
    assert a.settings.status()["collections"][0]["pending"] == 0  # first push did land


def test_an_invalid_record_is_quarantined_not_applied(
        pair: tuple[Device, Device], relay: tuple[TestClient, RelayStore]) -> None:
    a, b = pair
    keys = a.settings.keys()
    bad = {"format": 1, "changes": [
        {"collection": "notes", "record_id": "r1", "version": f"{10**12:015d}-000000-{'x'}",
         "parents": [], "op": "put", "data": json.dumps({"title": "claims another device"}),
         "at": 1.0},
        {"collection": "notes", "record_id": "r2", "version": f"{10**12:015d}-000001-devz",
         "parents": [], "op": "put", "data": json.dumps({"title": ""}), "at": 1.0},
        {"collection": "notes", "record_id": "r3", "version": f"{10**12:015d}-000002-devz",
         "parents": [], "op": "put", "data": json.dumps({"title": "fine"}), "at": 1.0}]}
    blob = crypto.seal(keys, "devz", "1-3", pack(bad))
    relay[1].put_batch(keys.group_id, "devz", "1-3", blob)
    report = b.sync()
    assert report["quarantined"] == 2 and report["applied"] == 1
    reasons = [q["reason"] for q in b.settings.quarantine()]
    assert "claims device x" in reasons[0] and "title" in reasons[1]
    assert [r.value.title for r in b.notes.all()] == ["fine"]


def test_pairing_code_hands_over_the_key_once(relay: tuple[TestClient, RelayStore],
                                              tmp_path: Path) -> None:
    http = relay[0]
    key = crypto.new_sync_key()
    code = pairing.new_code()
    relay_client = RelayClient("http://relay", http=http)
    relay_client.put_pairing(pairing.drop_id(code),
                             pairing.seal_invitation(code, pairing.Invitation(
                                 key, "http://relay", "dev-a")), 600)
    stored = relay[1].conn.execute("SELECT blob FROM pairings").fetchone()[0]
    assert key not in stored and key.hex().encode() not in stored
    got = pairing.open_invitation(code, relay_client.take_pairing(
        pairing.drop_id(code.lower().replace("-", " "))))
    assert got.sync_key == key and got.relay == "http://relay"
    with pytest.raises(PairingError, match="already used"):
        relay_client.take_pairing(pairing.drop_id(code))
    with pytest.raises(PairingError, match="not a pairing code"):
        pairing.normalise("1234")
    with pytest.raises(PairingError, match="did not open"):
        pairing.open_invitation(pairing.new_code(), stored)


def test_joining_another_group_needs_replace(pair: tuple[Device, Device]) -> None:
    a, _ = pair
    with pytest.raises(SyncError, match="--replace"):
        a.settings.join(crypto.new_sync_key(), "http://relay")


def test_an_authentic_batch_that_is_not_ours_or_a_zip_bomb_is_quarantined(
        pair: tuple[Device, Device], relay: tuple[TestClient, RelayStore]) -> None:
    a, b = pair
    keys = a.settings.keys()
    relay[1].put_batch(keys.group_id, "devz", "1-1",
                       crypto.seal(keys, "devz", "1-1", b'{"format": 1, "changes": []}'))
    bomb = zlib.compress(b" " * (80 * 2**20), 9)
    relay[1].put_batch(keys.group_id, "devz", "2-2", crypto.seal(keys, "devz", "2-2", bomb))
    assert b.sync()["quarantined_batches"] == 2
    reasons = [q["reason"] for q in b.settings.quarantined_batches()]
    assert "not compressed JSON" in reasons[0] and "inflates past" in reasons[1]
    assert b.state() == {}
