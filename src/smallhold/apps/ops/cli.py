"""``smallhold ops``: webhooks to durable workflows.

    smallhold ops serve               the webhook receiver and a worker (127.0.0.1:8740)
    smallhold ops worker              a worker only (more workers: one PostgreSQL database)
    smallhold ops submit FILE         queue an event from a file as if it had been delivered
    smallhold ops workflows list      runs with their status; show|approve|deny|cancel|retry
    smallhold ops templates           the templates loaded, checked
    smallhold ops audit [--verify]    the audit log, and whether its chain is intact
    smallhold ops status              workers' heartbeats and the integrations' breakers
    smallhold ops secret set NAME     keep a secret in the vault (config says vault:NAME)
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from smallhold import durable
from smallhold.apps.ops import APP
from smallhold.apps.ops.config import VAULT_PREFIX, OpsConfig, load_config, resolve
from smallhold.apps.ops.errors import (
    OpsError,
    WorkflowNotFoundError,
    WorkflowStateError,
)
from smallhold.apps.ops.models import SOURCES, Decision
from smallhold.apps.ops.state import OpsState, now_iso
from smallhold.console import (
    console,
    emit_json,
    err_console,
    handle_errors,
    json_option,
    keep_whole,
)
from smallhold.console import profile_option as profile_opt
from smallhold.kit.cli import open_home
from smallhold.kit.home import Home

config_opt = click.option("--config", "config_path", type=click.Path(path_type=Path),
                          help="ops.toml to use (default: the profile's).")
database_opt = click.option("--database-url", help="Workflow database shared by the workers "
                            "(postgresql://...); default: [durable] url, else the profile's "
                            "SQLite file.")


@dataclass
class Site:
    home: Home
    config: OpsConfig
    url: str
    state: OpsState


@contextmanager
def open_site(profile: str, config_path: Path | None, database_url: str | None,
              quiet: bool) -> Iterator[Site]:
    with open_home(profile, app=APP, quiet=quiet) as home:
        if database_url:
            home.settings.durable.url = database_url
        config = load_config(config_path, home.paths.profile_dir(home.profile))
        url = durable.system_database_url(home.paths, home.settings)
        state = OpsState(url)
        try:
            yield Site(home, config, url, state)
        finally:
            state.close()


@contextmanager
def client(site: Site) -> Iterator[Any]:
    """A DBOS client on the workflow database: talks to runs without running any."""
    dbos_client = durable.client(site.url)
    try:
        yield dbos_client
    finally:
        dbos_client.destroy()


@click.group()
def ops() -> None:
    """Events from Slack, Jira, GitHub, mail and monitoring, run as durable workflows.

    \b
    smallhold ops serve                webhook receiver + worker on 127.0.0.1:8740
    smallhold ops workflows list       runs and their status
    smallhold ops workflows approve ID let a waiting run go on
    smallhold ops audit --verify       the audit log and its hash chain
    """


def _secrets(site: Site) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for source, conf in site.config.sources.items():
        found[source] = [resolve(ref, site.home.vault.meta) for ref in conf.secrets]
    return found


@ops.command()
@click.option("--host", help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, help="Port (default 8740).")
@click.option("--worker-id", help="This worker's name; a restart under the same name "
              "resumes its runs (default ops-<hostname>).")
@click.option("--no-worker", is_flag=True, help="Only receive and queue; workers run them.")
@config_opt
@database_opt
@profile_opt
@handle_errors
def serve(host: str | None, port: int | None, worker_id: str | None, no_worker: bool,
          config_path: Path | None, database_url: str | None, profile: str) -> None:
    """Receive signed webhooks and run their workflows (Ctrl+C stops; runs resume on the
    next start). Endpoints: /hooks/slack/events, /hooks/slack/actions, /hooks/github,
    /hooks/jira, /hooks/alertmanager, /hooks/pagerduty, /hooks/grafana."""
    from smallhold.apps.ops.engine import Client, Worker, running, submit
    from smallhold.apps.ops.receiver import Receiver

    with open_site(profile, config_path, database_url, False) as site:
        receiver_conf = site.config.receiver.model_copy(update={
            k: v for k, v in {"host": host, "port": port}.items() if v is not None})
        config = site.config.model_copy(update={"receiver": receiver_conf})
        secrets = _secrets(site)
        where = f"http://{receiver_conf.host}:{receiver_conf.port}"
        ops_client = Client(site.url)  # approvals, and the queue when this is no worker
        try:
            if no_worker:  # queue for the workers; never run, never recover anything here
                receiver = Receiver(config, site.state, secrets, submit=ops_client.submit,
                                    decide=ops_client.decide)
                err_console.print(f"ops: receiving on {where}; workers run the workflows")
                _serve(receiver, config)
                return
            worker = Worker(site.home, config, site.state, executor=worker_id)
            with running(worker) as engine:
                receiver = Receiver(config, site.state, secrets,
                                    submit=lambda event: submit(engine, event),
                                    decide=ops_client.decide)
                err_console.print(f"ops: receiving on {where} as worker {worker.executor}; "
                                  f"{len(worker.templates)} template(s)")
                _serve(receiver, config)
        finally:
            ops_client.close()
    _leave()


def _serve(receiver: Any, config: OpsConfig) -> None:
    """The HTTP receiver until Ctrl+C, with the SMTP listener beside it when configured."""
    import uvicorn

    from smallhold.apps.ops.mailin import MailListener

    conf = config.receiver
    listener = None
    if conf.smtp_port:
        listener = MailListener(receiver.accept, host=conf.host, port=conf.smtp_port).start()
        err_console.print(f"ops: taking mail on smtp://{conf.host}:{listener.port}")
    try:
        uvicorn.run(receiver.app(), host=conf.host, port=conf.port, log_level="warning")
    finally:
        if listener is not None:
            listener.stop()


@ops.command()
@click.option("--worker-id", help="This worker's name (default ops-<hostname>).")
@config_opt
@database_opt
@profile_opt
@handle_errors
def worker(worker_id: str | None, config_path: Path | None, database_url: str | None,
           profile: str) -> None:
    """Run queued workflows until stopped (SIGTERM or Ctrl+C); a dead worker's runs are
    taken over by a live one sharing its database."""
    from smallhold.apps.ops.engine import Worker, running

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with open_site(profile, config_path, database_url, False) as site:
        ops_worker = Worker(site.home, site.config, site.state, executor=worker_id)
        with running(ops_worker):
            err_console.print(f"ops: worker {ops_worker.executor} running "
                              f"{len(ops_worker.templates)} template(s)")
            try:
                while not stop.wait(1.0):
                    pass
            except KeyboardInterrupt:
                pass
        err_console.print("ops: worker stopped; its unfinished runs resume when it "
                          "restarts, or on a worker sharing its database")
    _leave()


def _leave() -> None:
    """End the process now. A run waiting for an approval holds a DBOS thread in
    ``recv`` for up to the approval timeout, and the interpreter would wait for it at
    exit; its state is in the database and it resumes on the next start, so nothing is
    lost by not waiting."""
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@ops.command("submit")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--source", type=click.Choice([s for s in SOURCES if s not in ("cli", "mail")]),
              required=True, help="Which sender's format FILE is in.")
@click.option("--header", "headers", multiple=True, help="A header the sender would add, "
              "NAME:VALUE (e.g. X-GitHub-Event:push).")
@click.option("--wait", "wait_s", type=float, default=None,
              help="Run it in this process and wait up to this many seconds for the result "
              "(without it, a running worker takes it from the queue).")
@click.option("--worker-id", help="Worker name when --wait runs it here "
              "(default ops-submit-<pid>).")
@config_opt
@database_opt
@profile_opt
@json_option
@handle_errors
def submit_cmd(file: Path, source: str, headers: tuple[str, ...], wait_s: float | None,
               worker_id: str | None, config_path: Path | None, database_url: str | None,
               profile: str, as_json: bool) -> None:
    """Queue the event in FILE (a webhook body) as its workflow. You are trusted here, so
    no signature is checked; the body is still validated like a delivery's."""
    from smallhold.apps.ops.engine import Client, Worker, running, submit, wait_done
    from smallhold.apps.ops.normalize import normalize

    head = {}
    for item in headers:
        name, sep, value = item.partition(":")
        if not sep:
            raise click.BadParameter(f"{item!r} is not NAME:VALUE", param_hint="--header")
        head[name.strip().lower()] = value.strip()
    with open_site(profile, config_path, database_url, as_json) as site:
        inbound = normalize(source, head, file.read_bytes(), now=datetime.now(UTC))
        if not inbound.events:
            raise OpsError(f"{file} holds no event to run (a handshake or a button press)")
        results: list[dict[str, Any]] = []
        for event in inbound.events:
            new = site.state.remember_event(event.key, event.source, event.type,
                                            event.summary, event.model_dump(mode="json"))
            results.append({"workflow": event.key, "duplicate": not new,
                            "summary": event.summary})
        if wait_s is None:  # queued: a running worker (`ops serve`, `ops worker`) runs it
            ops_client = Client(site.url)
            try:
                for event in inbound.events:
                    ops_client.submit(event)
            finally:
                ops_client.close()
        else:  # run here as a worker of its own, and wait
            ops_worker = Worker(site.home, site.config, site.state,
                                executor=worker_id or f"ops-submit-{os.getpid()}")
            with running(ops_worker) as engine:
                for event, entry in zip(inbound.events, results, strict=True):
                    submit(engine, event)
                    entry["result"] = wait_done(event.key, wait_s)
        if as_json:
            emit_json(results)
            return
        for entry in results:
            tail = f": {entry['result']['status']}" if "result" in entry else " queued"
            dup = " (already known)" if entry["duplicate"] else ""
            console.print(f"{entry['workflow']}{dup}{tail}", markup=False)


