"""Pocket's background work: memory consolidation and device sync, when power allows.

Nothing here is urgent, so both are ``background`` jobs of the suite's scheduler
(:mod:`smallhold.kit.jobs`): on a charger it runs when due; on battery, warm or critical it is
deferred with the reason, and because a job's last run is only written when it actually ran,
a deferred job is simply still due next time (after the next answer, in the REPL's idle
ticks, or from ``smallhold chat maintain``). Offline is normal for pocket: a sync that cannot
reach its relay is reported as ``failed`` and retried when next due, never raised.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from smallhold.kit.home import Home
from smallhold.kit.jobs import Job, Jobs, Outcome, namespace
from smallhold.kit.power import PowerDecision, PowerPolicy
from smallhold.kit.sync import sync_if_paired
from smallhold.runtime import DeviceProbe
from smallhold.store.handle import VaultHandle
from smallhold.store.memory import MemoryStore

JobName = Literal["consolidate", "sync"]
JOBS: tuple[JobName, ...] = ("consolidate", "sync")
DEFAULT_INTERVALS: dict[JobName, float] = {"consolidate": 24 * 3600.0, "sync": 15 * 60.0}
SyncRunner = Callable[[VaultHandle], str | None]
NAMESPACE = namespace("pocket")  # vault meta keys of the jobs' last runs
SYNC_NOT_SET_UP = ("sync is not set up (`smallhold sync pair`, then `smallhold sync enable "
                   "pocket.turns`)")


def pocket_jobs(handle: VaultHandle, memory: MemoryStore, sync: SyncRunner = sync_if_paired,
                intervals: dict[JobName, float] | None = None) -> list[Job]:
    """Memory consolidation (daily) and sync (every 15 minutes), as suite jobs."""
    every = {**DEFAULT_INTERVALS, **(intervals or {})}

    def consolidate() -> str:
        actions = memory.consolidate()
        return f"{len(actions)} memory change(s)" if actions else "nothing to do"

    return [Job("consolidate", every["consolidate"], consolidate),
            Job("sync", every["sync"], lambda: sync(handle), skipped=SYNC_NOT_SET_UP)]


def jobs(home: Home) -> list[Job]:
    """pocket's jobs on ``home`` (what its declaration names for ``smallhold jobs``)."""
    return pocket_jobs(home.vault, MemoryStore(home.vault, home.embedder))


class Background:
    """pocket's two jobs on the suite's scheduler (:class:`smallhold.kit.jobs.Jobs`)."""

    def __init__(self, handle: VaultHandle, memory: MemoryStore, probe: DeviceProbe, *,
                 policy: PowerPolicy | None = None, sync: SyncRunner = sync_if_paired,
                 clock: Callable[[], float] = time.time,
                 intervals: dict[JobName, float] | None = None) -> None:
        self.handle = handle
        self.memory = memory
        self.jobs = Jobs(handle, probe, pocket_jobs(handle, memory, sync, intervals),
                         namespace=NAMESPACE, policy=policy, clock=clock)

    def last_run(self, job: JobName) -> float | None:
        return self.jobs.last_run(job)

    def deferred_since(self, job: JobName) -> float | None:
        return self.jobs.deferred_since(job)

    def due(self) -> list[str]:
        return self.jobs.due()

    def run(self, *, force: bool = False) -> tuple[PowerDecision, list[Outcome]]:
        """Run due jobs (all jobs with ``force``) as far as power allows; say what happened."""
        return self.jobs.run(force=force)


__all__ = ["DEFAULT_INTERVALS", "JOBS", "NAMESPACE", "Background", "Outcome", "jobs",
           "pocket_jobs", "sync_if_paired"]
