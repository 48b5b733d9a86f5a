"""ops against bare DBOS (throughput, event-to-start latency) and a chaos run, into BENCHMARKS.md.

Two parts, each written to ``bench/results/bench_ops.json`` (``bench_ops_quick.json`` with
``--quick``; ``bench_ops_scratch.json`` with ``--no-write``, which leaves BENCHMARKS.md alone)
and to the ``## ops`` section of BENCHMARKS.md as soon as it finishes. ``--resume`` skips the
parts already saved for the same settings; ``--render-only [--notes FILE]`` rewrites the
section from the saved numbers without running anything:

1. **throughput**: events through ops (``Client.submit`` onto the ``ops`` queue, a worker
   plans and runs a three-step DAG, ``left`` and ``right`` side by side then ``join``, each
   step a local tool that only records when it started) against a bare ``@DBOS.workflow``
   running the same DAG as child workflows with one ``@DBOS.step`` each, on a queue with
   ops's worker concurrency and polling interval (see ``bench_ops_worker.py``). Same
   database kind, same worker processes, same submitting client, measured in the same
   run, alternating which goes first. On SQLite (a fresh profile file) with one worker,
   and on PostgreSQL (a fresh database per trial, dropped after) with two workers.
   A **burst** of N events gives workflows/s (N over first enqueue to last completion) and
   the latency under saturation; then N/2 events **paced** at half of ops's burst rate
   give the event-to-start latency of an unsaturated system (enqueue -> first DAG step
   starting). Under a burst, latency is mostly the queue's length over the rate, so the
   paced number is the one that says what a run waits for.
2. **chaos** (``bench_ops_chaos.py``): signed deliveries over HTTP to ``smallhold ops serve
   --no-worker``, 10 % delivered twice, two ``smallhold ops worker`` processes on
   PostgreSQL posting to the fake Slack with ~20 % of its requests failing with a 500, one
   worker SIGKILLed mid-run: workflows lost, side effects duplicated, time to drain.

Run from the repository root (progress on stderr)::

    .venv/bin/python bench/bench_ops.py            # 300 events x 4 rounds, chaos 1,000
    .venv/bin/python bench/bench_ops.py --quick    # 60 events x 1 round, chaos 200
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import _common as common
from _common import fmt, log, md_table
from bench_ops_infra import (
    BARE_QUEUE,
    BARE_WORKFLOW,
    DEFAULT_PG,
    TERMINAL,
    WORKER_SCRIPT,
    Cleanup,
    child_env,
    percentile,
    profile_sqlite_url,
    python,
    sql_engine,
    status_table,
    wait_ready,
)

RESULTS = common.RESULTS_DIR / "bench_ops.json"  # --quick: bench_ops_quick.json
SCRATCH = common.RESULTS_DIR / "bench_ops_scratch.json"  # --no-write: trial runs
BENCHMARKS = common.REPO_DIR / "BENCHMARKS.md"
SECTION = "## ops"
GOAL_OVERHEAD = 0.20
PACED_SHARE = 0.5  # paced phase: this share of ops's burst rate (both contenders alike)


# -- submitting -----------------------------------------------------------------------------

class Submitter:
    """The driver's side of a trial: a DBOS client that enqueues and never runs anything.
    ops's own ``Client.submit`` for ops; the same ``DBOSClient.enqueue`` for bare."""

    def __init__(self, kind: str, url: str) -> None:
        self.kind = kind
        if kind == "ops":
            from smallhold.apps.ops.engine import Client

            self._ops: Any = Client(url)
        else:
            from smallhold.durable import client

            self._dbos: Any = client(url)

    def submit(self, event: Any) -> None:
        if self.kind == "ops":
            self._ops.submit(event)
        else:
            self._dbos.enqueue({"queue_name": BARE_QUEUE, "workflow_name": BARE_WORKFLOW,
                                "workflow_id": event.key}, event.model_dump(mode="json"))

    def close(self) -> None:
        if self.kind == "ops":
            self._ops.close()
        else:
            self._dbos.destroy()