@ops.group()
def workflows() -> None:
    """The runs: list, show, approve, deny, cancel, retry."""


def _status_rows(dbos_client: Any, limit: int, status: str | None) -> list[dict[str, Any]]:
    rows = dbos_client.list_workflows(queue_name="ops", limit=limit, sort_desc=True,
                                      status=status.upper() if status else None,
                                      load_input=False)
    found = []
    for row in rows:
        output = row.output if isinstance(row.output, dict) else {}
        found.append({"workflow": row.workflow_id, "status": row.status.lower(),
                      "outcome": output.get("status"), "template": output.get("template"),
                      "created": now_iso((row.created_at or 0) / 1000),
                      "executor": row.executor_id})
    return found


@workflows.command("list")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--status", type=click.Choice(["pending", "enqueued", "success", "error",
                                             "cancelled"]), help="Only runs in this state.")
@config_opt
@database_opt
@profile_opt
@json_option
@handle_errors
def list_cmd(limit: int, status: str | None, config_path: Path | None,
             database_url: str | None, profile: str, as_json: bool) -> None:
    """Runs, newest first. pending: running or waiting for approval."""
    with open_site(profile, config_path, database_url, as_json) as site, client(site) as c:
        rows = _status_rows(c, limit, status)
        for row in rows:
            event = site.state.event(row["workflow"])
            row["summary"] = event["summary"] if event else ""
            row["template"] = row["template"] or (event or {}).get("template")
    if as_json:
        emit_json(rows)
        return
    table = Table(box=None)
    for column in ("workflow", "status", "outcome", "template", "created", "summary"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(str(row.get(c) or "") for c in ("workflow", "status", "outcome",
                                                         "template", "created", "summary")))
    console.print(keep_whole(table, "workflow") if rows else "no workflows yet")


