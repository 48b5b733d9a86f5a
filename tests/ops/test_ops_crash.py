"""`smallhold ops serve` as a user runs it: a signed Alertmanager delivery over HTTP, the
worker killed with SIGKILL in the middle of the run, restarted under the same name, and the
run finished with every Slack message sent exactly once (and a redelivery ignored)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from ops_fixtures import smallhold_json, wait_until

from smallhold.apps.ops.fakes import FakeServices
from smallhold.paths import Paths

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "ops"
TOKEN = "am-bearer-token"
CRASHY = """\
name: crashy
description: three messages in a row, slow enough to be killed in the middle
match:
  - source: alertmanager
steps:
  - id: first
    agent: communication
    action: slack_post
    with: {text: "first {{ event.key }}"}
  - id: second
    agent: communication
    action: slack_post
    needs: [first]
    with: {text: "second after {{ steps.first.ts }}"}
  - id: third
    agent: communication
    action: slack_post
    needs: [second]
    with: {text: "third"}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def toml_value(value: Any) -> str:
    return json.dumps(value)


@pytest.fixture
def fakes() -> Iterator[FakeServices]:
    with FakeServices.start() as running:
        yield running


def serve(port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "smallhold.cli", "ops", "serve", "--port", str(port),
         "--worker-id", "w1"], env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


@pytest.mark.timeout(300)
def test_a_run_killed_mid_way_resumes_and_sends_each_message_once(
        paths: Paths, fakes: FakeServices, tmp_path: Path) -> None:
    if not (DATA / "alertmanager_firing.json").is_file():
        pytest.skip("../shared/data/ops is not here")
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "crashy.yaml").write_text(CRASHY, encoding="utf-8")
    integrations = fakes.integrations()["slack"]
    profile = paths.profile_dir("default")
    profile.mkdir(parents=True, exist_ok=True)
    (profile / "ops.toml").write_text(
        "[sources.alertmanager]\nsecrets = [\"env:OPS_TEST_AM_TOKEN\"]\n\n"
        "[integrations.slack]\n"
        + "".join(f"{k} = {toml_value(v)}\n" for k, v in integrations.items())
        + f"\n[workflows]\ntemplates = [{toml_value(str(templates))}]\n", encoding="utf-8")
    env = {**os.environ, **fakes.env(), "OPS_TEST_AM_TOKEN": TOKEN,
           "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    port = free_port()
    log = tmp_path / "serve.log"
    body = (DATA / "alertmanager_firing.json").read_bytes()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
    url = f"http://127.0.0.1:{port}"

    fakes.set_latency("slack", 1.5)  # each post takes a while: room to kill mid-run
    first = serve(port, env, log)
    try:
        wait_until(lambda: httpx.get(f"{url}/health").status_code == 200, 60, "the receiver",
                   [log])
        answer = httpx.post(f"{url}/hooks/alertmanager", content=body, headers=headers)
        assert answer.status_code == 200, answer.text
        workflow = answer.json()["events"][0]["workflow"]
        wait_until(lambda: len(fakes.sent("slack")) >= 1, 60, "the first message", [log])
        time.sleep(0.3)  # the second post is in flight now
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    assert len(fakes.sent("slack")) < 3  # it really died in the middle

    fakes.set_latency("slack", 0.0)
    second = serve(port, env, log)
    try:
        wait_until(lambda: httpx.get(f"{url}/health").status_code == 200, 60, "the restart",
                   [log])
        again = httpx.post(f"{url}/hooks/alertmanager", content=body, headers=headers)
        assert again.json()["events"][0] == {"workflow": workflow, "duplicate": True}

        def finished() -> bool:
            shown = smallhold_json(env, "ops", "workflows", "show", workflow)
            return bool(shown["status"] == "success")

        wait_until(finished, 120, "the resumed run", [log])
    finally:
        second.terminate()
        second.wait(20)
    texts = [m["text"] for m in fakes.sent("slack")]
    assert len(texts) == 3 and len(set(texts)) == 3, texts
    assert texts[0] == f"first {workflow}" and texts[2] == "third"
    shown = smallhold_json(env, "ops", "workflows", "show", workflow)
    assert shown["result"]["status"] == "done"
    assert sorted(s["step"] for s in shown["steps"]) == ["first", "second", "third"]
    assert smallhold_json(env, "ops", "audit", "--verify")["intact"] is True


GUARDED = """\
name: guarded
critical: true
approval: {timeout: 1h}
match:
  - source: alertmanager
steps:
  - id: tell
    agent: communication
    action: slack_post
    with: {text: "approved: {{ event.key }}"}
"""


@pytest.mark.timeout(300)
def test_a_run_waiting_for_approval_survives_a_kill_of_its_worker(
        paths: Paths, fakes: FakeServices, tmp_path: Path) -> None:
    if not (DATA / "alertmanager_firing.json").is_file():
        pytest.skip("../shared/data/ops is not here")
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "guarded.yaml").write_text(GUARDED, encoding="utf-8")
    profile = paths.profile_dir("default")
    profile.mkdir(parents=True, exist_ok=True)
    (profile / "ops.toml").write_text(
        "[integrations.slack]\n"
        + "".join(f"{k} = {toml_value(v)}\n" for k, v in fakes.integrations()["slack"].items())
        + f"\n[workflows]\ntemplates = [{toml_value(str(templates))}]\n", encoding="utf-8")
    env = {**os.environ, **fakes.env(),
           "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    log = tmp_path / "worker.log"

    def worker() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "smallhold.cli", "ops", "worker",
                                 "--worker-id", "w2"], env=env, stdout=log.open("ab"),
                                stderr=subprocess.STDOUT)

    queued = smallhold_json(env, "ops", "submit", str(DATA / "alertmanager_firing.json"),
                            "--source", "alertmanager")
    workflow = queued[0]["workflow"]

    def waiting() -> bool:
        entries = smallhold_json(env, "ops", "audit", "--workflow", workflow)
        return any(e["action"] == "approval.requested" for e in entries)

    first = worker()
    try:
        wait_until(waiting, 90, "the approval request", [log])
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    second = worker()
    try:
        done = subprocess.run([sys.executable, "-m", "smallhold.cli", "ops", "workflows",
                               "approve", workflow, "--reason", "after the restart"],
                              env=env, capture_output=True, text=True, timeout=60,
                              check=False)
        assert done.returncode == 0, done.stderr

        def finished() -> bool:
            return bool(smallhold_json(env, "ops", "workflows", "show",
                                       workflow)["status"] == "success")

        wait_until(finished, 90, "the approved run", [log])
    finally:
        second.terminate()
        second.wait(20)
    texts = [m["text"] for m in fakes.sent("slack")]
    assert len(texts) == 2  # the approval request (with its buttons) once, then the step
    assert texts[0].startswith("Workflow 'guarded'") and texts[1] == f"approved: {workflow}"
    shown = smallhold_json(env, "ops", "workflows", "show", workflow)
    assert shown["result"]["status"] == "done"
    assert "approval.approved" in [a["action"] for a in shown["audit"]]
