"""Self-healing: failures classified, transient ones retried with backoff, breakers shared
through the database (SQLite file and the local PostgreSQL), real clients against fakes."""

from __future__ import annotations

import dataclasses
import smtplib
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import psycopg
import pytest
from ops_fixtures import PG_URL, Sleeps, fast, make_call, postgres_up, services_for
from pydantic import BaseModel, ValidationError
from slack_sdk.errors import SlackApiError
from slack_sdk.web.slack_response import SlackResponse
from sqlalchemy import delete, select
from sqlalchemy import exc as sa_exc

from smallhold.apps.ops.agents import communication, data
from smallhold.apps.ops.errors import (
    CircuitOpenError,
    PermanentError,
    ScopeError,
    TransientError,
)
from smallhold.apps.ops.fakes import FakeServices
from smallhold.apps.ops.resilience import (
    MAX_RETRY_AFTER,
    breaker_state,
    classify,
    guarded_call,
    retry_after_seconds,
)
from smallhold.apps.ops.state import OpsState, audit, breakers
from smallhold.apps.ops.tools import Tool

SLACK_POST = communication.TOOLS[0]
JIRA_GET = next(t for t in data.TOOLS if t.name == "jira_get")


pytestmark = pytest.mark.usefixtures("clean_fakes")


@pytest.fixture
def state(tmp_path: Path) -> Iterator[OpsState]:
    opened = OpsState(f"sqlite:///{tmp_path / 'ops.db'}")
    yield opened
    opened.close()


def _unique(tool: Tool) -> Tool:
    """The same tool on a breaker of its own (a shared database holds other tests' rows)."""
    return dataclasses.replace(tool, integration=f"{tool.integration}-{uuid.uuid4().hex[:8]}")


def _slack_response(status: int, body: dict[str, object],
                    headers: dict[str, str] | None = None) -> SlackResponse:
    return SlackResponse(client=None, http_verb="POST", api_url="https://slack/api/x",
                         req_args={}, data=body, headers=headers or {}, status_code=status)


def _status(status: int, headers: dict[str, str] | None = None) -> httpx.HTTPStatusError:
    request = httpx.Request("GET", "https://jira.example/rest/api/2/search")
    response = httpx.Response(status, headers=headers, text="nope", request=request)
    return httpx.HTTPStatusError("failed", request=request, response=response)


# classify ------------------------------------------------------------------------------

def _validation_error() -> ValidationError:
    class M(BaseModel):
        x: int

    try:
        M.model_validate({"x": "no"})
    except ValidationError as exc:
        return exc
    raise AssertionError("unreachable")


@pytest.mark.parametrize(("failure", "kind"), [
    (httpx.ConnectError("refused"), TransientError),
    (httpx.ReadTimeout("slow"), TransientError),
    (_status(503), TransientError),
    (_status(502), TransientError),
    (_status(429), TransientError),
    (_status(404), PermanentError),
    (_status(400), PermanentError),
    (_status(401), PermanentError),
    (_status(403), PermanentError),
    (_status(403, {"X-RateLimit-Remaining": "0"}), TransientError),  # GitHub's rate limit
    (SlackApiError("x", _slack_response(429, {"ok": False, "error": "ratelimited"})),
     TransientError),
    (SlackApiError("x", _slack_response(200, {"ok": False, "error": "invalid_auth"})),
     PermanentError),
    (SlackApiError("x", _slack_response(200, {"ok": False, "error": "channel_not_found"})),
     PermanentError),
    (SlackApiError("x", _slack_response(500, {"ok": False, "error": "fatal_error"})),
     TransientError),
    (smtplib.SMTPDataError(451, b"try later"), TransientError),
    (smtplib.SMTPDataError(554, b"no"), PermanentError),
    (smtplib.SMTPAuthenticationError(535, b"bad credentials"), PermanentError),
    (smtplib.SMTPServerDisconnected("gone"), TransientError),
    (smtplib.SMTPRecipientsRefused({"a@b.c": (450, b"mailbox busy")}), TransientError),
    (smtplib.SMTPRecipientsRefused({"a@b.c": (550, b"no such user")}), PermanentError),
    (sqlite3.OperationalError("database is locked"), TransientError),
    (sqlite3.OperationalError("attempt to write a readonly database"), PermanentError),
    (sqlite3.OperationalError("no such table: x"), PermanentError),
    (sa_exc.OperationalError("select 1", {}, sqlite3.OperationalError("database is locked")),
     TransientError),
    (psycopg.OperationalError("connection refused"), TransientError),
    (psycopg.errors.SerializationFailure("retry"), TransientError),
    (psycopg.errors.QueryCanceled("statement timeout"), PermanentError),
    (psycopg.errors.ReadOnlySqlTransaction("read-only"), PermanentError),
    (psycopg.errors.UndefinedTable("no table"), PermanentError),
    (ConnectionRefusedError(111, "refused"), TransientError),
    (TimeoutError("slow"), TransientError),
    (_validation_error(), PermanentError),
    (ValueError("odd"), PermanentError),
])
def test_classify_sorts_failures_into_transient_and_permanent(
        failure: BaseException, kind: type[Exception]) -> None:
    found = classify(failure, "svc")
    assert type(found) is kind
    assert found.integration == "svc"


