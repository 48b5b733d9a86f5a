"""An ASGI middleware that decides, before any endpoint runs, whether a request may be served.

A server on 127.0.0.1 is not private by itself: every web page open in the user's browser can
send it requests (a ``text/plain`` POST needs no CORS preflight), and a page on a domain that
re-resolves to 127.0.0.1 (DNS rebinding) can even read the answers. So, in this order:

1. ``Host`` must name this server (the bound address, ``localhost``, ``127.0.0.1``, ``[::1]``
   or a configured name), with the bound port if it gives one: a rebound domain is refused.
2. A browser's ``Origin`` must be this server itself or a configured CORS origin; preflights
   of configured origins are answered here, with only those origins allowed.
3. With an API key set, ``Authorization: Bearer <key>`` (compared in constant time), except
   on the open paths (``/health``), which must then reveal nothing themselves.
4. A request with a body must declare one of the accepted media types (JSON by default), and
   its body is read here, counted as it arrives: past ``max_body_bytes`` the answer is 413 at
   once, whatever ``Content-Length`` claimed and also for chunked bodies, so an endpoint
   never holds more than the limit. The endpoint then reads the buffered body as usual.

Nothing here knows the app: error bodies come from the ``error`` callable, so the OpenAI API
and the sync relay can each keep their own format. It imports only Starlette and the standard
library and sits outside the app layers, so any of them (``smallhold.server`` today, the
relay in ``smallhold.store`` later) may use it.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ErrorFn = Callable[[int, str, str], Response]
"""``error(status, code, message)``: the response the app's clients understand."""

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})
ANY_HOST = "*"
JSON_TYPES = frozenset({"application/json"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
AUTHENTICATED = "authenticated"
"""Key in ``request.state`` (the ASGI ``scope["state"]``): False when a key is set and the
request came without it, which only an open path lets through."""


def host_name(host: str) -> str:
    """The form a ``Host`` header uses for ``host``: lowercase, IPv6 in brackets."""
    host = host.strip().lower()
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host


def _split_host(value: str) -> tuple[str, int | None] | None:
    """``Host`` header → (name, port); None if it is malformed."""
    try:
        parts = urlsplit(f"//{value.strip()}")
        port = parts.port
    except ValueError:
        return None
    netloc = parts.netloc
    if not netloc or "@" in netloc:
        return None
    name = netloc.rsplit(":", 1)[0] if port is not None or netloc.endswith(":") else netloc
    return name.lower(), port


def _origin(value: str) -> str:
    """An ``Origin`` header compared as scheme://host[:port], lowercase."""
    return value.strip().rstrip("/").lower()


@dataclass(frozen=True)
class GuardPolicy:
    """What the guard lets through.

    ``hosts``: names a ``Host`` header may carry (``"*"``: any, only sensible with a key);
    ``port``: the port a ``Host`` header that names one must name; None: the port the
    connection came in on (the ASGI ``server`` address), for a port the kernel picked.
    """

    hosts: frozenset[str]
    port: int | None
    max_body_bytes: int
    api_key: str | None = field(default=None, repr=False)  # never in a log line
    open_paths: frozenset[str] = frozenset()
    cors_origins: frozenset[str] = frozenset()
    content_types: frozenset[str] = JSON_TYPES
    allow_headers: tuple[str, ...] = ("authorization", "content-type")
    allow_methods: tuple[str, ...] = ("GET", "POST", "OPTIONS")
    preflight_max_age: int = 600
    _key: bytes | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        if self.max_body_bytes < 1:
            raise ValueError("max_body_bytes must be positive")
        object.__setattr__(self, "_key", self.api_key.encode() if self.api_key else None)

    @classmethod
    def for_bind(cls, host: str, port: int | None, *, max_body_bytes: int,
                 extra_hosts: Iterable[str] = (), api_key: str | None = None,
                 cors_origins: Iterable[str] = (), open_paths: Iterable[str] = (),
                 content_types: Iterable[str] = JSON_TYPES,
                 allow_headers: Iterable[str] = ("authorization", "content-type"),
                 ) -> GuardPolicy:
        """The policy of a server bound to ``host:port``: its own address and the loopback
        names, plus ``extra_hosts``; a wildcard bind (0.0.0.0, ::) adds nothing by itself."""
        names = set(LOOPBACK_NAMES)
        if host.strip("[]") not in ("0.0.0.0", "::", ""):
            names.add(host_name(host.strip("[]")))
        names.update(ANY_HOST if h.strip() == ANY_HOST else host_name(h) for h in extra_hosts)
        return cls(hosts=frozenset(names), port=port, max_body_bytes=max_body_bytes,
                   api_key=api_key or None, open_paths=frozenset(open_paths),
                   cors_origins=frozenset(_origin(o) for o in cors_origins),
                   content_types=frozenset(t.lower() for t in content_types),
                   allow_headers=tuple(h.lower() for h in allow_headers))

    def host_allowed(self, value: str | None, local_port: int | None = None) -> bool:
        """Whether a ``Host`` header names this server; ``local_port``: where the request
        arrived, checked when the policy names no port."""
        if ANY_HOST in self.hosts:
            return True
        if not value:
            return False
        split = _split_host(value)
        if split is None:
            return False
        name, port = split
        expected = self.port if self.port is not None else local_port
        if port is not None and expected is not None and port != expected:
            return False
        return name in self.hosts

    def key_matches(self, authorization: str | None) -> bool:
        if self._key is None:
            return True
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(token.strip().encode(), self._key)

    def media_type_allowed(self, value: str | None) -> bool:
        media, _, params = (value or "").partition(";")
        if media.strip().lower() not in self.content_types:
            return False
        for param in params.split(";"):
            name, _, val = param.partition("=")
            if name.strip().lower() == "charset" and val.strip().strip('"').lower() not in (
                    "utf-8", "utf8"):
                return False
        return True


class BodyTooLarge(Exception):
    """Raised inside the guard when a body grows past the limit."""


class RequestGuard:
    """The middleware: ``RequestGuard(app, policy, error)``."""

    def __init__(self, app: ASGIApp, policy: GuardPolicy, error: ErrorFn) -> None:
        self.app = app
        self.policy = policy
        self.error = error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":  # nothing here speaks websocket: refuse it
                await send({"type": "websocket.close", "code": 1008})
                return
            await self.app(scope, receive, send)
            return
        policy = self.policy
        headers = Headers(scope=scope)
        method = scope["method"]
        server = scope.get("server")
        local_port = server[1] if server and len(server) > 1 else None
        if not policy.host_allowed(headers.get("host"), local_port):
            await self._refuse(scope, receive, send, 400, "invalid_host",
                               "the Host header does not name this server; connect to it by "
                               "its own address (e.g. 127.0.0.1), or add the name to "
                               "the server's allowed hosts (smallhold serve: "
                               "server.allowed_hosts).")
            return
        origin = headers.get("origin")
        cors = origin is not None and _origin(origin) in policy.cors_origins
        if origin is not None and not cors and not self._same_origin(scope, headers, origin):
            await self._refuse(scope, receive, send, 403, "origin_not_allowed",
                               f"requests from web pages at {origin[:100]} are not allowed; "
                               "add the origin to server.cors_origins to allow it.")
            return
        if cors and method == "OPTIONS" and "access-control-request-method" in headers:
            await self._preflight(origin or "", headers)(scope, receive, send)
            return
        if cors:
            send = _with_cors_headers(send, origin or "")
        authenticated = policy.key_matches(headers.get("authorization"))
        if not authenticated and scope["path"] not in policy.open_paths:
            await self._refuse(scope, receive, send, 401, "invalid_api_key",
                               "missing or wrong API key; send it as 'Authorization: Bearer "
                               "<key>' (the key set with --api-key or server.api_key).",
                               {"www-authenticate": "Bearer"})
            return
        scope.setdefault("state", {})[AUTHENTICATED] = authenticated
        if method in BODY_METHODS:
            if not policy.media_type_allowed(headers.get("content-type")):
                accepted = " or ".join(sorted(policy.content_types))
                await self._refuse(scope, receive, send, 415, "unsupported_media_type",
                                   f"the request body must be sent as Content-Type: {accepted}.")
                return
            try:
                receive = await self._buffered(headers, receive)
            except BodyTooLarge:
                await self._refuse(scope, receive, send, 413, "request_too_large",
                                   f"the request body is larger than {policy.max_body_bytes:,} "
                                   "bytes; send less, or raise server.max_body_bytes.",
                                   {"connection": "close"})
                return
            except _Disconnected:
                return
        await self.app(scope, receive, send)

    @staticmethod
    def _same_origin(scope: Scope, headers: Headers, origin: str) -> bool:
        """A page of this very server (its own address and port) may call it."""
        scheme = scope.get("scheme", "http")
        host = headers.get("host", "")
        return bool(host) and _origin(origin) == f"{scheme}://{host.strip().lower()}"

    async def _buffered(self, headers: Headers, receive: Receive) -> Receive:
        """Read the whole body (at most ``max_body_bytes``) and give a ``receive`` that hands it
        over as one message, then passes on to the connection (to see a disconnect)."""
        limit = self.policy.max_body_bytes
        declared = headers.get("content-length")
        if declared is not None:
            try:
                if int(declared) > limit:
                    raise BodyTooLarge
            except ValueError:
                pass  # the HTTP server refuses a malformed length before we get here
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        del chunks
        handed = False

        async def replay() -> Message:
            nonlocal handed, body
            if not handed:
                handed = True
                data, body = body, b""
                return {"type": "http.request", "body": data, "more_body": False}
            return await receive()

        return replay

    def _preflight(self, origin: str, headers: Headers) -> Response:
        asked = [h.strip().lower() for h in
                 headers.get("access-control-request-headers", "").split(",") if h.strip()]
        policy = self.policy
        if (headers["access-control-request-method"].upper() not in policy.allow_methods
                or any(h not in policy.allow_headers for h in asked)):
            return self.error(403, "preflight_refused",
                              "that method or header is not allowed from other origins; "
                              f"allowed: {', '.join(policy.allow_methods)}, headers "
                              f"{', '.join(policy.allow_headers)}.")
        return Response(status_code=204, headers={
            "access-control-allow-origin": origin,
            "access-control-allow-methods": ", ".join(policy.allow_methods),
            "access-control-allow-headers": ", ".join(policy.allow_headers),
            "access-control-max-age": str(policy.preflight_max_age),
            "vary": "Origin",
        })

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, status: int, code: str,
                      message: str, headers: dict[str, str] | None = None) -> None:
        response = self.error(status, code, message)
        if headers:
            response.headers.update(headers)
        await response(scope, receive, send)


class _Disconnected(Exception):
    """The client left while its body was being read: nobody to answer."""


def _with_cors_headers(send: Send, origin: str) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            raw = list(message.get("headers", []))
            raw.append((b"access-control-allow-origin", origin.encode("latin-1")))
            raw.append((b"vary", b"Origin"))
            message = {**message, "headers": raw}
        await send(message)

    return wrapped
