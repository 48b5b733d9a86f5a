"""`smallhold ops` from the command line: templates, submit, workflows list/show/approve/
deny/cancel/retry, audit, secrets; each error is one clear line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from smallhold.apps.ops import APP
from smallhold.apps.ops.config import OpsConfig
from smallhold.apps.ops.engine import Worker, running, toolbox
from smallhold.apps.ops.state import OpsState
from smallhold.apps.ops.templates import parse
from smallhold.cli import main
from smallhold.durable import system_database_url
from smallhold.kit import Home, Overrides
from smallhold.runtime.backends.scripted import ScriptedBackend

JIRA = {"webhookEvent": "jira:issue_created", "timestamp": 1700000000000,
        "issue": {"key": "OPS-7", "fields": {"summary": "Rotate the TLS certificates",
                                             "project": {"key": "OPS"},
                                             "issuetype": {"name": "Task"}}}}
# 20 s, not hours: a cancelled run's worker thread stays in DBOS.recv until the timeout
# (DBOS checks cancellation between steps), and the test process waits for it at exit
GUARDED = {"name": "cert_rotation", "critical": True,
           "approval": {"timeout": "20s", "on_timeout": "deny"},
           "description": "a change that waits for a person",
           "match": [{"source": "jira", "type": "jira.issue_created"}],
           "steps": [{"id": "report", "agent": "documentation", "action": "runbook"}]}


def run(*args: str, ok: bool = True) -> Any:
    done = CliRunner().invoke(main, list(args))
    if ok:
        assert done.exit_code == 0, done.output
    return done


def run_json(*args: str) -> Any:
    return json.loads(run(*args, "--json").stdout)


@pytest.fixture
def worker() -> Iterator[Worker]:
    with Home.open(app=APP, overrides=Overrides(backend=ScriptedBackend(["ok"]))) as home:
        state = OpsState(system_database_url(home.paths, home.settings))
        tools = toolbox()
        template = parse(GUARDED, "test", tools.actions())
        yield Worker(home, OpsConfig(), state, executor="ops-cli-test", tools=tools,
                     templates=[template])
        state.close()


def issue(tmp_path: Path, key: str = "OPS-7") -> Path:
    body = json.loads(json.dumps(JIRA))
    body["issue"]["key"] = key
    path = tmp_path / f"{key}.json"
    path.write_text(json.dumps(body), encoding="utf-8")
    return path


def wait_for(predicate: Any, timeout: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_templates_list_ours_checked() -> None:
    found = {t["name"]: t for t in run_json("ops", "templates")}
    assert found["incident"]["waves"][-1] == ["notify", "report"]
    assert "incident" in run("ops", "templates").stdout


def test_a_critical_run_is_approved_from_the_cli(worker: Worker, tmp_path: Path) -> None:
    with running(worker, heartbeat=False):
        queued = run_json("ops", "submit", str(issue(tmp_path)), "--source", "jira")
        key = queued[0]["workflow"]
        wait_for(lambda: any(a.action == "approval.requested"
                             for a in worker.state.audit_entries(key)))
        listed = {r["workflow"]: r for r in run_json("ops", "workflows", "list")}
        assert listed[key]["status"] == "pending"
        assert listed[key]["summary"].startswith("OPS-7") or "TLS" in listed[key]["summary"]
        assert run_json("ops", "workflows", "approve", key, "--reason", "change window open"
                        ) == {"workflow": key, "done": "approved"}
        wait_for(lambda: run_json("ops", "workflows", "show", key)["status"] == "success")
    shown = run_json("ops", "workflows", "show", key)
    assert shown["result"]["status"] == "done"
    assert [d["name"] for d in shown["documents"]] == ["plan-plan.txt", "runbook.md"]
    actions = [a["action"] for a in shown["audit"]]
    assert "approval.sent" in actions and "approval.approved" in actions
    late = run("ops", "workflows", "deny", key, ok=False)
    assert late.exit_code != 0 and "not waiting for approval" in late.output
    assert run_json("ops", "audit", "--verify")["intact"] is True
    worker.state.update_breaker("slack", state="open", failures=5, opened_at=1.0)
    shown_status = run_json("ops", "status")
    assert shown_status["breakers"] == [{"integration": "slack", "state": "open",
                                         "failures": 5,
                                         "opened_at": "1970-01-01T00:00:01+00:00"}]


def test_deny_cancel_and_retry(worker: Worker, tmp_path: Path) -> None:
    with running(worker, heartbeat=False):
        denied = run_json("ops", "submit", str(issue(tmp_path, "OPS-8")), "--source",
                          "jira")[0]["workflow"]
        cancelled = run_json("ops", "submit", str(issue(tmp_path, "OPS-9")), "--source",
                             "jira")[0]["workflow"]
        for key in (denied, cancelled):
            wait_for(lambda k=key: any(a.action == "approval.requested"
                                       for a in worker.state.audit_entries(k)))
        busy = run("ops", "workflows", "retry", denied, ok=False)
        assert busy.exit_code != 0 and "still running" in busy.output
        run("ops", "workflows", "deny", denied)
        run("ops", "workflows", "cancel", cancelled)
        wait_for(lambda: run_json("ops", "workflows", "show", denied)["status"] == "success")
        assert run_json("ops", "workflows", "show", denied)["result"]["status"] == "denied"
        assert run_json("ops", "workflows", "show", cancelled)["status"] == "cancelled"
        run("ops", "workflows", "retry", cancelled)
        wait_for(lambda: run_json("ops", "workflows", "show", cancelled)["status"]
                 in ("pending", "enqueued"))
        run("ops", "workflows", "deny", cancelled)  # let it end before the worker stops
        wait_for(lambda: run_json("ops", "workflows", "show", cancelled)["status"]
                 == "success")


def test_unknown_runs_and_bad_files_are_one_line_errors(tmp_path: Path) -> None:
    missing = run("ops", "workflows", "show", "nope", ok=False)
    assert missing.exit_code != 0 and "no workflow nope" in missing.output
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    broken = run("ops", "submit", str(bad), "--source", "jira", ok=False)
    assert broken.exit_code != 0 and "not JSON" in broken.output
    assert "Traceback" not in broken.output + missing.output


def test_secrets_go_to_the_vault_and_config_refuses_plain_ones(paths: Any) -> None:
    stored = CliRunner().invoke(main, ["ops", "secret", "set", "slack_bot"],
                                input="xoxb-123\n")
    assert stored.exit_code == 0 and "vault:slack_bot" in stored.output
    with Home.open(app=APP) as home:
        assert home.vault.meta("ops.secret.slack_bot") == "xoxb-123"
    profile = paths.profile_dir("default")
    (profile / "ops.toml").write_text('[integrations.slack]\ntoken = "xoxb-plain"\n',
                                      encoding="utf-8")
    refused = run("ops", "templates", ok=False)
    assert refused.exit_code != 0 and "reference" in refused.output
    assert "xoxb-plain" not in refused.output
