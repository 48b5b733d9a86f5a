"""Typed collections: the one small API apps use to keep records in the vault.

A collection is a name and a pydantic model. Each record carries its id, created and updated
times, the device it was last written on, and a hybrid-logical-clock version; deletes leave a
tombstone. Every write also appends to ``changes`` in the same transaction: the local change
log that device sync reads (offline first: a change exists locally before anything else
hears of it).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from smallhold.errors import RecordNotFoundError, RecordValidationError
from smallhold.store.handle import VaultHandle
from smallhold.store.hlc import HybridClock, Timestamp
from smallhold.store.migrations import Migration

SCOPE = "collections"
CLOCK_KEY = "collections.hlc"
MIGRATIONS = (
    Migration("0001_records_and_changes", """
        CREATE TABLE records (
            collection TEXT NOT NULL, id TEXT NOT NULL, data TEXT NOT NULL,
            created_at REAL NOT NULL, updated_at REAL NOT NULL, origin TEXT NOT NULL,
            version TEXT NOT NULL, deleted INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (collection, id));
        CREATE TABLE changes (
            seq INTEGER PRIMARY KEY, collection TEXT NOT NULL, record_id TEXT NOT NULL,
            version TEXT NOT NULL, op TEXT NOT NULL, data TEXT, origin TEXT NOT NULL,
            at REAL NOT NULL);
        CREATE INDEX changes_collection ON changes (collection, seq);
    """),
)

M = TypeVar("M", bound=BaseModel)


class Record(BaseModel, Generic[M]):
    id: str
    collection: str
    value: M
    created_at: float
    updated_at: float
    origin: str
    version: str
    deleted: bool = False


def _validation_message(name: str, exc: ValidationError) -> str:
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(record)'}: {e['msg']}"
                         for e in exc.errors()[:5])
    return f"a record for collection {name!r} is not valid: {problems}. Fix those fields."


class Collection(Generic[M]):
    """Records of one pydantic model in one vault; safe across threads (the vault's lock)."""

    def __init__(self, handle: VaultHandle, name: str, model: type[M], *,
                 clock: Callable[[], float] = time.time) -> None:
        if not name or not name.replace("_", "").replace("-", "").replace(".", "").isalnum():
            raise ValueError(f"collection names are letters, digits, '.', '-' and '_': {name!r}")
        self.handle = handle
        self.name = name
        self.model = model
        self.clock = clock
        handle.migrate(MIGRATIONS, scope=SCOPE)

    def _hlc(self) -> HybridClock:
        saved = self.handle.meta(CLOCK_KEY)
        last = Timestamp.decode(saved) if saved else None
        return HybridClock(self.handle.device_id, last)

    def _validate(self, value: M | Mapping[str, Any]) -> M:
        try:
            data = value.model_dump() if isinstance(value, BaseModel) else dict(value)
            return self.model.model_validate(data)
        except ValidationError as exc:
            raise RecordValidationError(_validation_message(self.name, exc)) from exc

    def put(self, value: M | Mapping[str, Any], record_id: str | None = None) -> Record[M]:
        """Insert or replace a record (validated first); returns it with its new version."""
        item = self._validate(value)
        rid = record_id or uuid.uuid4().hex
        now = self.clock()
        data = item.model_dump_json()
        with self.handle.transaction() as conn:
            clock = self._hlc()
            version = clock.tick(now).encode()
            row = conn.execute("SELECT created_at FROM records WHERE collection = ? AND id = ?",
                               (self.name, rid)).fetchone()
            created = float(row[0]) if row else now
            conn.execute(
                "INSERT INTO records (collection, id, data, created_at, updated_at, origin, "
                "version, deleted) VALUES (?, ?, ?, ?, ?, ?, ?, 0) ON CONFLICT (collection, id) "
                "DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at, "
                "origin = excluded.origin, version = excluded.version, deleted = 0",
                (self.name, rid, data, created, now, self.handle.device_id, version))
            self._log(conn, rid, version, "put", data, now)
            self.handle.set_meta(CLOCK_KEY, version)
        return Record[self.model](  # type: ignore[name-defined]
            id=rid, collection=self.name, value=item, created_at=created, updated_at=now,
            origin=self.handle.device_id, version=version)

    def _log(self, conn: Any, rid: str, version: str, op: str, data: str | None,
             now: float) -> None:
        conn.execute("INSERT INTO changes (collection, record_id, version, op, data, origin, at) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?)",
                     (self.name, rid, version, op, data, self.handle.device_id, now))

    def get(self, record_id: str) -> Record[M]:
        with self.handle.lock:
            row = self.handle.conn.execute(
                "SELECT id, data, created_at, updated_at, origin, version, deleted FROM records "
                "WHERE collection = ? AND id = ? AND deleted = 0",
                (self.name, record_id)).fetchone()
        if row is None:
            raise RecordNotFoundError(f"collection {self.name!r} has no record {record_id!r}.")
        return self._record(row)

    def _record(self, row: Any) -> Record[M]:
        return Record[self.model](  # type: ignore[name-defined]
            id=row[0], collection=self.name, value=self.model.model_validate_json(row[1]),
            created_at=row[2], updated_at=row[3], origin=row[4], version=row[5],
            deleted=bool(row[6]))

    def all(self, *, limit: int | None = None) -> list[Record[M]]:
        """Live records, newest change first."""
        with self.handle.lock:
            rows = self.handle.conn.execute(
                "SELECT id, data, created_at, updated_at, origin, version, deleted FROM records "
                "WHERE collection = ? AND deleted = 0 ORDER BY version DESC LIMIT ?",
                (self.name, -1 if limit is None else limit)).fetchall()
        return [self._record(r) for r in rows]

    def delete(self, record_id: str) -> None:
        """Leave a tombstone (other devices must hear of the delete), log the change."""
        now = self.clock()
        with self.handle.transaction() as conn:
            found = conn.execute("SELECT 1 FROM records WHERE collection = ? AND id = ? AND "
                                 "deleted = 0", (self.name, record_id)).fetchone()
            if found is None:
                raise RecordNotFoundError(f"collection {self.name!r} has no record "
                                          f"{record_id!r}.")
            version = self._hlc().tick(now).encode()
            conn.execute("UPDATE records SET data = '{}', deleted = 1, updated_at = ?, "
                         "origin = ?, version = ? WHERE collection = ? AND id = ?",
                         (now, self.handle.device_id, version, self.name, record_id))
            self._log(conn, record_id, version, "delete", None, now)
            self.handle.set_meta(CLOCK_KEY, version)

    def changes_since(self, seq: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        """The change log after ``seq``, oldest first: what sync sends."""
        with self.handle.lock:
            rows = self.handle.conn.execute(
                "SELECT seq, record_id, version, op, data, origin, at FROM changes "
                "WHERE collection = ? AND seq > ? ORDER BY seq LIMIT ?",
                (self.name, seq, limit)).fetchall()
        return [{"seq": r[0], "record_id": r[1], "version": r[2], "op": r[3],
                 "data": None if r[4] is None else json.loads(r[4]), "origin": r[5],
                 "at": r[6]} for r in rows]


__all__ = ["Collection", "Record"]
