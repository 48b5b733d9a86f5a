"""The relay and batch encryption: ciphertext only, idempotent, authenticated, one-time pairs."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from smallhold.errors import RelayProtocolError
from smallhold.relay.app import RelayStore, create_relay_app
from smallhold.store.sync import crypto

SECRET = b'{"title": "salary negotiation notes", "body": "ask for 95k"}'


class Clock:
    now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def relay(tmp_path: Path, clock: Clock) -> Iterator[tuple[TestClient, RelayStore]]:
    store = RelayStore(tmp_path / "relay" / "relay.db", clock=clock)
    with TestClient(create_relay_app(store)) as client:
        yield client, store
    store.close()


def auth(keys: crypto.GroupKeys) -> dict[str, str]:
    return {"Authorization": f"Bearer {keys.token}"}


def register(client: TestClient, keys: crypto.GroupKeys) -> None:
    """What ``sync pair`` does: the relay makes a group only when asked to."""
    assert client.put(f"/v1/groups/{keys.group_id}", headers=auth(keys),
                      json={}).status_code == 201


def upload(client: TestClient, keys: crypto.GroupKeys, device: str, batch_id: str,
           blob: bytes) -> dict[str, object]:
    response = client.post(f"/v1/groups/{keys.group_id}/batches", headers=auth(keys),
                           json={"device": device, "batch_id": batch_id,
                                 "blob": base64.b64encode(blob).decode()})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_seal_and_open_round_trip_and_bind_their_names() -> None:
    keys = crypto.GroupKeys.from_sync_key(crypto.new_sync_key())
    blob = crypto.seal(keys, "dev-a", "1-10", SECRET)
    assert SECRET not in blob
    assert crypto.open_sealed(keys, "dev-a", "1-10", blob) == SECRET
    for device, batch in (("dev-b", "1-10"), ("dev-a", "11-20")):
        with pytest.raises(RelayProtocolError, match="failed authentication"):
            crypto.open_sealed(keys, device, batch, blob)
    flipped = bytearray(blob)
    flipped[-1] ^= 1
    with pytest.raises(RelayProtocolError):
        crypto.open_sealed(keys, "dev-a", "1-10", bytes(flipped))
    other = crypto.GroupKeys.from_sync_key(crypto.new_sync_key())
    with pytest.raises(RelayProtocolError):
        crypto.open_sealed(other, "dev-a", "1-10", blob)
    with pytest.raises(RelayProtocolError, match="too short"):
        crypto.open_sealed(keys, "dev-a", "1-10", b"junk")


def test_relay_stores_only_ciphertext_and_is_idempotent(
        relay: tuple[TestClient, RelayStore], tmp_path: Path) -> None:
    client, _ = relay
    keys = crypto.GroupKeys.from_sync_key(crypto.new_sync_key())
    register(client, keys)
    blob = crypto.seal(keys, "dev-a", "1-3", SECRET)
    first = upload(client, keys, "dev-a", "1-3", blob)
    again = upload(client, keys, "dev-a", "1-3", blob)
    assert first["duplicate"] is False and again == {"seq": first["seq"], "duplicate": True}
    upload(client, keys, "dev-b", "1-1", crypto.seal(keys, "dev-b", "1-1", b"{}"))
    page = client.get(f"/v1/groups/{keys.group_id}/batches?after=0", headers=auth(keys)).json()
    assert [b["device"] for b in page["batches"]] == ["dev-a", "dev-b"]
    later = client.get(f"/v1/groups/{keys.group_id}/batches?after={first['seq']}",
                       headers=auth(keys)).json()
    assert [b["device"] for b in later["batches"]] == ["dev-b"]
    got = base64.b64decode(page["batches"][0]["blob"])
    assert crypto.open_sealed(keys, "dev-a", "1-3", got) == SECRET
    for path in (tmp_path / "relay").iterdir():
        data = path.read_bytes()
        assert b"salary" not in data and keys.token.encode() not in data, path.name
        assert keys.enc not in data


def test_strangers_and_garbage_are_refused(relay: tuple[TestClient, RelayStore]) -> None:
    client, _ = relay
    keys = crypto.GroupKeys.from_sync_key(crypto.new_sync_key())
    register(client, keys)
    upload(client, keys, "dev-a", "1-1", crypto.seal(keys, "dev-a", "1-1", b"{}"))
    url = f"/v1/groups/{keys.group_id}/batches"
    assert client.get(url, headers={"Authorization": "Bearer nope"}).status_code == 403
    assert client.get(url).status_code == 403
    as_json = {**auth(keys), "Content-Type": "application/json"}
    bad = client.post(url, headers=as_json, content=b"{not json")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_json"
    bad = client.post(url, headers=as_json, content=json.dumps({"device": "x"}))
    assert bad.status_code == 400
    bad = client.post(url, headers=auth(keys),
                      json={"device": "x", "batch_id": "1", "blob": "***"})
    assert bad.status_code == 400
    assert client.get(url + "?after=abc", headers=auth(keys)).status_code == 400


def test_pairing_drop_is_one_time_and_expires(relay: tuple[TestClient, RelayStore],
                                              clock: Clock) -> None:
    client, _ = relay
    payload = base64.b64encode(b"wrapped key").decode()
    assert client.put("/v1/pairings/abc", json={"blob": payload, "ttl_s": 60}).status_code == 200
    assert client.get("/v1/pairings/abc").json()["blob"] == payload
    assert client.get("/v1/pairings/abc").status_code == 404
    client.put("/v1/pairings/def", json={"blob": payload, "ttl_s": 60})
    clock.now += 61
    assert client.get("/v1/pairings/def").status_code == 404