def test_classify_keeps_retry_after_and_caps_it() -> None:
    slack = classify(SlackApiError("x", _slack_response(
        429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "7"})), "slack")
    assert isinstance(slack, TransientError) and slack.retry_after == 7
    huge = classify(_status(503, {"Retry-After": "86400"}), "jira")
    assert isinstance(huge, TransientError) and huge.retry_after == MAX_RETRY_AFTER
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    dated = retry_after_seconds(later)
    assert dated is not None and 25 <= dated <= 30
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None
    assert retry_after_seconds("-5") == 0.0


def test_an_integration_error_is_kept_as_is() -> None:
    original = PermanentError("already classified", integration="x")
    assert classify(original) is original


# retries -------------------------------------------------------------------------------

def test_transient_500s_are_retried_with_growing_waits_then_succeed(
        fakes: FakeServices, state: OpsState) -> None:
    fakes.fail_next("slack", 3, status=500)
    sleeps = Sleeps()
    call = make_call({"text": "checkout is down"})
    out = guarded_call(SLACK_POST, call, services_for(fakes), state,
                       fast(attempts=5, breaker_failures=10),
                       sleep=sleeps, jitter=lambda high: high)
    assert out["ts"] and out["channel"].startswith("C")
    assert sleeps.waits == [0.5, 1.0, 2.0]  # doubling from backoff
    assert len(fakes.requests("slack")) == 4
    assert len(fakes.sent("slack")) == 1
    assert breaker_state(state, "slack") == "closed"
    assert state.breaker("slack")["failures"] == 0  # a success resets the count


def test_full_jitter_stays_under_the_growing_ceiling(fakes: FakeServices,
                                                     state: OpsState) -> None:
    fakes.fail_next("slack", 4, status=503)
    sleeps = Sleeps()
    guarded_call(SLACK_POST, make_call({"text": "x"}), services_for(fakes), state,
                 fast(attempts=5, backoff=1.0, backoff_max=3.0, breaker_failures=10),
                 sleep=sleeps)
    assert len(sleeps.waits) == 4
    for number, wait in enumerate(sleeps.waits):
        assert 0 <= wait <= min(3.0, 1.0 * 2 ** number)


def test_429_retry_after_is_honoured_and_capped(fakes: FakeServices, state: OpsState) -> None:
    fakes.fail_next("slack", 1, status=429, retry_after=3)
    fakes.fail_next("slack", 1, status=429, retry_after=120)
    sleeps = Sleeps()
    guarded_call(SLACK_POST, make_call({"text": "x"}), services_for(fakes), state,
                 fast(backoff=0.01, backoff_max=10.0), sleep=sleeps, jitter=lambda h: h)
    assert sleeps.waits == [3.0, 10.0]  # the service's wait; then capped at backoff_max


