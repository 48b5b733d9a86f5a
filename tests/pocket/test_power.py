"""Battery and heat policy, and the queue that obeys it (simulated devices)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from smallhold.apps.pocket.assistant import Pocket
from smallhold.errors import DevicePausedError
from smallhold.kit.power import Job, PowerScheduler, decide
from smallhold.runtime.backends.scripted import ScriptedBackend
from smallhold.runtime.device import DeviceState, simulated

MakePocket = Callable[[ScriptedBackend], Pocket]


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_three_simulated_devices() -> None:
    charging = decide(simulated(8, battery=80, charging=True).read())
    assert charging.mode == "full" and charging.background_allowed
    low = decide(simulated(8, battery=15, charging=False).read())
    assert low.mode == "saver" and low.max_tokens and low.batch and not low.background_allowed
    assert "15 %" in low.reason
    critical = decide(simulated(8, battery=4, charging=False).read())
    assert critical.mode == "paused" and "plug in" in critical.reason
    assert decide(simulated(8, battery=4, charging=True).read()).mode == "full"
    hot = DeviceState(total_ram=8 << 30, available_ram=4 << 30, cpu_count=4,
                      thermal_celsius=95.0)
    assert decide(hot).mode == "paused" and "95" in decide(hot).reason
    on_battery = decide(simulated(8, battery=60, charging=False).read())
    assert on_battery.mode == "full" and not on_battery.background_allowed


def test_scheduler_batches_on_low_battery_and_defers_background() -> None:
    clock = Clock()
    sched = PowerScheduler(simulated(8, battery=15, charging=False), clock=clock)
    sched.submit(Job("q1", "chat", clock.now))
    sched.submit(Job("consolidate", "background", clock.now))
    decision, ready = sched.release()
    assert decision.mode == "saver" and ready == []  # q1 waits for company
    clock.now += 31
    _, ready = sched.release()
    assert [j.id for j in ready] == ["q1"]  # the batch window has passed
    assert {(n.job, n.action) for n in sched.notes} == {("q1", "deferred"),
                                                        ("consolidate", "deferred")}
    sched.probe = simulated(8, battery=16, charging=True)
    _, ready = sched.release()
    assert [j.id for j in ready] == ["consolidate"]  # the charger came


def test_critical_battery_pauses_everything_and_says_why() -> None:
    sched = PowerScheduler(simulated(8, battery=4, charging=False))
    sched.submit(Job("q", "chat", 0.0))
    decision, ready = sched.release()
    assert decision.mode == "paused" and ready == [] and sched.queue
    assert sched.notes[0].action == "paused" and "4 %" in sched.notes[0].reason


def test_pocket_caps_answers_on_low_battery_and_refuses_when_critical(
        make_pocket: MakePocket) -> None:
    pocket = make_pocket(ScriptedBackend(["word " * 400]))
    pocket.runtime.probe = simulated(8, battery=15, charging=False)
    list(pocket.ask("c", "tell me a long story"))
    assert pocket.last.power is not None and pocket.last.power.mode == "saver"
    assert pocket.last.finish is not None and pocket.last.finish.usage.completion_tokens == 192
    pocket.runtime.probe = simulated(8, battery=4, charging=False)
    with pytest.raises(DevicePausedError, match="plug in"):
        list(pocket.ask("c", "are you there?"))
    assert [t.content for t in pocket.history("c")][-1].startswith("word")  # nothing added


def test_saver_mode_answers_with_the_smaller_model(make_pocket: MakePocket) -> None:
    backend = ScriptedBackend(["short answer"], models=("big", "small"))
    pocket = make_pocket(backend)
    pocket.model, pocket.saver_model = "big", "small"
    pocket.runtime.probe = simulated(8, battery=80, charging=True)
    list(pocket.ask("c", "first question"))
    pocket.runtime.probe = simulated(8, battery=15, charging=False)
    list(pocket.ask("c", "second question"))
    assert [r.model for r in backend.requests] == ["big", "small"]
    assert pocket.last.model == "small" and "saver mode" in pocket.last.events[0]
    assert [t.content for t in pocket.history("c")] == [
        "first question", "short answer", "second question", "short answer"]
