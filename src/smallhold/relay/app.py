"""The sync relay: a mailbox of sealed batches per device group, and one-time pairing drops.

It never sees a key: groups are named by an id derived from the sync key, members prove
themselves with a bearer token whose SHA-256 the relay keeps, and batches are opaque blobs
(see :mod:`smallhold.store.sync.crypto`). A group exists only once a device registered it on purpose
(``PUT /v1/groups/{id}``, which ``smallhold sync pair`` does): an upload or download for an
unknown group is refused, so a typo or a stranger's token never makes a group as a side effect.
Uploads are idempotent by (device, batch id), so a device that crashed after sending retries
safely; downloads page by a global sequence number, so a device that crashed while reading
resumes from its saved cursor.

What the relay bounds, because anyone who can reach it may call it: the number of groups and
of live pairing drops, each group's stored batches and bytes (a quota: a member cannot fill
the disk), the types and lengths of every field (checked with pydantic before anything is
stored), and, through :mod:`smallhold.httpguard` (the API server's guard), the size and
content type of every body, foreign browser origins and, when it listens on loopback, the
Host header (a web page that rebinds a DNS name to 127.0.0.1 is refused).

Plain ``sqlite3`` on purpose: the relay holds nothing but ciphertext, hashes and timestamps.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from smallhold.errors import SyncError
from smallhold.httpguard import ANY_HOST, LOOPBACK_NAMES, GuardPolicy, RequestGuard, host_name

MAX_BATCH_BYTES = 16 * 1024 * 1024
MAX_PAIRING_BYTES = 4 * 1024  # a sealed invitation is ~200 bytes
MAX_PAGE = 500
MAX_PAIRING_TTL_S = 3600.0
MAX_SEQ = 2**63 - 1  # SQLite's INTEGER; a larger cursor is a client bug, not a 500
DEFAULT_MAX_GROUPS = 100
DEFAULT_GROUP_MAX_BYTES = 1024 * 1024 * 1024
DEFAULT_GROUP_MAX_BATCHES = 100_000
MAX_PAIRINGS = 1000
NAME_PATTERN = r"^[A-Za-z0-9._-]{1,128}$"  # device ids, batch ids, group and pairing ids
_NAME = re.compile(NAME_PATTERN)
LOOPBACK_HOSTS = LOOPBACK_NAMES


def _b64_length(raw: int) -> int:
    return 4 * ((raw + 2) // 3)


MAX_BODY_BYTES = _b64_length(MAX_BATCH_BYTES) + 4096  # one batch in JSON, with its names
_SCHEMA = """
CREATE TABLE IF NOT EXISTS groups (group_id TEXT PRIMARY KEY, token_sha256 TEXT NOT NULL,
                                   created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS batches (seq INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id TEXT NOT NULL, device TEXT NOT NULL, batch_id TEXT NOT NULL, blob BLOB NOT NULL,
    received_at REAL NOT NULL, UNIQUE (group_id, device, batch_id));
CREATE TABLE IF NOT EXISTS pairings (pair_id TEXT PRIMARY KEY, blob BLOB NOT NULL,
                                     expires_at REAL NOT NULL);
"""


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


@dataclass(frozen=True)
class Refusal:
    """Why the relay will not store something; becomes the JSON error of the response."""

    status: int
    code: str
    message: str

    def response(self) -> JSONResponse:
        return _error(self.status, self.code, self.message)


@dataclass(frozen=True)
class Stored:
    seq: int
    duplicate: bool


Access = Literal["ok", "unknown", "forbidden"]


class RelayStore:
    """The relay's database; one connection behind a lock (the relay is small and local).

    The limits are the operator's (``sync serve`` options); the defaults fit a household.
    """

    def __init__(self, path: Path, clock: Callable[[], float] = time.time, *,
                 max_groups: int = DEFAULT_MAX_GROUPS,
                 group_max_bytes: int = DEFAULT_GROUP_MAX_BYTES,
                 group_max_batches: int = DEFAULT_GROUP_MAX_BATCHES) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise SyncError(f"cannot open the relay database {path} ({reason}); pass --db "
                            "with a file in a directory you can write.") from None
        self.lock = threading.Lock()
        self.clock = clock
        self.max_groups = max_groups
        self.group_max_bytes = group_max_bytes
        self.group_max_batches = group_max_batches

    def create_group(self, group_id: str, token: str) -> bool | Refusal:
        """Register a group (what pairing does); True if new, False if already there."""
        digest = hashlib.sha256(token.encode()).hexdigest()
        with self.lock:
            row = self.conn.execute("SELECT token_sha256 FROM groups WHERE group_id = ?",
                                    (group_id,)).fetchone()
            if row is not None:
                if hmac.compare_digest(str(row[0]), digest):
                    return False
                return Refusal(403, "forbidden", "this group id is registered with another "
                                                 "token")
            count = int(self.conn.execute("SELECT count(*) FROM groups").fetchone()[0])
            if count >= self.max_groups:
                return Refusal(507, "too_many_groups",
                               f"this relay holds its maximum of {self.max_groups} groups; "
                               "its operator can raise `sync serve --max-groups`")
            self.conn.execute("INSERT INTO groups VALUES (?, ?, ?)",
                              (group_id, digest, self.clock()))
            return True

    def authorise(self, group_id: str, token: str) -> Access:
        """Whether ``token`` is the group's; an unknown group is never created here."""
        digest = hashlib.sha256(token.encode()).hexdigest()
        with self.lock:
            row = self.conn.execute("SELECT token_sha256 FROM groups WHERE group_id = ?",
                                    (group_id,)).fetchone()
        if row is None:
            return "unknown"
        return "ok" if hmac.compare_digest(str(row[0]), digest) else "forbidden"

    def put_batch(self, group_id: str, device: str, batch_id: str, blob: bytes
                  ) -> Stored | Refusal:
        """Store a batch once, within the group's quota (a re-sent batch always succeeds)."""
        with self.lock:
            row = self.conn.execute(
                "SELECT seq FROM batches WHERE group_id = ? AND device = ? AND batch_id = ?",
                (group_id, device, batch_id)).fetchone()
            if row is not None:
                return Stored(int(row[0]), True)
            count, size = self.conn.execute(
                "SELECT count(*), coalesce(sum(length(blob)), 0) FROM batches "
                "WHERE group_id = ?", (group_id,)).fetchone()
            if int(count) >= self.group_max_batches or int(size) + len(blob) > \
                    self.group_max_bytes:
                return Refusal(507, "quota_exceeded",
                               f"this group's quota on the relay is full ({int(count)} "
                               f"batches, {int(size)} bytes; the limit is "
                               f"{self.group_max_batches} batches and {self.group_max_bytes} "
                               "bytes); the relay's operator can raise `sync serve "
                               "--group-max-mb` or `--group-max-batches`")
            cursor = self.conn.execute(
                "INSERT INTO batches (group_id, device, batch_id, blob, received_at) "
                "VALUES (?, ?, ?, ?, ?)", (group_id, device, batch_id, blob, self.clock()))
            return Stored(int(cursor.lastrowid or 0), False)

    def batches(self, group_id: str, after: int, limit: int) -> list[dict[str, Any]]:
        with self.lock:
            rows = self.conn.execute(
                "SELECT seq, device, batch_id, blob FROM batches WHERE group_id = ? AND seq > ? "
                "ORDER BY seq LIMIT ?", (group_id, after, limit)).fetchall()
        return [{"seq": r[0], "device": r[1], "batch_id": r[2],
                 "blob": base64.b64encode(r[3]).decode("ascii")} for r in rows]

    def put_pairing(self, pair_id: str, blob: bytes, ttl_s: float) -> Refusal | None:
        with self.lock:
            self.conn.execute("DELETE FROM pairings WHERE expires_at < ?", (self.clock(),))
            live = int(self.conn.execute("SELECT count(*) FROM pairings").fetchone()[0])
            if live >= MAX_PAIRINGS:
                return Refusal(507, "too_many_pairings",
                               f"the relay holds {MAX_PAIRINGS} unused pairing codes; try "
                               "again when some have expired")
            self.conn.execute("INSERT OR REPLACE INTO pairings VALUES (?, ?, ?)",
                              (pair_id, blob, self.clock() + ttl_s))
        return None

    def take_pairing(self, pair_id: str) -> bytes | None:
        """One-time: the drop is deleted as it is read; expired drops read as absent."""
        with self.lock:
            row = self.conn.execute("SELECT blob, expires_at FROM pairings WHERE pair_id = ?",
                                    (pair_id,)).fetchone()
            self.conn.execute("DELETE FROM pairings WHERE pair_id = ?", (pair_id,))
        if row is None or float(row[1]) < self.clock():
            return None
        return bytes(row[0])

    def close(self) -> None:
        with self.lock:
            self.conn.close()


class BatchUpload(BaseModel):
    """``POST .../batches``: strict, so ``null``, numbers and lists are refused, not cast."""

    model_config = ConfigDict(strict=True)
    device: str = Field(pattern=NAME_PATTERN)
    batch_id: str = Field(pattern=NAME_PATTERN)
    blob: str = Field(min_length=1, max_length=_b64_length(MAX_BATCH_BYTES))


class PairingUpload(BaseModel):
    model_config = ConfigDict(strict=True)
    blob: str = Field(min_length=1, max_length=_b64_length(MAX_PAIRING_BYTES))
    ttl_s: float = Field(default=600.0, allow_inf_nan=False)


def _token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else ""


def _problem(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    return f"{where}: {first['msg']}"


def _not_json(exc: ValidationError) -> bool:
    return exc.errors()[0]["type"] == "json_invalid"


async def _read_json(request: Request, limit: int) -> bytes | JSONResponse:
    """The body, at most ``limit`` bytes (tighter than the guard's limit for small routes);
    the guard has already refused a body that is not JSON or over ``MAX_BODY_BYTES``."""
    declared = request.headers.get("content-length")
    if declared is not None and (not _digits(declared) or int(declared) > limit):
        return _error(413, "request_too_large", f"the request is over {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return _error(413, "request_too_large", f"the request is over {limit} bytes")
    return bytes(body)


def _decode(blob: str) -> bytes | None:
    try:
        return base64.b64decode(blob, validate=True)
    except (ValueError, binascii.Error):
        return None


def relay_policy(allowed_hosts: Iterable[str] | None = None, port: int | None = None
                 ) -> GuardPolicy:
    """The guard for the relay: JSON bodies of at most one batch, and ``Host`` one of
    ``allowed_hosts`` (on ``port``) when given, which ``sync serve`` does on loopback. A relay
    for other machines accepts any ``Host``: it cannot know their names, and its callers
    prove themselves per group with the bearer token, not with an API key."""
    hosts = ({ANY_HOST} if allowed_hosts is None
             else {host_name(h.strip("[]")) for h in allowed_hosts})
    return GuardPolicy(hosts=frozenset(hosts), port=port, max_body_bytes=MAX_BODY_BYTES,
                       allow_methods=("GET", "POST", "PUT"))


def _digits(text: str) -> bool:
    """ASCII digits only, at most 19 of them (``"²".isdigit()`` is true, ``int("²")`` fails)."""
    return text.isascii() and text.isdigit() and len(text) <= 19


def _paging(request: Request) -> tuple[int, int] | JSONResponse:
    """``after`` and ``limit`` of a download; anything outside 63 bits is a 400, not a 500."""
    raw_after = request.query_params.get("after", "0")
    raw_limit = request.query_params.get("limit", "100")
    if not (_digits(raw_after) and int(raw_after) <= MAX_SEQ and _digits(raw_limit)):
        return _error(400, "bad_query", f"after is an integer from 0 to {MAX_SEQ}, limit a "
                      "positive integer")
    return int(raw_after), min(MAX_PAGE, max(1, int(raw_limit)))


def create_relay_app(store: RelayStore, *, policy: GuardPolicy | None = None) -> Starlette:
    """The relay's HTTP API behind the request guard (default: :func:`relay_policy`)."""

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "role": "smallhold-relay"})

    def check_names(request: Request) -> str | None:
        ok = all(isinstance(v, str) and _NAME.fullmatch(v) for v in request.path_params.values())
        return None if ok else "ids are 1 to 128 letters, digits, '.', '-' or '_'"

    async def group(request: Request) -> JSONResponse:
        group_id = request.path_params["group_id"]
        token = _token(request)
        if problem := check_names(request):
            return _error(400, "bad_id", problem)
        if not token:
            return _error(403, "forbidden", "registering a group needs its bearer token")
        created = store.create_group(group_id, token)
        if isinstance(created, Refusal):
            return created.response()
        return JSONResponse({"created": created}, status_code=201 if created else 200)

    async def batches(request: Request) -> JSONResponse:
        group_id = request.path_params["group_id"]
        if problem := check_names(request):
            return _error(400, "bad_id", problem)
        access = store.authorise(group_id, _token(request))
        if access == "unknown":
            return _error(404, "unknown_group", "no such group on this relay; a paired "
                          "device registers it with `smallhold sync pair`")
        if access != "ok":
            return _error(403, "forbidden", "wrong or missing token for this group")
        if request.method == "GET":
            query = _paging(request)
            if isinstance(query, JSONResponse):
                return query
            return JSONResponse({"batches": store.batches(group_id, *query)})
        body = await _read_json(request, MAX_BODY_BYTES)
        if isinstance(body, JSONResponse):
            return body
        try:
            upload = BatchUpload.model_validate_json(body)
        except ValidationError as exc:
            if _not_json(exc):
                return _error(400, "bad_json", "the body is not JSON")
            return _error(400, "bad_batch", "a batch is {device, batch_id (1 to 128 letters, "
                          f"digits, '.-_'), blob (base64)}}: {_problem(exc)}")
        blob = _decode(upload.blob)
        if blob is None or len(blob) > MAX_BATCH_BYTES:
            return _error(400, "bad_batch", f"blob is not base64 of at most {MAX_BATCH_BYTES} "
                          "bytes")
        stored = store.put_batch(group_id, upload.device, upload.batch_id, blob)
        if isinstance(stored, Refusal):
            return stored.response()
        return JSONResponse({"seq": stored.seq, "duplicate": stored.duplicate})

    async def pairing(request: Request) -> JSONResponse:
        pair_id = request.path_params["pair_id"]
        if problem := check_names(request):
            return _error(400, "bad_id", problem)
        if request.method == "GET":
            blob = store.take_pairing(pair_id)
            if blob is None:
                return _error(404, "no_pairing", "no pairing with that code (wrong or expired)")
            return JSONResponse({"blob": base64.b64encode(blob).decode("ascii")})
        body = await _read_json(request, _b64_length(MAX_PAIRING_BYTES) + 1024)
        if isinstance(body, JSONResponse):
            return body
        try:
            upload = PairingUpload.model_validate_json(body)
        except ValidationError as exc:
            if _not_json(exc):
                return _error(400, "bad_json", "the body is not JSON")
            return _error(400, "bad_pairing",
                          f"a pairing is {{blob (base64), ttl_s}}: {_problem(exc)}")
        blob = _decode(upload.blob)
        if blob is None:
            return _error(400, "bad_pairing", "blob is not base64")
        ttl = min(MAX_PAIRING_TTL_S, max(1.0, upload.ttl_s))
        refused = store.put_pairing(pair_id, blob, ttl)
        if refused is not None:
            return refused.response()
        return JSONResponse({"stored": True, "ttl_s": ttl})

    middleware = [Middleware(RequestGuard, policy=policy or relay_policy(), error=_error)]
    return Starlette(routes=[
        Route("/health", health),
        Route("/v1/groups/{group_id}", group, methods=["PUT"]),
        Route("/v1/groups/{group_id}/batches", batches, methods=["GET", "POST"]),
        Route("/v1/pairings/{pair_id}", pairing, methods=["GET", "PUT"]),
    ], middleware=middleware)


__all__ = ["DEFAULT_GROUP_MAX_BATCHES", "DEFAULT_GROUP_MAX_BYTES", "DEFAULT_MAX_GROUPS",
           "LOOPBACK_HOSTS", "MAX_BATCH_BYTES", "MAX_BODY_BYTES", "RelayStore",
           "create_relay_app", "relay_policy"]
