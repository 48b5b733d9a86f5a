"""The model manager's lifecycle decisions with a fake loader, a simulated device and a clock."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from smallhold.config import RuntimeSettings
from smallhold.errors import InsufficientMemoryError
from smallhold.paths import Paths
from smallhold.runtime.device import GB, DeviceState, StaticProbe, simulated
from smallhold.runtime.engine import LoadOptions
from smallhold.runtime.manager import ModelManager
from smallhold.runtime.registry import QWEN_0_5B, QWEN_1_5B, SMOLLM2_135M, ModelSpec


class FakeEngine:
    def __init__(self, spec: ModelSpec, options: LoadOptions) -> None:
        self.spec = spec
        self.options = options
        self.closed = False

    def close(self) -> None:
        self.closed = True


class Events:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str | None, dict[str, Any]]] = []

    def record_event(self, kind: str, *, app: str = "runtime", model: str | None = None,
                     data: dict[str, Any] | None = None, parent_id: str | None = None) -> str:
        self.rows.append((kind, model, data or {}))
        return str(len(self.rows))

    def kinds(self) -> list[str]:
        return [k for k, _, _ in self.rows]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def world(paths: Paths, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setattr("smallhold.runtime.manager.assets.ensure_model",
                        lambda spec, models_dir, progress=None: Path("/dev/null"))
    return {"events": Events(), "clock": Clock(), "loaded": []}


def make(world: dict[str, Any], paths: Paths, probe: StaticProbe, usage: Any = None,
         **overrides: Any) -> ModelManager:
    def loader(spec: ModelSpec, path: Path, options: LoadOptions) -> FakeEngine:
        engine = FakeEngine(spec, options)
        world["loaded"].append(engine)
        return engine

    settings = RuntimeSettings(**{"idle_preload_seconds": -1, **overrides})
    return ModelManager(settings, paths, probe, events=world["events"], loader=loader,
                        clock=world["clock"], usage=usage,
                        installed=lambda: [QWEN_1_5B, QWEN_0_5B, SMOLLM2_135M])


def test_lazy_load_and_keep_alive(world: dict[str, Any], paths: Paths) -> None:
    manager = make(world, paths, simulated(16, 12), keep_alive=60)
    assert world["loaded"] == []
    with manager.use() as engine:
        assert engine.spec.name == QWEN_1_5B.name
        assert engine.options.kv_cache == "q8_0"
    world["clock"].now += 30
    manager.sweep()
    assert not engine.closed
    world["clock"].now += 31
    manager.sweep()
    assert engine.closed
    assert world["events"].kinds() == ["tier", "load", "unload"]


def test_keep_alive_zero_unloads_after_each_call(world: dict[str, Any], paths: Paths) -> None:
    manager = make(world, paths, simulated(16, 12), keep_alive=0)
    with manager.use() as engine:
        assert not engine.closed
    assert engine.closed


def test_keep_alive_forever(world: dict[str, Any], paths: Paths) -> None:
    manager = make(world, paths, simulated(16, 12), keep_alive=-1)
    with manager.use() as engine:
        pass
    world["clock"].now += 10**6
    manager.sweep()
    assert not engine.closed


def test_lru_eviction_respects_max_loaded(world: dict[str, Any], paths: Paths) -> None:
    manager = make(world, paths, simulated(16, 12), max_loaded_models=2)
    for name in (QWEN_1_5B.name, QWEN_0_5B.name):
        with manager.use(name):
            world["clock"].now += 1
    with manager.use(SMOLLM2_135M.name):
        pass
    assert sorted(m.name for m in manager.loaded()) == sorted([QWEN_0_5B.name, SMOLLM2_135M.name])
    assert ("evict", QWEN_1_5B.name) in [(k, m) for k, m, _ in world["events"].rows]


def test_in_flight_model_is_never_unloaded(world: dict[str, Any], paths: Paths) -> None:
    probe = simulated(16, 12)
    manager = make(world, paths, probe, keep_alive=1)
    with manager.use() as engine:
        world["clock"].now += 100
        probe.state = replace(probe.state, available_ram=100 * 1024 * 1024)
        manager.sweep()
        assert not engine.closed
        assert manager.unload(QWEN_1_5B.name) is False
    manager.sweep()
    assert engine.closed


def test_memory_pressure_unloads_then_recovery_reloads(world: dict[str, Any],
                                                       paths: Paths) -> None:
    probe = simulated(16, 12)
    manager = make(world, paths, probe, keep_alive=-1)
    with manager.use():
        pass
    probe.state = replace(probe.state, available_ram=300 * 1024 * 1024)
    manager.sweep()
    assert manager.loaded() == []
    probe.state = replace(probe.state, available_ram=10 * GB)
    manager.sweep()
    assert [m.name for m in manager.loaded()] == [QWEN_1_5B.name]
    unload = next(d for k, _, d in world["events"].rows if k == "unload")
    assert unload["reason"] == "memory-pressure" and "MB available" in unload["detail"]
    assert world["events"].rows[-1][2]["reason"] == "memory recovered"


def test_falls_back_then_fails_with_numbers(world: dict[str, Any], paths: Paths) -> None:
    probe = simulated(3, available_gb=0.9)
    manager = make(world, paths, probe)
    with manager.use() as engine:
        assert engine.spec.name == QWEN_0_5B.name
        assert engine.options.kv_cache == "q4_0"
    assert "fallback" in world["events"].kinds()
    manager.close()
    probe.state = replace(probe.state, available_ram=50 * 1024 * 1024)
    with pytest.raises(InsufficientMemoryError, match=r"needs about [\d,]+ MB.*only 50 MB"), \
            manager.use():
        pass


def test_evicts_idle_models_before_falling_back(world: dict[str, Any], paths: Paths) -> None:
    probe = simulated(8, available_gb=1.0)
    manager = make(world, paths, probe, keep_alive=-1, max_loaded_models=3)
    with manager.use(SMOLLM2_135M.name):
        pass
    probe.state = replace(probe.state, available_ram=int(1.2 * GB))
    with manager.use(QWEN_1_5B.name) as engine:
        # 1.2 GB free + the idle 135M model's share makes room for the 1.5B model
        assert engine.spec.name in (QWEN_1_5B.name, QWEN_0_5B.name)


def test_idle_preload_picks_the_most_used_model(world: dict[str, Any], paths: Paths) -> None:
    probe = simulated(16, 12)
    manager = make(world, paths, probe, idle_preload_seconds=120,
                   usage=lambda: [("smollm2-135m-instruct", 9), ("qwen2.5-coder-1.5b-instruct", 2)])
    manager.sweep()
    assert manager.loaded() == []
    world["clock"].now += 121
    manager.sweep()
    assert [m.name for m in manager.loaded()] == [SMOLLM2_135M.name]
    assert "preload" in world["events"].kinds()


def test_no_preload_on_low_battery(world: dict[str, Any], paths: Paths) -> None:
    probe = StaticProbe(DeviceState(total_ram=16 * GB, available_ram=12 * GB, cpu_count=4,
                                    battery_percent=15, charging=False))
    manager = make(world, paths, probe, idle_preload_seconds=1)
    world["clock"].now += 10
    manager.sweep()
    assert manager.loaded() == []


def test_concurrent_users_share_one_load(world: dict[str, Any], paths: Paths) -> None:
    manager = make(world, paths, simulated(16, 12))
    barrier = threading.Barrier(6)

    def worker() -> None:
        barrier.wait()
        with manager.use():
            pass

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(world["loaded"]) == 1


def test_threads_default_to_the_physical_cores(world: dict[str, Any], paths: Paths) -> None:
    manager = make(world, paths, simulated(16, 12, cpus=2))
    with manager.use() as engine:
        assert engine.options.n_threads == 2
    pinned = make(world, paths, simulated(16, 12, cpus=2), n_threads=1)
    with pinned.use() as engine:
        assert engine.options.n_threads == 1


def test_smaller_model_is_the_next_installed_tier_down(world: dict[str, Any],
                                                       paths: Paths) -> None:
    manager = make(world, paths, simulated(16, 12))
    assert manager.smaller_model() == QWEN_0_5B.name
    assert manager.smaller_model(QWEN_0_5B.name) == SMOLLM2_135M.name
    assert manager.smaller_model(SMOLLM2_135M.name) is None
    assert world["loaded"] == []  # choosing loads nothing
