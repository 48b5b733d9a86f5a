"""ops.normalize: the shared real bodies, small documented-shape bodies, and bad input.

The four files in ``../shared/data/ops`` are real captures; the other bodies below are written
here after each sender's documented format (GitHub's pull_request and ping, PagerDuty v3,
Grafana's webhook contact point, Slack's block_actions), since no capture of them is shared.
"""

from __future__ import annotations

import copy
import json
import urllib.parse
from datetime import UTC, datetime
from typing import Any

import pytest
from ops_fixtures import DATA, load_signer

from smallhold.apps.ops.errors import PayloadError, UnknownEventError
from smallhold.apps.ops.models import Event, Inbound
from smallhold.apps.ops.normalize import normalize
from smallhold.apps.ops.signatures import verify

if not (DATA / "sign.py").is_file():
    pytest.skip(f"ops's shared samples are not in {DATA} (the shared data folder beside the "
                "repository)", allow_module_level=True)


ops_sign = load_signer()
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
JSON = {"Content-Type": "application/json"}


def one(inbound: Inbound) -> Event:
    assert inbound.decision is None and inbound.reply is None
    assert len(inbound.events) == 1
    event = inbound.events[0]
    assert "\n" not in event.summary and 0 < len(event.summary) <= 200
    assert all(isinstance(v, str) for v in event.labels.values())
    return event


def encode(obj: Any) -> bytes:
    return json.dumps(obj).encode()


# --- the shared samples --------------------------------------------------------------------


def test_slack_app_mention_sample() -> None:
    body = (DATA / "slack_app_mention.json").read_bytes()
    inbound = normalize("slack", JSON, body, now=NOW)
    event = one(inbound)
    assert inbound.retry is False
    assert event.source == "slack"
    assert event.type == "slack.app_mention"
    assert event.key == "slack-Ev111"
    assert event.text == "Hi there!"  # <@W111>, the app's own mention, is gone
    assert event.summary == "Hi there!"
    assert event.labels == {"channel": "C111", "user": "W222", "team": "T111",
                            "event_type": "app_mention"}
    assert event.received_at == NOW
    assert event.payload == json.loads(body)


def test_slack_sample_signed_verified_then_normalized() -> None:
    """The receiver's order on the same bytes: verify, then normalise; a retry dedups."""
    body = (DATA / "slack_app_mention.json").read_bytes()
    ts = int(NOW.timestamp())
    first = ops_sign.sign_headers("slack", "s", body, timestamp=ts)
    retry = ops_sign.sign_headers("slack", "s", body, timestamp=ts + 60, retry_num=1)
    verify("slack", first, body, ["s"], now=float(ts))
    verify("slack", retry, body, ["s"], now=float(ts + 60))
    a, b = normalize("slack", first, body, now=NOW), normalize("slack", retry, body, now=NOW)
    assert (a.retry, b.retry) == (False, True)
    assert one(a).key == one(b).key == "slack-Ev111"


def test_slack_url_verification_sample() -> None:
    body = (DATA / "slack_url_verification.json").read_bytes()
    inbound = normalize("slack", JSON, body, now=NOW)
    assert inbound.reply == {"challenge": "valid_challenge_token"}
    assert inbound.events == [] and inbound.decision is None


def test_alertmanager_firing_sample() -> None:
    body = (DATA / "alertmanager_firing.json").read_bytes()
    event = one(normalize("alertmanager", JSON, body, now=NOW))
    assert event.source == "alertmanager"
    assert event.type == "alert.firing"
    assert event.key.startswith("alertmanager-") and len(event.key) == len("alertmanager-") + 24
    assert event.summary == "[FIRING:3] ICMP ping failed"
    assert event.severity == "error"  # "major" in the X.733 sense; the raw word is a label
    assert event.labels == {"alertname": "ICMP ping failed", "job": "blackbox-icmp",
                            "monitor": "monis", "severity": "major",
                            "tags": "icmp, ping failed", "alerts": "3"}
    lines = event.text.splitlines()
    assert len(lines) == 3
    for line, ip in zip(lines, ("172.29.254.30", "172.29.254.50", "172.29.254.66"), strict=True):
        assert line.startswith("[firing] ")
        assert f"{ip} does not reply to ICMP pings" in line
        assert f'instance="{ip}"' in line
    assert event.links == [
        "http://9ed35ff90bf8:9090/graph?g0.expr=probe_success%7Bjob%3D%22blackbox-icmp%22%7D"
        "+%3D%3D+0&g0.tab=1",  # the \u0026 decoded
        "http://:9093"]
    assert event.payload == json.loads(body)


