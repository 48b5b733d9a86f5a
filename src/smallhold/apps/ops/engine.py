"""Workflows on DBOS: an event becomes a durable DAG run, step by checkpointed step.

One workflow per event, its id the event's dedup key, so a redelivered webhook attaches to
the run it started instead of starting another. The workflow:

1. **plans** (a step): the orchestrator picks the template and says whether a person must
   approve first; the template itself is part of the checkpoint, so a run recovered after
   someone edited the YAML finishes the plan it started with;
2. **waits for approval** when the plan says so (``DBOS.recv``: the wait survives restarts;
   a timeout escalates or denies, never proceeds);
3. **runs the DAG** wave by wave: each step is a child workflow (id ``<run>/<step>``), so the
   steps of a wave run side by side and a recovered run finds the children it had started;
   a step's tool call goes through the integration's breaker and retries
   (:mod:`.resilience`) and the ledger, keyed by the same id, so a step re-run after a crash
   does not act twice; a high-risk step the plan approval did not cover waits for its own;
4. **escalates** a step that failed for good (permanent error, retries spent, breaker open)
   to a person with its context, and stops.

Workers take events from the ``ops`` queue; several workers on one PostgreSQL database
share it, and each beats a heartbeat so that a live worker takes over a dead one's runs.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from dbos import DBOS, DBOSConfiguredInstance, SetWorkflowID

from smallhold import durable
from smallhold.apps.ops.config import OpsConfig, resolve
from smallhold.apps.ops.errors import (
    OpsError,
    WorkflowNotFoundError,
    WorkflowStateError,
)
from smallhold.apps.ops.models import Decision, Event
from smallhold.apps.ops.orchestrator import Plan, describe, plan, risk_of
from smallhold.apps.ops.state import OpsState
from smallhold.apps.ops.templates import Template, load_all
from smallhold.apps.ops.tools import Call, Toolbox
from smallhold.errors import SmallholdError
from smallhold.kit.home import Home
from smallhold.runtime import Runtime

log = logging.getLogger(__name__)
QUEUE_NAME = "ops"
INSTANCE = "ops"
APPROVAL = "approval"  # the DBOS topic approvals arrive on
HEARTBEAT = 2.0  # seconds between a worker's heartbeats
DEAD_AFTER = 15.0  # a worker silent this long is taken over
STEP_WAITS = 3  # times a step waits out an open breaker or a lasting transient failure
RETRY_LATER = frozenset({"CircuitOpenError", "TransientError"})
WORKER_CONCURRENCY = 4  # runs one worker holds at once (their steps run in threads)
POLL = 0.2  # seconds between a worker's looks at the queue: the event-to-start latency


def toolbox() -> Toolbox:
    """Every agent's tools (imported here so each agent module stays independent)."""
    from smallhold.apps.ops.agents import analysis, communication, data, documentation

    return Toolbox([*communication.TOOLS, *data.TOOLS, *analysis.TOOLS, *documentation.TOOLS])


def default_executor() -> str:
    return f"ops-{socket.gethostname()}"


class Worker:
    """What a worker process holds: config, state, tools, templates, the model; the
    ``Services`` the tools reach the world through."""

    def __init__(self, home: Home, config: OpsConfig, state: OpsState, *,
                 executor: str | None = None, tools: Toolbox | None = None,
                 templates: Sequence[Template] | None = None) -> None:
        self.home = home
        self.config = config
        self.state = state
        self.executor = executor or default_executor()
        self.tools = tools or toolbox()
        self.templates = list(templates) if templates is not None else load_all(
            config.workflows.templates, self.tools.actions())

    # Services ------------------------------------------------------------------------
    def secret(self, reference: str) -> str:
        return resolve(reference, self.home.vault.meta)

    @property
    def ledger(self) -> OpsState:
        return self.state

    @property
    def runtime(self) -> Runtime:
        return self.home.runtime

    @property
    def model(self) -> str | None:
        return self.config.workflows.model

    def keep(self, workflow: str, name: str, kind: str, content: str) -> None:
        self.state.save_artifact(workflow, name, kind, content)


