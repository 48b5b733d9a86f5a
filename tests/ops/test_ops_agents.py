"""The communication and data agents' tools, with their real clients against the fakes,
a real SMTP server, a SQLite file and the local PostgreSQL."""

from __future__ import annotations

import socket
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from ops_fixtures import (
    PG_URL,
    MemoryLedger,
    Sleeps,
    StubServices,
    fast,
    make_call,
    postgres_up,
    services_for,
)

from smallhold.apps.ops.agents import communication, data
from smallhold.apps.ops.agents.communication import (
    APPROVE_ACTION,
    DENY_ACTION,
    mail_send,
    message_id,
    slack_ask_approval,
    slack_post,
)
from smallhold.apps.ops.agents.data import (
    github_comment,
    github_commits,
    github_search,
    jira_comment,
    jira_get,
    jira_search,
    json_safe,
    sql_query,
)
from smallhold.apps.ops.config import OpsConfig
from smallhold.apps.ops.errors import PermanentError, TransientError
from smallhold.apps.ops.fakes import FakeServices, LocalSmtp
from smallhold.apps.ops.resilience import guarded_call
from smallhold.apps.ops.state import OpsState
from smallhold.apps.ops.tools import Toolbox

pytestmark = pytest.mark.usefixtures("clean_fakes")


@pytest.fixture(scope="module")
def smtp() -> Iterator[LocalSmtp]:
    with LocalSmtp() as server:
        yield server


def test_tools_are_declared_with_risk_scope_and_params() -> None:
    tools = [*communication.TOOLS, *data.TOOLS]
    box = Toolbox(tools)
    assert set(box.actions()["communication"]) == {"slack_post", "slack_ask_approval",
                                                   "mail_send"}
    assert set(box.actions()["data"]) == {"sql_query", "jira_search", "jira_get",
                                          "jira_comment", "github_search", "github_commits",
                                          "github_comment"}
    for tool in tools:
        assert tool.params is not None and tool.integration
        writes = tool.scope.endswith((":write",))
        assert (tool.risk == "low") == writes, tool.name
    assert box.get("data", "sql_query").risk == "read"


# Slack ---------------------------------------------------------------------------------

def test_slack_post_reaches_the_fake_with_the_idempotency_key(fakes: FakeServices) -> None:
    call = make_call({"text": "checkout 502s since 14:05"}, step="tell")
    out = slack_post(call, services_for(fakes))
    assert set(out) == {"channel", "ts"}
    [message] = fakes.sent("slack")
    assert message["channel_name"] == "#incidents"  # the configured default
    assert message["text"] == "checkout 502s since 14:05"
    assert message["client_msg_id"] == call.idempotency_key
    assert message["metadata"]["event_payload"]["idempotency_key"] == call.idempotency_key
    assert out == {"channel": message["channel"], "ts": message["ts"]}


def test_a_retried_call_posts_once(fakes: FakeServices, tmp_path: Path) -> None:
    state = OpsState(f"sqlite:///{tmp_path / 'ops.db'}")
    try:
        services = services_for(fakes, ledger=state)
        call = make_call({"text": "once", "channel": "#ops"})
        first = slack_post(call, services)
        again = slack_post(call, services)  # a re-run after a crash before the checkpoint
        assert first == again
        assert len(fakes.sent("slack")) == 1
        assert len(fakes.requests("slack")) == 1  # the ledger answered; Slack was not asked
    finally:
        state.close()


def test_a_duplicate_that_reaches_the_fake_is_deduplicated(fakes: FakeServices) -> None:
    call = make_call({"text": "dup"})
    # two workers with empty ledgers (the crash came between the post and the record)
    first = slack_post(call, services_for(fakes, ledger=MemoryLedger()))
    second = slack_post(call, services_for(fakes, ledger=MemoryLedger()))
    assert first["ts"] == second["ts"]
    [message] = fakes.sent("slack")
    assert message["deliveries"] == 2


def test_slack_errors_are_classified(fakes: FakeServices) -> None:
    bad = services_for(fakes, secrets={"OPS_FAKE_SLACK_TOKEN": "xoxb-nope"})
    with pytest.raises(PermanentError, match="invalid_auth"):
        slack_post(make_call({"text": "x"}), bad)
    fakes.fail_next("slack", 1, status=429, retry_after=2)
    with pytest.raises(TransientError) as caught:
        slack_post(make_call({"text": "x"}), services_for(fakes))
    assert caught.value.retry_after == 2
    with FakeServices.start(slack_channels={"#incidents"}) as strict, \
            pytest.raises(PermanentError, match="channel_not_found"):
        slack_post(make_call({"text": "x", "channel": "#nowhere"}), services_for(strict))