def test_jira_issue_created_sample() -> None:
    body = (DATA / "jira_issue_created.json").read_bytes()
    event = one(normalize("jira", JSON, body, now=NOW))
    assert event.source == "jira"
    assert event.type == "jira.issue_created"
    assert event.summary == "BUG-15: New bug with hook"
    assert event.text == "New bug with hook\n\nFix me please"
    assert event.labels["project"] == "BUG"
    assert event.labels["issue_key"] == "BUG-15"
    assert event.labels["issue_type"] == "Bug"
    assert event.labels["priority"] == "Major"
    assert event.labels["status"] == "Open"
    assert event.labels["reporter"] == "Leo Franchi"
    assert event.links == ["http://lfranchi.com:8080/browse/BUG-15"]
    # no X-Atlassian-Webhook-Identifier: a digest of (event, issue, timestamp), stable
    assert event.key.startswith("jira-")
    assert one(normalize("jira", {}, body, now=NOW)).key == event.key
    changed = json.loads(body)
    changed["timestamp"] += 1
    assert one(normalize("jira", {}, encode(changed), now=NOW)).key != event.key


def test_jira_identifier_header_is_the_key_and_retry_is_flagged() -> None:
    body = (DATA / "jira_issue_created.json").read_bytes()
    headers = ops_sign.sign_headers("jira", "s", body, delivery_id="7e3c0a4e-13f1",
                                    retry_num=1)
    inbound = normalize("jira", headers, body, now=NOW)
    assert one(inbound).key == "jira-7e3c0a4e-13f1"
    assert inbound.retry is True


def test_jira_cloud_comment_with_adf_description() -> None:
    body = {
        "timestamp": 1700000000000, "webhookEvent": "comment_created",
        "issue": {"id": "1", "key": "OPS-7", "self": "https://acme.atlassian.net/rest/api/3/issue/1",
                  "fields": {"summary": "Disk full on db-2",
                             "description": {"type": "doc", "version": 1, "content": [
                                 {"type": "paragraph",
                                  "content": [{"type": "text", "text": "/var is at 100%"}]}]},
                             "priority": {"name": "Highest"}, "project": {"key": "OPS"},
                             "reporter": {"accountId": "5b10", "displayName": "Ana"}}},
        "comment": {"body": "Rotating logs now"},
    }
    event = one(normalize("jira", {}, encode(body), now=NOW))
    assert event.type == "jira.comment_created"
    assert event.summary == "comment created on OPS-7: Disk full on db-2"
    assert event.text == "Disk full on db-2\n\n/var is at 100%\n\nRotating logs now"
    assert event.labels["reporter"] == "Ana" and event.labels["priority"] == "Highest"
    assert event.links == ["https://acme.atlassian.net/browse/OPS-7"]


def test_jira_without_webhook_event_is_refused() -> None:
    with pytest.raises(PayloadError, match="webhookEvent"):
        normalize("jira", {}, b'{"issue": {}}', now=NOW)


# --- GitHub ---------------------------------------------------------------------------------

PULL_REQUEST_OPENED = {
    "action": "opened",
    "number": 42,
    "pull_request": {
        "url": "https://api.github.com/repos/acme/widgets/pulls/42",
        "html_url": "https://github.com/acme/widgets/pull/42",
        "number": 42, "state": "open", "title": "Fix crash on empty input",
        "body": "Guards the parser against empty bodies.\n\nCloses #41.",
        "user": {"login": "octocat"}, "draft": False,
        "head": {"ref": "fix-empty"}, "base": {"ref": "main"},
    },
    "repository": {"id": 1, "name": "widgets", "full_name": "acme/widgets",
                   "html_url": "https://github.com/acme/widgets"},
    "organization": {"login": "acme"},
    "sender": {"login": "octocat", "type": "User"},
}