def test_permanent_4xx_is_not_retried(fakes: FakeServices, state: OpsState) -> None:
    sleeps = Sleeps()
    services = services_for(fakes, secrets={"OPS_FAKE_SLACK_TOKEN": "xoxb-wrong"})
    with pytest.raises(PermanentError, match="invalid_auth"):
        guarded_call(SLACK_POST, make_call({"text": "x"}), services, state, fast(),
                     sleep=sleeps)
    assert sleeps.waits == []
    assert len(fakes.requests("slack")) == 1
    with pytest.raises(PermanentError, match="404"):
        guarded_call(JIRA_GET, make_call({"key": "OPS-404"}), services_for(fakes), state,
                     fast(), sleep=sleeps)
    assert sleeps.waits == [] and len(fakes.requests("jira")) == 1


def test_giving_up_says_how_many_attempts(fakes: FakeServices, state: OpsState) -> None:
    fakes.fail_next("jira", 10, status=502)
    sleeps = Sleeps()
    with pytest.raises(TransientError, match=r"gave up after 3 attempts"):
        guarded_call(JIRA_GET, make_call({"key": "OPS-1"}), services_for(fakes), state,
                     fast(attempts=3, breaker_failures=10), sleep=sleeps)
    assert len(fakes.requests("jira")) == 3 and len(sleeps.waits) == 2


def test_a_refused_scope_never_reaches_the_service(fakes: FakeServices,
                                                   state: OpsState) -> None:
    with pytest.raises(ScopeError):
        guarded_call(SLACK_POST, make_call({"text": "x"}), services_for(fakes), state, fast(),
                     granted=["sql:read"])
    with pytest.raises(PermanentError, match="parameters"):
        guarded_call(SLACK_POST, make_call({"nope": 1}), services_for(fakes), state, fast(),
                     granted=["slack:write"])
    assert fakes.requests("slack") == []
    assert state.breakers() == []


def test_a_tool_without_integration_has_no_breaker(state: OpsState) -> None:
    runs: list[str] = []

    def bug(call: object, services: object) -> dict[str, object]:
        runs.append("bug")
        raise ValueError("a bug")

    def hiccup(call: object, services: object) -> dict[str, object]:
        runs.append("hiccup")
        if runs.count("hiccup") < 3:
            raise TransientError("the model is busy")
        return {"ok": True}

    def tool(run: object) -> Tool:
        return Tool(agent="analysis", name="think", summary="", risk="read", scope="model",
                    run=run)  # type: ignore[arg-type]

    with pytest.raises(ValueError):  # a bug is not an integration failure: unchanged, once
        guarded_call(tool(bug), make_call({}), services_for(), state, fast(), sleep=Sleeps())
    sleeps = Sleeps()
    assert guarded_call(tool(hiccup), make_call({}), services_for(), state,
                        fast(breaker_failures=1), sleep=sleeps) == {"ok": True}
    assert runs == ["bug", "hiccup", "hiccup", "hiccup"] and len(sleeps.waits) == 2
    assert state.breakers() == []


# the shared breaker --------------------------------------------------------------------

def _trip(tool: Tool, fakes: FakeServices, state: OpsState, failures: int) -> None:
    fakes.fail_next("slack", failures, status=503)
    for _ in range(failures):
        with pytest.raises(TransientError):
            guarded_call(tool, make_call({"text": "x"}), services_for(fakes), state,
                         fast(attempts=1, breaker_failures=failures), sleep=Sleeps())


