"""Local stand-ins for Slack, Jira, GitHub and a mail server, on loopback, for tests and demos.

The point is to exercise the REAL clients (slack_sdk's ``WebClient``, httpx, smtplib)
unchanged, so the fakes speak the services' wire formats: Slack's ``{"ok": false,
"error": "invalid_auth"}`` with HTTP 200 and ``ratelimited`` with a 429 and
``Retry-After``; Jira's ``errorMessages``; GitHub's ``message`` and its search and commit
shapes. They are small Starlette apps under one uvicorn server in a background thread, on
a port the kernel picks::

    with FakeServices.start() as fakes, LocalSmtp() as smtp:
        os.environ.update(fakes.env())
        config = OpsConfig.model_validate({"integrations": fakes.integrations(smtp)})
        ...
        fakes.sent("slack")         # the messages Slack received

Faults are injected per service (``fail_next("slack", 2, status=500)``, a 429 with a
``Retry-After``) with a latency knob, so retries, backoff and breakers are tested against
real sockets, not mocks. Nothing here is imported by a worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import json
import re
import shlex
import socket
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs

import uvicorn
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from smallhold.apps.ops.mailin import SmtpController

SERVICES = ("slack", "jira", "github")
SLACK_TOKEN = "xoxb-fake-ops-token"
JIRA_TOKEN = "fake-jira-token"
GITHUB_TOKEN = "ghp_fakeopstoken"
ENV = {"slack": "OPS_FAKE_SLACK_TOKEN", "jira": "OPS_FAKE_JIRA_TOKEN",
       "github": "OPS_FAKE_GITHUB_TOKEN"}
Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Fault:
    status: int
    retry_after: float | None = None


@dataclass
class _Hub:
    """What the three fakes share with the test thread, behind one lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    faults: dict[str, deque[Fault]] = field(default_factory=dict)
    latency: dict[str, float] = field(default_factory=dict)
    requests: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    sent: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def take(self, service: str, request: Request) -> tuple[float, Fault | None]:
        with self.lock:
            queue = self.faults.get(service)
            fault = queue.popleft() if queue else None
            self.requests.setdefault(service, []).append({
                "method": request.method, "path": request.url.path,
                "query": str(request.url.query), "at": time.time(),
                "fault": fault.status if fault else None})
            return self.latency.get(service, self.latency.get("*", 0.0)), fault


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else None


def _fault_headers(fault: Fault) -> dict[str, str]:
    return {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}


def _gated(hub: _Hub, service: str, fault_body: Callable[[Fault], dict[str, Any]],
           handler: Handler) -> Handler:
    """Wrap a route: the latency knob first, then an injected fault if one is due."""

    async def gated(request: Request) -> Response:
        delay, fault = hub.take(service, request)
        if delay:
            await asyncio.sleep(delay)
        if fault is not None:
            return JSONResponse(fault_body(fault), status_code=fault.status,
                                headers=_fault_headers(fault))
        return await handler(request)

    return gated


# Slack ---------------------------------------------------------------------------------

def channel_id(name: str) -> str:
    """Slack answers with channel ids, not names: ``#incidents`` gets a stable fake one."""
    if re.fullmatch(r"[CGD][A-Z0-9]{6,}", name):
        return name
    return "C" + hashlib.sha1(name.lstrip("#").encode()).hexdigest()[:9].upper()