def test_github_pull_request_opened() -> None:
    body = encode(PULL_REQUEST_OPENED)
    headers = ops_sign.sign_headers("github", "s", body, event="pull_request",
                                    delivery_id="72d3162e-cc78-11e3-81ab-4c9367dc0958")
    event = one(normalize("github", headers, body, now=NOW))
    assert event.source == "github"
    assert event.type == "github.pull_request.opened"
    assert event.key == "github-72d3162e-cc78-11e3-81ab-4c9367dc0958"
    assert event.summary == "pull request opened: Fix crash on empty input (acme/widgets#42)"
    assert event.text.startswith("Fix crash on empty input\n\nGuards the parser")
    assert event.labels == {"repo": "acme/widgets", "event": "pull_request", "action": "opened",
                            "sender": "octocat", "number": "42", "org": "acme"}
    assert event.links == ["https://github.com/acme/widgets/pull/42",
                           "https://github.com/acme/widgets"]
    assert event.payload == PULL_REQUEST_OPENED


def test_github_redelivery_keeps_its_key_and_missing_delivery_uses_the_body() -> None:
    body = encode(PULL_REQUEST_OPENED)
    first = normalize("github", {"X-GitHub-Event": "pull_request", "X-GitHub-Delivery": "d-1"},
                      body, now=NOW)
    again = normalize("github", {"x-github-event": "pull_request", "x-github-delivery": "d-1"},
                      body, now=NOW)
    assert one(first).key == one(again).key == "github-d-1"
    bare = one(normalize("github", {"X-GitHub-Event": "pull_request"}, body, now=NOW)).key
    assert bare.startswith("github-") and bare != "github-d-1"
    assert one(normalize("github", {"X-GitHub-Event": "pull_request"}, body, now=NOW)).key == bare
    other = dict(PULL_REQUEST_OPENED, action="closed")
    assert one(normalize("github", {"X-GitHub-Event": "pull_request"}, encode(other),
                         now=NOW)).key != bare


def test_github_ping_replies_with_no_event() -> None:
    body = encode({"zen": "Keep it logically awesome.", "hook_id": 123,
                   "hook": {"type": "Repository", "events": ["pull_request"]},
                   "repository": {"full_name": "acme/widgets"}})
    inbound = normalize("github", {"X-GitHub-Event": "ping", "X-GitHub-Delivery": "p"}, body,
                        now=NOW)
    assert inbound.reply == {"ok": True}
    assert inbound.events == [] and inbound.decision is None


def test_github_push_and_issue_comment() -> None:
    push = {"ref": "refs/heads/main", "compare": "https://github.com/acme/widgets/compare/a...b",
            "commits": [{"message": "Fix parser\n\nDetails"}, {"message": "Bump version"}],
            "repository": {"full_name": "acme/widgets"}, "sender": {"login": "octocat"}}
    event = one(normalize("github", {"X-GitHub-Event": "push"}, encode(push), now=NOW))
    assert event.type == "github.push"
    assert event.summary == "push to main: 2 commit(s) (acme/widgets)"
    assert event.text == "Fix parser\nBump version"
    assert event.labels["ref"] == "refs/heads/main"
    comment = {"action": "created",
               "issue": {"number": 7, "title": "Flaky test", "body": "It fails",
                         "html_url": "https://github.com/acme/widgets/issues/7"},
               "comment": {"body": "Seen again today",
                           "html_url": "https://github.com/acme/widgets/issues/7#c1"},
               "repository": {"full_name": "acme/widgets"}, "sender": {"login": "bob"}}
    event = one(normalize("github", {"X-GitHub-Event": "issue_comment"}, encode(comment),
                          now=NOW))
    assert event.type == "github.issue_comment.created"
    assert event.summary == "issue comment created: Flaky test (acme/widgets#7)"
    assert event.text == "Flaky test\n\nIt fails\n\nSeen again today"
    assert event.links[0] == "https://github.com/acme/widgets/issues/7#c1"