def _step_call(worker: Worker, workflow: str, template: Template, step_id: str,
               event: Event, inputs: dict[str, Any]) -> dict[str, Any]:
    """One step's tool call, through the ledger, breaker and retries; never raises."""
    from smallhold.apps.ops.render import render
    from smallhold.apps.ops.resilience import guarded_call

    step = template.step(step_id)
    key = f"{workflow}/{step_id}"
    done = worker.state.done(key)
    if done is not None:  # the side effect happened before a crash; do not do it again
        return {"status": "ok", "output": done, "replayed": True}
    try:
        tool = worker.tools.get(step.agent, step.action)
        context = {"event": event.model_dump(mode="json"), "steps": inputs,
                   "queries": dict(worker.config.integrations.sql.queries)}
        params = render(step.with_, context)
        call = Call(workflow=workflow, step=step_id, event=event, params=params,
                    inputs=inputs)
        output = guarded_call(tool, call, worker, worker.state, worker.config.resilience,
                              granted=template.scopes)
    except SmallholdError as exc:  # ours, or the model's (no valid structured answer)
        return {"status": "failed", "error": str(exc), "kind": type(exc).__name__}
    except Exception as exc:  # a bug in a tool must not take the worker down
        log.exception("step %s failed", key)
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}",
                "kind": "internal"}
    worker.state.record(key, output)
    return {"status": "ok", "output": output}


