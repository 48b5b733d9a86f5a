"""The workflow engine on real DBOS (SQLite): DAG order and parallel waves, one run per
event, approvals that wait, deny and time out, escalation, optional steps, the ledger."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from smallhold.apps.ops import APP
from smallhold.apps.ops.config import OpsConfig, Resilience
from smallhold.apps.ops.engine import Client, Worker, running, submit, wait_done
from smallhold.apps.ops.errors import PermanentError, TransientError
from smallhold.apps.ops.models import Decision, Event
from smallhold.apps.ops.state import OpsState
from smallhold.apps.ops.templates import parse
from smallhold.apps.ops.tools import Call, Services, Tool, Toolbox
from smallhold.durable import system_database_url
from smallhold.kit import Home, Overrides
from smallhold.runtime.backends.scripted import ScriptedBackend


class Recorder:
    """Fake tools that record their calls; ``gate`` lets a test hold two steps at once."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any], list[str]]] = []
        self.lock = threading.Lock()
        self.both_running = threading.Barrier(2, timeout=20)
        self.flaky_left = 2
        self.stubborn_left = 6

    def tool(self, name: str, risk: str = "read", *, fail: str | None = None,
             barrier: bool = False) -> Tool:
        def run(call: Call, services: Services) -> dict[str, Any]:
            with self.lock:
                self.calls.append((name, call.params, sorted(call.inputs)))
            if barrier:
                self.both_running.wait()  # returns only when the other wave member runs too
            if fail == "permanent":
                raise PermanentError(f"{name} refused", integration="fake")
            if fail == "stubborn":
                with self.lock:
                    self.stubborn_left -= 1
                    if self.stubborn_left >= 0:
                        raise TransientError(f"{name} still down", integration="fake")
            if fail == "flaky":
                with self.lock:
                    self.flaky_left -= 1
                    if self.flaky_left >= 0:
                        raise TransientError(f"{name} hiccup", integration="fake")
            return {"by": name, "params": call.params, "saw": sorted(call.inputs)}
        return Tool(agent="fake", name=name, summary=name, risk=risk,  # type: ignore[arg-type]
                    scope="fake:use", run=run)

    def toolbox(self) -> Toolbox:
        guarded = Tool(agent="fake", name="guarded", summary="behind a breaker", risk="read",
                       scope="fake:use", integration="fakesvc",
                       run=lambda call, services: {"by": "guarded"})
        return Toolbox([guarded, self.tool("start"), self.tool("left", barrier=True),
                        self.tool("right", barrier=True), self.tool("join"),
                        self.tool("broken", fail="permanent"), self.tool("flaky", fail="flaky"),
                        self.tool("stubborn", fail="stubborn"),
                        self.tool("danger", risk="high"), self.tool("plain")])

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]


def template(name: str, steps: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"name": name, "match": [{"source": "alertmanager", "labels": {"t": name}}],
            "steps": steps, **extra}


DIAMOND = template("diamond", [
    {"id": "start", "agent": "fake", "action": "start", "with": {"who": "{{ event.summary }}"}},
    {"id": "left", "agent": "fake", "action": "left", "needs": ["start"]},
    {"id": "right", "agent": "fake", "action": "right", "needs": ["start"]},
    {"id": "join", "agent": "fake", "action": "join", "needs": ["left", "right"],
     "with": {"got": "{{ steps.left.by }}+{{ steps.right.by }}"}},
])


def event(tag: str, key: str) -> Event:
    return Event(source="alertmanager", type="alert.firing", key=key,
                 received_at=datetime.now(UTC), summary=f"disk full ({tag})",
                 labels={"t": tag}, severity="critical")


