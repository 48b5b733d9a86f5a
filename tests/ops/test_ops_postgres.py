"""Two workers on one PostgreSQL database, one killed with SIGKILL while it holds runs: the
other notices its heartbeat has stopped, takes its runs over, and every run finishes with
each Slack message sent exactly once. Plus ``OpsState`` shared by two processes' worth of
objects: one audit chain, one ledger, and a dead worker claimed by exactly one live one.

Each test gets a database of its own on the local server (``CREATE DATABASE ops_<hex>``),
so runs never see each other's workflows; it is dropped at the end. Skipped only when
nothing listens on 127.0.0.1:5432 (CI has PostgreSQL there)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from ops_fixtures import PG_URL, postgres_up, smallhold_json, wait_until

from smallhold import durable
from smallhold.apps.ops.fakes import FakeServices
from smallhold.apps.ops.state import OpsState
from smallhold.paths import Paths

RUNS = 6
STEPS = ("s1", "s2", "s3", "s4")
LATENCY = 0.8  # seconds per Slack post: a run takes ~3 s, time enough to die in the middle
CHAINED = """\
name: chained
description: four Slack messages in a row, each naming its run and step
match:
  - source: alertmanager
steps:
  - id: s1
    agent: communication
    action: slack_post
    with: {text: "s1 {{ event.key }}"}
  - id: s2
    agent: communication
    action: slack_post
    needs: [s1]
    with: {text: "s2 {{ event.key }} after {{ steps.s1.ts }}"}
  - id: s3
    agent: communication
    action: slack_post
    needs: [s2]
    with: {text: "s3 {{ event.key }}"}
  - id: s4
    agent: communication
    action: slack_post
    needs: [s3]
    with: {text: "s4 {{ event.key }}"}