@workflows.command("show")
@click.argument("workflow")
@config_opt
@database_opt
@profile_opt
@json_option
@handle_errors
def show_cmd(workflow: str, config_path: Path | None, database_url: str | None, profile: str,
             as_json: bool) -> None:
    """One run: its event, steps with outcomes, audit trail and documents."""
    with open_site(profile, config_path, database_url, as_json) as site, client(site) as c:
        found = c.list_workflows(workflow_ids=[workflow], load_input=False)
        if not found:
            raise WorkflowNotFoundError(f"no workflow {workflow}: see `smallhold ops "
                                        "workflows list`")
        row = found[0]
        children = c.list_workflows(parent_workflow_id=workflow, load_input=False)
        steps = [{"step": ch.workflow_id.rsplit("/", 1)[-1], "status": ch.status.lower(),
                  "result": ch.output} for ch in children]
        audit = [{"seq": a.seq, "at": now_iso(a.at), "actor": a.actor, "action": a.action,
                  "detail": a.detail} for a in site.state.audit_entries(workflow)]
        docs = site.state.artifacts(workflow)
        data = {"workflow": workflow, "status": row.status.lower(), "result": row.output,
                "event": site.state.event(workflow), "steps": steps, "audit": audit,
                "documents": [{"name": d["name"], "kind": d["kind"], "content": d["content"]}
                              for d in docs]}
    if as_json:
        emit_json(data)
        return
    result = data["result"] if isinstance(data["result"], dict) else {}
    console.print(f"[bold]{workflow}[/]  {data['status']}  {result.get('status', '')}  "
                  f"{result.get('reason', '')}", markup=True, highlight=False)
    if data["event"]:
        console.print(f"event: {data['event']['summary']}", markup=False)
    for step in steps:
        res = step["result"] if isinstance(step["result"], dict) else {}
        detail = res.get("error") or ""
        console.print(f"  {step['step']}: {res.get('status', step['status'])} {detail}",
                      markup=False)
    for entry in audit:
        console.print(f"  #{entry['seq']} {entry['at']} {entry['actor']} {entry['action']}",
                      markup=False)
    for doc in data["documents"]:
        console.print(f"\n--- {doc['name']} ({doc['kind']}) ---\n{doc['content']}", markup=False)


