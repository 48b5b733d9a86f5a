"""Background work (memory consolidation, sync) waits for the charger and survives offline."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from smallhold.apps.pocket.assistant import Pocket
from smallhold.apps.pocket.background import Background, sync_if_paired
from smallhold.config import Settings
from smallhold.errors import RelayUnreachableError
from smallhold.paths import Paths
from smallhold.relay.app import RelayStore, create_relay_app
from smallhold.runtime.backends.scripted import ScriptedBackend
from smallhold.runtime.device import simulated
from smallhold.runtime.runtime import Runtime
from smallhold.store import sqlcipher
from smallhold.store.handle import VaultHandle
from smallhold.store.memory import MemoryStore, TextEmbedder
from smallhold.store.sync import crypto
from smallhold.store.sync.client import SyncSettings
from smallhold.store.sync.transport import RelayClient


class Clock:
    now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def background(vault: VaultHandle, embedder: TextEmbedder, clock: Clock, battery: float,
               charging: bool, sync: object = None) -> Background:
    memory = MemoryStore(vault, embedder, clock=clock)
    runner = sync if sync is not None else (lambda handle: None)
    return Background(vault, memory, simulated(8, battery=battery, charging=charging),
                      clock=clock, sync=runner)  # type: ignore[arg-type]


def test_jobs_wait_for_the_charger_then_run_when_due(
        vault: VaultHandle, embedder: TextEmbedder) -> None:
    clock = Clock()
    decision, outcomes = background(vault, embedder, clock, 60, False).run()
    assert decision.mode == "full"  # answering is fine on battery; background work is not
    assert {(o.job, o.action) for o in outcomes} == {("consolidate", "deferred"),
                                                     ("sync", "deferred")}
    assert "charger" in outcomes[0].detail
    bg = background(vault, embedder, clock, 60, False)
    assert bg.deferred_since("consolidate") == clock.now and bg.last_run("consolidate") is None

    clock.now += 3600
    _, outcomes = background(vault, embedder, clock, 61, True).run()
    assert {(o.job, o.action) for o in outcomes} == {("consolidate", "ran"),
                                                     ("sync", "skipped")}
    bg = background(vault, embedder, clock, 61, True)
    assert bg.due() == [] and bg.deferred_since("consolidate") is None

    clock.now += 16 * 60  # sync is due every 15 minutes, consolidation daily
    assert background(vault, embedder, clock, 61, True).due() == ["sync"]


def test_critical_battery_defers_everything_with_the_reason(
        vault: VaultHandle, embedder: TextEmbedder) -> None:
    decision, outcomes = background(vault, embedder, Clock(), 3, False).run(force=True)
    assert decision.mode == "paused"
    assert [o.action for o in outcomes] == ["deferred", "deferred"]
    assert "plug in" in outcomes[0].detail


def test_an_unreachable_relay_is_a_failed_job_not_a_crash(
        vault: VaultHandle, embedder: TextEmbedder) -> None:
    def offline(handle: VaultHandle) -> str | None:
        raise RelayUnreachableError("the relay at http://relay is unreachable")

    clock = Clock()
    _, outcomes = background(vault, embedder, clock, 90, True, offline).run()
    sync = next(o for o in outcomes if o.job == "sync")
    assert sync.action == "failed" and "try again" in sync.detail
    assert background(vault, embedder, clock, 90, True).due() == ["sync"]  # still due


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[TestClient]:
    store = RelayStore(tmp_path / "relay.db")
    with TestClient(create_relay_app(store), base_url="http://relay") as http:
        yield http
    store.close()


def test_conversations_reach_a_paired_device_only_on_the_charger_and_when_enabled(
        tmp_path: Path, relay: TestClient, settings: Settings, paths: Paths,
        embedder: TextEmbedder) -> None:
    key = crypto.new_sync_key()
    pockets = []
    for name in ("phone", "laptop"):
        path = tmp_path / f"{name}.db"
        handle = VaultHandle(sqlcipher.connect(path, os.urandom(32)), path=path, profile=name)
        runtime = Runtime(settings, paths, backend=ScriptedBackend(["noted"]), app="pocket",
                          probe=simulated(8, battery=50, charging=False))
        pocket = Pocket(runtime, handle, embedder,
                        sync=lambda h: sync_if_paired(h, http=relay))
        SyncSettings(handle).join(key, "http://relay")
        RelayClient("http://relay", SyncSettings(handle).keys(), http=relay).create_group()
        pockets.append(pocket)
    phone, laptop = pockets
    list(phone.ask("trip", "my passport number is X123"))
    assert laptop.store.all() == []

    _, outcomes = phone.maintain(force=True)  # on battery: waits
    assert next(o for o in outcomes if o.job == "sync").action == "deferred"
    for p in pockets:
        p.runtime.probe = simulated(8, battery=50, charging=True)
    _, outcomes = phone.maintain(force=True)  # charging, but nothing enabled: skipped
    assert next(o for o in outcomes if o.job == "sync").action == "skipped"

    for p in pockets:
        for collection in ("pocket.conversations", "pocket.turns"):
            SyncSettings(p.handle).enable(collection)
    assert next(o for o in phone.maintain(force=True)[1] if o.job == "sync").action == "ran"
    assert next(o for o in laptop.maintain(force=True)[1] if o.job == "sync").action == "ran"
    assert [t.content for t in laptop.history("trip")] == ["my passport number is X123",
                                                            "noted"]
    for p in pockets:
        p.handle.close()
