"""The fake services speak the real wire formats: slack_sdk and httpx work unchanged."""

from __future__ import annotations

import smtplib
import time
from email.message import EmailMessage

import httpx
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from smallhold.apps.ops.config import OpsConfig
from smallhold.apps.ops.errors import TransientError
from smallhold.apps.ops.fakes import ENV, FakeServices, LocalSmtp, channel_id
from smallhold.apps.ops.resilience import classify

pytestmark = pytest.mark.usefixtures("clean_fakes")


def _slack(fakes: FakeServices, token: str | None = None) -> WebClient:
    return WebClient(token=token or fakes.tokens["slack"], base_url=fakes.slack_url,
                     retry_handlers=[], timeout=5)


def test_slack_web_client_works_against_the_fake(fakes: FakeServices) -> None:
    client = _slack(fakes)
    assert client.auth_test()["ok"] is True
    posted = client.chat_postMessage(channel="#incidents", text="hello")
    assert posted["ok"] is True and posted["channel"] == channel_id("#incidents")
    updated = client.chat_update(channel=posted["channel"], ts=posted["ts"], text="edited")
    assert updated["text"] == "edited"
    [message] = fakes.sent("slack")
    assert message["text"] == "edited" and message["edited"] is True
    with pytest.raises(SlackApiError) as caught:
        client.chat_update(channel=posted["channel"], ts="1.1", text="x")
    assert caught.value.response["error"] == "message_not_found"


def test_slack_fake_refuses_a_bad_token_as_slack_does(fakes: FakeServices) -> None:
    with pytest.raises(SlackApiError) as caught:
        _slack(fakes, token="xoxb-forged").chat_postMessage(channel="#x", text="x")
    assert caught.value.response.status_code == 200
    assert caught.value.response["error"] == "invalid_auth"
    assert fakes.sent("slack") == []


def test_slack_fake_deduplicates_on_client_msg_id(fakes: FakeServices) -> None:
    client = _slack(fakes)
    first = client.chat_postMessage(channel="#ops", text="a", client_msg_id="wf-1/tell")
    again = client.chat_postMessage(channel="#ops", text="a", client_msg_id="wf-1/tell")
    other = client.chat_postMessage(channel="#ops", text="b", client_msg_id="wf-1/other")
    assert first["ts"] == again["ts"] != other["ts"]
    assert [m["text"] for m in fakes.sent("slack")] == ["a", "b"]


def test_injected_slack_rate_limit_has_retry_after(fakes: FakeServices) -> None:
    fakes.fail_next("slack", 1, status=429, retry_after=2)
    with pytest.raises(SlackApiError) as caught:
        _slack(fakes).chat_postMessage(channel="#x", text="x")
    assert caught.value.response.status_code == 429
    assert caught.value.response["error"] == "ratelimited"
    found = classify(caught.value, "slack")
    assert isinstance(found, TransientError) and found.retry_after == 2
    assert _slack(fakes).chat_postMessage(channel="#x", text="x")["ok"] is True
    assert [r["fault"] for r in fakes.requests("slack")] == [429, None]


def test_jira_fake_speaks_rest_v2(fakes: FakeServices) -> None:
    auth = {"Authorization": f"Bearer {fakes.tokens['jira']}"}
    with httpx.Client(base_url=fakes.jira_url, headers=auth, timeout=5) as jira:
        body = jira.get("/rest/api/2/search", params={
            "jql": 'labels in (disk, security) AND text ~ "WAL"'}).json()
        assert [i["key"] for i in body["issues"]] == ["OPS-2"]
        assert body["issues"][0]["fields"]["status"]["name"] == "Open"
        assert jira.post("/rest/api/2/search", json={"jql": "project = OPS"}).json()[
            "total"] == 3
        bad = jira.get("/rest/api/2/search", params={"jql": "color = red"})
        assert bad.status_code == 400 and "color" in bad.json()["errorMessages"][0]
        assert jira.get("/rest/api/2/issue/OPS-9").status_code == 404
        made = jira.post("/rest/api/2/issue/OPS-1/comment", json={"body": "looking"})
        assert made.status_code == 201
        listed = jira.get("/rest/api/2/issue/OPS-1/comment").json()
        assert listed["comments"][-1]["body"] == "looking"
    assert httpx.get(f"{fakes.jira_url}/rest/api/2/issue/OPS-1").status_code == 401


def test_github_fake_speaks_rest(fakes: FakeServices) -> None:
    with httpx.Client(base_url=fakes.github_url, timeout=5) as github:
        found = github.get("/search/issues", params={"q": "repo:acme/shop is:pr"}).json()
        assert [i["number"] for i in found["items"]] == [15]
        assert github.get("/search/issues", params={"q": "label:test is:closed"}).json()[
            "total_count"] == 1
        commits = github.get("/repos/acme/shop/commits", params={"per_page": 2}).json()
        assert len(commits) == 2 and commits[0]["commit"]["author"]["date"].endswith("Z")
        refused = github.post("/repos/acme/shop/issues/12/comments", json={"body": "x"})
        assert refused.status_code == 401  # writing needs a token
        forged = github.get("/search/issues", params={"q": "x"},
                            headers={"Authorization": "Bearer forged"})
        assert forged.status_code == 401 and forged.json()["message"] == "Bad credentials"
        made = github.post("/repos/acme/shop/issues/12/comments", json={"body": "hi"},
                           headers={"Authorization": f"Bearer {fakes.tokens['github']}"})
        assert made.status_code == 201 and "#issuecomment-" in made.json()["html_url"]
    assert fakes.sent("github")[0]["number"] == 12


def test_fault_injection_and_latency(fakes: FakeServices) -> None:
    fakes.fail_next("github", 2, status=502)
    with httpx.Client(base_url=fakes.github_url, timeout=5) as github:
        codes = [github.get("/search/issues", params={"q": "x"}).status_code
                 for _ in range(3)]
    assert codes == [502, 502, 200]
    fakes.set_latency("jira", 0.3)
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{fakes.jira_url}/rest/api/2/issue/OPS-1", timeout=0.1)
    assert time.monotonic() - started < 0.3
    with pytest.raises(ValueError, match="unknown fake service"):
        fakes.fail_next("pagerduty")


def test_fakes_configure_ops(fakes: FakeServices) -> None:
    with LocalSmtp() as smtp:
        config = OpsConfig.model_validate({"integrations": fakes.integrations(smtp)})
    assert config.integrations.slack.base_url == fakes.slack_url
    assert config.integrations.slack.token == f"env:{ENV['slack']}"
    assert config.integrations.smtp.port == smtp.port
    assert fakes.env()[ENV["jira"]] == fakes.tokens["jira"]


def test_local_smtp_receives_real_mail() -> None:
    with LocalSmtp() as smtp:
        mail = EmailMessage()
        mail["From"], mail["To"], mail["Subject"] = "a@x.test", "b@x.test", "Grüße"
        mail.set_content("héllo")
        with smtplib.SMTP(smtp.host, smtp.port, timeout=5) as client:
            client.send_message(mail)
        [received] = smtp.messages
        assert received.rcpt_tos == ["b@x.test"]
        assert received.message["Subject"] == "Grüße"
        assert received.message.get_content().strip() == "héllo"
