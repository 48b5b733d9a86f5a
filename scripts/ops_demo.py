"""ops from end to end on this machine: a signed alert, a kill -9, the run finished anyway.

    .venv/bin/python scripts/ops_demo.py [--model NAME] [--no-kill] [--keep]

In a throwaway SMALLHOLD_HOME (nothing of yours is touched) it starts local fake Slack,
Jira and GitHub servers on loopback, writes an ``ops.toml`` pointing at them (and at a small
SQLite database of errors, read through the data agent's read-only connection), starts
``smallhold ops serve``, and posts the Alertmanager body from ``../shared/data/ops`` with
its bearer token, as Alertmanager would. Once the run has planned and gathered, the server
is killed with SIGKILL and started again under the same worker name; DBOS resumes the run
where it stopped. It prints the message the fake Slack received, the incident report and
the audit trail. The model is the suite's default unless ``--model`` names another.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from smallhold.apps.ops.fakes import FakeServices
from smallhold.paths import resolve_paths

ROOT = Path(__file__).resolve().parents[1]
ALERT = ROOT.parent / "shared" / "data" / "ops" / "alertmanager_firing.json"
TOKEN = "demo-alertmanager-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def smallhold(env: dict[str, str], *args: str) -> Any:
    done = subprocess.run([sys.executable, "-m", "smallhold.cli", *args, "--json"], env=env,
                          capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout)


def wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except (httpx.HTTPError, subprocess.CalledProcessError, json.JSONDecodeError):
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model the agents use (default: the suite's)")
    parser.add_argument("--no-kill", action="store_true", help="do not kill the server")
    parser.add_argument("--keep", action="store_true", help="keep the throwaway home")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="smallhold-ops-demo-"))
    metrics = home / "metrics.sqlite"
    with sqlite3.connect(metrics) as db:
        db.execute("CREATE TABLE errors (at TEXT, service TEXT, message TEXT)")
        db.executemany("INSERT INTO errors VALUES (?, ?, ?)", [
            ("2026-12-06T09:58:00Z", "api", "502 from upstream checkout: connection refused"),
            ("2026-12-06T09:59:00Z", "checkout", "OOMKilled: container exceeded 512Mi"),
            ("2026-12-06T10:00:00Z", "checkout", "OOMKilled: container exceeded 512Mi")])
    with FakeServices.start() as fakes:
        integrations = fakes.integrations()
        lines = ['[sources.alertmanager]', 'secrets = ["env:DEMO_AM_TOKEN"]']
        for name in ("slack", "jira", "github"):
            lines.append(f"[integrations.{name}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in integrations[name].items()]
        lines += ["[integrations.sql]", f"url = {json.dumps(f'sqlite:///{metrics}')}",
                  "[integrations.sql.queries]",
                  'incident = "SELECT at, service, message FROM errors ORDER BY at DESC"']
        if args.model:
            lines += ["[workflows]", f"model = {json.dumps(args.model)}"]
        env = {**os.environ, **fakes.env(), "SMALLHOLD_HOME": str(home),
               "DEMO_AM_TOKEN": TOKEN,  # the models you installed, not a second copy
               "SMALLHOLD_MODELS_DIR": str(resolve_paths().models_dir)}
        profile = resolve_paths(env).profile_dir("default")
        profile.mkdir(parents=True, exist_ok=True)
        (profile / "ops.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "smallhold.cli", "ops", "serve", "--port", str(port),
                   "--worker-id", "demo"]
        server = subprocess.Popen(command, env=env)
        try:
            wait(lambda: httpx.get(f"{url}/health").status_code == 200, 120, "the receiver")
            answer = httpx.post(f"{url}/hooks/alertmanager", content=ALERT.read_bytes(),
                                headers={"Content-Type": "application/json",
                                         "Authorization": f"Bearer {TOKEN}"})
            workflow = answer.json()["events"][0]["workflow"]
            print(f"alert accepted: workflow {workflow}", flush=True)
            if not args.no_kill:
                wait(lambda: len(smallhold(env, "ops", "workflows", "show",
                                           workflow)["steps"]) >= 3, 300, "the data steps")
                server.send_signal(signal.SIGKILL)
                server.wait()
                print("ops serve killed with SIGKILL mid-run; starting it again", flush=True)
                server = subprocess.Popen(command, env=env)
            wait(lambda: smallhold(env, "ops", "workflows", "show", workflow)["status"]
                 == "success", 1800, "the run to finish")
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(30)
        shown = smallhold(env, "ops", "workflows", "show", workflow)
        print("\nresult:", json.dumps(shown["result"], indent=2))
        for message in fakes.sent("slack"):
            print(f"\nSlack {message.get('channel')}: {message['text']}")
        for document in shown["documents"]:
            print(f"\n--- {document['name']} ---\n{document['content']}")
        print("\naudit:")
        for entry in shown["audit"]:
            print(f"  #{entry['seq']} {entry['at']} {entry['actor']} {entry['action']}")
    if not args.keep:
        import shutil

        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
