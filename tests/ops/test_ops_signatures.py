"""ops.signatures: every source's scheme against headers made by the shared ``sign.py``.

``sign.py`` (``../shared/data/ops``) prints what real senders attach and reproduces the
upstream test vectors; the verifier here is independent code, so agreeing with it (and with
``signature_vectors.json`` directly) checks both sides. Clocks are passed in: no sleeping.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest
from ops_fixtures import DATA, load_signer

from smallhold.apps.ops.errors import SignatureError, UnknownEventError
from smallhold.apps.ops.signatures import SIGNED_SOURCES, WINDOW_SECONDS, verify

if not (DATA / "sign.py").is_file():
    pytest.skip(f"ops's shared signer is not at {DATA / 'sign.py'} (the shared data folder "
                "beside the repository)", allow_module_level=True)


ops_sign = load_signer()
NOW = 1_700_000_000
SECRET = "test-secret-7f3a"
OTHER = "someone-elses-secret"
GRAFANA_TS = "X-Grafana-Alerting-Signature-Timestamp"
BODIES = {
    "slack": DATA / "slack_app_mention.json",
    "github": DATA / "jira_issue_created.json",  # any bytes: the scheme does not read them
    "jira": DATA / "jira_issue_created.json",
    "pagerduty": DATA / "alertmanager_firing.json",
    "grafana": DATA / "alertmanager_firing.json",
    "alertmanager": DATA / "alertmanager_firing.json",
}


def sign(source: str, secret: str, body: bytes, **options: Any) -> dict[str, str]:
    options.setdefault("timestamp", NOW)
    headers: dict[str, str] = ops_sign.sign_headers(source, secret, body, **options)
    return headers


def body_of(source: str) -> bytes:
    return BODIES[source].read_bytes()


def tampered(body: bytes) -> bytes:
    """The body with one byte changed: a digit in the middle bumped, or a letter swapped."""
    i = len(body) // 2
    return body[:i] + bytes([body[i] ^ 0x01]) + body[i + 1:]


# --- valid --------------------------------------------------------------------------------


@pytest.mark.parametrize("source", SIGNED_SOURCES)
def test_a_request_signed_by_the_sender_is_accepted(source: str) -> None:
    body = body_of(source)
    verify(source, sign(source, SECRET, body), body, [SECRET], now=NOW)


@pytest.mark.parametrize("source", SIGNED_SOURCES)
def test_header_names_are_case_insensitive(source: str) -> None:
    body = body_of(source)
    headers = sign(source, SECRET, body)
    verify(source, {k.lower(): v for k, v in headers.items()}, body, [SECRET], now=NOW)
    verify(source, {k.upper(): v for k, v in headers.items()}, body, [SECRET], now=NOW)


@pytest.mark.parametrize("source", SIGNED_SOURCES)
def test_a_rotated_secret_accepts_the_old_and_the_new(source: str) -> None:
    body = body_of(source)
    for secret in ("old-secret-1", "new-secret-2"):
        verify(source, sign(source, secret, body), body, ["old-secret-1", "new-secret-2"],
               now=NOW)
    with pytest.raises(SignatureError):
        verify(source, sign(source, "retired-0", body), body, ["old-secret-1", "new-secret-2"],
               now=NOW)


def test_upstream_vectors_verify() -> None:
    """The published vectors (Slack docs, GitHub docs, octokit, go-pagerduty) pass as is."""
    vectors = json.loads((DATA / "signature_vectors.json").read_text("utf-8"))["vectors"]
    assert vectors
    for vector in vectors:
        body = vector["body"].encode("utf-8")
        headers = dict(vector["expect"])
        now = float(vector.get("timestamp") or NOW)
        if vector["source"] == "slack":
            headers["X-Slack-Request-Timestamp"] = str(vector["timestamp"])
        verify(vector["source"], headers, body, [vector["secret"]], now=now)
        with pytest.raises(SignatureError):
            verify(vector["source"], headers, body + b" ", [vector["secret"]], now=now)


def test_starlette_like_headers_mapping_is_accepted() -> None:
    """Any Mapping works, not only dict: here a read-only view like a framework's."""
    from types import MappingProxyType

    body = body_of("github")
    verify("github", MappingProxyType(sign("github", SECRET, body)), body, [SECRET], now=NOW)


# --- forged, tampered, unsigned -----------------------------------------------------------


