"""The data agent: facts for the analysis, from a database, Jira and GitHub.

``sql_query`` is read-only because the database enforces it, not because the query text
was inspected (a parser can be fooled; the database cannot be argued with):

* SQLite is opened read-only (``file:...?mode=ro``), with ``PRAGMA query_only`` on and an
  authorizer refusing ATTACH and changing ``query_only`` back; a progress handler stops a
  query that runs past the configured timeout.
* PostgreSQL sessions start with ``default_transaction_read_only=on`` and a
  ``statement_timeout``, the transaction takes its snapshot before the query runs (so
  ``SET TRANSACTION READ WRITE`` is refused inside it), and the query goes through the
  extended protocol, which accepts exactly one statement. A superuser login also drops to
  the ``pg_read_all_data`` role, which cannot run ``COPY ... TO PROGRAM``; but a superuser
  can take its role back, so a deployment gives ops a role with SELECT grants only.

The Jira and GitHub tools use their REST APIs with httpx and return trimmed records (key,
summary, status, url, ...), not the services' full payloads: the outputs are checkpointed
and end up in a prompt. Comments are idempotent twice over: the ledger, and a marker the
tool looks for among the issue's comments before posting (a Jira comment property, a
hidden HTML comment on GitHub).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import math
import re
import sqlite3
import time
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from datetime import time as dtime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from smallhold.apps.ops.errors import PermanentError
from smallhold.apps.ops.resilience import check_response, integration_errors, once
from smallhold.apps.ops.tools import Call, Services, Tool

log = logging.getLogger(__name__)

AGENT = "data"
HTTP_TIMEOUT = 15.0  # seconds to read a reply; connecting gets less
CONNECT_TIMEOUT = 5.0
CELL_MAX = 2000  # characters of one value kept in a result
TEXT_MAX = 4000  # characters of a description kept
GITHUB_MARKER = "<!-- smallhold-ops:{digest} -->"  # hidden when GitHub renders it
JIRA_PROPERTY = "smallhold.ops"
_JIRA_KEY = r"^[A-Z][A-Z0-9_]*-[0-9]+$"
_REPO = r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$"


# SQL -----------------------------------------------------------------------------------

class SqlParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=100_000)
    # bound values, in the driver's own style: SQLite ``:name`` or ``?``, PostgreSQL
    # ``%(name)s`` or ``%s``; event data belongs here, never spliced into the query text
    params: dict[str, Any] | list[Any] | None = None
    limit: int | None = Field(None, ge=1, le=10_000, description="at most the configured cap")


def json_safe(value: Any) -> Any:
    """A database value as JSON: dates as ISO text, decimals and UUIDs as text, bytes as
    base64 (short ones) or their size, long text cut to :data:`CELL_MAX`."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return value if len(value) <= CELL_MAX else value[:CELL_MAX] + "…"
    if isinstance(value, datetime | date | dtime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        return base64.b64encode(raw).decode() if len(raw) <= 64 else f"<{len(raw)} bytes>"
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    return json_safe(str(value))


def _table(columns: Sequence[str], rows: Sequence[Sequence[Any]], limit: int) -> dict[str, Any]:
    return {"columns": list(columns),
            "rows": [[json_safe(v) for v in row] for row in rows[:limit]],
            "truncated": len(rows) > limit}


def _sqlite_path(url: str) -> Path:
    rest = url.split(":", 1)[1].removeprefix("///").split("?", 1)[0]
    if not rest or rest == ":memory:":
        raise PermanentError("sql: an in-memory SQLite database has nothing to read; give "
                             "sqlite:///path/to/file.db", integration="sql")
    return Path(rest).expanduser()


def _authorizer(action: int, arg1: str | None, arg2: str | None, _db: str | None,
                _trigger: str | None) -> int:
    """Defence behind ``mode=ro``: no ATTACH (another file), no turning query_only off."""
    if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() == "query_only" \
            and arg2 is not None:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def sqlite_query(url: str, query: str, params: dict[str, Any] | list[Any] | None,
                 limit: int, timeout: float) -> dict[str, Any]:
    path = _sqlite_path(url).resolve()
    if not path.is_file():
        raise PermanentError(f"sql: no SQLite database at {path}", integration="sql")
    uri = f"file:{urllib.request.pathname2url(str(path))}?mode=ro"
    deadline = time.monotonic() + timeout
    conn = sqlite3.connect(uri, uri=True, timeout=min(timeout, 5.0), check_same_thread=False)
    try:
        conn.execute("PRAGMA query_only=ON")
        conn.set_authorizer(_authorizer)
        conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
        try:
            cursor = conn.execute(query, params if params is not None else ())
            rows = cursor.fetchmany(limit + 1)
            columns = [d[0] for d in cursor.description or ()]
        except sqlite3.OperationalError as exc:
            if str(exc) == "interrupted" and time.monotonic() > deadline:
                raise PermanentError(f"sql: the query ran past its {timeout:g}s limit",
                                     integration="sql") from None
            raise
        except sqlite3.DatabaseError as exc:
            if "not authorized" in str(exc):
                raise PermanentError(f"sql: refused: {exc} (the connection is read-only)",
                                     integration="sql") from None
            raise
        except sqlite3.ProgrammingError as exc:  # several statements, wrong bindings
            raise PermanentError(f"sql: {exc}", integration="sql") from None
        return _table(columns, rows, limit)
    finally:
        conn.close()


_superuser_warned: set[str] = set()


def postgres_query(url: str, query: str, params: dict[str, Any] | list[Any] | None,
                   limit: int, timeout: float) -> dict[str, Any]:
    import psycopg  # the ops extra; only a PostgreSQL source needs it

    dsn = re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", url)
    millis = max(1, int(timeout * 1000))
    with psycopg.connect(dsn, autocommit=True, connect_timeout=max(1, math.ceil(timeout)),
                         options=f"-c default_transaction_read_only=on "
                                 f"-c statement_timeout={millis}") as conn:
        conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        row = conn.execute("SELECT current_setting('is_superuser') = 'on', "
                           "to_regrole('pg_read_all_data') IS NOT NULL").fetchone()
        if row and row[0]:
            host = dsn.rpartition("@")[2]
            if host not in _superuser_warned:
                _superuser_warned.add(host)
                log.warning("ops: sql_query logs in to %s as a superuser; give it a role with "
                            "SELECT grants only (read-only transactions do not stop a "
                            "superuser's COPY TO PROGRAM)", host)
            if row[1]:
                conn.execute("SET ROLE pg_read_all_data")
        conn.autocommit = False
        try:
            conn.execute("SELECT 1")  # the snapshot is taken: no SET TRANSACTION READ WRITE now
            cursor = conn.cursor()
            # prepare=True: the extended protocol, one statement only ("...; INSERT" refused)
            cursor.execute(query, params, prepare=True)
            rows = cursor.fetchmany(limit + 1) if cursor.description else []
            columns = [c.name for c in cursor.description or ()]
            return _table(columns, rows, limit)
        finally:
            conn.rollback()


def sql_query(call: Call, services: Services) -> dict[str, Any]:
    params = SqlParams.model_validate(call.params)
    cfg = services.config.integrations.sql
    if not cfg.url:
        raise PermanentError("sql: no database configured (integrations.sql.url)",
                             integration="sql")
    limit = min(params.limit or cfg.row_limit, cfg.row_limit)
    with integration_errors("sql"):
        if cfg.url.startswith("sqlite"):
            return sqlite_query(cfg.url, params.query, params.params, limit, cfg.timeout)
        if cfg.url.startswith(("postgresql", "postgres")):
            return postgres_query(cfg.url, params.query, params.params, limit, cfg.timeout)
    raise PermanentError(f"sql: unsupported database URL scheme "
                         f"{cfg.url.split(':', 1)[0]!r} (sqlite or postgresql)",
                         integration="sql")


# HTTP ----------------------------------------------------------------------------------

@contextmanager
def http_client(services: Services, which: Literal["jira", "github"]) -> Iterator[httpx.Client]:
    """A client on the configured base URL with the bearer token, short timeouts, no
    redirects followed (a redirect would carry the token to wherever it points)."""
    cfg = getattr(services.config.integrations, which)
    if not cfg.base_url:
        raise PermanentError(f"{which}: no base URL configured (integrations.{which}.base_url)",
                             integration=which)
    token = services.secret(cfg.token)
    headers = {"User-Agent": "smallhold-ops", "Accept": "application/json"}
    if which == "github":
        headers["Accept"] = "application/vnd.github+json"
        headers["X-GitHub-Api-Version"] = "2022-11-28"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    with httpx.Client(base_url=cfg.base_url, headers=headers, follow_redirects=False,
                      timeout=httpx.Timeout(HTTP_TIMEOUT, connect=CONNECT_TIMEOUT)) as client:
        yield client


def _json(response: httpx.Response, integration: str) -> Any:
    check_response(response, integration)
    try:
        return response.json()
    except ValueError as exc:
        raise PermanentError(f"{integration}: the reply is not JSON "
                             f"({response.headers.get('content-type', 'no content type')})",
                             integration=integration) from exc


def _get(services: Services, which: Literal["jira", "github"], path: str,
         params: dict[str, Any] | None = None) -> Any:
    with integration_errors(which), http_client(services, which) as client:
        return _json(client.get(path, params=params), which)


def _name(value: Any, field: str = "name") -> str:
    return str(value.get(field, "")) if isinstance(value, dict) else ""


def _cut(text: Any, size: int = TEXT_MAX) -> str:
    value = "" if text is None else str(text)
    return value if len(value) <= size else value[:size] + "…"


def _browse(services: Services, key: str) -> str:
    return services.config.integrations.jira.base_url.rstrip("/") + f"/browse/{key}"


class JiraSearchParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    jql: str = Field(min_length=1, max_length=5000)
    limit: int = Field(20, ge=1, le=100)


class JiraKeyParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(pattern=_JIRA_KEY)


class JiraCommentParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(pattern=_JIRA_KEY)
    text: str = Field(min_length=1, max_length=32_000)


def _issue(services: Services, raw: dict[str, Any], full: bool = False) -> dict[str, Any]:
    fields = raw.get("fields") or {}
    key = str(raw.get("key", ""))
    found: dict[str, Any] = {
        "key": key, "summary": _cut(fields.get("summary"), 300),
        "status": _name(fields.get("status")), "priority": _name(fields.get("priority")),
        "assignee": _name(fields.get("assignee"), "displayName"),
        "updated": str(fields.get("updated") or ""), "url": _browse(services, key)}
    if full:
        found.update({
            "type": _name(fields.get("issuetype")),
            "reporter": _name(fields.get("reporter"), "displayName"),
            "labels": [str(x) for x in fields.get("labels") or []],
            "created": str(fields.get("created") or ""),
            "description": _cut(fields.get("description"))})
    return found


def jira_search(call: Call, services: Services) -> dict[str, Any]:
    params = JiraSearchParams.model_validate(call.params)
    body = _get(services, "jira", "/rest/api/2/search",
                {"jql": params.jql, "maxResults": params.limit,
                 "fields": "summary,status,priority,assignee,updated"})
    issues = [_issue(services, i) for i in body.get("issues") or []][:params.limit]
    return {"total": int(body.get("total", len(issues))), "issues": issues}


def jira_get(call: Call, services: Services) -> dict[str, Any]:
    params = JiraKeyParams.model_validate(call.params)
    return _issue(services, _get(services, "jira", f"/rest/api/2/issue/{params.key}"),
                  full=True)


def jira_comment(call: Call, services: Services) -> dict[str, Any]:
    params = JiraCommentParams.model_validate(call.params)
    key = call.idempotency_key

    def act() -> dict[str, Any]:
        with integration_errors("jira"), http_client(services, "jira") as client:
            base = f"/rest/api/2/issue/{params.key}/comment"
            listed = _json(client.get(base, params={"expand": "properties",
                                                    "orderBy": "-created",
                                                    "maxResults": 100}), "jira")
            for comment in listed.get("comments") or []:
                for prop in comment.get("properties") or []:
                    value = prop.get("value") or {}
                    if prop.get("key") == JIRA_PROPERTY and isinstance(value, dict) \
                            and value.get("idempotency_key") == key:
                        return {"key": params.key, "comment_id": str(comment.get("id")),
                                "url": _browse(services, params.key)}
            made = _json(client.post(base, json={
                "body": params.text,
                "properties": [{"key": JIRA_PROPERTY, "value": {"idempotency_key": key}}]}),
                "jira")
        return {"key": params.key, "comment_id": str(made.get("id")),
                "url": _browse(services, params.key)}

    return once(call, services, act)


class GithubSearchParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    q: str = Field(min_length=1, max_length=256)  # GitHub's own limit on a search query
    limit: int = Field(20, ge=1, le=100)


class GithubCommitsParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    repo: str = Field(pattern=_REPO)
    since: datetime | None = None
    until: datetime | None = None
    branch: str | None = None
    limit: int = Field(20, ge=1, le=100)


class GithubCommentParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    repo: str = Field(pattern=_REPO)
    number: int = Field(ge=1)
    text: str = Field(min_length=1, max_length=60_000)


def github_search(call: Call, services: Services) -> dict[str, Any]:
    params = GithubSearchParams.model_validate(call.params)
    body = _get(services, "github", "/search/issues", {"q": params.q,
                                                       "per_page": params.limit})
    items = []
    for item in (body.get("items") or [])[:params.limit]:
        repo = str(item.get("repository_url", "")).split("/repos/", 1)[-1]
        items.append({
            "number": item.get("number"), "title": _cut(item.get("title"), 300),
            "state": str(item.get("state", "")), "url": str(item.get("html_url", "")),
            "repo": repo, "pull_request": "pull_request" in item,
            "labels": [_name(label) for label in item.get("labels") or []],
            "author": _name(item.get("user"), "login"),
            "updated": str(item.get("updated_at", ""))})
    return {"total": int(body.get("total_count", len(items))), "items": items}


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def github_commits(call: Call, services: Services) -> dict[str, Any]:
    params = GithubCommitsParams.model_validate(call.params)
    query: dict[str, Any] = {"per_page": params.limit}
    if params.since is not None:
        query["since"] = _iso(params.since)
    if params.until is not None:
        query["until"] = _iso(params.until)
    if params.branch:
        query["sha"] = params.branch
    body = _get(services, "github", f"/repos/{params.repo}/commits", query)
    commits = []
    for item in (body if isinstance(body, list) else [])[:params.limit]:
        commit = item.get("commit") or {}
        author = commit.get("author") or {}
        message = str(commit.get("message", ""))
        commits.append({
            "sha": str(item.get("sha", ""))[:12], "message": _cut(message.split("\n", 1)[0], 300),
            "author": _name(item.get("author"), "login") or str(author.get("name", "")),
            "date": str(author.get("date", "")), "url": str(item.get("html_url", ""))})
    return {"repo": params.repo, "commits": commits}


def github_comment(call: Call, services: Services) -> dict[str, Any]:
    params = GithubCommentParams.model_validate(call.params)
    marker = GITHUB_MARKER.format(
        digest=hashlib.sha256(call.idempotency_key.encode()).hexdigest()[:32])

    def act() -> dict[str, Any]:
        path = f"/repos/{params.repo}/issues/{params.number}/comments"
        with integration_errors("github"), http_client(services, "github") as client:
            for page in range(1, 11):  # up to 1,000 comments; an incident issue has fewer
                listed = _json(client.get(path, params={"per_page": 100, "page": page}),
                               "github")
                for comment in listed if isinstance(listed, list) else []:
                    if marker in str(comment.get("body", "")):
                        return {"repo": params.repo, "number": params.number,
                                "comment_id": comment.get("id"),
                                "url": str(comment.get("html_url", ""))}
                if not isinstance(listed, list) or len(listed) < 100:
                    break
            made = _json(client.post(path, json={"body": f"{params.text}\n\n{marker}"}),
                         "github")
        return {"repo": params.repo, "number": params.number, "comment_id": made.get("id"),
                "url": str(made.get("html_url", ""))}

    return once(call, services, act)


TOOLS: list[Tool] = [
    Tool(agent=AGENT, name="sql_query",
         summary="Run one read-only SQL query on the configured database",
         risk="read", scope="sql:read", run=sql_query, params=SqlParams, integration="sql"),
    Tool(agent=AGENT, name="jira_search", summary="Search Jira issues with JQL",
         risk="read", scope="jira:read", run=jira_search, params=JiraSearchParams,
         integration="jira"),
    Tool(agent=AGENT, name="jira_get", summary="Read one Jira issue by key",
         risk="read", scope="jira:read", run=jira_get, params=JiraKeyParams,
         integration="jira"),
    Tool(agent=AGENT, name="jira_comment", summary="Comment on a Jira issue",
         risk="low", scope="jira:write", run=jira_comment, params=JiraCommentParams,
         integration="jira"),
    Tool(agent=AGENT, name="github_search", summary="Search GitHub issues and pull requests",
         risk="read", scope="github:read", run=github_search, params=GithubSearchParams,
         integration="github"),
    Tool(agent=AGENT, name="github_commits", summary="List a repository's recent commits",
         risk="read", scope="github:read", run=github_commits, params=GithubCommitsParams,
         integration="github"),
    Tool(agent=AGENT, name="github_comment",
         summary="Comment on a GitHub issue or pull request",
         risk="low", scope="github:write", run=github_comment, params=GithubCommentParams,
         integration="github"),
]

__all__ = ["AGENT", "TOOLS", "GithubCommentParams", "GithubCommitsParams",
           "GithubSearchParams", "JiraCommentParams", "JiraKeyParams", "JiraSearchParams",
           "SqlParams", "github_comment", "github_commits", "github_search",
           "http_client", "jira_comment", "jira_get", "jira_search", "json_safe",
           "postgres_query", "sql_query", "sqlite_query"]
