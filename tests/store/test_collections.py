"""Typed collections and the hybrid logical clock under them."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, Field

from smallhold.errors import RecordNotFoundError, RecordValidationError, SyncError
from smallhold.store.collections import Collection
from smallhold.store.handle import VaultHandle
from smallhold.store.hlc import HybridClock, Timestamp


class Note(BaseModel):
    title: str = Field(min_length=1)
    body: str = ""
    stars: int = Field(0, ge=0, le=5)


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def test_put_get_update_delete_and_change_log(vault_handle: VaultHandle) -> None:
    clock = Clock()
    notes = Collection(vault_handle, "notes", Note, clock=clock)
    first = notes.put({"title": "groceries", "body": "oat milk"})
    assert first.origin == vault_handle.device_id and first.created_at == clock.now
    clock.now += 60
    second = notes.put(Note(title="groceries", body="oat milk, bread"), first.id)
    assert second.created_at == first.created_at and second.updated_at == clock.now
    assert second.version > first.version
    assert notes.get(first.id).value.body == "oat milk, bread"
    notes.delete(first.id)
    with pytest.raises(RecordNotFoundError):
        notes.get(first.id)
    assert notes.all() == []
    log = notes.changes_since(0)
    assert [c["op"] for c in log] == ["put", "put", "delete"]
    assert [c["version"] for c in log] == sorted(c["version"] for c in log)
    assert notes.changes_since(log[1]["seq"])[0]["op"] == "delete"


def test_invalid_record_names_the_field_and_writes_nothing(vault_handle: VaultHandle) -> None:
    notes = Collection(vault_handle, "notes", Note)
    with pytest.raises(RecordValidationError, match="stars"):
        notes.put({"title": "x", "stars": 9})
    with pytest.raises(RecordValidationError, match="title"):
        notes.put({"body": "no title"})
    assert notes.all() == [] and notes.changes_since(0) == []


def test_collections_are_separate_and_versions_survive_reopening(
        vault_handle: VaultHandle) -> None:
    a = Collection(vault_handle, "a", Note)
    b = Collection(vault_handle, "b", Note)
    ra = a.put({"title": "in a"})
    b.put({"title": "in b"})
    assert [r.value.title for r in a.all()] == ["in a"]
    again = Collection(vault_handle, "a", Note, clock=lambda: 0.0)  # clock went backwards
    assert again.put({"title": "later"}).version > ra.version


def test_hlc_is_monotonic_when_the_wall_clock_goes_back() -> None:
    clock = HybridClock("dev-a")
    t1 = clock.tick(1000.0)
    t2 = clock.tick(999.0)
    t3 = clock.tick(999.0)
    assert t1 < t2 < t3
    assert t1.encode() < t2.encode() < t3.encode()
    assert Timestamp.decode(t3.encode()) == t3


def test_hlc_orders_after_what_it_has_seen() -> None:
    a, b = HybridClock("dev-a"), HybridClock("dev-b")
    remote = b.tick(5000.0)
    local = a.observe(remote, 4000.0)
    assert local > remote and a.tick(4000.0) > local
    with pytest.raises(SyncError, match="ahead"):
        a.observe(Timestamp(int(4000.0 * 1000) + 2 * 86_400_000, 0, "dev-b"), 4000.0)
    with pytest.raises(SyncError):
        Timestamp.decode("garbage")