@pytest.fixture
def ops_home() -> Iterator[Home]:
    with Home.open(app=APP, overrides=Overrides(backend=ScriptedBackend(["ok"]))) as home:
        yield home


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def worker(ops_home: Home, recorder: Recorder) -> Iterator[Worker]:
    tools = recorder.toolbox()
    specs = [DIAMOND,
             template("guarded", [{"id": "plain", "agent": "fake", "action": "plain"}],
                      critical=True, approval={"timeout": "1s"}),
             template("patient", [{"id": "plain", "agent": "fake", "action": "plain"}],
                      critical=True, approval={"timeout": "1h"}),
             template("fails", [
                 {"id": "start", "agent": "fake", "action": "start"},
                 {"id": "broken", "agent": "fake", "action": "broken", "needs": ["start"]},
                 {"id": "join", "agent": "fake", "action": "join", "needs": ["broken"]}]),
             template("soft", [
                 {"id": "broken", "agent": "fake", "action": "broken", "optional": True},
                 {"id": "flaky", "agent": "fake", "action": "flaky"},
                 {"id": "join", "agent": "fake", "action": "join",
                  "needs": ["broken", "flaky"]}]),
             template("narrow", [{"id": "plain", "agent": "fake", "action": "plain"}],
                      scopes=["slack:write"]),
             template("lasting", [{"id": "stubborn", "agent": "fake",
                                   "action": "stubborn"}]),
             template("breaker", [{"id": "guarded", "agent": "fake", "action": "guarded"}]),
             template("risky", [
                 {"id": "start", "agent": "fake", "action": "start"},
                 {"id": "danger", "agent": "fake", "action": "danger", "needs": ["start"]}],
                      approval={"timeout": "1h"})]
    templates = [parse(s, s["name"], tools.actions()) for s in specs]
    config = OpsConfig(resilience=Resilience(attempts=4, backoff=0.01, backoff_max=0.02,
                                             breaker_reset=0.5))
    state = OpsState(system_database_url(ops_home.paths, ops_home.settings))
    yield Worker(ops_home, config, state, executor="ops-test", tools=tools,
                 templates=templates)
    state.close()


def decide(worker: Worker, decision: Decision) -> None:
    """A person's answer, as the CLI and the receiver give it: through a DBOS client."""
    answering = Client(worker.state.url)
    try:
        answering.decide(decision)
    finally:
        answering.close()