class FakeSlack:
    """``auth.test``, ``chat.postMessage`` and ``chat.update`` as Slack's Web API does them."""

    def __init__(self, hub: _Hub, token: str, channels: set[str] | None = None) -> None:
        self.hub = hub
        self.token = token
        self.channels = channels  # None: every channel exists
        self._seq = 0
        self._by_client_id: dict[str, dict[str, Any]] = {}

    @staticmethod
    async def _args(request: Request) -> dict[str, Any]:
        if request.method == "GET":
            return dict(request.query_params)
        if request.headers.get("content-type", "").startswith("application/json"):
            try:
                body = await request.json()
            except ValueError:
                return {}
            return body if isinstance(body, dict) else {}
        # urlencoded, as slack_sdk sends every method but file uploads (no multipart parser
        # needed: python-multipart is not a dependency)
        body = (await request.body()).decode("utf-8", "replace")
        args: dict[str, Any] = {k: v[-1] for k, v in parse_qs(body).items()}
        for key in ("blocks", "metadata", "attachments"):  # form posts send these as JSON
            if isinstance(args.get(key), str):
                with contextlib.suppress(ValueError):
                    args[key] = json.loads(args[key])
        return {**dict(request.query_params), **args}

    async def method(self, request: Request) -> Response:
        name = request.path_params["method"]
        args = await self._args(request)
        token = _bearer(request) or args.get("token")
        if not token:
            return JSONResponse({"ok": False, "error": "not_authed"})
        if token != self.token:
            return JSONResponse({"ok": False, "error": "invalid_auth"})
        if name == "auth.test":
            return JSONResponse({"ok": True, "url": str(request.base_url), "team": "Fake",
                                 "user": "ops", "team_id": "T0FAKE", "user_id": "U0FAKEOPS",
                                 "bot_id": "B0FAKEOPS", "is_enterprise_install": False})
        if name == "chat.postMessage":
            return JSONResponse(self._post(args))
        if name == "chat.update":
            return JSONResponse(self._update(args))
        return JSONResponse({"ok": False, "error": "unknown_method"}, status_code=404)

    def _dedup_key(self, args: dict[str, Any]) -> str | None:
        if args.get("client_msg_id"):
            return str(args["client_msg_id"])
        metadata = args.get("metadata")
        payload = metadata.get("event_payload") if isinstance(metadata, dict) else None
        if isinstance(payload, dict) and payload.get("idempotency_key"):
            return str(payload["idempotency_key"])
        return None

    def _post(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel") or "")
        if not channel or (self.channels is not None and channel not in self.channels):
            return {"ok": False, "error": "channel_not_found"}
        if not args.get("text") and not args.get("blocks"):
            return {"ok": False, "error": "no_text"}
        key = self._dedup_key(args)
        with self.hub.lock:
            first = self._by_client_id.get(key) if key else None
            if first is not None:  # a retried post: the first message, not a second one
                first["deliveries"] += 1
                return {"ok": True, "channel": first["channel"], "ts": first["ts"],
                        "message": {"text": first["text"], "ts": first["ts"]}}
            self._seq += 1
            ts = f"{int(time.time())}.{self._seq:06d}"
            message = {"channel": channel_id(channel), "channel_name": channel,
                       "text": args.get("text") or "", "blocks": args.get("blocks"),
                       "thread_ts": args.get("thread_ts"), "metadata": args.get("metadata"),
                       "client_msg_id": key, "ts": ts, "deliveries": 1}
            if key:
                self._by_client_id[key] = message
            self.hub.sent.setdefault("slack", []).append(message)
        return {"ok": True, "channel": message["channel"], "ts": ts,
                "message": {"text": message["text"], "ts": ts, "bot_id": "B0FAKEOPS",
                            "type": "message"}}

    def _update(self, args: dict[str, Any]) -> dict[str, Any]:
        with self.hub.lock:
            for message in self.hub.sent.get("slack", []):
                if message["ts"] == args.get("ts") and message["channel"] == channel_id(
                        str(args.get("channel") or "")):
                    message["text"] = args.get("text", message["text"])
                    message["blocks"] = args.get("blocks", message["blocks"])
                    message["edited"] = True
                    return {"ok": True, "channel": message["channel"], "ts": message["ts"],
                            "text": message["text"]}
        return {"ok": False, "error": "message_not_found"}

    def app(self) -> Starlette:
        def fault(f: Fault) -> dict[str, Any]:
            return {"ok": False, "error": "ratelimited" if f.status == 429 else "fatal_error"}

        return Starlette(routes=[Route("/{method}", _gated(self.hub, "slack", fault,
                                                           self.method),
                                       methods=["GET", "POST"])])


# Jira ----------------------------------------------------------------------------------

_CLAUSE = re.compile(
    r"^\s*(?P<field>[\w.]+)\s*(?P<op>!=|=|~|\bnot in\b|\bin\b)\s*(?P<value>.+?)\s*$",
    re.IGNORECASE)


def _values(text: str) -> list[str]:
    text = text.strip()
    if text.startswith("(") and text.endswith(")"):
        return [v.strip().strip("\"'") for v in text[1:-1].split(",") if v.strip()]
    return [text.strip("\"'")]


class FakeJira:
    """Search (a small JQL: ``field = | != | ~ | in value`` joined by AND), get, comment."""

    FIELDS = ("project", "key", "status", "priority", "labels", "assignee", "type",
              "issuetype", "text", "summary", "description")

    def __init__(self, hub: _Hub, token: str, now: datetime) -> None:
        self.hub = hub
        self.token = token
        self.base = ""
        self._comment_seq = 10_000
        self.issues: dict[str, dict[str, Any]] = {}
        self.comments: dict[str, list[dict[str, Any]]] = {}
        for number, (summary, status, priority, labels, description, age) in enumerate([
            ("Checkout API returns 502 after deploy", "In Progress", "Highest",
             ["incident", "checkout"], "Since the 14:05 deploy, /api/checkout answers 502 "
             "for about 30% of requests. Upstream timeouts in the gateway logs.", 1),
            ("Disk usage above 90% on db-2", "Open", "High", ["disk", "database"],
             "The WAL volume on db-2 grows by 4 GB a day.", 20),
            ("Rotate the Slack signing secret", "Done", "Low", ["security"],
             "Yearly rotation.", 200),
        ], start=1):
            key = f"OPS-{number}"
            created = now - timedelta(hours=age)
            self.issues[key] = {
                "id": str(10_000 + number), "key": key, "project": "OPS", "type": "Bug",
                "summary": summary, "status": status, "priority": priority,
                "labels": labels, "assignee": "Ada Lovelace" if number == 1 else None,
                "reporter": "Grace Hopper", "description": description,
                "created": created.strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
                "updated": (created + timedelta(minutes=30)).strftime(
                    "%Y-%m-%dT%H:%M:%S.000+0000")}
            self.comments[key] = []

    def _render(self, issue: dict[str, Any]) -> dict[str, Any]:
        def person(name: str | None) -> dict[str, str] | None:
            return {"displayName": name, "name": name.split()[0].lower()} if name else None

        return {"id": issue["id"], "key": issue["key"],
                "self": f"{self.base}/rest/api/2/issue/{issue['id']}",
                "fields": {"summary": issue["summary"], "status": {"name": issue["status"]},
                           "priority": {"name": issue["priority"]},
                           "labels": issue["labels"], "assignee": person(issue["assignee"]),
                           "reporter": person(issue["reporter"]),
                           "issuetype": {"name": issue["type"]},
                           "project": {"key": issue["project"]},
                           "description": issue["description"], "created": issue["created"],
                           "updated": issue["updated"]}}

    def _fits(self, issue: dict[str, Any], jql: str) -> bool:
        where = re.split(r"\border\s+by\b", jql, maxsplit=1, flags=re.IGNORECASE)[0]
        for clause in re.split(r"\s+and\s+", where.strip(), flags=re.IGNORECASE):
            if not clause.strip():
                continue
            found = _CLAUSE.match(clause)
            if found is None:
                raise ValueError(f"Error in the JQL Query: cannot parse {clause.strip()!r}")
            name, op = found["field"].lower(), found["op"].lower()
            if name not in self.FIELDS:
                raise ValueError(f"Field '{found['field']}' does not exist or you do not have "
                                 "permission to view it.")
            wanted = [v.lower() for v in _values(found["value"])]
            if name in ("text", "summary", "description"):
                hay = " ".join(str(issue[f]) for f in ("summary", "description")
                               if name == "text" or f == name).lower()
                if op == "~" and not all(w in hay for w in wanted):
                    return False
                continue
            attr = {"issuetype": "type"}.get(name, name)
            have = issue[attr]
            values = ([str(x).lower() for x in have] if isinstance(have, list)
                      else [str(have).lower()] if have is not None else [])
            hit = any(w in values for w in wanted)
            if (op in ("=", "in", "~") and not hit) or (op in ("!=", "not in") and hit):
                return False
        return True

    async def _authorised(self, request: Request) -> Response | None:
        if _bearer(request) != self.token:
            return JSONResponse({"errorMessages": ["You are not authenticated. "
                                                   "Authentication required to perform "
                                                   "this operation."], "errors": {}},
                                status_code=401)
        return None

    async def search(self, request: Request) -> Response:
        if (refused := await self._authorised(request)) is not None:
            return refused
        if request.method == "POST":
            body = await request.json()
            jql, limit = str(body.get("jql", "")), int(body.get("maxResults", 50))
        else:
            jql = request.query_params.get("jql", "")
            limit = int(request.query_params.get("maxResults", "50"))
        try:
            found = [i for i in self.issues.values() if self._fits(i, jql)]
        except ValueError as exc:
            return JSONResponse({"errorMessages": [str(exc)], "errors": {}}, status_code=400)
        return JSONResponse({"startAt": 0, "maxResults": limit, "total": len(found),
                             "issues": [self._render(i) for i in found[:limit]]})

    def _missing(self) -> Response:
        return JSONResponse({"errorMessages": ["Issue does not exist or you do not have "
                                               "permission to see it."], "errors": {}},
                            status_code=404)

    async def issue(self, request: Request) -> Response:
        if (refused := await self._authorised(request)) is not None:
            return refused
        issue = self.issues.get(request.path_params["key"])
        return self._missing() if issue is None else JSONResponse(self._render(issue))

    async def comment(self, request: Request) -> Response:
        if (refused := await self._authorised(request)) is not None:
            return refused
        key = request.path_params["key"]
        if key not in self.issues:
            return self._missing()
        if request.method == "GET":
            listed = list(self.comments[key])
            if request.query_params.get("orderBy") == "-created":
                listed.reverse()
            expand = "properties" in request.query_params.get("expand", "")
            shown = [c if expand else {k: v for k, v in c.items() if k != "properties"}
                     for c in listed]
            return JSONResponse({"startAt": 0, "maxResults": len(shown), "total": len(shown),
                                 "comments": shown})
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not str(body.get("body", "")).strip():
            return JSONResponse({"errorMessages": [], "errors": {
                "comment": "Comment body can not be empty!"}}, status_code=400)
        with self.hub.lock:
            self._comment_seq += 1
            made = {"id": str(self._comment_seq),
                    "self": f"{self.base}/rest/api/2/issue/{key}/comment/{self._comment_seq}",
                    "body": body["body"], "author": {"displayName": "ops"},
                    "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
                    "properties": list(body.get("properties") or [])}
            self.comments[key].append(made)
            self.hub.sent.setdefault("jira", []).append({"issue": key, **made})
        return JSONResponse(made, status_code=201)

    def app(self) -> Starlette:
        def fault(f: Fault) -> dict[str, Any]:
            return {"errorMessages": [f"injected fault (HTTP {f.status})"], "errors": {}}

        def gate(handler: Handler) -> Handler:
            return _gated(self.hub, "jira", fault, handler)

        return Starlette(routes=[
            Route("/rest/api/2/search", gate(self.search), methods=["GET", "POST"]),
            Route("/rest/api/2/issue/{key}", gate(self.issue), methods=["GET"]),
            Route("/rest/api/2/issue/{key}/comment", gate(self.comment),
                  methods=["GET", "POST"]),
        ])


# GitHub --------------------------------------------------------------------------------

class FakeGithub:
    """Issue search (``repo:``, ``is:``, ``label:``, words), commits, issue comments."""

    def __init__(self, hub: _Hub, token: str, now: datetime) -> None:
        self.hub = hub
        self.token = token
        self.base = ""
        self.web = "https://github.example"
        self._comment_seq = 900_000
        repo = "acme/shop"
        self.issues: list[dict[str, Any]] = []
        for number, title, state, labels, pull, body, age in [
            (12, "Checkout answers 502 under load", "open", ["bug", "checkout"], False,
             "Gateway logs show upstream timeouts.", 2),
            (15, "Raise the checkout upstream timeout to 10s", "open", ["checkout"], True,
             "Fixes #12.", 1),
            (9, "Flaky test: test_refund_twice", "closed", ["test"], False, "", 300),
        ]:
            stamp = (now - timedelta(hours=age)).strftime("%Y-%m-%dT%H:%M:%SZ")
            item: dict[str, Any] = {
                "repo": repo, "number": number, "title": title, "state": state,
                "labels": labels, "body": body, "created_at": stamp, "updated_at": stamp,
                "user": "octocat"}
            if pull:
                item["pull_request"] = True
            self.issues.append(item)
        self.commits: dict[str, list[dict[str, Any]]] = {repo: []}
        for sha_seed, message, author, age_h in [
            ("c3", "checkout: lower the upstream timeout to 2s\n\nIt was 10s.", "ada", 0.5),
            ("c2", "gateway: log upstream latency", "grace", 3),
            ("c1", "Release 2.4.0", "linus", 72),
        ]:
            sha = hashlib.sha1(sha_seed.encode()).hexdigest()
            date = (now - timedelta(hours=age_h)).strftime("%Y-%m-%dT%H:%M:%SZ")
            self.commits[repo].append({"sha": sha, "message": message, "author": author,
                                       "date": date})
        self.comments: dict[tuple[str, int], list[dict[str, Any]]] = {}

    def _refused(self, request: Request, write: bool) -> Response | None:
        token = _bearer(request)
        if token is not None and token != self.token:
            return JSONResponse({"message": "Bad credentials",
                                 "documentation_url": "https://docs.github.com/rest"},
                                status_code=401)
        if write and token is None:
            return JSONResponse({"message": "Requires authentication",
                                 "documentation_url": "https://docs.github.com/rest"},
                                status_code=401)
        return None

    def _issue_json(self, item: dict[str, Any]) -> dict[str, Any]:
        repo, number = item["repo"], item["number"]
        kind = "pull" if item.get("pull_request") else "issues"
        shown = {"id": 5_000_000 + number, "number": number, "title": item["title"],
                 "state": item["state"], "body": item["body"],
                 "html_url": f"{self.web}/{repo}/{kind}/{number}",
                 "repository_url": f"{self.base}/repos/{repo}",
                 "user": {"login": item["user"]},
                 "labels": [{"name": n} for n in item["labels"]],
                 "created_at": item["created_at"], "updated_at": item["updated_at"]}
        if item.get("pull_request"):
            shown["pull_request"] = {"url": f"{self.base}/repos/{repo}/pulls/{number}"}
        return shown

    def _fits(self, item: dict[str, Any], query: str) -> bool:
        try:
            terms = shlex.split(query)
        except ValueError:
            terms = query.split()
        for term in terms:
            name, sep, value = term.partition(":")
            name, value = name.lower(), value.lower()
            if sep and name == "repo":
                if item["repo"].lower() != value:
                    return False
            elif sep and name in ("is", "type", "state"):
                if value in ("open", "closed") and item["state"] != value:
                    return False
                if value in ("pr", "pull-request") and not item.get("pull_request"):
                    return False
                if value == "issue" and item.get("pull_request"):
                    return False
            elif sep and name == "label":
                if value not in [x.lower() for x in item["labels"]]:
                    return False
            elif sep and name in ("in", "sort", "order", "org", "user", "author"):
                continue
            elif term.lower() not in f"{item['title']} {item['body']}".lower():
                return False
        return True

    async def search(self, request: Request) -> Response:
        if (refused := self._refused(request, write=False)) is not None:
            return refused
        query = request.query_params.get("q", "")
        if not query.strip():
            return JSONResponse({"message": "Validation Failed", "errors": [
                {"resource": "Search", "field": "q", "code": "missing"}]}, status_code=422)
        per_page = int(request.query_params.get("per_page", "30"))
        found = [self._issue_json(i) for i in self.issues if self._fits(i, query)]
        return JSONResponse({"total_count": len(found), "incomplete_results": False,
                             "items": found[:per_page]})

    async def list_commits(self, request: Request) -> Response:
        if (refused := self._refused(request, write=False)) is not None:
            return refused
        repo = f"{request.path_params['owner']}/{request.path_params['repo']}"
        if repo not in self.commits:
            return JSONResponse({"message": "Not Found"}, status_code=404)
        since = request.query_params.get("since")
        until = request.query_params.get("until")
        per_page = int(request.query_params.get("per_page", "30"))
        listed = []
        for commit in self.commits[repo]:
            when = datetime.fromisoformat(commit["date"].replace("Z", "+00:00"))
            try:
                if since and when < _parse_when(since):
                    continue
                if until and when > _parse_when(until):
                    continue
            except ValueError:
                return JSONResponse({"message": "Invalid time"}, status_code=422)
            listed.append({
                "sha": commit["sha"], "html_url": f"{self.web}/{repo}/commit/{commit['sha']}",
                "commit": {"message": commit["message"],
                           "author": {"name": commit["author"].title(),
                                      "email": f"{commit['author']}@example.com",
                                      "date": commit["date"]}},
                "author": {"login": commit["author"]}})
        return JSONResponse(listed[:per_page])

    async def issue_comments(self, request: Request) -> Response:
        write = request.method == "POST"
        if (refused := self._refused(request, write=write)) is not None:
            return refused
        repo = f"{request.path_params['owner']}/{request.path_params['repo']}"
        number = int(request.path_params["number"])
        if not any(i["repo"] == repo and i["number"] == number for i in self.issues):
            return JSONResponse({"message": "Not Found"}, status_code=404)
        thread = self.comments.setdefault((repo, number), [])
        if not write:
            per_page = int(request.query_params.get("per_page", "30"))
            page = int(request.query_params.get("page", "1"))
            return JSONResponse(thread[(page - 1) * per_page:page * per_page])
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not str(body.get("body", "")).strip():
            return JSONResponse({"message": "Validation Failed"}, status_code=422)
        with self.hub.lock:
            self._comment_seq += 1
            made = {"id": self._comment_seq, "body": body["body"],
                    "html_url": f"{self.web}/{repo}/issues/{number}"
                                f"#issuecomment-{self._comment_seq}",
                    "user": {"login": "smallhold-ops[bot]"},
                    "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
            thread.append(made)
            self.hub.sent.setdefault("github", []).append(
                {"repo": repo, "number": number, **made})
        return JSONResponse(made, status_code=201)

    def app(self) -> Starlette:
        def fault(f: Fault) -> dict[str, Any]:
            return {"message": f"injected fault (HTTP {f.status})",
                    "documentation_url": "https://docs.github.com/rest"}

        def gate(handler: Handler) -> Handler:
            return _gated(self.hub, "github", fault, handler)

        return Starlette(routes=[
            Route("/search/issues", gate(self.search), methods=["GET"]),
            Route("/repos/{owner}/{repo}/commits", gate(self.list_commits), methods=["GET"]),
            Route("/repos/{owner}/{repo}/issues/{number:int}/comments", gate(self.issue_comments),
                  methods=["GET", "POST"]),
        ])


def _parse_when(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# the server ----------------------------------------------------------------------------

class FakeServices:
    """The three fakes on one loopback server, started by :meth:`start`."""

    def __init__(self, *, slack_token: str = SLACK_TOKEN, jira_token: str = JIRA_TOKEN,
                 github_token: str = GITHUB_TOKEN, slack_channels: set[str] | None = None,
                 host: str = "127.0.0.1") -> None:
        now = datetime.now(UTC)
        self.host = host
        self._hub = _Hub()
        self.slack = FakeSlack(self._hub, slack_token, slack_channels)
        self.jira = FakeJira(self._hub, jira_token, now)
        self.github = FakeGithub(self._hub, github_token, now)
        self.tokens = {"slack": slack_token, "jira": jira_token, "github": github_token}
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.base_url = ""

    @classmethod
    def start(cls, **options: Any) -> FakeServices:
        return cls(**options).serve()

    def serve(self) -> FakeServices:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((self.host, 0))  # the kernel picks a free port: no race between tests
        port = sock.getsockname()[1]
        self.base_url = f"http://{self.host}:{port}"
        self.jira.base = self.jira_url
        self.github.base = self.github_url
        app = Starlette(routes=[Mount("/slack/api", app=self.slack.app()),
                                Mount("/jira", app=self.jira.app()),
                                Mount("/github", app=self.github.app())])
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                               lifespan="off", timeout_graceful_shutdown=2))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                                  name="ops-fakes", daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                sock.close()
                raise RuntimeError("the fake services did not start")
            time.sleep(0.01)
        self._server, self._thread, self._socket = server, thread, sock
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> FakeServices:
        if self._server is None:
            self.serve()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    # where they are --------------------------------------------------------------------
    @property
    def slack_url(self) -> str:
        """slack_sdk's ``base_url`` (it joins method names to it: the slash matters)."""
        return f"{self.base_url}/slack/api/"

    @property
    def jira_url(self) -> str:
        return f"{self.base_url}/jira"

    @property
    def github_url(self) -> str:
        return f"{self.base_url}/github"

    def env(self) -> dict[str, str]:
        """The environment the :meth:`integrations` secret references read."""
        return {ENV[name]: token for name, token in self.tokens.items()}

    def integrations(self, smtp: LocalSmtp | None = None, *,
                     channel: str = "#incidents") -> dict[str, Any]:
        """An ``[integrations]`` section pointing at the fakes (tokens as ``env:`` refs)."""
        found: dict[str, Any] = {
            "slack": {"base_url": self.slack_url, "token": f"env:{ENV['slack']}",
                      "channel": channel},
            "jira": {"base_url": self.jira_url, "token": f"env:{ENV['jira']}"},
            "github": {"base_url": self.github_url, "token": f"env:{ENV['github']}"}}
        if smtp is not None:
            found["smtp"] = {"host": smtp.host, "port": smtp.port,
                             "sender": "ops@smallhold.test", "to": ["oncall@smallhold.test"]}
        return found

    # knobs and what they saw -------------------------------------------------------------
    def _check(self, service: str) -> None:
        if service not in SERVICES:
            raise ValueError(f"unknown fake service {service!r}: one of {', '.join(SERVICES)}")

    def fail_next(self, service: str, count: int = 1, status: int = 500,
                  retry_after: float | None = None) -> None:
        """The next ``count`` requests to ``service`` get ``status`` (with a
        ``Retry-After`` header when given) instead of being handled."""
        self._check(service)
        with self._hub.lock:
            queue = self._hub.faults.setdefault(service, deque())
            queue.extend(Fault(status, retry_after) for _ in range(count))

    def set_latency(self, service: str | None, seconds: float) -> None:
        """Delay every reply of ``service`` (None: of all three) by ``seconds``."""
        if service is not None:
            self._check(service)
        with self._hub.lock:
            self._hub.latency[service or "*"] = seconds

    def sent(self, service: str) -> list[dict[str, Any]]:
        """What ``service`` was asked to create: Slack messages, Jira and GitHub comments
        (a deduplicated retry is not a second entry)."""
        self._check(service)
        with self._hub.lock:
            return copy.deepcopy(self._hub.sent.get(service, []))

    def requests(self, service: str) -> list[dict[str, Any]]:
        """Every request ``service`` received, faults included (to count attempts)."""
        self._check(service)
        with self._hub.lock:
            return copy.deepcopy(self._hub.requests.get(service, []))

    def reset(self) -> None:
        """Forget faults, latency and what was received (between tests sharing a server);
        the seeded issues and Slack's memory of ``client_msg_id`` stay."""
        with self._hub.lock:
            self._hub.faults.clear()
            self._hub.latency.clear()
            self._hub.requests.clear()
            self._hub.sent.clear()


# SMTP ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Received:
    """One mail the local server accepted, as it came over the wire."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.raw, policy=policy.default)


class _Keeper:
    def __init__(self, owner: LocalSmtp) -> None:
        self.owner = owner

    async def handle_DATA(self, server: SMTPServer, session: Session,
                          envelope: Envelope) -> str:
        with self.owner.lock:
            if self.owner.faults:
                code = self.owner.faults.popleft()
                return f"{code} {'4.3.0' if code < 500 else '5.3.0'} injected failure"
            raw = envelope.original_content or b""
            if isinstance(envelope.content, bytes) and not raw:
                raw = envelope.content
            self.owner.messages.append(Received(
                str(envelope.mail_from or ""), [str(r) for r in envelope.rcpt_tos], raw))
        return "250 2.0.0 OK: queued"


class LocalSmtp:
    """A real SMTP server (aiosmtpd) on loopback that keeps what it receives."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.lock = threading.Lock()
        self.messages: list[Received] = []
        self.faults: deque[int] = deque()
        self._controller = SmtpController(_Keeper(self), hostname=host, port=port)
        self.host = host

    @property
    def port(self) -> int:
        return int(self._controller.port)

    def start(self) -> LocalSmtp:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def fail_next(self, count: int = 1, code: int = 451) -> None:
        """The next ``count`` messages are answered ``code`` at the end of DATA."""
        with self.lock:
            self.faults.extend([code] * count)

    def __enter__(self) -> LocalSmtp:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()


__all__ = ["ENV", "GITHUB_TOKEN", "JIRA_TOKEN", "SERVICES", "SLACK_TOKEN", "FakeGithub",
           "FakeJira", "FakeServices", "FakeSlack", "Fault", "LocalSmtp", "Received",
           "channel_id"]