def test_github_without_event_header_is_refused() -> None:
    with pytest.raises(PayloadError, match="X-GitHub-Event"):
        normalize("github", JSON, encode(PULL_REQUEST_OPENED), now=NOW)


# --- PagerDuty v3 ----------------------------------------------------------------------------

INCIDENT_TRIGGERED = {
    "event": {
        "id": "01DEN2HUHEWBDLKQX7WLYMR8FJ", "event_type": "incident.triggered",
        "resource_type": "incident", "occurred_at": "2026-11-23T11:59:58.169Z",
        "agent": {"id": "PXYZ", "summary": "Monitoring", "type": "service_reference"},
        "client": None,
        "data": {
            "id": "PGR0VU2", "type": "incident",
            "self": "https://api.pagerduty.com/incidents/PGR0VU2",
            "html_url": "https://acme.pagerduty.com/incidents/PGR0VU2",
            "number": 2, "status": "triggered", "incident_key": "d3640fbd41094207",
            "created_at": "2026-11-23T11:59:58Z", "title": "Checkout API 5xx above 5%",
            "service": {"id": "PF9KMXH", "summary": "Checkout API", "type": "service_reference"},
            "assignees": [{"id": "PTUXL6G", "summary": "User 123"}],
            "escalation_policy": {"id": "PUS0KTE", "summary": "Default"},
            "teams": [{"id": "PFCVPS0", "summary": "Engineering"}],
            "priority": {"id": "PSO75BM", "summary": "P1", "type": "priority_reference"},
            "urgency": "high", "conference_bridge": None, "resolve_reason": None,
        },
    }
}


def test_pagerduty_incident_triggered() -> None:
    body = encode(INCIDENT_TRIGGERED)
    headers = ops_sign.sign_headers("pagerduty", "s", body, delivery_id="wh-1")
    event = one(normalize("pagerduty", headers, body, now=NOW))
    assert event.source == "pagerduty"
    assert event.type == "pagerduty.incident.triggered"
    assert event.key == "pagerduty-01DEN2HUHEWBDLKQX7WLYMR8FJ"
    assert event.summary == "Checkout API 5xx above 5%"
    assert event.severity == "critical"
    assert event.labels["service"] == "Checkout API"
    assert event.labels["urgency"] == "high" and event.labels["priority"] == "P1"
    assert event.labels["incident"] == "PGR0VU2" and event.labels["number"] == "2"
    assert event.links == ["https://acme.pagerduty.com/incidents/PGR0VU2"]


def test_pagerduty_severity_from_urgency_when_no_priority() -> None:
    low = copy.deepcopy(INCIDENT_TRIGGERED)
    low["event"]["data"]["priority"] = None
    low["event"]["data"]["urgency"] = "low"
    assert one(normalize("pagerduty", {}, encode(low), now=NOW)).severity == "warning"


def test_pagerduty_key_falls_back_to_webhook_id() -> None:
    body = copy.deepcopy(INCIDENT_TRIGGERED)
    del body["event"]["id"]
    event = one(normalize("pagerduty", {"X-Webhook-Id": "wh-77"}, encode(body), now=NOW))
    assert event.key == "pagerduty-wh-77"


def test_pagerduty_annotation_uses_the_incident_title() -> None:
    body = {"event": {"id": "E2", "event_type": "incident.annotated", "resource_type": "incident",
                      "data": {"incident": {"id": "PGR0VU2", "summary": "Checkout API 5xx",
                                            "html_url": "https://acme.pagerduty.com/i/PGR0VU2"},
                               "id": "N1", "content": "Rolled back deploy 812",
                               "type": "incident_note"}}}
    event = one(normalize("pagerduty", {}, encode(body), now=NOW))
    assert event.type == "pagerduty.incident.annotated"
    assert event.summary == "Checkout API 5xx"
    assert event.text == "Rolled back deploy 812"