@DBOS.dbos_class()
class OpsEngine(DBOSConfiguredInstance):
    """The workflows, bound to one worker (one instance per process, named ``ops``)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.queue: Any = None  # the ops queue, registered once DBOS has launched
        super().__init__(INSTANCE)

    # steps -------------------------------------------------------------------------
    @DBOS.step()
    def plan_step(self, event: dict[str, Any]) -> dict[str, Any]:
        w = self.worker
        parsed = Event.model_validate(event)
        try:
            chosen = plan(parsed, w.templates, w.tools, runtime=w.home.runtime,
                          model=w.model, min_confidence=w.config.workflows.min_confidence)
        except OpsError as exc:
            chosen = Plan(None, 0.0, f"could not plan: {exc}", False, [])
        w.state.set_template(parsed.key, chosen.template.name if chosen.template else None)
        w.state.audit(w.executor, "workflow.planned", parsed.key,
                      template=chosen.template.name if chosen.template else None,
                      confidence=chosen.confidence, reason=chosen.reason,
                      approval=chosen.approval, high_risk=chosen.high_risk)
        return chosen.as_dict()

    @DBOS.step()
    def ask_step(self, workflow: str, text: str, what: str) -> None:
        """Tell the people who approve that a run waits for them (audit; Slack when set)."""
        w = self.worker
        w.state.audit(w.executor, "approval.requested", workflow, what=what, plan=text)
        w.state.save_artifact(workflow, f"plan-{what}.txt", "plan", text)
        if w.config.integrations.slack.token:
            from smallhold.apps.ops.resilience import guarded_call

            tool = w.tools.get("communication", "slack_ask_approval")
            event = Event(source="cli", type="ops.approval", key=workflow,
                          received_at=datetime.now(UTC), summary=text.splitlines()[0])
            call = Call(workflow=workflow, step=f"ask-{what}", event=event,
                        params={"text": text, "workflow": workflow})
            try:
                guarded_call(tool, call, w, w.state, w.config.resilience,
                             granted=[tool.scope])
            except OpsError as exc:  # the CLI can still approve; say why Slack was not told
                w.state.audit(w.executor, "approval.notify_failed", workflow, error=str(exc))

    @DBOS.step()
    def note_step(self, workflow: str, action: str, detail: dict[str, Any]) -> None:
        self.worker.state.audit(self.worker.executor, action, workflow, **detail)

    @DBOS.step()
    def act_step(self, workflow: str, template: dict[str, Any], step_id: str,
                 event: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
        return _step_call(self.worker, workflow, Template.model_validate(template), step_id,
                          Event.model_validate(event), inputs)

    # workflows ---------------------------------------------------------------------
    def _approval(self, workflow: str, text: str, what: str,
                  timeout: float, on_timeout: str) -> tuple[bool, str]:
        self.ask_step(workflow, text, what)
        answer = DBOS.recv(APPROVAL, timeout_seconds=timeout)
        if answer is None:
            self.note_step(workflow, "approval.timed_out", {"what": what,
                                                            "then": on_timeout})
            return False, f"approval of {what} timed out after {timeout:.0f} s ({on_timeout})"
        decision = Decision.model_validate(answer)
        self.note_step(workflow, "approval.approved" if decision.approve else "approval.denied",
                       {"what": what, "by": decision.by, "via": decision.via,
                        "reason": decision.reason})
        verdict = "approved" if decision.approve else "denied"
        return decision.approve, f"{what} {verdict} by {decision.by} via {decision.via}"

    @DBOS.workflow()
    def run_step(self, parent: str, template: dict[str, Any], step_id: str,
                 event: dict[str, Any], inputs: dict[str, Any], approved: bool) -> dict[str, Any]:
        parsed = Template.model_validate(template)
        if not approved and risk_of(parsed, self.worker.tools, step_id) == "high":
            step = parsed.step(step_id)
            text = (f"Step {step_id} of {parent} is high risk: {step.agent}.{step.action} "
                    f"with {step.with_}")
            ok, why = self._approval(DBOS.workflow_id or parent, text, f"step {step_id}",
                                     parsed.approval.seconds, parsed.approval.on_timeout)
            if not ok:
                return {"status": "failed", "error": why, "kind": "not_approved"}
        result = self.act_step(parent, template, step_id, event, inputs)
        resilience = self.worker.config.resilience
        waits = 0
        while result.get("kind") in RETRY_LATER and waits < STEP_WAITS:
            # an open breaker (the service fails for everyone) or a transient failure that
            # outlasted the step's quick retries: wait durably and try the step again,
            # rather than hand a person a run that would succeed a minute later
            waits += 1
            DBOS.sleep(resilience.breaker_reset if result["kind"] == "CircuitOpenError"
                       else resilience.backoff_max)
            result = self.act_step(parent, template, step_id, event, inputs)
        return result

    @DBOS.workflow()
    def handle(self, event: dict[str, Any]) -> dict[str, Any]:
        workflow = DBOS.workflow_id or event["key"]
        chosen = Plan.from_dict(self.plan_step(event))
        if chosen.template is None:
            return {"status": "unmatched", "reason": chosen.reason}
        template = chosen.template
        spec = template.model_dump(mode="json", by_alias=True)
        approved = False
        if chosen.approval:
            ok, why = self._approval(workflow, describe(chosen, self.worker.tools), "plan",
                                     template.approval.seconds, template.approval.on_timeout)
            if not ok:
                status = "escalated" if "escalate" in why else "denied"
                return {"status": status, "template": template.name, "reason": why}
            approved = True
        outputs: dict[str, Any] = {}
        results: dict[str, str] = {}
        for wave in template.order():
            handles = {}
            for step_id in wave:
                inputs = {n: outputs[n] for n in sorted(template.upstream(step_id))
                          if n in outputs}
                with SetWorkflowID(f"{workflow}/{step_id}"):
                    handles[step_id] = DBOS.start_workflow(self.run_step, workflow, spec,
                                                           step_id, event, inputs, approved)
            failed: list[tuple[str, dict[str, Any]]] = []
            for step_id, handle in handles.items():
                result = handle.get_result()
                results[step_id] = result["status"]
                if result["status"] == "ok":
                    outputs[step_id] = result["output"]
                elif template.step(step_id).optional:
                    results[step_id] = "skipped"
                else:
                    failed.append((step_id, result))
            if failed:
                step_id, result = failed[0]
                self.note_step(workflow, "workflow.escalated",
                               {"step": step_id, "error": result.get("error"),
                                "kind": result.get("kind"), "done": sorted(outputs)})
                return {"status": "escalated", "template": template.name, "steps": results,
                        "reason": f"step {step_id} failed: {result.get('error')}"}
        self.note_step(workflow, "workflow.done", {"steps": results})
        return {"status": "done", "template": template.name, "steps": results}


# -- running a worker -----------------------------------------------------------------

@contextmanager
def running(worker: Worker, *, heartbeat: bool = True) -> Iterator[OpsEngine]:
    """DBOS launched as the worker's executor with the engine registered; its pending
    workflows resume, dead peers' are taken over while it runs."""
    engine = OpsEngine(worker)
    stop = threading.Event()
    beat: threading.Thread | None = None
    try:
        with worker.home.durable(worker.executor):
            engine.queue = DBOS.register_queue(QUEUE_NAME,
                                               worker_concurrency=WORKER_CONCURRENCY,
                                               polling_interval_sec=POLL)
            if heartbeat:
                worker.state.heartbeat(worker.executor)
                beat = threading.Thread(target=_watch, args=(worker, stop), daemon=True,
                                        name="ops-heartbeat")
                beat.start()
            try:
                yield engine
            finally:
                stop.set()
                if beat is not None:
                    beat.join(timeout=5)
                    _retire(worker)
    finally:
        durable.release(engine)