@pytest.mark.parametrize("source", SIGNED_SOURCES)
def test_the_wrong_secret_is_refused_without_leaking_it(source: str) -> None:
    body = body_of(source)
    headers = sign(source, OTHER, body)
    with pytest.raises(SignatureError) as caught:
        verify(source, headers, body, [SECRET], now=NOW)
    message = str(caught.value)
    assert source in message and ("check" in message)
    assert SECRET not in message and OTHER not in message
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert expected not in message
    for value in headers.values():  # nor the presented MAC
        if len(value) >= 40:
            assert value.split("=")[-1] not in message


@pytest.mark.parametrize("source", [s for s in SIGNED_SOURCES if s != "alertmanager"])
def test_one_byte_changed_after_signing_is_refused(source: str) -> None:
    body = body_of(source)
    headers = sign(source, SECRET, body)
    with pytest.raises(SignatureError, match="does not match the body"):
        verify(source, headers, tampered(body), [SECRET], now=NOW)


@pytest.mark.parametrize("source", SIGNED_SOURCES)
def test_no_signature_header_is_unsigned(source: str) -> None:
    body = body_of(source)
    with pytest.raises(SignatureError, match="unsigned"):
        verify(source, {"Content-Type": "application/json"}, body, [SECRET], now=NOW)


@pytest.mark.parametrize("source", SIGNED_SOURCES)
def test_no_configured_secret_refuses_everything(source: str) -> None:
    body = body_of(source)
    headers = sign(source, SECRET, body)
    for secrets in ([], [""]):
        with pytest.raises(SignatureError, match="no secret is configured"):
            verify(source, headers, body, secrets, now=NOW)


def test_an_unknown_source_is_an_unknown_event() -> None:
    with pytest.raises(UnknownEventError, match="'gitlab'"):
        verify("gitlab", {}, b"{}", [SECRET], now=NOW)
    with pytest.raises(UnknownEventError):
        verify("mail", {}, b"{}", [SECRET], now=NOW)


# --- Slack: the timestamp window ----------------------------------------------------------


def test_slack_within_the_window_is_accepted_on_both_sides() -> None:
    body = body_of("slack")
    headers = sign("slack", SECRET, body)
    for now in (NOW - WINDOW_SECONDS, NOW, NOW + WINDOW_SECONDS):
        verify("slack", headers, body, [SECRET], now=float(now))


@pytest.mark.parametrize("offset", [WINDOW_SECONDS + 1, -(WINDOW_SECONDS + 1), 86_400])
def test_slack_stale_timestamp_is_refused(offset: int) -> None:
    body = body_of("slack")
    headers = sign("slack", SECRET, body)  # a valid MAC, replayed at another time
    with pytest.raises(SignatureError, match="stale slack request"):
        verify("slack", headers, body, [SECRET], now=float(NOW + offset))


def test_slack_timestamp_moved_forward_breaks_the_mac() -> None:
    body = body_of("slack")
    headers = sign("slack", SECRET, body)
    headers["X-Slack-Request-Timestamp"] = str(NOW + 1000)
    with pytest.raises(SignatureError, match="does not match"):
        verify("slack", headers, body, [SECRET], now=float(NOW + 1000))


@pytest.mark.parametrize("ts", ["", "abc", "1700000000.5", "-1700000000", "1e9", "１７００"])
def test_slack_non_numeric_timestamp_is_refused(ts: str) -> None:
    body = body_of("slack")
    headers = sign("slack", SECRET, body)
    headers["X-Slack-Request-Timestamp"] = ts
    with pytest.raises(SignatureError):
        verify("slack", headers, body, [SECRET], now=NOW)


def test_slack_without_timestamp_header_is_unsigned() -> None:
    body = body_of("slack")
    headers = sign("slack", SECRET, body)
    del headers["X-Slack-Request-Timestamp"]
    with pytest.raises(SignatureError, match=r"unsigned.*X-Slack-Request-Timestamp"):
        verify("slack", headers, body, [SECRET], now=NOW)


def test_slack_other_signature_version_is_refused() -> None:
    body = body_of("slack")
    headers = sign("slack", SECRET, body)
    headers["X-Slack-Signature"] = headers["X-Slack-Signature"].replace("v0=", "v1=")
    with pytest.raises(SignatureError, match="v0"):
        verify("slack", headers, body, [SECRET], now=NOW)


def test_slack_retry_headers_do_not_change_verification() -> None:
    body = body_of("slack")
    verify("slack", sign("slack", SECRET, body, retry_num=2), body, [SECRET], now=NOW)


# --- GitHub and Jira ----------------------------------------------------------------------