def test_slack_ask_approval_posts_approve_and_deny_buttons(fakes: FakeServices) -> None:
    call = make_call({"text": "Restart checkout-api on prod?"}, workflow="am-abc123")
    out = slack_ask_approval(call, services_for(fakes))
    assert out["workflow"] == "am-abc123"
    [message] = fakes.sent("slack")
    actions = next(b for b in message["blocks"] if b["type"] == "actions")
    buttons = {e["action_id"]: e["value"] for e in actions["elements"]}
    assert buttons == {APPROVE_ACTION: "am-abc123", DENY_ACTION: "am-abc123"}
    # the engine names the workflow itself when the call is not the workflow's own step
    other = make_call({"text": "plan", "workflow": "am-other"}, step="ask-plan")
    assert slack_ask_approval(other, services_for(fakes))["workflow"] == "am-other"


def test_slack_post_through_guarded_call_with_a_flaky_slack(fakes: FakeServices,
                                                            tmp_path: Path) -> None:
    state = OpsState(f"sqlite:///{tmp_path / 'ops.db'}")
    try:
        fakes.fail_next("slack", 2, status=502)
        tool = Toolbox(communication.TOOLS).get("communication", "slack_post")
        out = guarded_call(tool, make_call({"text": "x"}), services_for(fakes, ledger=state),
                           state, fast(), sleep=Sleeps(), granted=["slack:write"])
        assert out["ts"] and len(fakes.sent("slack")) == 1
    finally:
        state.close()


# mail ----------------------------------------------------------------------------------

def test_mail_send_delivers_to_a_real_smtp_server(smtp: LocalSmtp) -> None:
    call = make_call({"subject": "Incident:\r\nBcc: evil@example.com checkout",
                      "text": "Checkout is down.\nSee #incidents."}, step="mail")
    before = len(smtp.messages)
    out = mail_send(call, services_for(smtp=smtp))
    received = smtp.messages[before:]
    assert len(received) == 1
    mail = received[0].message
    assert received[0].rcpt_tos == ["oncall@smallhold.test"]
    assert mail["Subject"] == "Incident: Bcc: evil@example.com checkout"  # no header injected
    assert mail["Bcc"] is None
    assert mail["Message-ID"] == message_id(call.idempotency_key, "ops@smallhold.test")
    assert mail["X-Ops-Idempotency-Key"] == call.idempotency_key
    assert "Checkout is down." in mail.get_content()
    assert out["message_id"] == mail["Message-ID"] and out["refused"] == []


def test_mail_send_is_idempotent_and_classifies_smtp_answers(smtp: LocalSmtp) -> None:
    services = services_for(smtp=smtp)
    call = make_call({"subject": "s", "text": "t", "to": ["a@smallhold.test"]})
    before = len(smtp.messages)
    first = mail_send(call, services)
    assert mail_send(call, services) == first
    assert len(smtp.messages) == before + 1
    smtp.fail_next(1, code=451)
    with pytest.raises(TransientError, match="451"):
        mail_send(make_call({"subject": "s", "text": "t"}), services)
    smtp.fail_next(1, code=554)
    with pytest.raises(PermanentError, match="554"):
        mail_send(make_call({"subject": "s", "text": "t"}), services)
    with pytest.raises(TransientError):  # nothing listens there: connection refused
        mail_send(make_call({"subject": "s", "text": "t"}), _smtp_at(_closed_port()))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _smtp_at(port: int) -> StubServices:
    return StubServices(config=OpsConfig.model_validate({"integrations": {"smtp": {
        "host": "127.0.0.1", "port": port, "to": ["oncall@smallhold.test"]}}}))


# SQL -----------------------------------------------------------------------------------

@pytest.fixture
def sqlite_db(tmp_path: Path) -> Path:
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE deploys (id INTEGER PRIMARY KEY, service TEXT, at TEXT, "
                     "ok INTEGER, blob BLOB, ratio REAL)")
        conn.executemany("INSERT INTO deploys (service, at, ok, blob, ratio) "
                         "VALUES (?, ?, ?, ?, ?)",
                         [(f"svc{i}", f"2026-12-0{i % 9 + 1}T10:00:00Z", i % 2,
                           bytes([i]) * 3, i / 3) for i in range(12)])
    return path


def _sqlite_services(path: Path, **sql: Any) -> Any:
    return services_for(sql={"url": f"sqlite:///{path}", **sql})