def test_pagerduty_ping_replies_with_no_event() -> None:
    body = encode({"event": {"id": "01CH754SM17TWPE2V2H4VPBRO7", "event_type": "pagey.ping",
                             "resource_type": "pagey", "occurred_at": "2021-12-08T22:58:53.510Z",
                             "agent": None, "client": None,
                             "data": {"message": "Hello from your friend Pagey!",
                                      "type": "ping"}}})
    inbound = normalize("pagerduty", {}, body, now=NOW)
    assert inbound.reply is not None and inbound.events == []


def test_pagerduty_v2_body_is_refused() -> None:
    with pytest.raises(PayloadError, match="v2"):
        normalize("pagerduty", {}, b'{"messages": [{"event": "incident.trigger"}]}', now=NOW)


# --- Grafana ---------------------------------------------------------------------------------

GRAFANA_FIRING = {
    "receiver": "ops", "status": "firing", "orgId": 1,
    "alerts": [
        {"status": "firing",
         "labels": {"alertname": "HighCPU", "grafana_folder": "Infra", "instance": "web-1",
                    "severity": "warning"},
         "annotations": {"summary": "CPU above 90% on web-1"},
         "startsAt": "2026-11-23T11:50:00Z", "endsAt": "0001-01-01T00:00:00Z",
         "generatorURL": "https://grafana.example/alerting/grafana/u1/view",
         "fingerprint": "0d3a6f1c2b4e5a69",
         "silenceURL": "https://grafana.example/alerting/silence/new?alertmanager=grafana",
         "dashboardURL": "https://grafana.example/d/abc", "panelURL":
             "https://grafana.example/d/abc?viewPanel=2",
         "values": {"B": 93.5}, "valueString": "[ var='B' labels={instance=web-1} value=93.5 ]"},
        {"status": "firing",
         "labels": {"alertname": "HighCPU", "grafana_folder": "Infra", "instance": "web-2",
                    "severity": "critical"},
         "annotations": {"summary": "CPU above 90% on web-2"},
         "startsAt": "2026-11-23T11:51:00Z", "endsAt": "0001-01-01T00:00:00Z",
         "generatorURL": "https://grafana.example/alerting/grafana/u1/view",
         "fingerprint": "9a1c77e0f3b2d415"},
    ],
    "groupLabels": {"alertname": "HighCPU", "grafana_folder": "Infra"},
    "commonLabels": {"alertname": "HighCPU", "grafana_folder": "Infra"},
    "commonAnnotations": {},
    "externalURL": "https://grafana.example/",
    "version": "1",
    "groupKey": '{}/{__grafana_autogenerated__="true"}/{__grafana_receiver__="ops"}:'
                '{alertname="HighCPU", grafana_folder="Infra"}',
    "truncatedAlerts": 0,
    "title": "[FIRING:2] HighCPU Infra",
    "state": "alerting",
    "message": "**Firing**\n\nValue: B=93.5\nLabels:\n - alertname = HighCPU\n",
}


def test_grafana_firing() -> None:
    body = encode(GRAFANA_FIRING)
    event = one(normalize("grafana", JSON, body, now=NOW))
    assert event.source == "grafana"
    assert event.type == "alert.firing"
    assert event.summary == "[FIRING:2] HighCPU Infra"
    assert event.severity == "critical"
    assert event.labels == {"alertname": "HighCPU", "grafana_folder": "Infra", "alerts": "2",
                            "org_id": "1", "state": "alerting"}
    assert "CPU above 90% on web-1" in event.text and 'instance="web-2"' in event.text
    assert "Value: B=93.5" in event.text
    assert event.links[:3] == ["https://grafana.example/alerting/grafana/u1/view",
                               "https://grafana.example/d/abc",
                               "https://grafana.example/d/abc?viewPanel=2"]
    assert event.links[-1] == "https://grafana.example/"
    resolved = copy.deepcopy(GRAFANA_FIRING)
    resolved["status"] = "resolved"
    for alert in resolved["alerts"]:
        alert["status"], alert["endsAt"] = "resolved", "2026-11-23T12:10:00Z"
    other = one(normalize("grafana", JSON, encode(resolved), now=NOW))
    assert other.type == "alert.resolved" and other.key != event.key


