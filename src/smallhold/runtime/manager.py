"""The model manager: lazy loading, keep-alive, LRU, memory pressure and idle preloading.

Models load on first use and stay for ``keep_alive`` seconds after their last use (0 unloads
after each call, -1 keeps them). At most ``max_loaded_models`` stay loaded; the least recently
used idle one makes room. A reference count per model means a generation in flight is never
unloaded under it. Before loading, the predicted footprint is compared with available RAM:
evict idle models, then fall back to a smaller installed model, then fail with the numbers.
A watcher thread unloads idle models when RAM runs low, reloads them when it recovers, and
preloads the model most likely to be needed after the device has been idle for a while.
Every decision is an event in the trace log.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from smallhold.config import RuntimeSettings
from smallhold.errors import InsufficientMemoryError, ResourceError
from smallhold.paths import Paths
from smallhold.runtime import assets
from smallhold.runtime.device import MB, DeviceProbe, DeviceState
from smallhold.runtime.engine import LlamaEngine, LoadOptions
from smallhold.runtime.kvstate import remove_spilled, sweep_all
from smallhold.runtime.planner import Plan, footprint, plan_model, smaller_models
from smallhold.runtime.registry import MODELS, ModelSpec, get_model


class EventSink(Protocol):
    def record_event(self, kind: str, *, app: str = ..., model: str | None = ...,
                     data: dict[str, Any] | None = ..., parent_id: str | None = ...) -> str: ...


class Engine(Protocol):
    """What the manager needs of a loaded model (LlamaEngine, or a fake in tests)."""

    def forget(self, key: str) -> None: ...

    def close(self) -> None: ...


Loader = Callable[[ModelSpec, Path, LoadOptions], Any]
UsageSource = Callable[[], list[tuple[str, int]]]


def _llama_loader(spec: ModelSpec, path: Path, options: LoadOptions) -> LlamaEngine:
    return LlamaEngine(spec, path, options)


@dataclass
class _Slot:
    spec: ModelSpec
    engine: Any
    plan: Plan
    loaded_at: float
    last_used: float
    refs: int = 0
    load_seconds: float = 0.0


@dataclass(frozen=True)
class LoadedModel:
    name: str
    tier: str
    kv_cache: str
    n_ctx: int
    refs: int
    idle_seconds: float
    predicted_bytes: int
    load_seconds: float


class ModelManager:
    def __init__(
        self,
        settings: RuntimeSettings,
        paths: Paths,
        probe: DeviceProbe,
        *,
        events: EventSink | None = None,
        loader: Loader = _llama_loader,
        usage: UsageSource | None = None,
        clock: Callable[[], float] = time.monotonic,
        installed: Callable[[], list[ModelSpec]] | None = None,
    ) -> None:
        self.settings = settings
        self.paths = paths
        self.probe = probe
        self._events = events
        self._loader = loader
        self._usage = usage
        self._clock = clock
        self._installed = installed or self._installed_chat_models
        self._slots: dict[str, _Slot] = {}
        self._lock = threading.RLock()
        self._freed = threading.Condition(self._lock)
        self._unloaded_under_pressure: list[str] = []  # reloaded when RAM recovers
        self._watcher: threading.Thread | None = None
        self._stop = threading.Event()
        self._last_activity = clock()

    # -- events --------------------------------------------------------------------------

    def _event(self, kind: str, model: str | None = None, **data: Any) -> None:
        if self._events is not None:
            self._events.record_event(kind, app="runtime", model=model, data=data)

    # -- planning ------------------------------------------------------------------------

    def _installed_chat_models(self) -> list[ModelSpec]:
        out = []
        for spec in MODELS:
            if spec.kind not in ("chat", "base"):  # embedding and speech models run elsewhere
                continue
            state = assets.status(spec, self.paths.models_dir)
            if state.status in ("ready", "assemblable"):
                out.append(spec)
        return out

    def _idle_bytes(self) -> int:
        return sum(s.plan.footprint.total for s in self._slots.values() if s.refs == 0)

    def plan(self, name: str | None = None, device: DeviceState | None = None) -> Plan:
        """What loading ``name`` would do on this device now, and why."""
        spec = get_model(name or self.settings.default_model)
        device = device or self.probe.read()
        with self._lock:
            loaded = self._slots.get(spec.name)
            if loaded is not None:
                return loaded.plan
            reserved = self._idle_bytes()
        plan = plan_model(
            device, spec, self._installed(), n_ctx=self._n_ctx(spec),
            kv_request=self.settings.kv_cache, weights_request=self.settings.weights,
            reserved=reserved,
        )
        if plan is None:
            kv = self.settings.kv_cache if self.settings.kv_cache != "auto" else "q4_0"
            need = footprint(spec, self._n_ctx(spec), kv).total
            raise InsufficientMemoryError(
                f"{spec.name} needs about {need / MB:,.0f} MB with a {self._n_ctx(spec)}-token "
                f"context, but only {device.available_ram / MB:,.0f} MB of RAM is available "
                f"(plus {reserved / MB:,.0f} MB from idle models) and no smaller installed "
                "model fits. Close other programs, lower runtime.n_ctx, or install "
                "qwen2.5-coder-0.5b-instruct."
            )
        return plan

    def smaller_model(self, name: str | None = None) -> str | None:
        """The next smaller installed model of ``name``'s kind (a power saver's choice)."""
        found = smaller_models(get_model(name or self.settings.default_model), self._installed())
        return found[0].name if found else None

    def _n_ctx(self, spec: ModelSpec) -> int:
        return min(self.settings.n_ctx, spec.context_length)

    @property
    def kv_dir(self) -> Path:
        """Where loaded models spill saved KV states: ``<model>/<process>/``, encrypted under
        a key of that process only (:mod:`smallhold.runtime.kvstate`)."""
        return self.paths.cache_dir / "kv"

    def forget(self, session: str) -> int:
        """Drop conversation ``session``'s saved KV state from every loaded model, and its
        spilled files from every model's and every process's folder: the conversation was
        deleted, and nothing derived from it may stay behind. Returns the files removed in
        other processes' folders (this process's own are removed by the engines)."""
        with self._lock:
            engines: list[Engine] = [slot.engine for slot in self._slots.values()]
        for engine in engines:  # outside the lock: an engine busy generating blocks forget
            engine.forget(session)
        return remove_spilled(self.kv_dir, session)

    # -- loading -------------------------------------------------------------------------

    def _evict_for(self, needed: int, available: int, keep: str) -> None:
        idle = sorted((s for s in self._slots.values() if s.refs == 0 and s.spec.name != keep),
                      key=lambda s: s.last_used)
        for slot in idle:
            if available >= needed:
                return
            self._unload(slot.spec.name, reason="evict", detail="make room in RAM")
            available += slot.plan.footprint.total

    def _make_room_in_table(self, keep: str) -> None:
        while len(self._slots) >= self.settings.max_loaded_models:
            idle = [s for s in self._slots.values() if s.refs == 0 and s.spec.name != keep]
            if not idle:
                if not self._freed.wait(timeout=300):
                    raise ResourceError(
                        f"{len(self._slots)} models are busy and max_loaded_models is "
                        f"{self.settings.max_loaded_models}; try again or raise the limit."
                    )
                continue
            lru = min(idle, key=lambda s: s.last_used)
            self._unload(lru.spec.name, reason="evict", detail="max_loaded_models reached")

    def _load(self, name: str, reason: str) -> _Slot:
        device = self.probe.read()
        plan = self.plan(name, device)
        spec = get_model(plan.model)
        if spec.name in self._slots:
            return self._slots[spec.name]
        self._event("tier", spec.name, tier=plan.tier, kv_cache=plan.kv_cache,
                    weights_bits=plan.weights_bits, reasons=plan.reasons)
        if plan.fallback_from:
            self._event("fallback", spec.name, wanted=plan.fallback_from, reasons=plan.reasons)
        self._evict_for(plan.footprint.total, device.available_ram, keep=spec.name)
        self._make_room_in_table(keep=spec.name)
        path = assets.ensure_model(spec, self.paths.models_dir)
        sweep_all(self.kv_dir)  # spills of killed processes, whatever model they were of
        options = LoadOptions(
            # llama-cpp-python's own default is cpu_count // 2: one thread on a 2-core laptop.
            n_ctx=plan.n_ctx, n_threads=self.settings.n_threads or device.cpu_count,
            kv_cache=plan.kv_cache,
            state_cache_bytes=self.settings.state_cache_mb * MB,
            speculative=self.settings.speculative,
            spill_dir=self.kv_dir / spec.name,
        )
        started = time.perf_counter()
        engine = self._loader(spec, path, options)
        seconds = time.perf_counter() - started
        now = self._clock()
        slot = _Slot(spec=spec, engine=engine, plan=plan, loaded_at=now, last_used=now,
                     load_seconds=seconds)
        self._slots[spec.name] = slot
        self._event("load", spec.name, reason=reason, seconds=round(seconds, 3),
                    tier=plan.tier, kv_cache=plan.kv_cache, n_ctx=plan.n_ctx,
                    predicted_mb=round(plan.footprint.total / MB))
        return slot

    def _unload(self, name: str, *, reason: str, detail: str = "") -> None:
        slot = self._slots.pop(name, None)
        if slot is None:
            return
        slot.engine.close()
        self._event("unload" if reason != "evict" else "evict", name, reason=reason,
                    detail=detail)
        self._freed.notify_all()

    @contextmanager
    def use(self, name: str | None = None) -> Iterator[Any]:
        """Borrow a loaded engine; it cannot be unloaded until the block exits."""
        wanted = get_model(name or self.settings.default_model).name
        with self._lock:
            self._last_activity = self._clock()
            slot = self._slots.get(wanted)
            if slot is None:
                fallback = next((s for s in self._slots.values()
                                 if s.plan.fallback_from == wanted), None)
                slot = fallback or self._load(wanted, reason="first use")
            slot.refs += 1
        try:
            yield slot.engine
        finally:
            with self._lock:
                slot.refs -= 1
                slot.last_used = self._clock()
                self._last_activity = slot.last_used
                if slot.refs == 0 and self.settings.keep_alive == 0:
                    self._unload(slot.spec.name, reason="keep-alive", detail="keep_alive = 0")
                self._freed.notify_all()

    def load(self, name: str | None = None, reason: str = "requested") -> LoadedModel:
        with self._lock:
            slot = self._load(get_model(name or self.settings.default_model).name, reason)
            return self._info(slot)

    def unload(self, name: str, reason: str = "requested") -> bool:
        with self._lock:
            slot = self._slots.get(get_model(name).name)
            if slot is None or slot.refs:
                return False
            self._unload(slot.spec.name, reason=reason)
            return True

    def _info(self, slot: _Slot) -> LoadedModel:
        return LoadedModel(
            name=slot.spec.name, tier=slot.plan.tier, kv_cache=slot.plan.kv_cache,
            n_ctx=slot.plan.n_ctx, refs=slot.refs,
            idle_seconds=max(0.0, self._clock() - slot.last_used),
            predicted_bytes=slot.plan.footprint.total, load_seconds=slot.load_seconds,
        )

    def loaded(self) -> list[LoadedModel]:
        with self._lock:
            return [self._info(s) for s in self._slots.values()]

    # -- the watcher ---------------------------------------------------------------------

    def sweep(self) -> None:
        """One watcher pass: keep-alive expiry, memory pressure and recovery, idle preload."""
        with self._lock:
            now = self._clock()
            keep = self.settings.keep_alive
            if keep > 0:
                for slot in list(self._slots.values()):
                    if slot.refs == 0 and now - slot.last_used >= keep:
                        self._unload(slot.spec.name, reason="keep-alive",
                                     detail=f"idle for {now - slot.last_used:.0f}s")
            device = self.probe.read()
            low = self.settings.low_memory_mb * MB
            if device.available_ram < low:
                for slot in sorted(self._slots.values(), key=lambda s: s.last_used):
                    if slot.refs == 0:
                        self._unloaded_under_pressure.append(slot.spec.name)
                        self._unload(slot.spec.name, reason="memory-pressure",
                                     detail=f"{device.available_ram / MB:,.0f} MB available, "
                                            f"under {low / MB:,.0f} MB")
                return
            recovered = device.available_ram >= self.settings.recover_memory_mb * MB
            if self._unloaded_under_pressure and recovered:
                names, self._unloaded_under_pressure = self._unloaded_under_pressure, []
                for name in names:
                    self._try_load(name, "memory recovered")
                return
            self._maybe_preload(device, now)

    def _try_load(self, name: str, reason: str) -> None:
        try:
            self._load(name, reason)
        except (ResourceError, InsufficientMemoryError) as exc:
            self._event("load-skipped", name, reason=reason, detail=str(exc))

    def _maybe_preload(self, device: DeviceState, now: float) -> None:
        wait = self.settings.idle_preload_seconds
        if wait < 0 or self._slots or now - self._last_activity < wait:
            return
        if device.on_battery and (device.battery_percent or 100) < 30:
            return
        name = self.likely_next()
        if name is not None:
            self._event("preload", name, idle_seconds=round(now - self._last_activity))
            self._try_load(name, "idle preload")

    def likely_next(self) -> str | None:
        """The most used chat model of late (from the trace log), else the default."""
        if self._usage is not None:
            for name, _count in self._usage():
                try:
                    spec = get_model(name)
                except Exception:
                    continue
                if spec.kind == "chat":
                    return spec.name
        return get_model(self.settings.default_model).name

    def start_watcher(self, interval: float = 5.0) -> None:
        if self._watcher is not None:
            return
        self._stop.clear()

        def run() -> None:
            while not self._stop.wait(interval):
                self.sweep()

        self._watcher = threading.Thread(target=run, name="smallhold-model-watcher", daemon=True)
        self._watcher.start()

    def close(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
            self._watcher = None
        with self._lock:
            for name in list(self._slots):
                self._unload(name, reason="shutdown")