def wait_for(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def test_a_diamond_runs_in_waves_with_the_middle_in_parallel(worker: Worker,
                                                             recorder: Recorder) -> None:
    with running(worker, heartbeat=False) as engine:
        key = submit(engine, event("diamond", "am-1"))
        result = wait_done(key, 60)
    assert result["status"] == "done" and result["template"] == "diamond"
    names = recorder.names()
    assert names[0] == "start" and names[-1] == "join"
    assert sorted(names[1:3]) == ["left", "right"]  # the barrier proves they overlapped
    join = recorder.calls[-1]
    assert join[1] == {"got": "left+right"} and join[2] == ["left", "right", "start"]
    assert recorder.calls[0][1] == {"who": "disk full (diamond)"}
    actions = [a.action for a in worker.state.audit_entries(key)]
    assert actions == ["workflow.planned", "workflow.done"]
    assert worker.state.verify_audit()[1] is None


def test_the_same_event_twice_is_one_run(worker: Worker, recorder: Recorder) -> None:
    with running(worker, heartbeat=False) as engine:
        first = submit(engine, event("diamond", "am-2"))
        second = submit(engine, event("diamond", "am-2"))
        assert first == second
        wait_done(first, 60)
        submit(engine, event("diamond", "am-2"))  # a redelivery after it finished
        time.sleep(0.5)
    assert recorder.names().count("start") == 1 and len(recorder.calls) == 4


def test_a_critical_run_waits_for_approval_then_runs(worker: Worker,
                                                     recorder: Recorder) -> None:
    with running(worker, heartbeat=False) as engine:
        key = submit(engine, event("patient", "am-3"))
        wait_for(lambda: any(a.action == "approval.requested"
                             for a in worker.state.audit_entries(key)))
        assert recorder.calls == []  # nothing ran before a person said yes
        decide(worker, Decision(workflow=key, approve=True, by="alice", via="cli"))
        result = wait_done(key, 60)
    assert result["status"] == "done" and recorder.names() == ["plain"]
    assert "approval.approved" in [a.action for a in worker.state.audit_entries(key)]
    plan = [d for d in worker.state.artifacts(key) if d["kind"] == "plan"]
    assert plan and "fake.plain" in plan[0]["content"]


def test_denied_and_timed_out_approvals_run_nothing(worker: Worker,
                                                    recorder: Recorder) -> None:
    with running(worker, heartbeat=False) as engine:
        denied = submit(engine, event("patient", "am-4"))
        wait_for(lambda: any(a.action == "approval.requested"
                             for a in worker.state.audit_entries(denied)))
        decide(worker, Decision(workflow=denied, approve=False, by="bob", via="cli"))
        assert wait_done(denied, 60)["status"] == "denied"
        timed_out = submit(engine, event("guarded", "am-5"))  # approval timeout 1 s
        result = wait_done(timed_out, 60)
    assert result["status"] == "escalated" and "timed out" in result["reason"]
    assert recorder.calls == []


def test_a_permanent_failure_escalates_and_stops_the_dag(worker: Worker,
                                                         recorder: Recorder) -> None:
    with running(worker, heartbeat=False) as engine:
        key = submit(engine, event("fails", "am-6"))
        result = wait_done(key, 60)
    assert result["status"] == "escalated" and "broken refused" in result["reason"]
    assert recorder.names() == ["start", "broken"]  # tried once: permanent is not retried
    escalation = [a for a in worker.state.audit_entries(key) if a.action == "workflow.escalated"]
    assert escalation and escalation[0].detail["step"] == "broken"


def test_optional_failures_are_skipped_and_transient_ones_retried(
        worker: Worker, recorder: Recorder) -> None:
    with running(worker, heartbeat=False) as engine:
        key = submit(engine, event("soft", "am-7"))
        result = wait_done(key, 60)
    assert result["status"] == "done"
    assert result["steps"] == {"broken": "skipped", "flaky": "ok", "join": "ok"}
    assert recorder.names().count("flaky") == 3  # two transient failures, then success
    assert recorder.calls[-1][2] == ["flaky"]  # the skipped step's output is not there


def test_a_high_risk_step_waits_for_its_own_approval(worker: Worker,
                                                     recorder: Recorder) -> None:
    with running(worker, heartbeat=False) as engine:
        key = submit(engine, event("risky", "am-8"))
        step = f"{key}/danger"
        wait_for(lambda: any(a.action == "approval.requested"
                             for a in worker.state.audit_entries(step)))
        assert recorder.names() == ["start"]
        decide(worker, Decision(workflow=step, approve=True, by="alice", via="cli"))
        result = wait_done(key, 60)
    assert result["status"] == "done" and recorder.names() == ["start", "danger"]


def test_a_side_effect_in_the_ledger_is_not_done_again(worker: Worker,
                                                       recorder: Recorder) -> None:
    worker.state.record("am-9/start", {"by": "start", "from": "before a crash"})
    with running(worker, heartbeat=False) as engine:
        key = submit(engine, event("diamond", "am-9"))
        wait_done(key, 60)
    assert "start" not in recorder.names()
    assert recorder.names().count("join") == 1


def test_a_step_waits_out_an_open_breaker_instead_of_escalating(worker: Worker) -> None:
    worker.state.update_breaker("fakesvc", state="open", failures=5, opened_at=time.time())
    with running(worker, heartbeat=False) as engine:
        key = submit(engine, event("breaker", "am-10"))
        result = wait_done(key, 60)
    assert result["status"] == "done"  # after the reset time, the half-open trial passed
    assert worker.state.breaker("fakesvc")["state"] == "closed"


def test_a_transient_failure_outlasting_the_quick_retries_is_tried_again_later(
        worker: Worker, recorder: Recorder) -> None:
    with running(worker, heartbeat=False) as engine:
        key = submit(engine, event("lasting", "am-11"))
        result = wait_done(key, 60)
    assert result["status"] == "done"
    assert recorder.names().count("stubborn") == 7  # 4 quick tries, a wait, 3 more


def test_a_worker_leaving_with_nothing_pending_is_not_taken_for_dead(worker: Worker) -> None:
    with running(worker, heartbeat=True) as engine:
        assert [w["executor"] for w in worker.state.workers()] == ["ops-test"]
        wait_done(submit(engine, event("diamond", "am-12")), 60)
    assert worker.state.workers() == []  # retired: no peer will "recover" it
    worker.state.heartbeat("gone")
    assert worker.state.claim_dead("me", -1.0) == ["gone"]
    worker.state.release_claim("gone", "me")  # recovery failed: let the next beat retry
    assert worker.state.claim_dead("me", -1.0) == ["gone"]


def test_a_step_outside_the_templates_scopes_is_refused(worker: Worker,
                                                        recorder: Recorder) -> None:
    with running(worker, heartbeat=False) as engine:
        result = wait_done(submit(engine, event("narrow", "am-13")), 60)
    assert result["status"] == "escalated" and "scope fake:use" in result["reason"]
    assert recorder.calls == []
