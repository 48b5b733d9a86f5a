"""A worker process for ``bench_ops.py``: either an ops worker or a bare DBOS worker.

The throughput benchmark compares ops with plain DBOS doing the same DAG, so the two
workers are built to differ only in what ops adds. Both:

- launch DBOS the way the suite does (:func:`smallhold.durable.launched`: same config,
  same application version) on the database given, as the executor given;
- take work from a queue with ops's own ``WORKER_CONCURRENCY`` and ``POLL``;
- run the same three-step DAG, ``left`` and ``right`` side by side then ``join``,
  each step a child workflow (id ``<run>/<step>``) whose one checkpointed step does
  nothing but append ``{"wf", "step", "t"}`` to this process's record file.

``ops`` is :class:`smallhold.apps.ops.engine.Worker` under ``running()`` (heartbeat
included) with a toolbox of that one recording tool and a template of that DAG, so every
run also plans, consults the ledger, writes the audit log: the overhead being measured.
``bare`` is a module-level ``@DBOS.workflow`` on a queue called ``bare``.

It is a separate process (not a thread of the driver) so several can share one PostgreSQL
database, as ops workers do in production, and so killing one is a real crash::

    python bench/bench_ops_worker.py ops --database-url URL --worker-id w1 --record FILE

SIGTERM stops it; it ends with ``os._exit`` like ``smallhold ops worker`` (a thread
blocked in a DBOS wait must not hold the interpreter open).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from dbos import DBOS, SetWorkflowID

from bench_ops_infra import BARE_QUEUE


class Recorder:
    """Appends one JSON line per step start to this process's own file (no locking
    between processes needed; the driver merges the files when the batch is done)."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("a", encoding="utf-8", buffering=1)
        self._lock = threading.Lock()

    def __call__(self, workflow: str, step: str) -> None:
        line = json.dumps({"wf": workflow, "step": step, "t": time.time()})
        with self._lock:
            self._file.write(line + "\n")


RECORD: Recorder | None = None


def record(workflow: str, step: str) -> None:
    if RECORD is not None:
        RECORD(workflow, step)


# -- bare DBOS: the same DAG with nothing around it ----------------------------------------

@DBOS.step()
def bare_touch(workflow: str, step: str) -> dict[str, Any]:
    record(workflow, step)
    return {"by": step}


@DBOS.workflow()
def bare_step(workflow: str, step: str) -> dict[str, Any]:
    return bare_touch(workflow, step)


@DBOS.workflow()
def bare_handle(event: dict[str, Any]) -> dict[str, Any]:
    workflow = DBOS.workflow_id or event["key"]
    handles = {}
    for step in ("left", "right"):
        with SetWorkflowID(f"{workflow}/{step}"):
            handles[step] = DBOS.start_workflow(bare_step, workflow, step)
    results = {step: handle.get_result() for step, handle in handles.items()}
    with SetWorkflowID(f"{workflow}/join"):
        results["join"] = DBOS.start_workflow(bare_step, workflow, "join").get_result()
    return {"status": "done", "steps": {s: "ok" for s in results}}


# -- ops: the same DAG as a template over a recording tool ---------------------------------

def ops_template() -> dict[str, Any]:
    """The DAG as an ops template; the driver's events are Alertmanager-shaped."""
    return {"name": "bench-diamond", "match": [{"source": "alertmanager"}], "steps": [
        {"id": "left", "agent": "bench", "action": "touch"},
        {"id": "right", "agent": "bench", "action": "touch"},
        {"id": "join", "agent": "bench", "action": "touch", "needs": ["left", "right"]}]}


def run_ops(url: str, worker_id: str, stop: threading.Event) -> None:
    from smallhold.apps.ops import APP
    from smallhold.apps.ops.config import OpsConfig
    from smallhold.apps.ops.engine import Worker, running
    from smallhold.apps.ops.state import OpsState
    from smallhold.apps.ops.templates import parse
    from smallhold.apps.ops.tools import Call, Services, Tool, Toolbox
    from smallhold.kit import Home, Overrides
    from smallhold.runtime.backends.scripted import ScriptedBackend

    def touch(call: Call, services: Services) -> dict[str, Any]:
        record(call.workflow, call.step)
        return {"by": call.step}

    tools = Toolbox([Tool(agent="bench", name="touch", summary="record the call",
                          risk="read", scope="bench:use", run=touch)])
    templates = [parse(ops_template(), "bench-diamond", tools.actions())]
    # a scripted model: a rule matches every event, so the model is never asked, but a
    # worker must not go looking for a real one
    with Home.open(app=APP, overrides=Overrides(backend=ScriptedBackend(["ok"]))) as home:
        home.settings.durable.url = url
        state = OpsState(url)
        try:
            worker = Worker(home, OpsConfig(), state, executor=worker_id, tools=tools,
                            templates=templates)
            with running(worker):
                print(f"ready {worker_id}", flush=True)
                stop.wait()
        finally:
            state.close()


def run_bare(url: str, worker_id: str, stop: threading.Event) -> None:
    from smallhold.apps.ops.engine import POLL, WORKER_CONCURRENCY
    from smallhold.durable import launched
    from smallhold.kit import Home

    with Home.open() as home:
        home.settings.durable.url = url
        with launched(home.paths, home.settings, executor_id=worker_id):
            DBOS.register_queue(BARE_QUEUE, worker_concurrency=WORKER_CONCURRENCY,
                                polling_interval_sec=POLL)
            print(f"ready {worker_id}", flush=True)
            stop.wait()


def main() -> None:
    global RECORD
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("kind", choices=("ops", "bare"))
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--worker-id", required=True)
    parser.add_argument("--record", type=Path, required=True)
    args = parser.parse_args()
    RECORD = Recorder(args.record)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    code = 0
    try:
        (run_ops if args.kind == "ops" else run_bare)(args.database_url, args.worker_id, stop)
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
