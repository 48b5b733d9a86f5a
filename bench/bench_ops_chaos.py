"""The chaos part of ``bench_ops.py``: ops as a user deploys it, with things going wrong.

Processes, all on one fresh PostgreSQL database (dropped at the end):

- ``smallhold ops serve --no-worker``: the webhook receiver (verifies, records, queues);
- ``smallhold ops worker --worker-id w1`` and ``w2``: the workers;
- this process: the fake Slack (``FakeServices``), the senders, the fault injector.

Events: ``n`` distinct deliveries, alternately an Alertmanager group (its own ``groupKey``
and ``startsAt``, ``Authorization: Bearer``) and a GitHub ``issues`` event (its own
``X-GitHub-Delivery``, ``X-Hub-Signature-256``), signed by ``../shared/data/ops/sign.py``.
10 % of them are delivered a second time, byte for byte, 1 to 150 deliveries later, as a
sender's retry would be. A delivery answered with a 5xx or not at all is retried by the
sender (5 tries, as Alertmanager and GitHub do), so a refusal is visible and not a loss
of ours.

Each event matches a site template of three ``slack_post`` steps, ``page`` and ``notify``
side by side then ``summary``. While the run goes, about 20 % of the requests Slack gets
are answered ``500 fatal_error`` (``fail_next``, topped up as requests arrive so the
failures are spread out rather than bunched). When 40 % of the expected messages have been
posted, ``w1`` is killed with SIGKILL and not restarted: ``w2`` must take its runs over
(after ops's ``DEAD_AFTER`` of silence) and finish everything.

Measured: workflows lost (an accepted event whose workflow never reached DBOS's SUCCESS:
never queued, still pending or enqueued when the run gave up, ERROR, CANCELLED; a run
that ended ``escalated``, its retries spent and a person told, is counted apart as an
escalation, with the step and error that caused it), side effects duplicated (Slack messages per
(workflow, step) beyond one in ``fakes.sent("slack")``; and, stricter, posts that reached
Slack twice and were only merged by the fake's ``client_msg_id`` memory, which real Slack
does not promise), time to drain (first delivery to the last run ended), retries (Slack
requests that failed), escalations, breaker openings, takeovers.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import random
import signal
import socket
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from _common import REPO_DIR, fmt, log, md_table
from bench_ops_infra import (
    TERMINAL,
    Cleanup,
    child_env,
    percentile,
    python,
    sql_engine,
    tail,
    wait_for_text,
)

DATA = REPO_DIR.parent / "shared" / "data" / "ops"
AM_TOKEN = "bench-am-bearer-token"
GH_SECRET = "bench-github-webhook-secret"
FAULT_SHARE = 0.20
DUP_SHARE = 0.10
KILL_AT = 0.40  # share of the expected Slack messages posted when w1 is killed
SENDERS = 4
STEPS = ("page", "notify", "summary")
TEMPLATE = """\
name: chaos
description: three Slack posts per event, two side by side, then a summary
match:
  - source: alertmanager
  - source: github
steps:
  - id: page
    agent: communication
    action: slack_post
    with: {text: "page {{ event.key }}: {{ event.summary }}"}
  - id: notify
    agent: communication
    action: slack_post
    with: {text: "notify {{ event.key }}"}
  - id: summary
    agent: communication
    action: slack_post
    needs: [page, notify]
    with: {text: "summary {{ event.key }} after {{ steps.page.ts }} and {{ steps.notify.ts }}"}
