"""The receiver over HTTP: signed deliveries queued once, everything else refused and
logged, the guard's Host, type and size checks, approvals from Slack buttons."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from starlette.testclient import TestClient

from smallhold.apps.ops.config import OpsConfig, Workflows
from smallhold.apps.ops.config import Receiver as ReceiverConfig
from smallhold.apps.ops.errors import WorkflowStateError
from smallhold.apps.ops.models import Decision, Event
from smallhold.apps.ops.receiver import Receiver
from smallhold.apps.ops.state import OpsState

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "ops"
SECRET = "test-secret"
NOW = 1_700_000_000.0


def _signer() -> Any:
    spec = importlib.util.spec_from_file_location("ops_sign", DATA / "sign.py")
    if spec is None or spec.loader is None or not DATA.is_dir():
        pytest.skip("../shared/data/ops is not here")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Harness:
    def __init__(self, tmp_path: Path) -> None:
        self.state = OpsState(f"sqlite:///{tmp_path / 'ops.sqlite'}")
        self.submitted: list[Event] = []
        self.decisions: list[Decision] = []
        config = OpsConfig(receiver=ReceiverConfig(max_body=4096),
                           workflows=Workflows(approvers=["U_ALICE"]))
        secrets = {s: [SECRET] for s in ("slack", "github", "jira", "alertmanager",
                                         "pagerduty")}
        self.receiver = Receiver(config, self.state, secrets, submit=self._submit,
                                 decide=self._decide, clock=lambda: NOW)
        self.client = TestClient(self.receiver.app(), base_url="http://127.0.0.1:8740")
        self.sign = _signer()

    def _submit(self, event: Event) -> str:
        self.submitted.append(event)
        return event.key

    def _decide(self, decision: Decision) -> None:
        if decision.workflow == "finished":
            raise WorkflowStateError("workflow finished is success, not waiting for approval")
        self.decisions.append(decision)

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> Any:
        return self.client.post(path, content=body, headers=headers)

    def signed(self, source: str, body: bytes, **options: Any) -> dict[str, str]:
        headers: dict[str, str] = self.sign.sign_headers(source, SECRET, body, **options)
        return headers

    def refusals(self) -> list[dict[str, Any]]:
        return [a.detail for a in self.state.audit_entries()
                if a.action == "delivery.refused"]


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


def test_a_signed_slack_mention_is_queued_once_and_its_retry_is_not(harness: Harness) -> None:
    body = (DATA / "slack_app_mention.json").read_bytes()
    first = harness.post("/hooks/slack/events", body,
                         harness.signed("slack", body, timestamp=int(NOW)))
    assert first.status_code == 200 and first.json()["events"][0]["duplicate"] is False
    retry = harness.post("/hooks/slack/events", body,
                         harness.signed("slack", body, timestamp=int(NOW), retry_num=1))
    assert retry.status_code == 200 and retry.json()["events"][0]["duplicate"] is True
    assert len(harness.submitted) == 1
    assert harness.state.event(harness.submitted[0].key)["deliveries"] == 2


def test_url_verification_is_answered(harness: Harness) -> None:
    body = (DATA / "slack_url_verification.json").read_bytes()
    answer = harness.post("/hooks/slack/events", body,
                          harness.signed("slack", body, timestamp=int(NOW)))
    assert answer.status_code == 200
    assert answer.json() == {"challenge": json.loads(body)["challenge"]}
    assert harness.submitted == []


@pytest.mark.parametrize("case", ["forged", "tampered", "stale", "unsigned"])
def test_bad_signatures_are_refused_logged_and_never_run(harness: Harness, case: str) -> None:
    body = (DATA / "slack_app_mention.json").read_bytes()
    timestamp = int(NOW) - 400 if case == "stale" else int(NOW)
    secret = "not-the-secret" if case == "forged" else SECRET
    headers = harness.sign.sign_headers("slack", secret, body, timestamp=timestamp)
    if case == "tampered":
        body = body.replace(b"Ev111", b"Ev112")
    if case == "unsigned":
        headers = {"Content-Type": "application/json"}
    answer = harness.post("/hooks/slack/events", body, headers)
    assert answer.status_code == 401, answer.text
    assert harness.submitted == []
    refused = harness.refusals()
    assert len(refused) == 1 and refused[0]["source"] == "slack"
    assert SECRET not in json.dumps(refused)


def test_alertmanager_needs_its_bearer_token(harness: Harness) -> None:
    body = (DATA / "alertmanager_firing.json").read_bytes()
    good = harness.post("/hooks/alertmanager", body, harness.signed("alertmanager", body))
    assert good.status_code == 200
    wrong = harness.post("/hooks/alertmanager", body,
                         {"Content-Type": "application/json",
                          "Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    again = harness.post("/hooks/alertmanager", body, harness.signed("alertmanager", body))
    assert again.json()["events"][0]["duplicate"] is True  # byte-identical retry
    assert len(harness.submitted) == 1 and harness.submitted[0].type == "alert.firing"


def test_github_and_jira_deliveries_are_deduplicated_by_their_ids(harness: Harness) -> None:
    body = (DATA / "jira_issue_created.json").read_bytes()
    headers = harness.signed("jira", body, delivery_id="d-1")
    assert harness.post("/hooks/jira", body, headers).status_code == 200
    assert harness.post("/hooks/jira", body, headers).json()["events"][0]["duplicate"]
    gh = json.dumps({"action": "opened", "number": 7, "repository": {"full_name": "a/b"},
                     "sender": {"login": "dev"},
                     "pull_request": {"title": "Fix it", "number": 7,
                                      "html_url": "https://example.invalid/7"}}).encode()
    headers = harness.signed("github", gh, event="pull_request", delivery_id="g-1")
    assert harness.post("/hooks/github", gh, headers).status_code == 200
    assert [e.source for e in harness.submitted] == ["jira", "github"]


def test_the_guard_refuses_wrong_hosts_types_and_huge_bodies(harness: Harness) -> None:
    body = (DATA / "slack_app_mention.json").read_bytes()
    headers = harness.signed("slack", body, timestamp=int(NOW))
    rebound = TestClient(harness.receiver.app(), base_url="http://evil.example:8740")
    assert rebound.post("/hooks/slack/events", content=body, headers=headers).status_code == 400
    text = {**headers, "Content-Type": "text/plain"}
    assert harness.post("/hooks/slack/events", body, text).status_code == 415
    huge = b'{"x": "' + b"a" * 10_000 + b'"}'
    assert harness.post("/hooks/github", huge,
                        harness.signed("github", huge, event="push")).status_code == 413
    assert harness.submitted == []


def test_malformed_json_and_unknown_sources_get_clear_errors(harness: Harness) -> None:
    bad = b'{"version": "4", '
    answer = harness.post("/hooks/alertmanager", bad, harness.signed("alertmanager", bad))
    assert answer.status_code == 400 and "JSON" in answer.json()["message"]
    assert harness.post("/hooks/nagios", b"{}", {"Content-Type": "application/json"}
                        ).status_code == 404
    assert harness.submitted == []


def _button(action: str, workflow: str, user: str) -> bytes:
    payload = {"type": "block_actions", "user": {"id": user},
               "actions": [{"action_id": action, "value": workflow}]}
    return urlencode({"payload": json.dumps(payload)}).encode()


def test_slack_buttons_approve_only_for_approvers(harness: Harness) -> None:
    def press(action: str, workflow: str, user: str) -> Any:
        body = _button(action, workflow, user)
        headers = harness.signed("slack", body, timestamp=int(NOW))
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        return harness.post("/hooks/slack/actions", body, headers)

    assert "approved" in press("ops.approve", "wf-1", "U_ALICE").json()["text"]
    assert "not one of" in press("ops.approve", "wf-1", "U_MALLORY").json()["text"]
    assert "not waiting" in press("ops.deny", "finished", "U_ALICE").json()["text"]
    assert [(d.workflow, d.approve, d.by) for d in harness.decisions] == [
        ("wf-1", True, "U_ALICE")]
    refused = [a for a in harness.state.audit_entries() if a.action == "approval.refused"]
    assert refused and refused[0].detail["by"] == "U_MALLORY"


def test_a_source_without_a_secret_refuses_everything(tmp_path: Path) -> None:
    state = OpsState(f"sqlite:///{tmp_path / 'o.sqlite'}")
    receiver = Receiver(OpsConfig(), state, {}, submit=lambda e: e.key,
                        decide=lambda d: None, clock=time.time)
    client = TestClient(receiver.app(), base_url="http://127.0.0.1:8740")
    answer = client.post("/hooks/github", content=b"{}",
                         headers={"Content-Type": "application/json"})
    assert answer.status_code == 401 and "sources.github" in answer.json()["message"]