def _count(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM deploys").fetchone()[0])


def test_sql_query_reads_sqlite_capped_and_json_safe(sqlite_db: Path) -> None:
    services = _sqlite_services(sqlite_db, row_limit=5)
    out = sql_query(make_call({"query": "SELECT service, ok, blob, ratio FROM deploys "
                                        "WHERE id > :low ORDER BY id",
                               "params": {"low": 0}}), services)
    assert out["columns"] == ["service", "ok", "blob", "ratio"]
    assert len(out["rows"]) == 5 and out["truncated"] is True
    assert out["rows"][0] == ["svc0", 0, "AAAA", 0.0]  # bytes as base64
    small = sql_query(make_call({"query": "SELECT count(*) AS n FROM deploys"}), services)
    assert small == {"columns": ["n"], "rows": [[12]], "truncated": False}


@pytest.mark.parametrize("statement", [
    "INSERT INTO deploys (service) VALUES ('evil')",
    "DELETE FROM deploys",
    "UPDATE deploys SET ok = 1",
    "DROP TABLE deploys",
    "CREATE TABLE evil (x)",
    "PRAGMA query_only = OFF",
    "ATTACH DATABASE 'other.db' AS other",
    "SELECT 1; DELETE FROM deploys",
    "WITH x AS (SELECT 1) INSERT INTO deploys (service) SELECT 'evil' FROM x",
])
def test_sql_writes_are_refused_by_sqlite(sqlite_db: Path, statement: str) -> None:
    with pytest.raises(PermanentError):
        sql_query(make_call({"query": statement}), _sqlite_services(sqlite_db))
    assert _count(sqlite_db) == 12
    assert not (sqlite_db.parent / "other.db").exists()


def test_sql_query_stops_at_the_timeout(sqlite_db: Path) -> None:
    forever = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
               "SELECT count(*) FROM n")
    with pytest.raises(PermanentError, match="limit"):
        sql_query(make_call({"query": forever}), _sqlite_services(sqlite_db, timeout=0.2))


def test_sql_query_without_a_database_is_a_permanent_error(tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match="no SQLite database"):
        sql_query(make_call({"query": "SELECT 1"}), _sqlite_services(tmp_path / "none.db"))
    assert not (tmp_path / "none.db").exists()
    with pytest.raises(PermanentError, match="no database configured"):
        sql_query(make_call({"query": "SELECT 1"}), services_for())


def test_json_safe_values() -> None:
    from datetime import UTC, date, datetime
    from decimal import Decimal

    row = json_safe([Decimal("1.10"), datetime(2026, 1, 2, 3, 4, tzinfo=UTC),
                     date(2026, 1, 2), uuid.UUID(int=1), b"x" * 100, float("nan"),
                     {"a": (1, 2)}, "y" * 5000])
    assert row[:4] == ["1.10", "2026-01-02T03:04:00+00:00", "2026-01-02",
                       "00000000-0000-0000-0000-000000000001"]
    assert row[4] == "<100 bytes>" and row[5] == "nan" and row[6] == {"a": [1, 2]}
    assert len(row[7]) == data.CELL_MAX + 1


@pytest.fixture
def pg_table() -> Iterator[str]:
    if not postgres_up():
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    name = f"ops_sql_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {name} (id serial PRIMARY KEY, service text, "
                     "amount numeric(10,2), at timestamptz DEFAULT now(), tag uuid, "
                     "doc jsonb, raw bytea)")
        conn.execute(f"INSERT INTO {name} (service, amount, tag, doc, raw) "
                     "SELECT 'svc' || i, i * 1.5, gen_random_uuid(), "
                     "jsonb_build_object('i', i), '\\x0102'::bytea FROM generate_series(1, 8) i")
    yield name
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {name}")


def _pg_count(table: str) -> int:
    with psycopg.connect(PG_URL) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        return int(row[0]) if row else -1


def test_sql_query_reads_postgresql(pg_table: str) -> None:
    services = services_for(sql={"url": PG_URL, "row_limit": 3})
    out = sql_query(make_call({"query": f"SELECT service, amount, at, tag, doc, raw "
                                        f"FROM {pg_table} WHERE id > %(low)s ORDER BY id",
                               "params": {"low": 0}}), services)
    assert out["columns"] == ["service", "amount", "at", "tag", "doc", "raw"]
    assert out["truncated"] is True and len(out["rows"]) == 3
    service, amount, at, tag, doc, raw = out["rows"][0]
    assert (service, amount, doc, raw) == ("svc1", "1.50", {"i": 1}, "AQI=")
    assert "T" in at and len(tag) == 36