def _breaker_shared_across_workers(fakes: FakeServices, url: str) -> None:
    tool = _unique(SLACK_POST)
    name = str(tool.integration)
    worker_a, worker_b = OpsState(url), OpsState(url)
    try:
        _trip(tool, fakes, worker_a, 3)
        assert len(fakes.requests("slack")) == 3
        assert breaker_state(worker_a, name) == "open"
        assert breaker_state(worker_b, name) == "open"  # the other worker sees it
        sleeps = Sleeps()
        with pytest.raises(CircuitOpenError, match="3 failures"):
            guarded_call(tool, make_call({"text": "x"}), services_for(fakes), worker_b,
                         fast(breaker_failures=3), sleep=sleeps)
        assert len(fakes.requests("slack")) == 3  # worker B did not call Slack at all
        assert sleeps.waits == []  # and did not wait to find out
        with worker_b.engine.connect() as conn:  # a shared database: other tests' rows too
            rows = conn.execute(select(audit.c.detail).where(
                audit.c.action == "breaker.open").order_by(audit.c.seq.desc()).limit(200))
            opened = [d for (d,) in rows if d.get("integration") == name]
        assert len(opened) == 1 and opened[0]["failures"] == 3
        assert opened[0]["tool"] == "communication.slack_post"
    finally:
        with worker_a.engine.begin() as conn:
            conn.execute(delete(breakers).where(breakers.c.name == name))
        worker_a.close()
        worker_b.close()


def test_breaker_opens_and_is_shared_on_sqlite(fakes: FakeServices, tmp_path: Path) -> None:
    _breaker_shared_across_workers(fakes, f"sqlite:///{tmp_path / 'shared.db'}")


@pytest.mark.skipif(not postgres_up(), reason="no PostgreSQL on 127.0.0.1:5432")
def test_breaker_opens_and_is_shared_on_postgresql(fakes: FakeServices) -> None:
    _breaker_shared_across_workers(fakes, PG_URL)


def test_permanent_failures_do_not_open_the_breaker(fakes: FakeServices,
                                                    state: OpsState) -> None:
    for _ in range(5):
        with pytest.raises(PermanentError):
            guarded_call(JIRA_GET, make_call({"key": "OPS-999"}), services_for(fakes), state,
                         fast(attempts=1, breaker_failures=2), sleep=Sleeps())
    assert breaker_state(state, "jira") == "closed"
    assert state.breaker("jira")["failures"] == 0


def test_breaker_opening_mid_retry_stops_the_retries(fakes: FakeServices,
                                                     state: OpsState) -> None:
    fakes.fail_next("slack", 10, status=500)
    sleeps = Sleeps()
    with pytest.raises(CircuitOpenError):
        guarded_call(SLACK_POST, make_call({"text": "x"}), services_for(fakes), state,
                     fast(attempts=10, breaker_failures=2), sleep=sleeps)
    assert len(fakes.requests("slack")) == 2  # the third attempt met the open breaker
    assert len(sleeps.waits) == 2


def test_half_open_trial_closes_or_reopens_the_breaker(fakes: FakeServices,
                                                       state: OpsState) -> None:
    now = [1000.0]
    settings = fast(attempts=1, breaker_failures=2, breaker_reset=30.0)

    def attempt() -> dict[str, object]:
        return guarded_call(SLACK_POST, make_call({"text": "x"}), services_for(fakes), state,
                            settings, sleep=Sleeps(), clock=lambda: now[0])

    fakes.fail_next("slack", 2, status=500)
    for _ in range(2):
        with pytest.raises(TransientError):
            attempt()
    with pytest.raises(CircuitOpenError):
        attempt()
    now[0] += 31  # past the reset: one trial call goes through, and fails
    fakes.fail_next("slack", 1, status=500)
    with pytest.raises(TransientError):
        attempt()
    assert breaker_state(state, "slack") == "open"
    with pytest.raises(CircuitOpenError):
        attempt()
    now[0] += 31  # the next trial succeeds: closed again
    assert attempt()["ts"]
    assert breaker_state(state, "slack") == "closed"
    actions = [e.action for e in state.audit_entries()]
    assert actions == ["breaker.open", "breaker.open", "breaker.close"]
    assert state.verify_audit() == (3, None)