def test_grafana_legacy_alerting_body_is_refused() -> None:
    legacy = {"evalMatches": [], "message": "m", "ruleId": 0, "ruleName": "Test",
              "ruleUrl": "https://localhost:3000/", "state": "alerting", "title": "[Alerting] T"}
    with pytest.raises(PayloadError, match="legacy"):
        normalize("grafana", {}, encode(legacy), now=NOW)


# --- Alertmanager keys and shapes --------------------------------------------------------------


def _sample_alertmanager() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((DATA / "alertmanager_firing.json").read_bytes())
    return loaded


def _am_key(payload: dict[str, Any] | bytes) -> str:
    body = payload if isinstance(payload, bytes) else encode(payload)
    return one(normalize("alertmanager", JSON, body, now=NOW)).key


def test_alertmanager_key_is_stable_across_re_encoding() -> None:
    raw = (DATA / "alertmanager_firing.json").read_bytes()
    payload = _sample_alertmanager()

    def reversed_keys(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: reversed_keys(value[k]) for k in reversed(list(value))}
        if isinstance(value, list):
            return [reversed_keys(v) for v in value]
        return value

    reordered = reversed_keys(payload)
    reordered["alerts"] = list(reversed(reordered["alerts"]))
    assert list(reordered) != list(payload)
    again = json.dumps(reordered, indent=3, ensure_ascii=False).encode()
    assert again != raw
    assert _am_key(raw) == _am_key(again) == _am_key(raw)  # a repeat reminder: byte-identical


def test_alertmanager_key_changes_when_an_alert_changes() -> None:
    base = _am_key(_sample_alertmanager())
    one_resolved = _sample_alertmanager()
    one_resolved["alerts"][1]["status"] = "resolved"
    one_resolved["alerts"][1]["endsAt"] = "2019-09-27T16:40:00Z"
    assert _am_key(one_resolved) != base
    status_only = _sample_alertmanager()
    status_only["alerts"][0]["status"] = "resolved"
    assert _am_key(status_only) != base
    joined = _sample_alertmanager()
    new_alert = copy.deepcopy(joined["alerts"][0])
    new_alert["labels"]["instance"] = "172.29.254.99"
    joined["alerts"].append(new_alert)
    assert _am_key(joined) != base
    other_group = _sample_alertmanager()
    other_group["groupKey"] = "{}:{alertname=\"other\"}"
    assert _am_key(other_group) != base
    # annotations are not identity: a re-templated description is the same notification
    reworded = _sample_alertmanager()
    reworded["alerts"][0]["annotations"]["description"] = "reworded"
    assert _am_key(reworded) == base


def test_alertmanager_resolved_and_mixed_severities() -> None:
    payload = _sample_alertmanager()
    payload["status"] = "resolved"
    for alert, severity in zip(payload["alerts"], ("info", "critical", "warning"), strict=True):
        alert["status"] = "resolved"
        alert["labels"]["severity"] = severity
        alert["fingerprint"] = f"fp{severity}"
    payload["commonLabels"].pop("severity")
    event = one(normalize("alertmanager", JSON, encode(payload), now=NOW))
    assert event.type == "alert.resolved"
    assert event.summary == "[RESOLVED] ICMP ping failed"
    assert event.severity == "critical"
    assert "severity" not in event.labels


def test_alertmanager_truncated_alerts() -> None:
    payload = _sample_alertmanager()
    payload["truncatedAlerts"] = 5
    event = one(normalize("alertmanager", JSON, encode(payload), now=NOW))
    assert event.labels["alerts"] == "8" and event.labels["truncated_alerts"] == "5"
    assert event.summary.startswith("[FIRING:8]")
    assert event.text.splitlines()[-1].startswith("... and 5 more alert(s)")
    assert event.key != _am_key(_sample_alertmanager())