def make_event(key: str, i: int) -> Any:
    from smallhold.apps.ops.models import Event

    return Event(source="alertmanager", type="alert.firing", key=key,
                 received_at=datetime.now(UTC), summary=f"bench event {i}",
                 severity="warning", labels={"alertname": "Bench", "n": str(i)})


def wait_terminal(engine: Any, url: str, queue: str, prefix: str, n: int,
                  timeout: float) -> tuple[float, dict[str, int]]:
    """Poll (every 50 ms) until the ``n`` workflows of ``prefix`` on ``queue`` have all
    ended; the time they were first seen ended, and the count per status."""
    from sqlalchemy import text

    query = text(f"SELECT status, COUNT(*) FROM {status_table(url)} "
                 "WHERE queue_name = :q AND workflow_uuid LIKE :p GROUP BY status")
    deadline = time.monotonic() + timeout
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            counts = {row[0]: int(row[1]) for row in conn.execute(
                query, {"q": queue, "p": f"{prefix}-%"})}
        if sum(counts.get(s, 0) for s in TERMINAL) >= n:
            return time.time(), counts
        time.sleep(0.05)
    raise RuntimeError(f"{n} workflows did not end in {timeout:.0f} s: {counts}")


def read_records(folder: Path) -> dict[str, list[tuple[str, float]]]:
    """Every step start the workers recorded, by workflow."""
    found: dict[str, list[tuple[str, float]]] = {}
    for path in sorted(folder.glob("rec-*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                found.setdefault(row["wf"], []).append((row["step"], float(row["t"])))
    return found


def breakdown(engine: Any, url: str, queue: str, prefix: str,
              enqueued: dict[str, float]) -> dict[str, float]:
    """Where the event-to-start time goes: the wait in the queue (enqueue -> dequeued; on
    PostgreSQL only, SQLite keeps DBOS's timestamps in whole seconds) and, for ops, the
    plan step (its DBOS checkpoint times, milliseconds on both)."""
    from sqlalchemy import text

    schema = "" if url.startswith("sqlite") else "dbos."
    out: dict[str, float] = {}
    with engine.connect() as conn:
        if schema:
            waits = [float(started) / 1000 - enqueued[key] for key, started in conn.execute(
                text(f"SELECT workflow_uuid, started_at_epoch_ms FROM {schema}workflow_status "
                     "WHERE queue_name = :q AND workflow_uuid LIKE :p"),
                {"q": queue, "p": f"{prefix}-%"}) if started and key in enqueued]
            out.update(queue_wait_p50=percentile(waits, 50), queue_wait_p95=percentile(waits, 95))
        plans = [float(b - a) / 1000 for a, b in conn.execute(text(
            f"SELECT started_at_epoch_ms, completed_at_epoch_ms FROM {schema}operation_outputs "
            "WHERE function_name = 'OpsEngine.plan_step' AND workflow_uuid LIKE :p"),
            {"p": f"{prefix}-%"}) if a and b]
        if plans:
            out.update(plan_p50=percentile(plans, 50), plan_p95=percentile(plans, 95))
    return out


def run_batch(submitter: Submitter, engine: Any, url: str, folder: Path, prefix: str, n: int,
              rate: float | None) -> dict[str, Any]:
    """Enqueue ``n`` events (as fast as the client goes, or ``rate`` a second), wait for
    every run to end, and measure."""
    queue = "ops" if submitter.kind == "ops" else BARE_QUEUE
    events = [make_event(f"{prefix}-{i:05d}", i) for i in range(n)]
    enqueued: dict[str, float] = {}
    start = time.time()
    for i, event in enumerate(events):
        if rate:
            delay = start + i / rate - time.time()
            if delay > 0:
                time.sleep(delay)
        enqueued[event.key] = time.time()
        submitter.submit(event)
    submitted = time.time()
    end, counts = wait_terminal(engine, url, queue, prefix, n, timeout=max(300.0, n * 2.0))
    records = read_records(folder)
    parts = breakdown(engine, url, queue, prefix, enqueued)
    latencies, missing, extra = [], 0, 0
    for key, t_enq in enqueued.items():
        steps = records.get(key, [])
        if not steps:
            missing += 1
            continue
        latencies.append(min(t for _, t in steps) - t_enq)
        extra += max(0, len(steps) - 3)  # a step that ran twice
    seconds = end - start
    return {"n": n, "rate": rate, "seconds": seconds, "submit_seconds": submitted - start,
            "wf_per_s": n / seconds, "statuses": counts, "no_step_recorded": missing,
            "steps_run_twice": extra, "latency_p50": percentile(latencies, 50),
            "latency_p95": percentile(latencies, 95), "latency_max": max(latencies or [0.0]),
            "latencies": [round(x, 4) for x in latencies], **parts}


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU the worker processes have used so far (all their threads)."""
    import psutil

    total = 0.0
    for pid in pids:
        times = psutil.Process(pid).cpu_times()
        total += times.user + times.system
    return total


def trial(cleanup: Cleanup, kind: str, backend: str, workers: int, n: int, n_paced: int,
          rate: float | None) -> dict[str, Any]:
    """One contender on a fresh database: start its workers, a burst, then (when the rate
    is known) a paced batch; everything it made is released before returning."""
    home = cleanup.tempdir(f"bench-ops-{kind}-")
    label_db = None
    if backend == "sqlite":
        url = profile_sqlite_url(home)
    else:
        name, url = cleanup.database()
        label_db = f"database {name}"
    env = child_env(home)
    labels: list[str] = []
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for i in range(workers):
            wid = f"{kind}-w{i + 1}"
            proc = cleanup.process(wid, [python(), str(WORKER_SCRIPT), kind, "--database-url",
                                         url, "--worker-id", wid, "--record",
                                         str(home / f"rec-{wid}.jsonl")],
                                   env=env, log_path=home / f"{wid}.log",
                                   stdout=subprocess.PIPE)
            labels.append(f"process {wid}")
            # one after the other: two DBOS launches migrating a fresh database at once race
            wait_ready(proc, wid)
            procs.append(proc)
        submitter = Submitter(kind, url)
        pids = [p.pid for p in procs]
        try:
            with sql_engine(url) as engine:
                log(f"  {backend} {kind}: burst of {n}")
                cpu = cpu_seconds(pids)
                burst = run_batch(submitter, engine, url, home, "b", n, None)
                burst["worker_cpu_ms_per_wf"] = (cpu_seconds(pids) - cpu) * 1000 / n
                log(f"  {backend} {kind}: {burst['wf_per_s']:.1f} workflows/s, latency p95 "
                    f"{burst['latency_p95']:.2f} s")
                if rate is None and kind == "ops":
                    rate = round(burst["wf_per_s"] * PACED_SHARE, 2)
                paced = None
                if rate:
                    log(f"  {backend} {kind}: {n_paced} paced at {rate}/s")
                    paced = run_batch(submitter, engine, url, home, "p", n_paced, rate)
                    log(f"  {backend} {kind}: paced latency p50 "
                        f"{paced['latency_p50'] * 1000:.0f} ms, p95 "
                        f"{paced['latency_p95'] * 1000:.0f} ms")
        finally:
            submitter.close()
        texts = {p.name: p.read_text(errors="replace") for p in home.glob("*.log")}
        logs = {k: v[-2000:] for k, v in texts.items() if "Traceback" in v}
        # DBOS doubles a queue's polling interval each time a dequeue meets a lock
        contention = sum(v.count("Contention detected") for v in texts.values())
    finally:
        for label in labels:
            cleanup.release(label)
        if label_db:
            cleanup.release(label_db)
        cleanup.release(f"dir {home}")
    return {"kind": kind, "backend": backend, "workers": workers, "burst": burst,
            "paced": paced, "rate": rate, "tracebacks": logs, "contention": contention}


def throughput(cleanup: Cleanup, backend: str, workers: int, n: int, rounds: int
               ) -> dict[str, Any]:
    trials: list[dict[str, Any]] = []
    rate: float | None = None
    began = time.time()
    for r in range(rounds):
        order = ("ops", "bare") if r % 2 == 0 else ("bare", "ops")
        for kind in order:
            log(f"{backend}, round {r + 1}/{rounds}: {kind}")
            result = trial(cleanup, kind, backend, workers, n, max(10, n // 2), rate)
            rate = rate or result["rate"]
            result["round"] = r + 1
            trials.append(result)
    # a bare trial that ran before the rate was known (never: ops goes first in round 1)
    return {"backend": backend, "workers": workers, "events": n, "rounds": rounds,
            "paced_rate": rate, "trials": trials, "seconds": time.time() - began,
            "summary": summarise(trials)}


def summarise(trials: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind in ("ops", "bare"):
        mine = [t for t in trials if t["kind"] == kind]
        burst_lat = [x for t in mine for x in t["burst"]["latencies"]]
        paced_lat = [x for t in mine if t["paced"] for x in t["paced"]["latencies"]]
        rates = [t["burst"]["wf_per_s"] for t in mine]
        out[kind] = {"wf_per_s": sum(rates) / len(rates) if rates else float("nan"),
                     "wf_per_s_each": rates,
                     "burst_p50": percentile(burst_lat, 50),
                     "burst_p95": percentile(burst_lat, 95),
                     "paced_p50": percentile(paced_lat, 50),
                     "paced_p95": percentile(paced_lat, 95),
                     "paced_n": len(paced_lat),
                     "errors": sum(t["burst"]["statuses"].get("ERROR", 0)
                                   + (t["paced"] or {}).get("statuses", {}).get("ERROR", 0)
                                   for t in mine),
                     "contention": sum(t.get("contention", 0) for t in mine),
                     "paced_queue_wait_p50": common.median([
                         t["paced"]["queue_wait_p50"] for t in mine
                         if t["paced"] and "queue_wait_p50" in t["paced"]]),
                     "paced_plan_p50": common.median([
                         t["paced"]["plan_p50"] for t in mine
                         if t["paced"] and "plan_p50" in t["paced"]]),
                     "paced_plan_p95": common.median([
                         t["paced"]["plan_p95"] for t in mine
                         if t["paced"] and "plan_p95" in t["paced"]]),
                     "cpu_ms_per_wf": common.mean([t["burst"]["worker_cpu_ms_per_wf"]
                                                   for t in mine]),
                     "steps_run_twice": sum(t["burst"]["steps_run_twice"]
                                            + (t["paced"] or {}).get("steps_run_twice", 0)
                                            for t in mine)}
    ops, bare = out["ops"], out["bare"]
    out["throughput_ratio"] = common.ratio(ops["wf_per_s"], bare["wf_per_s"])
    out["time_overhead"] = common.ratio(bare["wf_per_s"], ops["wf_per_s"]) - 1
    out["cpu_ratio"] = common.ratio(ops["cpu_ms_per_wf"], bare["cpu_ms_per_wf"])
    out["paced_p95_ratio"] = common.ratio(ops["paced_p95"], bare["paced_p95"])
    out["paced_p50_ratio"] = common.ratio(ops["paced_p50"], bare["paced_p50"])
    return out


# -- machine and report -------------------------------------------------------------------

def machine(pg_url: str) -> dict[str, Any]:
    from importlib import metadata

    import psutil

    pg = "unavailable"
    try:
        import psycopg

        with psycopg.connect(pg_url, connect_timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            pg = str(row[0]) if row else "?"
    except Exception as exc:
        pg = f"unavailable ({type(exc).__name__})"
    return {"cpu": common.cpu_model(), "logical_cpus": os.cpu_count(),
            "physical_cores": psutil.cpu_count(logical=False),
            "ram_bytes": int(psutil.virtual_memory().total),
            "available_ram_bytes": int(psutil.virtual_memory().available),
            "os": platform.platform(), "python": platform.python_version(),
            "dbos": metadata.version("dbos"), "postgresql": pg,
            "smallhold_git": common.git_revision(), "loadavg_start": list(os.getloadavg())}


def machine_lines(info: dict[str, Any]) -> list[str]:
    load = info["loadavg_start"]
    end = info.get("loadavg_end")
    return [
        f"- CPU: {info['cpu']} — {info['physical_cores']} physical cores, "
        f"{info['logical_cpus']} logical",
        f"- RAM: {info['ram_bytes'] / common.GB:.1f} GiB "
        f"({info['available_ram_bytes'] / common.GB:.1f} GiB available at start)",
        f"- OS: {info['os']}, Python {info['python']}, DBOS {info['dbos']}, "
        f"PostgreSQL {info['postgresql']} (local, 127.0.0.1)",
        "- smallhold: the commit each part ran is given with it (workers are started per "
        "trial, so the code can change between parts)",
        f"- load average (1/5/15 min) at start: {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}"
        + (f"; at end: {end[0]:.2f} / {end[1]:.2f} / {end[2]:.2f}" if end else ""),
    ]


def num(value: float | None) -> float:
    """A number read back from the JSON file, where NaN was written as null."""
    return float("nan") if value is None else float(value)


def pct(value: float | None) -> str:
    value = num(value)
    return "—" if value != value else f"{value * 100:+.0f} %"


def ms(value: float | None) -> str:
    return fmt(num(value) * 1000, 0)


def throughput_md(part: dict[str, Any]) -> list[str]:
    s = part["summary"]
    name = "SQLite (the profile's file)" if part["backend"] == "sqlite" else "PostgreSQL"
    rows = []
    for kind, label in (("ops", "ops"), ("bare", "bare DBOS")):
        k = s[kind]
        rows.append([label, fmt(k["wf_per_s"], 1),
                     " / ".join(fmt(x, 1) for x in k["wf_per_s_each"]),
                     f"{fmt(k['burst_p50'], 2)} / {fmt(k['burst_p95'], 2)}",
                     f"{ms(k['paced_p50'])} / {ms(k['paced_p95'])}",
                     fmt(k["cpu_ms_per_wf"], 1), str(k["errors"]),
                     str(k.get("contention", "—"))])
    rows.append(["ops / bare", common.fmt_ratio(s["throughput_ratio"]), "",
                 "", f"{common.fmt_ratio(s['paced_p50_ratio'])} / "
                     f"{common.fmt_ratio(s['paced_p95_ratio'])}",
                 common.fmt_ratio(s["cpu_ratio"]), "", ""])
    over_t = num(s["time_overhead"])
    over_l = num(s["paced_p95_ratio"]) - 1
    verdict = []
    for what, value in (("time per workflow", over_t), ("p95 event-to-start latency", over_l)):
        met = value == value and value <= GOAL_OVERHEAD
        verdict.append(f"{what} {pct(value)} ({'met' if met else '**not met**'})")
    return [
        f"**{name}, {part['workers']} worker process{'es' if part['workers'] > 1 else ''} "
        f"each**: {part['events']} events a burst, {part['rounds']} round(s), paced "
        f"{max(10, part['events'] // 2)} events at {fmt(part['paced_rate'], 2)}/s "
        f"({fmt(part['seconds'] / 60, 1)} min)",
        "",
        md_table(["", "workflows/s (mean)", "each round", "burst latency p50 / p95 s",
                  "paced latency p50 / p95 ms", "worker CPU ms / workflow", "errors",
                  "queue backoffs"], rows),
        "",
        "Overhead of ops against bare DBOS (goal ≤ 20 %): " + "; ".join(verdict) + ".",
        "",
        breakdown_line(s),
        "",
        stamp_line(part),
        "",
    ]


def breakdown_line(s: dict[str, Any]) -> str:
    """What the paced latency is made of, as far as the databases' timestamps tell."""
    ops, bare = s["ops"], s["bare"]
    text = (f"In the paced batches ops's plan step took {ms(ops['paced_plan_p50'])} ms at the "
            f"median ({ms(ops['paced_plan_p95'])} ms p95; median of the rounds)")
    if num(ops.get("paced_queue_wait_p50")) == num(ops.get("paced_queue_wait_p50")):
        text += ("; the wait in the queue (enqueue → dequeued) was "
                 f"{ms(ops['paced_queue_wait_p50'])} ms for ops and "
                 f"{ms(bare['paced_queue_wait_p50'])} ms for bare at the median")
    return text + "."


def chaos_md(part: dict[str, Any]) -> list[str]:
    from bench_ops_chaos import render

    return [*render(part), stamp_line(part), ""]


def render(results: dict[str, Any]) -> str:
    info = results["machine"]
    mode = "quick" if results["quick"] else "full"
    lines = [SECTION, "",
             f"Measured {results['date']} by `bench/bench_ops.py` in **{mode} mode** "
             f"({fmt(results.get('seconds', 0) / 60, 1)} min in all; each part below names "
             "the command that ran it), on:", ""]
    lines += machine_lines(info)
    lines += ["", "### ops: throughput and event-to-start latency against bare DBOS", "",
              "Each event is queued by a DBOS client in the driver (ops: `Client.submit` onto "
              "the `ops` queue; bare: `DBOSClient.enqueue` onto a queue with ops's "
              "`WORKER_CONCURRENCY` and `POLL`) and run by worker processes: ops plans "
              "(template match, audit), then runs the DAG `left` ∥ `right` → `join`, each step "
              "a child workflow whose tool only records its start time; bare runs the same "
              "three child workflows with one `@DBOS.step` each and nothing else. Same "
              "database kind, fresh database per trial, same number of worker processes, "
              "order alternated between rounds. workflows/s: events of a burst over first "
              "enqueue → last run ended. Latency: enqueue → the first DAG step starting "
              "(for ops that includes the plan step); in a burst it is mostly waiting in "
              "the queue, so the paced batch (half of ops's burst rate, the same rate for "
              "both) is the unsaturated figure.", ""]
    for backend in ("sqlite", "postgres"):
        part = results.get("throughput", {}).get(backend)
        lines += throughput_md(part) if part else [f"({backend}: not run)", ""]
    lines += ["### ops: chaos run (duplicates, failing Slack, a worker killed)", ""]
    chaos = results.get("chaos")
    lines += chaos_md(chaos) if chaos else ["(not run)", ""]
    notes = results.get("notes")
    if notes:
        lines += ["", notes.strip(), ""]
    return "\n".join(lines).rstrip() + "\n"


def write_section(text: str) -> None:
    """Replace the ``## ops`` section of BENCHMARKS.md (up to the next ``## ``), or append
    it; every other section is left byte for byte."""
    old = BENCHMARKS.read_text(encoding="utf-8")
    lines = old.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == SECTION), None)
    if start is None:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")),
                   len(lines))
        tail = "".join(lines[end:])
        new = "".join(lines[:start]) + text + ("\n" + tail if tail else "")
    BENCHMARKS.write_text(new, encoding="utf-8")