"""
# realistic: ops's default first wait and breaker threshold; waits capped at 5 s and a
# 10 s breaker reset so a run drains in minutes, not hours
RESILIENCE = {"attempts": 5, "backoff": 0.5, "backoff_max": 5.0, "breaker_failures": 5,
              "breaker_reset": 10.0}


def signer() -> Any:
    spec = importlib.util.spec_from_file_location("ops_sign", DATA / "sign.py")
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {DATA / 'sign.py'}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Delivery:
    event: int  # which distinct event
    copy: int  # 1: the first delivery, 2: the duplicate
    source: str
    body: bytes
    headers: dict[str, str]


def build_events(n: int, rng: random.Random) -> list[Delivery]:
    """``n`` distinct signed deliveries; bodies are fixed bytes, so a duplicate is exact."""
    sign = signer()
    sample = json.loads((DATA / "alertmanager_firing.json").read_bytes())
    out = []
    for i in range(n):
        if i % 2 == 0:
            body_obj = copy.deepcopy(sample)
            body_obj["groupKey"] = f"{sample['groupKey']}:bench-{i}"
            for j, alert in enumerate(body_obj["alerts"]):
                alert["startsAt"] = f"2026-12-01T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:" \
                                    f"{i % 60:02d}.{j:03d}Z"
                alert["labels"]["instance"] = f"10.0.{i // 250}.{i % 250}"
            body = json.dumps(body_obj, separators=(",", ":")).encode()
            headers = sign.sign_headers("alertmanager", AM_TOKEN, body)
            out.append(Delivery(i, 1, "alertmanager", body, headers))
        else:
            payload = {"action": "opened",
                       "issue": {"number": i, "title": f"Checkout fails for order {i}",
                                 "body": "502 from /api/checkout since the last deploy",
                                 "html_url": f"https://github.com/acme/shop/issues/{i}"},
                       "repository": {"full_name": "acme/shop",
                                      "html_url": "https://github.com/acme/shop"},
                       "sender": {"login": "octocat"}}
            body = json.dumps(payload).encode()
            delivery = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            headers = sign.sign_headers("github", GH_SECRET, body, event="issues",
                                        delivery_id=delivery)
            out.append(Delivery(i, 1, "github", body, headers))
    return out


def schedule(events: list[Delivery], rng: random.Random) -> list[Delivery]:
    """Every event once, in order, plus a second, identical delivery of ``DUP_SHARE`` of
    them 1 to 150 places later."""
    order: list[Delivery] = list(events)
    for i in sorted(rng.sample(range(len(events)), round(len(events) * DUP_SHARE)),
                    reverse=True):
        first = events[i]
        where = min(len(order), order.index(first) + rng.randint(1, 150) + 1)
        order.insert(where, Delivery(first.event, 2, first.source, first.body,
                                     first.headers))
    return order


# -- the moving parts -----------------------------------------------------------------------

class FaultInjector(threading.Thread):
    """Keeps about ``share`` of Slack's requests failing with a 500: whenever the failures
    so far fall below the share, it queues one or two more with ``fail_next``, so they are
    spread over the run instead of hitting one burst of requests."""

    def __init__(self, fakes: Any, share: float) -> None:
        super().__init__(name="fault-injector", daemon=True)
        self.fakes = fakes
        self.share = share
        self.injected = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.1):
            requests = self.fakes.requests("slack")
            faulted = sum(1 for r in requests if r["fault"])
            if self.injected - faulted > 0:
                continue  # one is still waiting for a request
            short = self.share * (len(requests) + 1) - faulted
            if short > 0:
                count = min(2, max(1, int(short)))
                self.fakes.fail_next("slack", count, status=500)
                self.injected += count


class Senders:
    """Posts the deliveries in order from a few threads, retrying 5xx and connection
    errors like a real sender; keeps every answer."""

    def __init__(self, url: str, deliveries: list[Delivery]) -> None:
        self.url = url
        self.deliveries = deliveries
        self.answers: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.local = threading.local()
        self.first: float | None = None
        self.last: float | None = None
        self.thread = threading.Thread(target=self._run, name="senders", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _client(self) -> httpx.Client:
        if not hasattr(self.local, "client"):
            self.local.client = httpx.Client(timeout=30)
        client: httpx.Client = self.local.client
        return client

    def _send(self, d: Delivery) -> None:
        path = f"/hooks/{d.source}"
        answer: dict[str, Any] = {"event": d.event, "copy": d.copy, "tries": 0}
        began = time.time()
        with self.lock:
            self.first = self.first or began
        for attempt in range(5):
            answer["tries"] = attempt + 1
            try:
                r = self._client().post(self.url + path, content=d.body, headers=d.headers)
                answer.update(status=r.status_code, body=r.json() if r.content else None)
                if r.status_code < 500:
                    break
            except (httpx.HTTPError, ValueError) as exc:
                answer.update(status=None, error=f"{type(exc).__name__}: {exc}")
            time.sleep(0.5 * 2 ** attempt)
        answer["seconds"] = time.time() - began
        with self.lock:
            self.answers.append(answer)
            self.last = time.time()

    def _run(self) -> None:
        with ThreadPoolExecutor(SENDERS) as pool:
            list(pool.map(self._send, self.deliveries))

    def done(self) -> bool:
        return not self.thread.is_alive()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def toml(value: Any) -> str:
    return json.dumps(value)


def write_site(home: Path, fakes: Any, port: int) -> None:
    """ops.toml and the site template in the fresh profile."""
    from smallhold.paths import resolve_paths

    templates = home / "templates"
    templates.mkdir(parents=True, exist_ok=True)
    (templates / "chaos.yaml").write_text(TEMPLATE, encoding="utf-8")
    profile = resolve_paths({"SMALLHOLD_HOME": str(home)}).profile_dir("default")
    profile.mkdir(parents=True, exist_ok=True)
    slack = fakes.integrations()["slack"]
    (profile / "ops.toml").write_text(
        f"[receiver]\nport = {port}\n\n"
        "[sources.alertmanager]\nsecrets = [\"env:BENCH_OPS_AM_TOKEN\"]\n\n"
        "[sources.github]\nsecrets = [\"env:BENCH_OPS_GH_SECRET\"]\n\n"
        "[integrations.slack]\n" + "".join(f"{k} = {toml(v)}\n" for k, v in slack.items())
        + "\n[resilience]\n" + "".join(f"{k} = {toml(v)}\n" for k, v in RESILIENCE.items())
        + f"\n[workflows]\ntemplates = [{toml(str(templates))}]\n", encoding="utf-8")


def count_ended(engine: Any, keys: set[str]) -> int:
    from sqlalchemy import text

    if not keys:
        return 0
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT workflow_uuid, status FROM dbos.workflow_status "
                                 "WHERE queue_name = 'ops'")).all()
    return sum(1 for key, status in rows if key in keys and status in TERMINAL)


# -- the run --------------------------------------------------------------------------------

def chaos(cleanup: Cleanup, pg_url: str, n: int, *, quick: bool) -> dict[str, Any]:
    from smallhold.apps.ops.fakes import FakeServices

    if not (DATA / "sign.py").is_file():
        raise SystemExit(f"{DATA} is not here: the chaos run needs sign.py and the samples")
    rng = random.Random(20261206)
    deliveries = schedule(build_events(n, rng), rng)
    home = cleanup.tempdir("bench-ops-chaos-")
    name, url = cleanup.database()
    fakes = FakeServices.start()
    cleanup.add("fake services", fakes.stop)
    port = free_port()
    write_site(home, fakes, port)
    env = child_env(home, **fakes.env(), BENCH_OPS_AM_TOKEN=AM_TOKEN,
                    BENCH_OPS_GH_SECRET=GH_SECRET)
    cli = [python(), "-m", "smallhold.cli", "ops"]
    timeout = 600.0 if quick else 1200.0
    began = time.time()
    procs = {}
    for wid in ("w1", "w2"):  # one after the other: a fresh database is migrated once
        procs[wid] = cleanup.process(wid, [*cli, "worker", "--worker-id", wid,
                                           "--database-url", url],
                                     env=env, log_path=home / f"{wid}.log")
        wait_for_text(home / f"{wid}.log", "running", procs[wid], wid)
    procs["receiver"] = cleanup.process("receiver", [*cli, "serve", "--no-worker", "--port",
                                                     str(port), "--database-url", url],
                                        env=env, log_path=home / "receiver.log")
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or procs["receiver"].poll() is not None:
            raise RuntimeError("the receiver did not start:\n" + tail(home / "receiver.log"))
        time.sleep(0.2)
    log(f"chaos: {n} events, {len(deliveries) - n} duplicate deliveries, 2 workers on "
        f"{name}; Slack fails ~{FAULT_SHARE:.0%} of requests")

    injector = FaultInjector(fakes, FAULT_SHARE)
    senders = Senders(base, deliveries)
    kill: dict[str, Any] = {}
    progress = time.monotonic()
    with sql_engine(url) as engine:
        injector.start()
        senders.start()
        try:
            expected = KILL_AT * len(STEPS) * n
            while True:
                posted = len(fakes.sent("slack"))
                if not kill and posted >= expected:
                    kill = kill_worker(procs["w1"], engine, posted, senders.first or began)
                    log(f"chaos: w1 killed (SIGKILL) after {posted} messages, "
                        f"{kill['pending_runs']} of its runs in flight")
                if senders.done() and kill:
                    keys = accepted_keys(senders.answers)
                    ended = count_ended(engine, keys)
                    if ended >= len(keys):
                        break
                if time.monotonic() - progress > 10:
                    progress = time.monotonic()
                    log(f"chaos: {posted} messages posted, {len(senders.answers)} of "
                        f"{len(deliveries)} deliveries answered")
                if time.time() - began > timeout:
                    log(f"chaos: not drained after {timeout:.0f} s; measuring what is there")
                    break
                time.sleep(0.25)
        finally:
            injector.stop.set()
        drained_seen = time.time()
        try:
            health = httpx.get(f"{base}/health", timeout=5).json()
        except (httpx.HTTPError, ValueError):
            health = {}
        result = measure(url, engine, fakes, senders, injector, kill, began, drained_seen)
    result.update({"events": n, "deliveries": len(deliveries),
                   "duplicate_deliveries": len(deliveries) - n, "receiver_counts":
                   health.get("counts"), "resilience": RESILIENCE, "timeout": timeout,
                   "logs": {p.name: scan_log(p) for p in sorted(home.glob("*.log"))}})
    for label in ("process receiver", "process w2", "process w1", "fake services",
                  f"database {name}", f"dir {home}"):
        cleanup.release(label)
    log(f"chaos: lost {result['lost']}, duplicated {result['duplicated_messages']}, drained "
        f"in {fmt(result['drain_seconds'], 1)} s")
    return result


def kill_worker(proc: Any, engine: Any, posted: int, first: float) -> dict[str, Any]:
    """SIGKILL, then what it left PENDING (runs, and step workflows) at that moment."""
    from sqlalchemy import text

    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    at = time.time()
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT queue_name, COUNT(*) FROM dbos.workflow_status "
                                 "WHERE executor_id = 'w1' AND status = 'PENDING' "
                                 "GROUP BY queue_name")).all()
    runs = sum(int(c) for q, c in rows if q == "ops")
    children = sum(int(c) for q, c in rows if q != "ops")
    return {"at": at, "after_seconds": at - first, "messages_posted": posted,
            "pending_runs": runs, "pending_children": children}


def accepted_keys(answers: list[dict[str, Any]]) -> set[str]:
    keys = set()
    for a in answers:
        if a.get("status") == 200 and isinstance(a.get("body"), dict):
            keys.update(e["workflow"] for e in a["body"].get("events", []))
    return keys


def scan_log(path: Path) -> dict[str, Any]:
    text = path.read_text(errors="replace")
    return {"tracebacks": text.count("Traceback"), "retry_lines": text.count("retrying in"),
            "contention": text.count("Contention detected"),
            "errors": sum(1 for line in text.splitlines() if " ERROR " in line
                          or line.startswith("ERROR")),
            "tail": text[-1500:] if "Traceback" in text else ""}


def measure(url: str, engine: Any, fakes: Any, senders: Senders, injector: FaultInjector,
            kill: dict[str, Any], began: float, drained_seen: float) -> dict[str, Any]:
    """Everything the run left: DBOS's statuses and outcomes, Slack's messages and
    requests, ops's audit log and ledger, the senders' answers."""
    from sqlalchemy import text

    from smallhold.apps.ops.state import OpsState
    from smallhold.durable import client

    answers = senders.answers
    keys = accepted_keys(answers)
    by_event: dict[int, list[dict[str, Any]]] = {}
    for a in answers:
        by_event.setdefault(a["event"], []).append(a)
    never_accepted = sum(1 for got in by_event.values()
                         if not any(a.get("status") == 200 for a in got))
    # an event delivered twice must start exactly one run: one answer "new", one
    # "duplicate" (whichever copy got there first: four senders run side by side)
    def news(got: list[dict[str, Any]]) -> int:
        return sum(1 for a in got if a.get("status") == 200 for e in
                   (a.get("body") or {}).get("events", []) if not e.get("duplicate"))

    twice = [got for got in by_event.values() if len(got) > 1]
    dup_answered = sum(1 for got in twice if news(got) == 1)
    started_twice = sum(1 for got in by_event.values() if news(got) > 1)
    refused = Counter(str(a.get("status")) for a in answers if a.get("status") != 200)
    retried_deliveries = sum(1 for a in answers if a["tries"] > 1)

    dbos = client(url)
    try:
        rows = dbos.list_workflows(queue_name="ops", load_input=False, load_output=True)
    finally:
        dbos.destroy()
    status = {r.workflow_id: r for r in rows}
    outcomes: Counter[str] = Counter()
    lost_detail: Counter[str] = Counter()
    ends = []
    for key in keys:
        row = status.get(key)
        if row is None:
            lost_detail["never queued"] += 1
            continue
        outcome = row.output.get("status") if isinstance(row.output, dict) else None
        if row.status == "SUCCESS":
            outcomes[str(outcome)] += 1
            if row.completed_at:
                ends.append(row.completed_at / 1000)
        if row.status != "SUCCESS":
            lost_detail[row.status.lower()] += 1
    executors = Counter(r.executor_id for r in rows if r.workflow_id in keys)

    sent = fakes.sent("slack")
    requests = fakes.requests("slack")
    per_step: Counter[tuple[str, str]] = Counter()
    reached_twice = 0
    for m in sent:
        payload = (m.get("metadata") or {}).get("event_payload") or {}
        per_step[(str(payload.get("workflow")), str(payload.get("step")))] += 1
        reached_twice += max(0, int(m.get("deliveries", 1)) - 1)
    duplicated = sum(c - 1 for c in per_step.values() if c > 1)
    done_keys = {k for k in keys if status.get(k) is not None and status[k].status == "SUCCESS"
                 and isinstance(status[k].output, dict) and status[k].output.get("status")
                 == "done"}
    missing = sum(1 for k in done_keys for s in STEPS if per_step[(k, s)] == 0)
    faulted = sum(1 for r in requests if r["fault"])
    # what independent failures at the measured share would give: a step escalates when
    # all its attempts fail
    share = faulted / len(requests) if requests else 0.0
    expected_escalations = len(keys) * len(STEPS) * share ** RESILIENCE["attempts"]

    state = OpsState(url)
    try:
        with state.engine.connect() as conn:
            audit = Counter({str(a): int(c) for a, c in conn.execute(text(
                "SELECT action, COUNT(*) FROM ops_audit GROUP BY action"))})
            ledger = int(conn.execute(text("SELECT COUNT(*) FROM ops_ledger")).scalar() or 0)
            recorded = {str(r[0]) for r in conn.execute(text("SELECT key FROM ops_events"))}
            escalations = [
                {"workflow": str(wf), "after_first_s": float(at) - (senders.first or began),
                 "executor": status[str(wf)].executor_id if str(wf) in status else None,
                 **{k: v for k, v in (json.loads(d) if isinstance(d, str) else d).items()
                    if k in ("step", "error", "kind")}}
                for at, wf, d in conn.execute(text(
                    "SELECT at, workflow, detail FROM ops_audit "
                    "WHERE action = 'workflow.escalated' ORDER BY seq"))]
            recoveries = [(float(at), {"by": str(actor),
                                       **(json.loads(d) if isinstance(d, str) else d)})
                          for at, actor, d in conn.execute(text(
                              "SELECT at, actor, detail FROM ops_audit "
                              "WHERE action = 'worker.recovered' ORDER BY seq"))]
        intact = state.verify_audit()
    finally:
        state.close()
    with engine.connect() as conn:
        recovery_attempts = Counter(int(r[0] or 0) for r in conn.execute(text(
            "SELECT recovery_attempts FROM dbos.workflow_status WHERE queue_name = 'ops'")))
    first = senders.first or began
    last_end = max(ends) if ends else float("nan")
    latencies = [a["seconds"] for a in answers if a.get("status") == 200]
    return {
        "accepted": len(keys), "never_accepted": never_accepted,
        "duplicates_answered_as_such": dup_answered, "events_started_twice": started_twice,
        "refused": dict(refused),
        "deliveries_retried": retried_deliveries,
        "delivery_p50_ms": percentile(latencies, 50) * 1000,
        "delivery_p95_ms": percentile(latencies, 95) * 1000,
        "sending_seconds": (senders.last or first) - first,
        "outcomes": dict(outcomes), "lost": sum(lost_detail.values()),
        "not_done": len(keys) - outcomes.get("done", 0), "escalations": escalations,
        "expected_escalations": expected_escalations,
        "lost_detail": dict(lost_detail), "executors": dict(executors),
        "recorded_not_queued": len(recorded - set(status)),
        "slack_messages": len(sent), "expected_messages": len(done_keys) * len(STEPS),
        "duplicated_messages": duplicated, "posts_reaching_slack_twice": reached_twice,
        "missing_messages": missing, "slack_requests": len(requests),
        "slack_failures": faulted,
        "failure_share": faulted / len(requests) if requests else float("nan"),
        "escalated": outcomes.get("escalated", 0), "audit": dict(audit),
        "audit_intact": intact[1] is None, "audit_entries": intact[0], "ledger_rows": ledger,
        "recovery_attempts": {str(k): v for k, v in sorted(recovery_attempts.items())},
        "kill": kill,
        "takeovers": [{"after_kill_s": at - kill.get("at", at), **detail}
                      for at, detail in recoveries],
        "drain_seconds": last_end - first, "drain_seen_seconds": drained_seen - first,
        "wf_per_s": len(ends) / (last_end - first) if ends else float("nan"),
    }


# -- report ---------------------------------------------------------------------------------

def render(c: dict[str, Any]) -> list[str]:
    kill = c.get("kill") or {}
    takeovers = c.get("takeovers") or []
    taken = "; ".join(f"{t.get('worker')} by {t.get('by', 'w2')} {fmt(t['after_kill_s'], 1)} s "
                      f"after the kill ({t.get('workflows')} workflows re-queued)"
                      for t in takeovers) or "none recorded"
    lost_goal = "met" if c["lost"] == 0 else "**not met**"
    dup_goal = "met" if c["duplicated_messages"] == 0 else "**not met**"
    rows = [
        ["distinct events / deliveries (duplicates)",
         f"{c['events']:,} / {c['deliveries']:,} ({c['duplicate_deliveries']})", ""],
        ["accepted events (workflows queued)", f"{c['accepted']:,}",
         f"{c['never_accepted']} never accepted; of the {c['duplicate_deliveries']} events "
         f"delivered twice, {c['duplicates_answered_as_such']} answered once new and once "
         f"duplicate; events that started two runs: {c.get('events_started_twice', '—')}; "
         f"receiver's counts {c.get('receiver_counts')}"],
        ["delivery latency p50 / p95 (receiver)",
         f"{fmt(c['delivery_p50_ms'], 0)} / {fmt(c['delivery_p95_ms'], 0)} ms",
         f"non-200 answers {c['refused'] or 'none'}; deliveries retried "
         f"{c['deliveries_retried']}"],
        ["**workflows lost** (goal 0)", f"**{c['lost']}**",
         f"{lost_goal}: accepted events whose run never reached SUCCESS"
         + (f" ({c['lost_detail']})" if c["lost_detail"] else "")],
        ["outcomes", ", ".join(f"{k} {v}" for k, v in sorted(c["outcomes"].items())),
         "escalated: a step's retries spent, the run stopped and a person told "
         f"({fmt(c['expected_escalations'], 1)} expected from independent failures at this "
         "share)"],
        ["**side effects duplicated** (goal 0)", f"**{c['duplicated_messages']}**",
         f"{dup_goal}: Slack messages per (workflow, step) beyond one, in "
         f"`fakes.sent(\"slack\")`"],
        ["posts that reached Slack twice", str(c["posts_reaching_slack_twice"]),
         "the same step posted again (same `client_msg_id`), merged only by the fake's "
         "dedup memory"],
        ["Slack messages / expected", f"{c['slack_messages']:,} / {c['expected_messages']:,}",
         f"{c['missing_messages']} missing from runs that ended done"],
        ["injected Slack failures (retries)", f"{c['slack_failures']:,} of "
         f"{c['slack_requests']:,} requests ({c['failure_share'] * 100:.1f} %)",
         "each a 500 `fatal_error`, retried with backoff"],
        ["escalations / breaker openings",
         f"{c['escalated']} / {c['audit'].get('breaker.open', 0)}",
         "; ".join(f"{e.get('step')} at {fmt(e['after_first_s'], 0)} s on {e['executor']}"
                   for e in c["escalations"][:6]) or "none"],
        ["worker killed", f"w1 {fmt(kill.get('after_seconds'), 1)} s after the first delivery",
         f"after {kill.get('messages_posted')} messages; {kill.get('pending_runs')} runs "
         f"(+{kill.get('pending_children')} step workflows) pending on it"],
        ["takeover", taken, f"runs last executed by {c['executors']}"],
        ["**time to drain**", f"**{fmt(c['drain_seconds'], 1)} s**",
         f"first delivery → last run ended; {fmt(c['wf_per_s'], 1)} workflows/s overall; "
         f"sending took {fmt(c['sending_seconds'], 1)} s"],
        ["audit log", f"{c['audit_entries']:,} entries, "
         f"{'intact' if c['audit_intact'] else '**broken**'}",
         f"ledger rows {c['ledger_rows']:,}; recovery attempts {c['recovery_attempts']}"],
    ]
    problems = {k: v for k, v in c["logs"].items() if v["tracebacks"]}
    lines = [
        f"{c['events']:,} signed events (Alertmanager bearer token / GitHub HMAC, alternately) "
        f"over HTTP to `smallhold ops serve --no-worker`, {c['duplicate_deliveries']} of them "
        "delivered twice; two `smallhold ops worker`s on a fresh PostgreSQL database; each run "
        "posts three Slack messages (`page` ∥ `notify` → `summary`) to the fake Slack, which "
        f"fails ~{FAULT_SHARE:.0%} of requests; w1 SIGKILLed at {KILL_AT:.0%} of the "
        "messages and not restarted. Resilience (ops.toml): "
        + ", ".join(f"{k} {v}" for k, v in c["resilience"].items()) + ".",
        "",
        md_table(["", "measured", "detail"], rows, "lrl"),
        "",
    ]
    if problems:
        lines += ["Tracebacks in the logs: " + ", ".join(
            f"{k} {v['tracebacks']}" for k, v in problems.items()) + ".", ""]
    return lines


__all__ = ["chaos", "render"]