@pytest.mark.parametrize("version", ["3", 3, "5", ""])
def test_alertmanager_other_versions_are_refused(version: Any) -> None:
    payload = _sample_alertmanager()
    payload["version"] = version
    with pytest.raises(PayloadError, match="version"):
        normalize("alertmanager", JSON, encode(payload), now=NOW)


def test_alertmanager_without_version_is_refused() -> None:
    payload = _sample_alertmanager()
    del payload["version"]
    with pytest.raises(PayloadError, match="no 'version'"):
        normalize("alertmanager", JSON, encode(payload), now=NOW)


def test_alertmanager_bad_status_and_alerts_are_refused() -> None:
    bad_status = dict(_sample_alertmanager(), status="pending")
    with pytest.raises(PayloadError, match="status"):
        normalize("alertmanager", JSON, encode(bad_status), now=NOW)
    bad_alerts = dict(_sample_alertmanager(), alerts={"a": 1})
    with pytest.raises(PayloadError, match="alerts"):
        normalize("alertmanager", JSON, encode(bad_alerts), now=NOW)


def test_long_summary_is_cut_to_one_line_of_200() -> None:
    payload = _sample_alertmanager()
    payload["groupLabels"] = {"alertname": "x" * 150 + "\n" + "y" * 150}
    event = one(normalize("alertmanager", JSON, encode(payload), now=NOW))
    assert len(event.summary) == 200 and event.summary.endswith("…")


# --- Slack: interactive buttons, retries, other types ----------------------------------------


def _block_actions(action_id: str, value: str | None = "wf-incident-42") -> bytes:
    action: dict[str, Any] = {"action_id": action_id, "block_id": "approval", "type": "button",
                              "text": {"type": "plain_text", "text": "Approve"},
                              "action_ts": "1700000000.000100"}
    if value is not None:
        action["value"] = value
    payload = {"type": "block_actions", "api_app_id": "A111", "token": "t",
               "user": {"id": "U123ABC", "username": "ana", "team_id": "T111"},
               "team": {"id": "T111", "domain": "acme"},
               "channel": {"id": "C111", "name": "ops"},
               "container": {"type": "message", "message_ts": "1700000000.000050"},
               "trigger_id": "123.456.abc", "response_url": "https://hooks.slack.com/actions/x",
               "actions": [action]}
    return urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.mark.parametrize(("action_id", "approve"), [("ops.approve", True), ("ops.deny", False)])
def test_slack_block_actions_is_a_decision(action_id: str, approve: bool) -> None:
    body = _block_actions(action_id)
    headers = ops_sign.sign_headers("slack", "s", body, timestamp=1_700_000_000)
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    verify("slack", headers, body, ["s"], now=1_700_000_000.0)
    inbound = normalize("slack", headers, body, now=NOW)
    assert inbound.events == [] and inbound.reply is None
    assert inbound.decision is not None
    assert inbound.decision.workflow == "wf-incident-42"
    assert inbound.decision.approve is approve
    assert inbound.decision.by == "U123ABC"
    assert inbound.decision.via == "slack"


def test_slack_form_without_content_type_is_sniffed() -> None:
    inbound = normalize("slack", {}, _block_actions("ops.approve"), now=NOW)
    assert inbound.decision is not None and inbound.decision.approve


def test_slack_other_button_is_unknown() -> None:
    with pytest.raises(UnknownEventError, match=r"ops\.approve"):
        normalize("slack", FORM, _block_actions("something.else"), now=NOW)


def test_slack_approve_without_value_is_refused() -> None:
    with pytest.raises(PayloadError, match="value"):
        normalize("slack", FORM, _block_actions("ops.approve", value=None), now=NOW)


def test_slack_form_without_payload_is_refused() -> None:
    with pytest.raises(PayloadError, match="payload"):
        normalize("slack", FORM, b"foo=bar", now=NOW)
    with pytest.raises(UnknownEventError, match="slash"):
        normalize("slack", FORM, b"command=%2Fops&text=hi", now=NOW)
    with pytest.raises(PayloadError, match="form's payload field is not JSON"):
        normalize("slack", FORM, b"payload=%7Bnot-json", now=NOW)


