"""The sync relay: a mailbox of sealed batches per device group, and one-time pairing drops.

It never sees a key: groups are named by an id derived from the sync key, members prove
themselves with a bearer token whose SHA-256 the relay keeps (the first upload registers it),
and batches are opaque blobs (see :mod:`.crypto`). Uploads are idempotent by (device, batch id),
so a device that crashed after sending retries safely; downloads page by a global sequence
number, so a device that crashed while reading resumes from its saved cursor.

Plain ``sqlite3`` on purpose: the relay holds nothing but ciphertext, hashes and timestamps.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

MAX_BATCH_BYTES = 16 * 1024 * 1024
MAX_PAGE = 500
MAX_PAIRING_TTL_S = 3600.0
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


class RelayStore:
    """The relay's database; one connection behind a lock (the relay is small and local)."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.executescript(_SCHEMA)
        self.lock = threading.Lock()
        self.clock = clock

    def authorise(self, group_id: str, token: str) -> bool:
        digest = hashlib.sha256(token.encode()).hexdigest()
        with self.lock:
            row = self.conn.execute("SELECT token_sha256 FROM groups WHERE group_id = ?",
                                    (group_id,)).fetchone()
            if row is None:
                self.conn.execute("INSERT INTO groups VALUES (?, ?, ?)",
                                  (group_id, digest, self.clock()))
                return True
        return hmac.compare_digest(str(row[0]), digest)

    def put_batch(self, group_id: str, device: str, batch_id: str, blob: bytes
                  ) -> tuple[int, bool]:
        """Store a batch once; returns (sequence number, whether it was already there)."""
        with self.lock:
            row = self.conn.execute(
                "SELECT seq FROM batches WHERE group_id = ? AND device = ? AND batch_id = ?",
                (group_id, device, batch_id)).fetchone()
            if row is not None:
                return int(row[0]), True
            cursor = self.conn.execute(
                "INSERT INTO batches (group_id, device, batch_id, blob, received_at) "
                "VALUES (?, ?, ?, ?, ?)", (group_id, device, batch_id, blob, self.clock()))
            return int(cursor.lastrowid or 0), False

    def batches(self, group_id: str, after: int, limit: int) -> list[dict[str, Any]]:
        with self.lock:
            rows = self.conn.execute(
                "SELECT seq, device, batch_id, blob FROM batches WHERE group_id = ? AND seq > ? "
                "ORDER BY seq LIMIT ?", (group_id, after, limit)).fetchall()
        return [{"seq": r[0], "device": r[1], "batch_id": r[2],
                 "blob": base64.b64encode(r[3]).decode("ascii")} for r in rows]

    def put_pairing(self, pair_id: str, blob: bytes, ttl_s: float) -> None:
        with self.lock:
            self.conn.execute("DELETE FROM pairings WHERE expires_at < ?", (self.clock(),))
            self.conn.execute("INSERT OR REPLACE INTO pairings VALUES (?, ?, ?)",
                              (pair_id, blob, self.clock() + ttl_s))

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


def _token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else ""


async def _json(request: Request, limit: int) -> dict[str, Any] | JSONResponse:
    body = await request.body()
    if len(body) > limit:
        return _error(413, "too_large", f"the request is over {limit} bytes")
    try:
        data = json.loads(body)
    except ValueError:
        return _error(400, "bad_json", "the body is not JSON")
    if not isinstance(data, dict):
        return _error(400, "bad_json", "the body must be a JSON object")
    return data


def create_relay_app(store: RelayStore) -> Starlette:
    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "role": "smallhold-relay"})

    async def batches(request: Request) -> JSONResponse:
        group_id = request.path_params["group_id"]
        token = _token(request)
        if not token or not store.authorise(group_id, token):
            return _error(403, "forbidden", "wrong or missing token for this group")
        if request.method == "GET":
            try:
                after = int(request.query_params.get("after", "0"))
                limit = min(MAX_PAGE, max(1, int(request.query_params.get("limit", "100"))))
            except ValueError:
                return _error(400, "bad_query", "after and limit are integers")
            page = store.batches(group_id, after, limit)
            return JSONResponse({"batches": page})
        data = await _json(request, MAX_BATCH_BYTES * 2)
        if isinstance(data, JSONResponse):
            return data
        try:
            device, batch_id = str(data["device"]), str(data["batch_id"])
            blob = base64.b64decode(str(data["blob"]), validate=True)
        except (KeyError, ValueError):
            return _error(400, "bad_batch", "a batch is {device, batch_id, blob (base64)}")
        if not device or not batch_id or len(blob) > MAX_BATCH_BYTES:
            return _error(400, "bad_batch", "empty device or batch id, or blob too large")
        seq, duplicate = store.put_batch(group_id, device, batch_id, blob)
        return JSONResponse({"seq": seq, "duplicate": duplicate})

    async def pairing(request: Request) -> JSONResponse:
        pair_id = request.path_params["pair_id"]
        if request.method == "GET":
            blob = store.take_pairing(pair_id)
            if blob is None:
                return _error(404, "no_pairing", "no pairing with that code (wrong or expired)")
            return JSONResponse({"blob": base64.b64encode(blob).decode("ascii")})
        data = await _json(request, 64 * 1024)
        if isinstance(data, JSONResponse):
            return data
        try:
            blob = base64.b64decode(str(data["blob"]), validate=True)
            ttl = min(MAX_PAIRING_TTL_S, max(1.0, float(data.get("ttl_s", 600))))
        except (KeyError, ValueError):
            return _error(400, "bad_pairing", "a pairing is {blob (base64), ttl_s}")
        store.put_pairing(pair_id, blob, ttl)
        return JSONResponse({"stored": True, "ttl_s": ttl})

    return Starlette(routes=[
        Route("/health", health),
        Route("/v1/groups/{group_id}/batches", batches, methods=["GET", "POST"]),
        Route("/v1/pairings/{pair_id}", pairing, methods=["GET", "PUT"]),
    ])


__all__ = ["MAX_BATCH_BYTES", "RelayStore", "create_relay_app"]