def test_github_legacy_sha1_only_is_accepted() -> None:
    body = body_of("github")
    headers = sign("github", SECRET, body)
    del headers["X-Hub-Signature-256"]
    verify("github", headers, body, [SECRET], now=NOW)
    with pytest.raises(SignatureError, match="X-Hub-Signature does not match"):
        verify("github", headers, tampered(body), [SECRET], now=NOW)


def test_github_sha256_only_is_accepted() -> None:
    body = body_of("github")
    headers = sign("github", SECRET, body)
    del headers["X-Hub-Signature"]
    verify("github", headers, body, [SECRET], now=NOW)


def test_github_wrong_sha256_does_not_fall_back_to_sha1() -> None:
    body = body_of("github")
    headers = sign("github", SECRET, body)  # correct sha1 ...
    headers["X-Hub-Signature-256"] = sign("github", OTHER, body)["X-Hub-Signature-256"]
    with pytest.raises(SignatureError, match="X-Hub-Signature-256 does not match"):
        verify("github", headers, body, [SECRET], now=NOW)


def test_github_sha256_header_with_the_wrong_method_is_refused() -> None:
    body = body_of("github")
    headers = sign("github", SECRET, body)
    headers["X-Hub-Signature-256"] = headers["X-Hub-Signature"]  # sha1=... in the 256 header
    with pytest.raises(SignatureError, match="sha256=<hex>"):
        verify("github", headers, body, [SECRET], now=NOW)


def test_github_uppercase_hex_is_accepted() -> None:
    body = body_of("github")
    headers = sign("github", SECRET, body)
    headers["X-Hub-Signature-256"] = "sha256=" + headers["X-Hub-Signature-256"][7:].upper()
    verify("github", headers, body, [SECRET], now=NOW)


def test_jira_sha1_is_refused() -> None:
    """Atlassian documents only sha256 for X-Hub-Signature; sha1 would be a downgrade."""
    body = body_of("jira")
    sha1 = hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()
    with pytest.raises(SignatureError, match="sha256"):
        verify("jira", {"X-Hub-Signature": f"sha1={sha1}"}, body, [SECRET], now=NOW)


def test_jira_retry_and_identifier_headers_do_not_change_verification() -> None:
    body = body_of("jira")
    headers = sign("jira", SECRET, body, delivery_id="a1b2", retry_num=1)
    verify("jira", headers, body, [SECRET], now=NOW)


# --- PagerDuty ----------------------------------------------------------------------------


def test_pagerduty_two_values_where_only_the_second_matches() -> None:
    body = body_of("pagerduty")
    headers = sign("pagerduty", "pagerduty-old", body, extra_secrets=(SECRET,))
    assert headers["X-PagerDuty-Signature"].count("v1=") == 2
    verify("pagerduty", headers, body, [SECRET], now=NOW)


def test_pagerduty_two_values_where_neither_matches() -> None:
    body = body_of("pagerduty")
    headers = sign("pagerduty", "a-one", body, extra_secrets=("a-two",))
    with pytest.raises(SignatureError, match="does not match"):
        verify("pagerduty", headers, body, [SECRET], now=NOW)


def test_pagerduty_spaces_and_unknown_versions_are_tolerated() -> None:
    body = body_of("pagerduty")
    good = sign("pagerduty", SECRET, body)["X-PagerDuty-Signature"]
    header = f"v2=ffff, v1=00ab , {good}"
    verify("pagerduty", {"x-pagerduty-signature": header}, body, [SECRET], now=NOW)


def test_pagerduty_without_any_v1_is_refused() -> None:
    body = body_of("pagerduty")
    with pytest.raises(SignatureError, match="no v1"):
        verify("pagerduty", {"X-PagerDuty-Signature": "v2=abcd"}, body, [SECRET], now=NOW)


# --- Grafana ------------------------------------------------------------------------------


def test_grafana_with_timestamp_header() -> None:
    body = body_of("grafana")
    headers = sign("grafana", SECRET, body, grafana_timestamp_header=GRAFANA_TS)
    assert headers[GRAFANA_TS] == str(NOW)
    verify("grafana", headers, body, [SECRET], now=NOW)
    with pytest.raises(SignatureError, match="stale grafana request"):
        verify("grafana", headers, body, [SECRET], now=NOW + WINDOW_SECONDS + 1)
    with pytest.raises(SignatureError, match="does not match"):
        verify("grafana", headers, tampered(body), [SECRET], now=NOW)