def _decide(workflow: str, approve: bool, reason: str, site: Site) -> None:
    from smallhold.apps.ops.engine import Client

    by = os.environ.get("USER") or "local"
    ops_client = Client(site.url)
    try:
        ops_client.decide(Decision(workflow=workflow, approve=approve, by=by, via="cli",
                                   reason=reason))
    finally:
        ops_client.close()
    site.state.audit(by, "approval.sent", workflow, approve=approve, reason=reason)


def _find(dbos_client: Any, workflow: str) -> Any:
    found = dbos_client.list_workflows(workflow_ids=[workflow], load_input=False,
                                       load_output=False)
    if not found:
        raise WorkflowNotFoundError(f"no workflow {workflow}: see `smallhold ops workflows "
                                    "list`")
    return found[0]


def _said(workflow: str, verb: str, as_json: bool) -> None:
    if as_json:
        emit_json({"workflow": workflow, "done": verb})
    else:
        console.print(f"{verb} {workflow}", markup=False)


@workflows.command("approve")
@click.argument("workflow")
@click.option("--reason", default="", help="Why; kept in the audit log.")
@config_opt
@database_opt
@profile_opt
@json_option
@handle_errors
def approve_cmd(workflow: str, reason: str, config_path: Path | None,
                database_url: str | None, profile: str, as_json: bool) -> None:
    """Let a run waiting for approval go on (WORKFLOW, or WORKFLOW/STEP for one step)."""
    with open_site(profile, config_path, database_url, False) as site:
        _decide(workflow, True, reason, site)
    _said(workflow, "approved", as_json)


@workflows.command("deny")
@click.argument("workflow")
@click.option("--reason", default="", help="Why; kept in the audit log.")
@config_opt
@database_opt
@profile_opt
@json_option
@handle_errors
def deny_cmd(workflow: str, reason: str, config_path: Path | None, database_url: str | None,
             profile: str, as_json: bool) -> None:
    """Stop a run waiting for approval; nothing of its plan runs."""
    with open_site(profile, config_path, database_url, False) as site:
        _decide(workflow, False, reason, site)
    _said(workflow, "denied", as_json)


@workflows.command("cancel")
@click.argument("workflow")
@config_opt
@database_opt
@profile_opt
@json_option
@handle_errors
def cancel_cmd(workflow: str, config_path: Path | None, database_url: str | None,
               profile: str, as_json: bool) -> None:
    """Cancel a run; the step running now finishes, nothing after it starts."""
    with open_site(profile, config_path, database_url, False) as site, client(site) as c:
        _find(c, workflow)
        c.cancel_workflow(workflow)
        site.state.audit(os.environ.get("USER") or "local", "workflow.cancelled", workflow)
    _said(workflow, "cancelled", as_json)


@workflows.command("retry")
@click.argument("workflow")
@config_opt
@database_opt
@profile_opt
@json_option
@handle_errors
def retry_cmd(workflow: str, config_path: Path | None, database_url: str | None,
              profile: str, as_json: bool) -> None:
    """Run a cancelled or failed run again from its last checkpoint (done steps are not
    done again); a running worker picks it up."""
    with open_site(profile, config_path, database_url, False) as site, client(site) as c:
        if _find(c, workflow).status in ("PENDING", "ENQUEUED"):
            raise WorkflowStateError(f"workflow {workflow} is still running")
        c.resume_workflow(workflow)
        site.state.audit(os.environ.get("USER") or "local", "workflow.retried", workflow)
    _said(workflow, "retrying", as_json)


