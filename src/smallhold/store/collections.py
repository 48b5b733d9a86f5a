"""Typed collections: the one small API apps use to keep records in the vault.

A collection is a name and a pydantic model. Each record carries its id, created and updated
times, the device it was last written on, and a hybrid-logical-clock version; deletes leave a
tombstone. Every write also appends to ``changes`` in the same transaction: the local change
log that device sync reads (offline first: a change exists locally before anything else
hears of it).
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from smallhold.errors import RecordNotFoundError, RecordValidationError
from smallhold.store.handle import VaultHandle
from smallhold.store.hlc import HybridClock, Timestamp
from smallhold.store.migrations import Migration
from smallhold.store.versions import Op, Version

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
    # Sync: a version names the heads it replaced, so the change log is each record's history.
    Migration("0002_version_history", """
        ALTER TABLE changes ADD COLUMN parents TEXT NOT NULL DEFAULT '[]';
        ALTER TABLE changes ADD COLUMN keep TEXT;
        ALTER TABLE records ADD COLUMN heads TEXT NOT NULL DEFAULT '[]';
        UPDATE records SET heads = json_array(version);
        UPDATE changes SET parents = COALESCE((
            SELECT json_array(earlier.version) FROM changes AS earlier
            WHERE earlier.collection = changes.collection
              AND earlier.record_id = changes.record_id AND earlier.seq < changes.seq
            ORDER BY earlier.seq DESC LIMIT 1), '[]');
        CREATE UNIQUE INDEX changes_version ON changes (collection, record_id, version);
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
        version = self._write(rid, "put", item.model_dump_json())
        return self._record_of(version, rid, item)

    def _write(self, rid: str, op: Op, data: str | None) -> Version:
        return write_local(self.handle, self.name, rid, op, data, now=self.clock())

    def _record_of(self, version: Version, rid: str, item: M) -> Record[M]:
        with self.handle.lock:
            row = self.handle.conn.execute("SELECT created_at FROM records WHERE "
                                           "collection = ? AND id = ?", (self.name, rid)
                                           ).fetchone()
        return Record[self.model](  # type: ignore[name-defined]
            id=rid, collection=self.name, value=item, created_at=row[0],
            updated_at=version.at, origin=version.origin, version=version.version)

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

    def where(self, field: str, value: str | int | float | bool, *, order_by: str | None = None,
              descending: bool = False, limit: int | None = None) -> list[Record[M]]:
        """Live records whose ``field`` equals ``value``, optionally ordered by another field.

        Fields are the model's own (checked), read with SQLite's ``json_extract``: a scan of
        the collection, fine for the thousands of records an app keeps per query.
        """
        for name in (field, order_by):
            if name is not None and name not in self.model.model_fields:
                raise ValueError(f"{self.model.__name__} has no field {name!r}")
        order = (f"json_extract(data, '$.{order_by}') {'DESC' if descending else 'ASC'}"
                 if order_by else "version")
        with self.handle.lock:
            rows = self.handle.conn.execute(
                "SELECT id, data, created_at, updated_at, origin, version, deleted FROM records "
                f"WHERE collection = ? AND deleted = 0 AND json_extract(data, '$.{field}') = ? "
                f"ORDER BY {order} LIMIT ?",
                (self.name, value, -1 if limit is None else limit)).fetchall()
        return [self._record(r) for r in rows]

    def delete(self, record_id: str) -> None:
        """Leave a tombstone (other devices must hear of the delete), log the change."""
        self._write(record_id, "delete", None)

    def changes_since(self, seq: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        """The change log after ``seq``, oldest first: what sync sends."""
        with self.handle.lock:
            rows = self.handle.conn.execute(
                "SELECT seq, record_id, version, op, data, origin, at, parents FROM changes "
                "WHERE collection = ? AND seq > ? ORDER BY seq LIMIT ?",
                (self.name, seq, limit)).fetchall()
        return [{"seq": r[0], "record_id": r[1], "version": r[2], "op": r[3],
                 "data": None if r[4] is None else json.loads(r[4]), "origin": r[5],
                 "at": r[6], "parents": json.loads(r[7])} for r in rows]


def vault_clock(handle: VaultHandle) -> HybridClock:
    """The vault's hybrid logical clock as last persisted (call inside a transaction)."""
    saved = handle.meta(CLOCK_KEY)
    return HybridClock(handle.device_id, Timestamp.decode(saved) if saved else None)


def write_local(handle: VaultHandle, collection: str, rid: str, op: Op, data: str | None, *,
                now: float, also_replaces: tuple[str, ...] = ()) -> Version:
    """A local edit: a new version whose parents are the record's current heads.

    ``also_replaces`` names further versions the edit settles (restoring a conflict record).
    """
    with handle.transaction() as conn:
        row = conn.execute("SELECT heads, deleted FROM records WHERE collection = ? AND id = ?",
                           (collection, rid)).fetchone()
        if op == "delete" and not also_replaces and (row is None or row[1]):
            raise RecordNotFoundError(f"collection {collection!r} has no record {rid!r}.")
        heads = tuple(json.loads(row[0])) if row else ()
        version = Version(vault_clock(handle).tick(now).encode(),
                          tuple(sorted({*heads, *also_replaces})), op, data, handle.device_id,
                          now)
        log_version(conn, collection, rid, version)
        show_version(conn, collection, rid, version, (version.version,))
        handle.set_meta(CLOCK_KEY, version.version)
    return version


def log_version(conn: sqlite3.Connection, collection: str, rid: str, v: Version) -> None:
    """Append a version to the change log (the record's history)."""
    conn.execute("INSERT INTO changes (collection, record_id, version, op, data, origin, at, "
                 "parents, keep) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 (collection, rid, v.version, v.op, v.data, v.origin, v.at,
                  json.dumps(list(v.parents)), v.keep))


def show_version(conn: sqlite3.Connection, collection: str, rid: str, v: Version,
                 heads: tuple[str, ...]) -> None:
    """Make ``v`` the record's visible value (a tombstone when it deletes)."""
    conn.execute(
        "INSERT INTO records (collection, id, data, created_at, updated_at, origin, version, "
        "deleted, heads) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (collection, id) "
        "DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at, "
        "origin = excluded.origin, version = excluded.version, deleted = excluded.deleted, "
        "heads = excluded.heads",
        (collection, rid, "{}" if v.deleted else v.data, v.at, v.at, v.origin, v.version,
         int(v.deleted), json.dumps(list(heads))))


__all__ = ["CLOCK_KEY", "Collection", "Record", "log_version", "show_version",
           "vault_clock", "write_local"]