@pytest.mark.parametrize("statement", [
    "INSERT INTO {t} (service) VALUES ('evil')",
    "DELETE FROM {t}",
    "UPDATE {t} SET service = 'evil'",
    "DROP TABLE {t}",
    "CREATE TABLE {t}_evil (x int)",
    "SET TRANSACTION READ WRITE; INSERT INTO {t} (service) VALUES ('evil')",
    "COMMIT; INSERT INTO {t} (service) VALUES ('evil')",
    "WITH x AS (DELETE FROM {t} RETURNING 1) SELECT count(*) FROM x",
    "SELECT set_config('default_transaction_read_only', 'off', false)",
    "COPY (SELECT 1) TO PROGRAM 'true'",
])
def test_sql_writes_are_refused_by_postgresql(pg_table: str, statement: str) -> None:
    services = services_for(sql={"url": PG_URL})
    query = statement.format(t=pg_table)
    try:
        sql_query(make_call({"query": query}), services)
    except PermanentError:
        pass
    else:  # set_config itself may run: it only changes a setting of a session thrown away
        assert query.startswith("SELECT set_config")
    assert _pg_count(pg_table) == 8
    with psycopg.connect(PG_URL) as conn:
        assert conn.execute("SELECT to_regclass(%s)", (f"{pg_table}_evil",)).fetchone() == (
            None,)


def test_postgresql_statement_timeout(pg_table: str) -> None:
    services = services_for(sql={"url": PG_URL, "timeout": 0.3})
    with pytest.raises(PermanentError, match="time limit"):
        sql_query(make_call({"query": "SELECT pg_sleep(3)"}), services)


# Jira and GitHub -----------------------------------------------------------------------

def test_jira_search_and_get(fakes: FakeServices) -> None:
    services = services_for(fakes)
    found = jira_search(make_call({"jql": 'project = OPS AND status != Done ORDER BY '
                                          'updated DESC', "limit": 10}), services)
    assert found["total"] == 2
    first = found["issues"][0]
    assert set(first) == {"key", "summary", "status", "priority", "assignee", "updated", "url"}
    assert first["url"] == f"{fakes.jira_url}/browse/{first['key']}"
    issue = jira_get(make_call({"key": "OPS-1"}), services)
    assert issue["status"] == "In Progress" and issue["assignee"] == "Ada Lovelace"
    assert "502" in issue["description"] and issue["labels"] == ["incident", "checkout"]
    with pytest.raises(PermanentError, match="400"):
        jira_search(make_call({"jql": "nosuchfield = 1"}), services)
    with pytest.raises(PermanentError, match="401"):
        jira_get(make_call({"key": "OPS-1"}),
                 services_for(fakes, secrets={"OPS_FAKE_JIRA_TOKEN": "wrong"}))


def test_jira_comment_is_idempotent_even_without_the_ledger(fakes: FakeServices) -> None:
    call = make_call({"key": "OPS-2", "text": "Root cause: WAL archiving stuck."})
    first = jira_comment(call, services_for(fakes))
    second = jira_comment(call, services_for(fakes))  # a fresh ledger: found by its property
    assert first == second
    assert [c["issue"] for c in fakes.sent("jira")] == ["OPS-2"]


def test_github_search_commits_and_comment(fakes: FakeServices) -> None:
    services = services_for(fakes)
    found = github_search(make_call({"q": "repo:acme/shop is:open checkout"}), services)
    assert found["total"] == 2
    assert {i["number"] for i in found["items"]} == {12, 15}
    assert next(i for i in found["items"] if i["number"] == 15)["pull_request"] is True
    from datetime import UTC, datetime, timedelta

    since = (datetime.now(UTC) - timedelta(hours=6)).isoformat()
    commits = github_commits(make_call({"repo": "acme/shop", "since": since}), services)
    assert [c["message"] for c in commits["commits"]] == [
        "checkout: lower the upstream timeout to 2s", "gateway: log upstream latency"]
    assert len(commits["commits"][0]["sha"]) == 12
    call = make_call({"repo": "acme/shop", "number": 12, "text": "Likely cause: c3."})
    first = github_comment(call, services)
    assert github_comment(call, services_for(fakes)) == first  # the hidden marker found it
    [comment] = fakes.sent("github")
    assert comment["body"].startswith("Likely cause: c3.") and "<!--" in comment["body"]
    with pytest.raises(PermanentError, match="404"):
        github_commits(make_call({"repo": "acme/none"}), services)


def test_http_failures_are_classified(fakes: FakeServices,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    services = services_for(fakes)
    fakes.fail_next("github", 1, status=503, retry_after=4)
    with pytest.raises(TransientError) as caught:
        github_search(make_call({"q": "checkout"}), services)
    assert caught.value.retry_after == 4
    monkeypatch.setattr(data, "HTTP_TIMEOUT", 0.2)
    fakes.set_latency("jira", 0.5)
    with pytest.raises(TransientError, match="timed out"):
        jira_get(make_call({"key": "OPS-1"}), services)