"""


@pytest.fixture
def database() -> Iterator[str]:
    """A fresh database on the local server, dropped (connections and all) afterwards."""
    if not postgres_up():
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    import psycopg

    name = f"ops_{uuid.uuid4().hex}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def fakes() -> Iterator[FakeServices]:
    with FakeServices.start() as running:
        yield running


def alert(number: int) -> dict[str, Any]:
    """An Alertmanager notification of its own group (so its own dedup key and run)."""
    labels = {"alertname": "DiskFull", "instance": f"db-{number}", "severity": "major"}
    return {"receiver": "ops", "status": "firing", "version": "4",
            "groupKey": f'{{}}:{{instance="db-{number}"}}', "groupLabels": labels,
            "commonLabels": labels, "commonAnnotations": {}, "externalURL": "http://am:9093",
            "alerts": [{"status": "firing", "labels": labels,
                        "annotations": {"summary": f"disk of db-{number} is full"},
                        "startsAt": "2024-05-01T10:00:00Z",
                        "endsAt": "0001-01-01T00:00:00Z"}]}


def runs(dbos_client: Any) -> dict[str, Any]:
    """The ops runs (top-level workflows, not their steps' children) by id."""
    return {row.workflow_id: row for row in dbos_client.list_workflows(queue_name="ops")}


@pytest.mark.timeout(240)
def test_a_dead_workers_runs_are_taken_over_by_its_peer(
        paths: Paths, fakes: FakeServices, tmp_path: Path, database: str) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "chained.yaml").write_text(CHAINED, encoding="utf-8")
    profile = paths.profile_dir("default")
    profile.mkdir(parents=True, exist_ok=True)
    slack = fakes.integrations()["slack"]
    (profile / "ops.toml").write_text(
        "[integrations.slack]\n"
        + "".join(f"{k} = {json.dumps(v)}\n" for k, v in slack.items())
        + f"\n[workflows]\ntemplates = [{json.dumps(str(templates))}]\n", encoding="utf-8")
    env = {**os.environ, **fakes.env(),
           "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    fakes.set_latency("slack", LATENCY)
    logs = {name: tmp_path / f"{name}.log" for name in ("wa", "wb")}
    bodies = []
    for number in range(RUNS):
        body = tmp_path / f"alert-{number}.json"
        body.write_text(json.dumps(alert(number)), encoding="utf-8")
        bodies.append(body)

    started = time.monotonic()
    workers: dict[str, subprocess.Popen[bytes]] = {}
    submits: list[subprocess.Popen[str]] = []
    outputs: list[IO[bytes]] = []
    dbos_client = None
    try:
        for name, log in logs.items():
            outputs.append(log.open("ab"))
            workers[name] = subprocess.Popen(
                [sys.executable, "-m", "smallhold.cli", "ops", "worker", "--worker-id", name,
                 "--database-url", database], env=env, stdout=outputs[-1],
                stderr=subprocess.STDOUT)
        for name, log in logs.items():
            process = workers[name]

            def up(log: Path = log, process: subprocess.Popen[bytes] = process) -> bool:
                return b"running" in log.read_bytes() or process.poll() is not None

            wait_until(up, 60, f"worker {name}", list(logs.values()))
            assert process.poll() is None, log.read_text(errors="replace")
        # queued as a site would, from the command line, all at once
        submits += [subprocess.Popen(
            [sys.executable, "-m", "smallhold.cli", "ops", "submit", str(body), "--source",
             "alertmanager", "--database-url", database, "--json"], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for body in bodies]
        keys: list[str] = []
        for submitted in submits:
            out, err = submitted.communicate(timeout=120)
            assert submitted.returncode == 0, err
            [entry] = json.loads(out)
            assert entry["duplicate"] is False
            keys.append(entry["workflow"])
        assert len(set(keys)) == RUNS

        dbos_client = durable.client(database)

        def wa_holds_a_run() -> bool:
            return len(fakes.sent("slack")) >= 2 and any(
                row.status == "PENDING" and row.executor_id == "wa"
                for row in runs(dbos_client).values())

        wait_until(wa_holds_a_run, 60, "wa to hold a run while messages arrive",
                   list(logs.values()))
        workers["wa"].send_signal(signal.SIGKILL)
        workers["wa"].wait(10)
        killed_at = time.monotonic()
        # what wa held when it died (a run may have ended between the look and the kill;
        # nobody touches wa's runs now until wb declares it dead, 15 s from now)
        held = [wid for wid, row in runs(dbos_client).items()
                if row.status == "PENDING" and row.executor_id == "wa"]
        assert held, "wa died holding nothing"
        assert len(fakes.sent("slack")) < RUNS * len(STEPS)  # really killed in the middle

        def all_done() -> bool:
            found = runs(dbos_client)
            return len(found) == RUNS and all(r.status == "SUCCESS" for r in found.values())

        wait_until(all_done, 90, "every run to finish", list(logs.values()))
        recovered_after = time.monotonic() - killed_at
        final = runs(dbos_client)
        assert workers["wb"].poll() is None, logs["wb"].read_text(errors="replace")
    finally:
        started_here: list[subprocess.Popen[Any]] = [*workers.values(), *submits]
        for process in started_here:
            if process.poll() is None:
                process.terminate()
        for process in started_here:
            try:
                process.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate(timeout=10)
        for output in outputs:
            output.close()
        if dbos_client is not None:
            dbos_client.destroy()

    for wid, row in final.items():
        assert row.output["status"] == "done", (wid, row.output)
        assert row.output["steps"] == dict.fromkeys(STEPS, "ok"), (wid, row.output)
    for wid in held:  # wa's runs finished on wb
        assert final[wid].executor_id == "wb", (wid, final[wid].executor_id)

    sent = fakes.sent("slack")
    texts = [m["text"] for m in sent]
    assert len(texts) == RUNS * len(STEPS) and len(set(texts)) == len(texts), texts
    for key in keys:
        for step in STEPS:
            assert sum(t.startswith(f"{step} {key}") for t in texts) == 1, (key, step, texts)

    state = OpsState(database)
    try:
        recovered = [e for e in state.audit_entries() if e.action == "worker.recovered"]
        done = [e for e in state.audit_entries() if e.action == "workflow.done"]
    finally:
        state.close()
    assert [(e.actor, e.detail["worker"]) for e in recovered] == [("wb", "wa")], recovered
    assert recovered[0].detail["workflows"] >= len(held)
    assert sorted(str(e.workflow) for e in done) == sorted(keys)
    assert smallhold_json(env, "ops", "audit", "--verify", "--database-url", database)["intact"]
    shown = smallhold_json(env, "ops", "workflows", "show", held[0], "--database-url", database)
    assert shown["status"] == "success" and shown["result"]["status"] == "done"
    assert sorted(s["step"] for s in shown["steps"]) == list(STEPS)
    print(f"\n{len(held)} of wa's runs recovered by wb {recovered_after:.1f} s after the "
          f"kill; {time.monotonic() - started:.1f} s in all; "
          f"{sum(m['deliveries'] for m in sent) - len(sent)} posts deduplicated by Slack")


def test_state_objects_on_one_database_share_the_audit_chain_ledger_and_dead_workers(
        database: str) -> None:
    # four at once on the new database, as workers starting together: all make it
    made: list[OpsState] = []
    errors: list[BaseException] = []
    together = threading.Barrier(4, timeout=20)

    def make() -> None:
        together.wait()
        try:
            made.append(OpsState(database))
        except Exception as exc:  # reported below, with the others'
            errors.append(exc)

    makers = [threading.Thread(target=make) for _ in range(4)]
    for thread in makers:
        thread.start()
    for thread in makers:
        thread.join(60)
    for extra in made[2:]:
        extra.close()
    assert not errors, errors
    first, second = made[0], made[1]
    try:
        # the audit chain: interleaved writers, from threads, one chain both read
        def write(state: OpsState, actor: str) -> None:
            for number in range(15):
                state.audit(actor, "test.wrote", f"wf-{number}", n=number)

        writers = [threading.Thread(target=write, args=(s, a))
                   for s, a in ((first, "one"), (second, "two"))]
        for thread in writers:
            thread.start()
        for thread in writers:
            thread.join(60)
        seen = [(e.seq, e.digest) for e in first.audit_entries()]
        assert seen == [(e.seq, e.digest) for e in second.audit_entries()]
        assert [s for s, _ in seen] == list(range(1, 31))
        assert first.verify_audit() == (30, None) and second.verify_audit() == (30, None)

        # the ledger: a side effect recorded by one is done for the other; first one wins
        assert second.done("wf-1/post") is None
        first.record("wf-1/post", {"ts": "1.0"})
        second.record("wf-1/post", {"ts": "2.0"})
        assert second.done("wf-1/post") == first.done("wf-1/post") == {"ts": "1.0"}

        # dead workers: each claimed by exactly one of two racing claimants
        dead = [f"dead-{n}" for n in range(12)]
        for name in dead:
            first.heartbeat(name)
        first.heartbeat("alive")
        time.sleep(0.3)
        second.heartbeat("alive")  # beat since: not dead
        start = threading.Barrier(2, timeout=20)
        claims: dict[str, list[str]] = {}

        def claim(state: OpsState, me: str) -> None:
            start.wait()
            claims[me] = state.claim_dead(me, 0.2)

        racers = [threading.Thread(target=claim, args=(s, m))
                  for s, m in ((first, "one"), (second, "two"))]
        for thread in racers:
            thread.start()
        for thread in racers:
            thread.join(60)
        assert sorted(claims["one"] + claims["two"]) == sorted(dead), claims
        assert not set(claims["one"]) & set(claims["two"])
        assert first.claim_dead("three", 0.2) == []  # claimed already: nobody else gets it
        by = {w["executor"]: w["recovered_by"] for w in second.workers()}
        assert by["alive"] is None
        assert all(by[name] in ("one", "two") for name in dead)

        # a claimed worker that comes back beats again and is no longer taken over
        first.heartbeat("dead-0")
        assert {w["executor"]: w["recovered_by"] for w in second.workers()}["dead-0"] is None
    finally:
        first.close()
        second.close()
