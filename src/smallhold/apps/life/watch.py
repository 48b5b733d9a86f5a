"""The 6-hourly check: a durable workflow per 6-hour slot, run as a suite background job.

Every six hours (``smallhold jobs run``, the app's job, or ``smallhold life check``) the
detectors run over what the vault holds and the alerts are kept. The run is a DBOS workflow
whose id is its slot (``life-check-2025-03-04T12``): a slot's check runs once however many
processes or timers ask for it, and a check killed half-way is finished by the next launch
(DBOS recovers the pending workflow of the ``life-check`` executor) instead of starting
over or being lost. The workflow's steps return counts only: alerts and their evidence stay
in the vault, since DBOS's database is not encrypted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from dbos import DBOS, DBOSConfiguredInstance, SetWorkflowID

from smallhold import durable
from smallhold.apps.life.alerts import Alert
from smallhold.apps.life.checks import run_checks
from smallhold.apps.life.store import LifeStore
from smallhold.apps.life.values import load_values
from smallhold.kit.home import Home
from smallhold.kit.jobs import HOUR, Job

EXECUTOR = "life-check"
EVERY = 6 * HOUR


def slot_of(moment: datetime) -> str:
    """The 6-hour slot a moment falls in, as the workflow id's suffix."""
    utc = moment.astimezone(UTC)
    return f"{utc.date().isoformat()}T{utc.hour // 6 * 6:02d}"


def check_now(home: Home, as_of: date | None = None) -> tuple[list[Alert], int]:
    """Run every detector over the vault as of ``as_of`` (today); keep the alerts.
    Returns (the alerts, how many are new)."""
    store = LifeStore(home.vault)
    alerts = run_checks(store, load_values(home.vault), as_of or date.today())
    return alerts, store.save_alerts(alerts)


@dataclass(frozen=True)
class Checked:
    alerts: int
    new: int


@DBOS.dbos_class()
class LifeCheck(DBOSConfiguredInstance):
    """The check as a DBOS workflow on one home (one instance per process run)."""

    def __init__(self, home: Home) -> None:
        self.home = home
        super().__init__(EXECUTOR)

    @DBOS.step()
    def check_step(self, as_of: str) -> Checked:
        alerts, new = check_now(self.home, date.fromisoformat(as_of))
        return Checked(len(alerts), new)

    @DBOS.workflow()
    def run(self, as_of: str) -> Checked:
        return self.check_step(as_of)


def durable_check(home: Home, moment: datetime | None = None) -> Checked:
    """The check of ``moment``'s slot (now), run at most once per slot, durably."""
    moment = moment or datetime.now(UTC)
    check = LifeCheck(home)
    try:
        with home.durable(EXECUTOR):
            workflow = f"{EXECUTOR}-{slot_of(moment)}"
            status = DBOS.get_workflow_status(workflow)
            if status is not None:
                result: Any = DBOS.retrieve_workflow(workflow).get_result()
                return Checked(result.alerts, 0) if isinstance(result, Checked) else Checked(
                    0, 0)
            with SetWorkflowID(workflow):
                return check.run(moment.date().isoformat())
    finally:
        durable.release(check)


def consolidate_now(home: Home, as_of: date | None = None) -> tuple[int, int]:
    """The nightly consolidation (:mod:`.consolidate`) on ``home``'s vault."""
    from smallhold.apps.life.consolidate import consolidate
    from smallhold.apps.life.daily import load_records
    from smallhold.store.memory import MemoryStore

    memory = MemoryStore(home.vault, home.embedder)
    return consolidate(memory, load_records(LifeStore(home.vault)), load_values(home.vault),
                       as_of or date.today())


def jobs(home: Home) -> list[Job]:
    """life's background jobs (what its declaration names for ``smallhold jobs``)."""

    def check() -> str:
        done = durable_check(home)
        return f"{done.alerts} alert(s), {done.new} new"

    def nightly() -> str:
        written, actions = consolidate_now(home)
        return f"{written} month summary(ies), {actions} memory change(s)"

    # the check runs anytime: a warning about the person's week should not wait for a
    # charger; consolidation is housekeeping and waits for one
    return [Job("check", EVERY, check, power="anytime"),
            Job("consolidate", 24 * HOUR, nightly)]


__all__ = ["EXECUTOR", "Checked", "LifeCheck", "check_now", "consolidate_now", "durable_check",
           "jobs", "slot_of"]