def test_grafana_stripping_the_timestamp_breaks_the_mac() -> None:
    body = body_of("grafana")
    headers = sign("grafana", SECRET, body, grafana_timestamp_header=GRAFANA_TS)
    del headers[GRAFANA_TS]
    with pytest.raises(SignatureError, match="does not match"):
        verify("grafana", headers, body, [SECRET], now=NOW + 10_000)


def test_grafana_custom_header_names() -> None:
    body = body_of("grafana")
    headers = sign("grafana", SECRET, body, grafana_header="X-Sig",
                   grafana_timestamp_header="X-Ts")
    verify("grafana", headers, body, [SECRET], now=NOW, grafana_header="X-Sig",
           grafana_timestamp_header="X-Ts")
    with pytest.raises(SignatureError, match="unsigned"):  # default names: not found
        verify("grafana", headers, body, [SECRET], now=NOW)


def test_grafana_required_timestamp_header_missing() -> None:
    body = body_of("grafana")
    headers = sign("grafana", SECRET, body)  # no timestamp
    with pytest.raises(SignatureError, match="unsigned grafana request: no X-Ts"):
        verify("grafana", headers, body, [SECRET], now=NOW, grafana_timestamp_header="X-Ts")


def test_grafana_code_default_header_name_is_accepted() -> None:
    body = body_of("grafana")
    headers = sign("grafana", SECRET, body, grafana_header="X-Grafana-Alert-Signature")
    verify("grafana", headers, body, [SECRET], now=NOW)


# --- Alertmanager -------------------------------------------------------------------------


def test_alertmanager_bearer() -> None:
    body = body_of("alertmanager")
    verify("alertmanager", sign("alertmanager", SECRET, body), body, [SECRET], now=NOW)
    with pytest.raises(SignatureError, match="bearer token is not one configured"):
        verify("alertmanager", sign("alertmanager", OTHER, body), body, [SECRET], now=NOW)
    with pytest.raises(SignatureError, match="unsigned"):
        verify("alertmanager", {"Authorization": "Bearer "}, body, [SECRET], now=NOW)
    verify("alertmanager", {"authorization": f"bearer {SECRET}"}, body, [SECRET], now=NOW)


def test_alertmanager_missing_authorization_is_unsigned() -> None:
    body = body_of("alertmanager")
    headers = sign("alertmanager", "", body)
    assert "Authorization" not in headers
    with pytest.raises(SignatureError, match="unsigned alertmanager request"):
        verify("alertmanager", headers, body, [SECRET], now=NOW)


def test_alertmanager_basic() -> None:
    body = body_of("alertmanager")
    creds = "alertmanager:s3cret:with:colons"
    verify("alertmanager", sign("alertmanager", creds, body, basic=True), body, [creds],
           now=NOW)
    with pytest.raises(SignatureError, match="basic auth"):
        verify("alertmanager", sign("alertmanager", "alertmanager:wrong", body, basic=True),
               body, [creds], now=NOW)
    # the password alone is not the secret: it is user:password
    with pytest.raises(SignatureError):
        verify("alertmanager", sign("alertmanager", creds, body, basic=True), body,
               ["s3cret:with:colons"], now=NOW)


def test_alertmanager_basic_not_base64() -> None:
    with pytest.raises(SignatureError, match="not base64"):
        verify("alertmanager", {"Authorization": "Basic %%%"}, b"{}", [SECRET], now=NOW)


def test_alertmanager_bearer_token_sent_as_basic_is_refused() -> None:
    token = base64.b64encode(SECRET.encode()).decode()
    with pytest.raises(SignatureError):
        verify("alertmanager", {"Authorization": f"Basic {token}"}, b"{}", ["x:" + SECRET],
               now=NOW)


def test_alertmanager_other_scheme_is_refused() -> None:
    with pytest.raises(SignatureError, match="not supported"):
        verify("alertmanager", {"Authorization": f"Token {SECRET}"}, b"{}", [SECRET], now=NOW)


def test_a_bare_token_in_authorization_is_not_echoed() -> None:
    with pytest.raises(SignatureError) as caught:
        verify("alertmanager", {"Authorization": SECRET}, b"{}", [SECRET], now=NOW)
    assert SECRET not in str(caught.value)
    digest = hmac.new(SECRET.encode(), b"{}", hashlib.sha256).hexdigest()
    with pytest.raises(SignatureError) as caught:
        verify("jira", {"X-Hub-Signature": digest}, b"{}", [SECRET], now=NOW)
    assert digest not in str(caught.value)