def test_slack_retry_header_sets_retry_and_keeps_the_key() -> None:
    body = (DATA / "slack_app_mention.json").read_bytes()
    headers = {**JSON, "X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    retried = normalize("slack", headers, body, now=NOW)
    assert retried.retry is True
    assert one(retried).key == one(normalize("slack", JSON, body, now=NOW)).key


def test_slack_message_with_bot_mention_in_the_middle() -> None:
    body = {"type": "event_callback", "event_id": "Ev2", "team_id": "T1",
            "authorizations": [{"user_id": "UBOT", "is_bot": True}],
            "event": {"type": "message", "channel": "C9", "user": "U5", "channel_type": "im",
                      "text": "please <@UBOT> restart web-1, cc <@U7|bob>"}}
    event = one(normalize("slack", JSON, encode(body), now=NOW))
    assert event.type == "slack.message"
    assert event.text == "please restart web-1, cc <@U7|bob>"
    assert event.labels["channel_type"] == "im"


def test_slack_event_without_text() -> None:
    body = {"type": "event_callback", "event_id": "Ev3", "team_id": "T1",
            "event": {"type": "reaction_added", "user": "U5", "reaction": "eyes",
                      "item": {"type": "message", "channel": "C9", "ts": "1.2"}}}
    event = one(normalize("slack", JSON, encode(body), now=NOW))
    assert event.type == "slack.reaction_added"
    assert event.summary == "slack reaction_added from U5 in C9"
    assert event.labels["channel"] == "C9"


def test_slack_unknown_type_is_unknown_event() -> None:
    with pytest.raises(UnknownEventError, match="app_rate_limited"):
        normalize("slack", JSON, encode({"type": "app_rate_limited", "minute_rate_limited": 1}),
                  now=NOW)
    with pytest.raises(UnknownEventError, match="view_submission"):
        normalize("slack", FORM, urllib.parse.urlencode(
            {"payload": json.dumps({"type": "view_submission"})}).encode(), now=NOW)


def test_slack_event_callback_without_event_id_is_refused() -> None:
    body = {"type": "event_callback", "event": {"type": "app_mention", "text": "hi"}}
    with pytest.raises(PayloadError, match="event_id"):
        normalize("slack", JSON, encode(body), now=NOW)


# --- bad bodies for every source ----------------------------------------------------------------

ALL = ["slack", "github", "jira", "alertmanager", "pagerduty", "grafana"]
GH = {"X-GitHub-Event": "issues"}


@pytest.mark.parametrize("source", ALL)
def test_malformed_json_says_where(source: str) -> None:
    with pytest.raises(PayloadError, match=r"body is not JSON: line 1 column 12"):
        normalize(source, {**JSON, **GH}, b'{"type": 1,,}', now=NOW)
    with pytest.raises(PayloadError, match=r"line 3 column"):
        normalize(source, {**JSON, **GH}, b'{\n  "a": 1,\n  oops\n}', now=NOW)


@pytest.mark.parametrize("source", ALL)
def test_json_that_is_not_an_object_is_refused(source: str) -> None:
    for body, kind in ((b"[1, 2]", "an array"), (b'"text"', "a string"), (b"42", "a number"),
                       (b"null", "null")):
        with pytest.raises(PayloadError, match=f"JSON but {kind}, not an object"):
            normalize(source, {**JSON, **GH}, body, now=NOW)


@pytest.mark.parametrize("source", ALL)
def test_empty_non_utf8_and_nan_bodies_are_refused(source: str) -> None:
    for body, message in ((b"", "empty"), (b"  \n", "empty"), (b'{"a": "\xff"}', "not UTF-8"),
                          (b'{"a": NaN}', "NaN")):
        with pytest.raises(PayloadError, match=message):
            normalize(source, {**JSON, **GH}, body, now=NOW)


def test_deeply_nested_json_is_refused() -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(PayloadError):
        normalize("jira", JSON, body, now=NOW)


def test_unknown_source_is_unknown_event() -> None:
    with pytest.raises(UnknownEventError, match="'gitlab'"):
        normalize("gitlab", JSON, b"{}", now=NOW)
