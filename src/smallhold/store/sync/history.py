"""Reading a record's version history from the change log, and its conflict records.

A conflict record is an edit that lost: it is in the record's history but not in the lineage
of the value shown (see :mod:`.merge`). Listing them needs no table of its own, so every
device that has seen the same versions lists the same conflicts, and restoring one is just
an edit that names it as a parent.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from smallhold.errors import RecordNotFoundError
from smallhold.store.collections import write_local
from smallhold.store.handle import VaultHandle
from smallhold.store.sync.merge import Version, conflicts

_COLUMNS = "version, parents, op, data, origin, at, keep"


def _version(row: Any) -> Version:
    return Version(version=row[0], parents=tuple(json.loads(row[1])), op=row[2], data=row[3],
                   origin=row[4], at=row[5], keep=row[6])


def load_version(conn: sqlite3.Connection, collection: str, rid: str,
                 version: str) -> Version | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM changes WHERE collection = ? AND "
                       "record_id = ? AND version = ?", (collection, rid, version)).fetchone()
    return None if row is None else _version(row)


def load_history(conn: sqlite3.Connection, collection: str, rid: str) -> dict[str, Version]:
    rows = conn.execute(f"SELECT {_COLUMNS} FROM changes WHERE collection = ? AND "
                        "record_id = ? ORDER BY seq", (collection, rid)).fetchall()
    return {row[0]: _version(row) for row in rows}


@dataclass(frozen=True)
class ConflictRecord:
    """A losing edit, with what it lost to."""

    collection: str
    record_id: str
    version: str
    origin: str
    at: float
    deleted: bool
    data: Any
    shown_version: str
    shown_data: Any


def list_conflicts(handle: VaultHandle, collection: str | None = None) -> list[ConflictRecord]:
    """Every conflict record in the vault (or one collection), oldest first."""
    with handle.lock:
        conn = handle.conn
        candidates = conn.execute(
            "SELECT collection, id, version, data, deleted, heads FROM records WHERE "
            "(? IS NULL OR collection = ?) AND (json_array_length(heads) > 1 OR EXISTS ("
            "SELECT 1 FROM changes WHERE changes.collection = records.collection AND "
            "changes.record_id = records.id AND changes.op = 'merge'))",
            (collection, collection)).fetchall()
        found: list[ConflictRecord] = []
        for coll, rid, shown, shown_data, deleted, heads in candidates:
            for v in conflicts(load_history(conn, coll, rid), shown, json.loads(heads)):
                found.append(ConflictRecord(
                    coll, rid, v.version, v.origin, v.at, v.deleted,
                    None if v.data is None else json.loads(v.data), shown,
                    None if deleted else json.loads(shown_data)))
    return sorted(found, key=lambda c: c.version)


def short_version(version: str) -> str:
    """Clock and counter plus six letters of the device: unique in practice, easy to type."""
    return version[:29]


def find_conflict(handle: VaultHandle, version_prefix: str) -> ConflictRecord:
    matches = [c for c in list_conflicts(handle) if c.version.startswith(version_prefix)]
    if len(matches) != 1:
        what = "no conflict record" if not matches else f"{len(matches)} conflict records"
        raise RecordNotFoundError(f"{what} match {version_prefix!r}; "
                                  "`smallhold sync conflicts list` shows them.")
    return matches[0]


def restore_conflict(handle: VaultHandle, conflict: ConflictRecord, *,
                     now: float | None = None) -> Version:
    """Make a losing edit the record's value again (a new edit; the history keeps all)."""
    with handle.transaction() as conn:
        lost = load_version(conn, conflict.collection, conflict.record_id, conflict.version)
        if lost is None:
            raise RecordNotFoundError(f"version {conflict.version} is not in the history of "
                                      f"{conflict.collection}/{conflict.record_id}.")
        return write_local(handle, conflict.collection, conflict.record_id,
                           "delete" if lost.deleted else "put", lost.data,
                           now=time.time() if now is None else now,
                           also_replaces=(lost.version,))


__all__ = [
    "ConflictRecord",
    "find_conflict",
    "list_conflicts",
    "load_history",
    "load_version",
    "restore_conflict",
    "short_version",
]
