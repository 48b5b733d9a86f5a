"""Background jobs for every app: a schedule, the power policy, and a last-run record.

A job is a name, an interval and a function. :class:`Jobs` runs the due ones as far as the
power policy (:mod:`.power`) allows: on a charger a background job runs when due; on
battery, warm or critical it is deferred with the reason. A job's last run is written to the
vault only when it ran, so a deferred or failed job is simply still due next time; nothing
needs a daemon to remember it. pocket's consolidation and sync, life's 6-hourly check and
ops' periodic sweeps are all jobs of this kind.

A job's function returns what it did in words, or ``None`` when it has nothing to work on
(not set up yet): that is a ``skipped`` outcome and counts as a run. A smallhold error is a
``failed`` outcome, reported and retried when next due, never raised: background work must
not break the foreground command that happened to trigger it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from smallhold.errors import SmallholdError
from smallhold.kit.power import PowerDecision, PowerPolicy, decide
from smallhold.runtime.device import DeviceProbe
from smallhold.store.handle import VaultHandle

Action = Literal["ran", "deferred", "skipped", "failed"]
Power = Literal["background", "anytime"]
HOUR = 3600.0


@dataclass(frozen=True)
class Job:
    """One periodic job.

    ``power="background"`` waits for the charger (the default: background work is never
    urgent); ``"anytime"`` runs on battery too, still not when the device is paused.
    """

    name: str
    every: float
    run: Callable[[], str | None]
    skipped: str = "nothing to do"
    power: Power = "background"


@dataclass(frozen=True)
class Outcome:
    job: str
    action: Action
    detail: str


class Jobs:
    """The due-or-not bookkeeping and the power gate for one set of jobs in one vault.

    ``namespace`` prefixes the vault meta keys (``<namespace>.<job>.last``), so two apps
    may both have a job called ``sync``.
    """

    def __init__(self, handle: VaultHandle, probe: DeviceProbe, jobs: Sequence[Job], *,
                 namespace: str, policy: PowerPolicy | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        names = [job.name for job in jobs]
        if len(set(names)) != len(names):
            raise ValueError(f"job names repeat in {namespace}: {names}")
        self.handle = handle
        self.jobs = {job.name: job for job in jobs}
        self.namespace = namespace
        self.probe = probe
        self.policy = policy or PowerPolicy()
        self.clock = clock

    def _key(self, job: str, what: str) -> str:
        return f"{self.namespace}.{job}.{what}"

    def last_run(self, job: str) -> float | None:
        saved = self.handle.meta(self._key(job, "last"))
        return float(saved) if saved else None

    def deferred_since(self, job: str) -> float | None:
        saved = self.handle.meta(self._key(job, "deferred"))
        return float(saved) if saved else None

    def next_due(self, job: str) -> float | None:
        """When ``job`` is next due; None if it never ran (due now)."""
        last = self.last_run(job)
        return None if last is None else last + self.jobs[job].every

    def due(self) -> list[str]:
        now = self.clock()
        return [name for name in self.jobs
                if (when := self.next_due(name)) is None or when <= now]

    def run(self, *, force: bool = False, only: Sequence[str] | None = None
            ) -> tuple[PowerDecision, list[Outcome]]:
        """Run the due jobs (every job with ``force``; ``only`` narrows either) as far as
        power allows, and say what happened to each."""
        now = self.clock()
        wanted = list(self.jobs) if force else self.due()
        if only is not None:
            wanted = [name for name in wanted if name in only]
        decision = decide(self.probe.read(), self.policy)
        outcomes: list[Outcome] = []
        for name in wanted:
            if self._allowed(self.jobs[name], decision):
                outcomes.append(self._run_one(self.jobs[name]))
                continue
            if self.deferred_since(name) is None:
                self.handle.set_meta(self._key(name, "deferred"), repr(now))
            outcomes.append(Outcome(name, "deferred", decision.reason))
        return decision, outcomes

    @staticmethod
    def _allowed(job: Job, decision: PowerDecision) -> bool:
        if decision.mode == "paused":
            return False
        return job.power == "anytime" or decision.background_allowed

    def _run_one(self, job: Job) -> Outcome:
        try:
            detail = job.run()
        except SmallholdError as exc:
            return Outcome(job.name, "failed", f"{exc}; will try again when next due")
        self._ran(job.name)
        if detail is None:
            return Outcome(job.name, "skipped", job.skipped)
        return Outcome(job.name, "ran", detail)

    def _ran(self, job: str) -> None:
        with self.handle.transaction():
            self.handle.set_meta(self._key(job, "last"), repr(self.clock()))
            self.handle.set_meta(self._key(job, "deferred"), "")




def namespace(app: str) -> str:
    """Where an app's job records live in the vault's meta table."""
    return f"{app}.background"


__all__ = ["HOUR", "Job", "Jobs", "Outcome", "namespace"]
