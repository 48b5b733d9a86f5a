"""Pocket's background work: memory consolidation and device sync, when power allows.

Nothing here is urgent, so every job goes through :class:`~.power.PowerScheduler` as a
``background`` job: on a charger it runs when due; on battery, warm or critical it is
deferred with the reason, and because a job's last run is only written when it actually ran,
a deferred job is simply still due next time (after the next answer, in the REPL's idle
ticks, or from ``smallhold chat maintain``). Offline is normal for pocket: a sync that cannot
reach its relay is reported as ``failed`` and retried when next due, never raised.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import httpx

from smallhold.apps.pocket.power import Job, PowerDecision, PowerPolicy, PowerScheduler
from smallhold.errors import SmallholdError
from smallhold.runtime.device import DeviceProbe
from smallhold.store.collections import known_models
from smallhold.store.handle import VaultHandle
from smallhold.store.memory import MemoryStore
from smallhold.store.sync.client import SyncClient, SyncSettings
from smallhold.store.sync.transport import RelayClient

JobName = Literal["consolidate", "sync"]
Action = Literal["ran", "deferred", "skipped", "failed"]
JOBS: tuple[JobName, ...] = ("consolidate", "sync")
DEFAULT_INTERVALS: dict[JobName, float] = {"consolidate": 24 * 3600.0, "sync": 15 * 60.0}
SyncRunner = Callable[[VaultHandle], str | None]


def _meta_key(job: JobName, what: str) -> str:
    return f"pocket.background.{job}.{what}"


@dataclass(frozen=True)
class Outcome:
    job: JobName
    action: Action
    detail: str


def sync_if_paired(handle: VaultHandle, http: httpx.Client | None = None) -> str | None:
    """Run one sync; None when this device is not paired or shares nothing (a skip).

    ``http`` replaces the network client (tests pass an in-process relay).
    """
    settings = SyncSettings(handle)
    if settings.sync_key is None or not settings.relay or not settings.enabled():
        return None
    with RelayClient(settings.relay, settings.keys(), http=http) as relay:
        report = SyncClient(handle, relay, models=known_models()).run()
    return (f"sent {report.pushed_changes} change(s), applied {report.applied}, "
            f"{report.merged} kept local")


class Background:
    """Decides which background jobs are due and runs the ones the power policy releases."""

    def __init__(self, handle: VaultHandle, memory: MemoryStore, probe: DeviceProbe, *,
                 policy: PowerPolicy | None = None, sync: SyncRunner = sync_if_paired,
                 clock: Callable[[], float] = time.time,
                 intervals: dict[JobName, float] | None = None) -> None:
        self.handle = handle
        self.memory = memory
        self.scheduler = PowerScheduler(probe, policy or PowerPolicy(), clock=clock)
        self.sync = sync
        self.clock = clock
        self.intervals = {**DEFAULT_INTERVALS, **(intervals or {})}

    def last_run(self, job: JobName) -> float | None:
        saved = self.handle.meta(_meta_key(job, "last"))
        return float(saved) if saved else None

    def deferred_since(self, job: JobName) -> float | None:
        saved = self.handle.meta(_meta_key(job, "deferred"))
        return float(saved) if saved else None

    def due(self) -> list[JobName]:
        now = self.clock()
        return [job for job in JOBS
                if (last := self.last_run(job)) is None or now - last >= self.intervals[job]]

    def run(self, *, force: bool = False) -> tuple[PowerDecision, list[Outcome]]:
        """Run due jobs (all jobs with ``force``) as far as power allows; say what happened."""
        now = self.clock()
        wanted = list(JOBS) if force else self.due()
        for job in wanted:
            self.scheduler.submit(Job(job, "background", now))
        decision, ready = self.scheduler.release()
        released = {j.id for j in ready}
        outcomes: list[Outcome] = []
        for job in wanted:
            if job in released:
                outcomes.append(self._run_one(job))
                continue
            if self.deferred_since(job) is None:
                self.handle.set_meta(_meta_key(job, "deferred"), repr(now))
            outcomes.append(Outcome(job, "deferred", decision.reason))
        self.scheduler.queue.clear()  # what was not released stays due in the vault instead
        return decision, outcomes

    def _run_one(self, job: JobName) -> Outcome:
        try:
            if job == "consolidate":
                actions = self.memory.consolidate()
                detail = f"{len(actions)} memory change(s)" if actions else "nothing to do"
            else:
                result = self.sync(self.handle)
                if result is None:
                    self._ran(job)
                    return Outcome(job, "skipped", "sync is not set up (`smallhold sync "
                                   "pair`, then `smallhold sync enable pocket.turns`)")
                detail = result
        except SmallholdError as exc:
            return Outcome(job, "failed", f"{exc}; will try again when next due")
        self._ran(job)
        return Outcome(job, "ran", detail)

    def _ran(self, job: JobName) -> None:
        with self.handle.transaction():
            self.handle.set_meta(_meta_key(job, "last"), repr(self.clock()))
            self.handle.set_meta(_meta_key(job, "deferred"), "")


__all__ = ["DEFAULT_INTERVALS", "JOBS", "Background", "Outcome", "sync_if_paired"]
