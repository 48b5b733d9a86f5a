"""Battery and heat: how hard the suite may work right now, and a queue that obeys it.

One policy for every app: pocket shortens its answers and batches questions in saver mode,
and every app's background jobs (:mod:`smallhold.kit.jobs`) wait for the charger.

Three modes, decided from one :class:`~smallhold.runtime.device.DeviceState` (psutil through
the runtime's injectable probe, so tests are a phone at 80 %, 15 % or 4 %):

* **full**: on mains power (or a device with no battery) and cool: answer at once, run
  background work (memory consolidation, indexing, sync).
* **saver**: on battery under the low threshold, or warm: answers are shorter (a token cap),
  queued questions are answered together in one wake of the model (it loads once, then may
  unload), a smaller model tier is preferred, and background work waits for the charger.
  Background work also waits on battery above the threshold: it is never urgent.
* **paused**: battery critical and not charging, or too hot: nothing runs, and the user is
  told why and what to do.

Pure decisions plus a small scheduler that records every defer and pause with its reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from smallhold.runtime.device import DeviceProbe, DeviceState

Mode = Literal["full", "saver", "paused"]
JobKind = Literal["chat", "background"]


@dataclass(frozen=True)
class PowerPolicy:
    low_battery: float = 20.0
    critical_battery: float = 5.0
    warm_celsius: float = 80.0
    critical_celsius: float = 92.0
    saver_max_tokens: int = 192
    batch_window_s: float = 30.0  # in saver mode, questions wait at most this long for company
    batch_size: int = 4


@dataclass(frozen=True)
class PowerDecision:
    mode: Mode
    reason: str
    max_tokens: int | None = None  # a cap in saver mode
    prefer_small_model: bool = False
    background_allowed: bool = True
    batch: bool = False


def decide(state: DeviceState, policy: PowerPolicy = PowerPolicy()) -> PowerDecision:
    battery = state.battery_percent
    heat = state.thermal_celsius
    on_battery = state.on_battery
    if heat is not None and heat >= policy.critical_celsius:
        return PowerDecision("paused", f"the device is at {heat:.0f} °C; pocket waits for it "
                             "to cool down", background_allowed=False)
    if on_battery and battery is not None and battery <= policy.critical_battery:
        return PowerDecision("paused", f"battery at {battery:.0f} % and not charging; plug in "
                             "to continue", background_allowed=False)
    if on_battery and battery is not None and battery < policy.low_battery:
        return PowerDecision("saver", f"battery at {battery:.0f} % on battery power: shorter "
                             "answers, questions answered together, background work waits "
                             "for the charger", max_tokens=policy.saver_max_tokens,
                             prefer_small_model=True, background_allowed=False, batch=True)
    if heat is not None and heat >= policy.warm_celsius:
        return PowerDecision("saver", f"the device is warm ({heat:.0f} °C): shorter answers, "
                             "background work later", max_tokens=policy.saver_max_tokens,
                             background_allowed=False, batch=True)
    if on_battery:
        level = f" at {battery:.0f} %" if battery is not None else ""
        return PowerDecision("full", f"on battery{level}: answers as usual, background work "
                             "waits for the charger", background_allowed=False)
    return PowerDecision("full", "on mains power" if state.charging else "no battery")


@dataclass(frozen=True)
class Job:
    id: str
    kind: JobKind
    submitted_at: float


@dataclass(frozen=True)
class Note:
    job: str
    action: Literal["deferred", "paused"]
    reason: str
    at: float


@dataclass
class PowerScheduler:
    """A queue of chat and background jobs released according to :func:`decide`."""

    probe: DeviceProbe
    policy: PowerPolicy = PowerPolicy()
    clock: Callable[[], float] = time.time
    queue: list[Job] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)

    def submit(self, job: Job) -> None:
        self.queue.append(job)

    def release(self) -> tuple[PowerDecision, list[Job]]:
        """Jobs to run now (chat first, then background), leaving the rest queued."""
        now = self.clock()
        decision = decide(self.probe.read(), self.policy)
        if decision.mode == "paused":
            self._note(self.queue, "paused", decision.reason, now)
            return decision, []
        chats = [j for j in self.queue if j.kind == "chat"]
        background = [j for j in self.queue if j.kind == "background"]
        ready: list[Job] = []
        if chats and (not decision.batch or len(chats) >= self.policy.batch_size
                      or now - chats[0].submitted_at >= self.policy.batch_window_s):
            ready += chats
        elif chats:
            self._note(chats, "deferred", "waiting to answer together with the next question "
                       "(saves a model wake on battery)", now)
        if decision.background_allowed:
            ready += background
        elif background:
            self._note(background, "deferred", decision.reason, now)
        self.queue = [j for j in self.queue if j not in ready]
        return decision, ready

    def _note(self, jobs: list[Job], action: Literal["deferred", "paused"], reason: str,
              now: float) -> None:
        known = {(n.job, n.action) for n in self.notes}
        self.notes += [Note(j.id, action, reason, now) for j in jobs if (j.id, action) not in
                       known]


__all__ = ["Job", "Mode", "Note", "PowerDecision", "PowerPolicy", "PowerScheduler", "decide"]