def results_file(quick: bool, write_md: bool) -> Path:
    """Where a run keeps its numbers: full and quick runs apart, and a --no-write trial
    run never overwrites what BENCHMARKS.md was made from."""
    if not write_md:
        return SCRATCH
    return RESULTS.with_name("bench_ops_quick.json") if quick else RESULTS


def save(results: dict[str, Any], write_md: bool) -> None:
    path = results_file(bool(results.get("quick")), write_md)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(common._finite(results), indent=1, default=str) + "\n")
    if write_md:
        write_section(render(results))
        log(f"BENCHMARKS.md {SECTION} section written")


# -- main ---------------------------------------------------------------------------------

def code_state() -> str:
    """The commit the workers ran, and whether src/ had uncommitted changes (each trial
    starts new processes, so an edit made during a run would be measured from then on)."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(common.REPO_DIR), *args], capture_output=True,
                              text=True, timeout=10, check=False)
        return done.stdout.strip()

    dirty = bool(git("status", "--porcelain", "--", "src"))
    return git("rev-parse", "--short", "HEAD") + (" + uncommitted src/ changes" if dirty else "")


def stamp(load_start: list[float], code_start: str) -> dict[str, Any]:
    """When and how a part was run (parts kept by --resume keep their own)."""
    code_end = code_state()
    return {"command": common.command_line(), "date": datetime.now(UTC).strftime(
        "%Y-%m-%d %H:%M UTC"), "load_start": load_start, "load_end": list(os.getloadavg()),
        "code": code_start if code_start == code_end else f"{code_start}, then {code_end}"}


def stamp_line(part: dict[str, Any]) -> str:
    a, b = part.get("load_start") or [0.0] * 3, part.get("load_end") or [0.0] * 3
    return (f"Run {part.get('date', '?')} (ended) by `{part.get('command', '?')}` on "
            f"smallhold `{part.get('code', '?')}`; load average "
            f"(1/5/15 min) {a[0]:.2f} / {a[1]:.2f} / {a[2]:.2f} at start, "
            f"{b[0]:.2f} / {b[1]:.2f} / {b[2]:.2f} at end.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="60 events x 1 round, chaos 200 events")
    parser.add_argument("--events", type=int, help="events per burst (default 300; quick 60)")
    parser.add_argument("--rounds", type=int, help="rounds per database, the order of ops and "
                        "bare alternating (default 4; quick 1)")
    parser.add_argument("--chaos-events", type=int,
                        help="distinct events of the chaos run (default 1000; quick 200)")
    parser.add_argument("--only", choices=("sqlite", "postgres", "chaos"), action="append",
                        help="run only these parts (repeatable)")
    parser.add_argument("--pg-url", default=DEFAULT_PG,
                        help="PostgreSQL database to create the throwaway ones from")
    parser.add_argument("--resume", action="store_true",
                        help="keep the parts bench/results/bench_ops.json already has")
    parser.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md alone")
    parser.add_argument("--notes", type=Path,
                        help="a markdown file added at the end of the section")
    parser.add_argument("--render-only", action="store_true",
                        help="rewrite the section from bench/results/bench_ops.json, run "
                        "nothing")
    args = parser.parse_args()
    n = args.events or (60 if args.quick else 300)
    rounds = args.rounds or (1 if args.quick else 4)
    chaos_n = args.chaos_events or (200 if args.quick else 1000)
    parts = args.only or ["sqlite", "postgres", "chaos"]
    settings = {"quick": args.quick, "events": n, "rounds": rounds, "chaos_events": chaos_n}

    results: dict[str, Any] = {}
    if args.render_only:
        results = json.loads(results_file(args.quick, True).read_text())
        if args.notes:
            results["notes"] = args.notes.read_text(encoding="utf-8")
        save(results, True)
        return
    saved = results_file(args.quick, not args.no_write)
    if args.resume and saved.is_file():
        results = json.loads(saved.read_text())
        if results.get("settings") != settings:
            log("saved results were made with other settings: starting afresh")
            results = {}
    began = time.time() - float(results.get("seconds", 0.0))
    results.update({"settings": settings, "quick": args.quick,
                    "command": common.command_line(),
                    "date": datetime.now(UTC).strftime("%Y-%m-%d")})
    results.setdefault("machine", machine(args.pg_url))
    results.setdefault("throughput", {})
    if args.notes:
        results["notes"] = args.notes.read_text(encoding="utf-8")

    with Cleanup(args.pg_url) as cleanup:
        for backend, workers in (("sqlite", 1), ("postgres", 2)):
            if backend not in parts:
                continue
            if backend in results["throughput"]:
                log(f"{backend}: kept from {saved.name}")
                continue
            load, code = list(os.getloadavg()), code_state()
            part = throughput(cleanup, backend, workers, n, rounds)
            results["throughput"][backend] = {**part, **stamp(load, code)}
            results["seconds"] = time.time() - began
            results["machine"]["loadavg_end"] = list(os.getloadavg())
            save(results, not args.no_write)
        if "chaos" in parts and "chaos" not in results:
            from bench_ops_chaos import chaos

            load, code = list(os.getloadavg()), code_state()
            part = chaos(cleanup, args.pg_url, chaos_n, quick=args.quick)
            results["chaos"] = {**part, **stamp(load, code)}
            results["seconds"] = time.time() - began
            results["machine"]["loadavg_end"] = list(os.getloadavg())
            save(results, not args.no_write)
        elif "chaos" in results:
            log(f"chaos: kept from {saved.name}")
    results["seconds"] = time.time() - began
    save(results, not args.no_write)
    print(render(results))
    log(f"done in {(time.time() - began) / 60:.1f} min")


if __name__ == "__main__":
    sys.exit(main())