@ops.command()
@config_opt
@profile_opt
@json_option
@handle_errors
def templates(config_path: Path | None, profile: str, as_json: bool) -> None:
    """The workflow templates loaded, each checked, in the order events are offered to
    them: the config's folders first, then ours."""
    from smallhold.apps.ops.engine import toolbox
    from smallhold.apps.ops.orchestrator import risk_of
    from smallhold.apps.ops.templates import load_all

    with open_home(profile, app=APP, quiet=as_json) as home:
        config = load_config(config_path, home.paths.profile_dir(home.profile))
    tools = toolbox()
    found = load_all(config.workflows.templates, tools.actions())
    data: list[dict[str, Any]] = [
        {"name": t.name, "description": t.description, "critical": t.critical,
         "waves": t.order(),
         "high_risk": [s.id for s in t.steps if risk_of(t, tools, s.id) == "high"]}
        for t in found]
    if as_json:
        emit_json(data)
        return
    for t in data:
        flag = " (critical: approval first)" if t["critical"] else ""
        console.print(f"[bold]{t['name']}[/]{flag}: {t['description']}", highlight=False)
        console.print("   " + " -> ".join("[" + ", ".join(w) + "]" for w in t["waves"]),
                      markup=False)


@ops.command()
@click.option("--workflow", help="Only this run's entries.")
@click.option("--verify", is_flag=True, help="Check the hash chain end to end.")
@click.option("--limit", type=int, default=100, show_default=True)
@config_opt
@database_opt
@profile_opt
@json_option
@handle_errors
def audit(workflow: str | None, verify: bool, limit: int, config_path: Path | None,
          database_url: str | None, profile: str, as_json: bool) -> None:
    """The append-only audit log (who did what, when, to which run)."""
    with open_site(profile, config_path, database_url, as_json) as site:
        if verify:
            count, broken = site.state.verify_audit()
            if as_json:
                emit_json({"entries": count, "intact": broken is None, "broken_at": broken})
            elif broken is None:
                console.print(f"audit log intact: {count} entries", markup=False)
            if broken is not None:
                raise OpsError(f"the audit log was altered at entry #{broken}: entries from "
                               "there on cannot be trusted; restore the database from backup")
            return
        entries = site.state.audit_entries(workflow, limit=limit)
    rows = [{"seq": e.seq, "at": now_iso(e.at), "actor": e.actor, "action": e.action,
             "workflow": e.workflow, "detail": e.detail} for e in entries]
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        console.print(f"#{r['seq']} {r['at']} {r['actor']} {r['action']} "
                      f"{r['workflow'] or ''} {json.dumps(r['detail'])[:120]}", markup=False)


@ops.command()
@config_opt
@database_opt
@profile_opt
@json_option
@handle_errors
def status(config_path: Path | None, database_url: str | None, profile: str,
           as_json: bool) -> None:
    """Workers (last heartbeat, who took over a dead one) and each integration's circuit
    breaker (closed, open, half-open, with its failure count)."""
    import time

    with open_site(profile, config_path, database_url, as_json) as site:
        now = time.time()
        workers = [{"worker": w["executor"], "seen_s_ago": round(now - w["seen_at"], 1),
                    "recovered_by": w["recovered_by"]} for w in site.state.workers()]
        breakers = [{"integration": b["name"], "state": b["state"],
                     "failures": b["failures"],
                     "opened_at": now_iso(b["opened_at"]) if b["opened_at"] else None}
                    for b in site.state.breakers()]
    if as_json:
        emit_json({"workers": workers, "breakers": breakers})
        return
    for w in workers:
        taken = f", taken over by {w['recovered_by']}" if w["recovered_by"] else ""
        console.print(f"worker {w['worker']}: seen {w['seen_s_ago']} s ago{taken}",
                      markup=False)
    for b in breakers:
        since = f" since {b['opened_at']}" if b["state"] != "closed" and b["opened_at"] else ""
        console.print(f"breaker {b['integration']}: {b['state']}{since} "
                      f"({b['failures']} failure(s))", markup=False)
    if not workers and not breakers:
        console.print("no worker has run yet", markup=False)


@ops.group()
def secret() -> None:
    """Secrets kept in the vault, named in ops.toml as vault:NAME."""


@secret.command("set")
@click.argument("name")
@profile_opt
@handle_errors
def secret_set(name: str, profile: str) -> None:
    """Store NAME's value (asked for, not echoed; or piped on stdin, never an argument,
    which would land in the shell's history)."""
    import sys

    value = (click.prompt(f"{name}", hide_input=True) if sys.stdin.isatty()
             else sys.stdin.readline().rstrip("\n"))
    if not value:
        raise OpsError("an empty secret was given; nothing stored")
    with open_home(profile, app=APP) as home:
        home.vault.set_meta(VAULT_PREFIX + name, value)
    console.print(f"stored {name}; refer to it as vault:{name}", markup=False)


__all__ = ["ops"]