def _retire(worker: Worker) -> None:
    """A worker leaving with nothing pending drops its heartbeat row, so that nobody
    "recovers" it 15 s later and the table does not fill with one-off names (``ops submit
    --wait``); one leaving with runs in flight keeps it, and a peer takes them over."""
    try:
        pending = DBOS.list_workflows(executor_id=worker.executor, status="PENDING",
                                      load_input=False, load_output=False, limit=1)
        if not pending:
            worker.state.retire(worker.executor)
    except Exception:  # leaving anyway: at worst a peer recovers nothing later
        log.exception("ops: could not retire worker %s", worker.executor)


def _watch(worker: Worker, stop: threading.Event) -> None:
    """Beat, and take over the workflows of workers that stopped beating."""
    while not stop.wait(HEARTBEAT):
        try:
            worker.state.heartbeat(worker.executor)
            for dead in worker.state.claim_dead(worker.executor, DEAD_AFTER):
                try:
                    count = durable.recover([dead])
                except Exception:
                    worker.state.release_claim(dead, worker.executor)  # let a peer try
                    raise
                worker.state.audit(worker.executor, "worker.recovered", None,
                                   worker=dead, workflows=count)
        except Exception:  # a database hiccup must not stop the heartbeat for good
            log.exception("ops heartbeat failed")


def submit(engine: OpsEngine, event: Event) -> str:
    """Queue the event's workflow (once: its key is the workflow id)."""
    with SetWorkflowID(event.key):
        engine.queue.enqueue(engine.handle, event.model_dump(mode="json"))
    return event.key


class Client:
    """Queue runs and answer approvals without being a worker (``ops submit``, ``ops
    serve --no-worker``, the CLI's approve): a DBOS client on the workflow database, so
    this process never dequeues, and never recovers, anybody's runs."""

    def __init__(self, url: str) -> None:
        self._client = durable.client(url)

    def submit(self, event: Event) -> str:
        from dbos import EnqueueOptions

        options: EnqueueOptions = {"queue_name": QUEUE_NAME, "workflow_name": "OpsEngine.handle",
                                   "class_name": "OpsEngine", "instance_name": INSTANCE,
                                   "workflow_id": event.key}
        self._client.enqueue(options, event.model_dump(mode="json"))
        return event.key

    def decide(self, decision: Decision) -> None:
        found = self._client.list_workflows(workflow_ids=[decision.workflow],
                                            load_input=False, load_output=False)
        if not found:
            raise WorkflowNotFoundError(f"no workflow {decision.workflow}: see `smallhold "
                                        "ops workflows list`")
        if found[0].status not in ("PENDING", "ENQUEUED"):
            raise WorkflowStateError(f"workflow {decision.workflow} is "
                                     f"{found[0].status.lower()}, not waiting for approval")
        self._client.send(decision.workflow, decision.model_dump(mode="json"), topic=APPROVAL)

    def close(self) -> None:
        self._client.destroy()


def wait_done(workflow: str, timeout: float = 60.0) -> dict[str, Any]:
    """Block until ``workflow`` ends (tests, ``ops run --wait``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = DBOS.get_workflow_status(workflow)
        if status is not None and status.status == "SUCCESS":
            result: dict[str, Any] = DBOS.retrieve_workflow(workflow).get_result()
            return result
        if status is not None and status.status in ("ERROR", "CANCELLED",
                                                    "MAX_RECOVERY_ATTEMPTS_EXCEEDED"):
            raise WorkflowStateError(f"workflow {workflow} ended {status.status.lower()}")
        time.sleep(0.1)
    raise WorkflowStateError(f"workflow {workflow} did not finish in {timeout:.0f} s")


__all__ = [
    "APPROVAL",
    "INSTANCE",
    "QUEUE_NAME",
    "Client",
    "OpsEngine",
    "Worker",
    "default_executor",
    "running",
    "submit",
    "toolbox",
    "wait_done",
]
