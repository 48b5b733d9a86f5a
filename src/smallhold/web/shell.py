"""The suite's one web app: every app's pages under ``/<name>``, one guard, one look.

An app contributes an :class:`AppPages` (its routes, mounted at ``/<name>``); :func:`build_web`
puts them in a single Starlette app with the shared static assets at ``/static`` and an index
at ``/``. The shell owns what must be the same everywhere:

* the request guard of :mod:`smallhold.httpguard` (Host against DNS rebinding, Origin,
  JSON-only bodies, a body limit), so a page of any other site open in the same browser can
  neither read the pages nor post to them;
* security headers on every answer: a Content-Security-Policy that allows only this server's
  own files (no inline script, no CDN, no third-party font: the pages work offline),
  ``nosniff``, ``no-referrer``, no framing, and ``no-store`` on everything but the assets,
  since pages and API answers hold the user's conversations;
* error answers (:mod:`smallhold.web.errors`): JSON for scripts, never a traceback.

Loopback is the default. A remote bind needs an access key; the browser presents it as a
cookie set once by ``/login?key=...`` (see :class:`_KeyCookie`).
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from urllib.parse import quote, unquote

import anyio.to_thread
from starlette.applications import Starlette
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from smallhold.errors import SmallholdError
from smallhold.httpguard import ANY_HOST, GuardPolicy, RequestGuard
from smallhold.web.errors import http_exception, json_error, smallhold_exception, unexpected
from smallhold.web.layout import NAV_STATE, NavLink, page_response

STATIC_DIR = Path(__file__).with_name("static")
DEFAULT_PORT = 8739  # serve (the API) is 8737, the sync relay 8738
MAX_BODY_BYTES = 1 << 20  # a chat message is at most 100,000 characters
KEY_COOKIE = "smallhold-key"
LOGIN_PATH = "/login"
RESERVED = frozenset({"static", "login", "api"})

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}


@dataclass
class AppPages:
    """What one app shows in the browser: routes mounted at ``/<name>``.

    ``nav``: listed in the header and on the index. ``on_close``: called (in a worker thread)
    when the server stops, e.g. to finish the app's generation thread.
    """

    name: str
    title: str
    routes: list[BaseRoute]
    nav: bool = True
    on_close: Callable[[], None] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.name.isidentifier() or self.name.lower() in RESERVED:
            raise ValueError(f"{self.name!r} cannot be an app's web name: use a Python "
                             f"identifier other than {', '.join(sorted(RESERVED))}")


class _SecurityHeaders:
    """Adds :data:`SECURITY_HEADERS` (and ``no-store`` off ``/static``) to every answer,
    guard refusals included; a header a route set itself is kept."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cacheable = scope["path"].startswith("/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    if name not in headers:
                        headers[name] = value
                if not cacheable:
                    headers["cache-control"] = "no-store"
            await send(message)

        await self.app(scope, receive, with_headers)


class _KeyCookie:
    """Lets a browser present the access key as a cookie: the guard checks only
    ``Authorization``, which a page's own navigation cannot send."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            if "authorization" not in headers:
                key = Request(scope).cookies.get(KEY_COOKIE)
                if key:
                    bearer = f"Bearer {unquote(key)}".encode("latin-1", "replace")
                    raw = [*scope["headers"], (b"authorization", bearer)]
                    scope = {**scope, "headers": raw}
        await self.app(scope, receive, send)


def web_policy(host: str, port: int | None, *, api_key: str | None = None,
               allow_remote: bool = False, extra_hosts: Iterable[str] = (),
               max_body_bytes: int = MAX_BODY_BYTES) -> GuardPolicy:
    """The guard for the shell bound to ``host:port`` (``port`` None: whatever port the
    request came in on). A remote bind without an access key would show the user's
    conversations to anyone who can reach the port, so it is refused."""
    hosts = list(extra_hosts)
    if allow_remote and not api_key:
        raise ValueError("a remote web shell needs an access key")
    if allow_remote and not hosts:
        hosts = [ANY_HOST]  # the key keeps others out; the names are not known here
    return GuardPolicy.for_bind(host, port, max_body_bytes=max_body_bytes, extra_hosts=hosts,
                                api_key=api_key, open_paths=(LOGIN_PATH,))


def _index(apps: Sequence[NavLink]) -> Callable[[Request], Response]:
    cards = "".join(f'<li><a class="card" href="{escape(a.href)}">{escape(a.title)}</a></li>'
                    for a in apps) or "<li>No app has pages yet.</li>"
    main = (f'<section class="index"><h1>Your apps</h1><ul class="cards">{cards}</ul>'
            "<p class=\"muted\">Served by smallhold on this machine.</p></section>")

    def index(request: Request) -> Response:
        return page_response(request, "Apps", main)

    return index


def _login(key: str | None) -> Callable[[Request], Response]:
    def login(request: Request) -> Response:
        given = request.query_params.get("key", "")
        if key is None:
            return RedirectResponse("/", status_code=303)
        if not hmac.compare_digest(given.encode(), key.encode()):
            return json_error(401, "invalid_api_key", "that access key is wrong; use the "
                              "link `smallhold web` printed when it started.")
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(KEY_COOKIE, quote(key, safe=""), httponly=True, samesite="strict",
                            path="/")
        return response

    return login


def build_web(apps: Sequence[AppPages], *, host: str = "127.0.0.1", port: int | None = None,
              api_key: str | None = None, allow_remote: bool = False,
              extra_hosts: Iterable[str] = (), max_body_bytes: int = MAX_BODY_BYTES,
              ) -> Starlette:
    """One Starlette app serving ``apps``; ``uvicorn.run(build_web(...))`` serves it.

    ``host``/``port``: where it is bound (the guard accepts only those in ``Host``; ``port``
    None: any, for a port the kernel picked). ``api_key``: required of every request (as a
    Bearer header or the ``/login`` cookie), and needed with ``allow_remote``.
    """
    names = [a.name for a in apps]
    if len(set(names)) != len(names):
        raise ValueError(f"two apps share a web name: {names}")
    policy = web_policy(host, port, api_key=api_key, allow_remote=allow_remote,
                        extra_hosts=extra_hosts, max_body_bytes=max_body_bytes)
    nav = [NavLink(a.name, a.title) for a in apps if a.nav]

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            for pages in apps:
                if pages.on_close is not None:
                    await anyio.to_thread.run_sync(pages.on_close)

    routes: list[BaseRoute] = [
        Route("/", _index(nav), methods=["GET"]),
        Route(LOGIN_PATH, _login(api_key), methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
        *(Mount(f"/{a.name}", routes=a.routes, name=a.name) for a in apps),
    ]
    middleware = [Middleware(_SecurityHeaders)]
    if api_key:
        middleware.append(Middleware(_KeyCookie))
    middleware.append(Middleware(RequestGuard, policy=policy, error=json_error))
    app = Starlette(
        routes=routes, middleware=middleware, lifespan=lifespan,
        exception_handlers={HTTPException: http_exception,
                            SmallholdError: smallhold_exception, Exception: unexpected},
    )
    setattr(app.state, NAV_STATE, nav)
    return app


__all__ = ["CSP", "DEFAULT_PORT", "SECURITY_HEADERS", "STATIC_DIR", "AppPages", "build_web",
           "web_policy"]
