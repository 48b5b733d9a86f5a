"""The device side of sync: push this device's changes, pull the others', in a crash-safe way.

State lives in the vault next to the data it describes, so it commits with it:

* per collection: whether the user enabled it and the last change-log sequence number sent;
* the relay cursor: the last relay sequence number applied.

Push: for each enabled collection, this device's own versions after its cursor, sealed in
batches named by their first and last sequence number and a tag only this device can make
(an HMAC of the two under a secret kept in this vault). The cursor moves only after the
relay confirmed, so a crash in between re-sends the same batch under the same name, which
the relay stores once. The tag is why a name cannot be guessed: the relay stores one upload
per (device, batch id), so another member who posted garbage under this device's next
``first-last`` would have had the real batch answered as a duplicate and never delivered.

Pull: one page of batches, opened, validated and applied in one vault transaction together
with the cursor, so a kill leaves either all of the page or none of it. A version already in
the log is skipped, so replays and re-sends apply nothing twice.

A change that is authentic (it opened under the group key) but not valid, such as a record
failing its collection's model or a version claiming another device, is kept in
``sync_quarantine`` with the reason and not applied, so one bad record neither blocks sync
nor slips into the data.

A batch that cannot be read at all (too short, failing authentication, not compressed JSON, a
zip bomb, not in the sync format) is recorded in ``sync_quarantined_batches`` with its relay
sequence number, device, batch id, size, SHA-256 and the reason, and the cursor moves past it
with the rest of the page. Every member holds the relay token and the relay operator holds the
database, so either can post garbage: it must cost one quarantine row, never block the
batches behind it. The blob itself is not kept: it is useless here, up to 16 MiB each, and
the relay still has it under that sequence number (re-reading the relay, as ``enable`` does,
tries it again; the row is not duplicated).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from smallhold.errors import RelayProtocolError, SyncError, SyncNotAllowedError
from smallhold.store import collections
from smallhold.store.collections import CLOCK_KEY, log_version, show_version, vault_clock
from smallhold.store.handle import VaultHandle
from smallhold.store.hlc import HybridClock, Timestamp
from smallhold.store.migrations import Migration
from smallhold.store.sync.crypto import GroupKeys, open_sealed, seal
from smallhold.store.sync.history import load_version
from smallhold.store.sync.merge import Version, integrate
from smallhold.store.sync.transport import RelayClient, SealedBatch

SCOPE = "sync"
MIGRATIONS = (
    Migration("0001_sync_state", """
        CREATE TABLE sync_collections (
            collection TEXT PRIMARY KEY, enabled INTEGER NOT NULL,
            pushed_seq INTEGER NOT NULL DEFAULT 0, changed_at REAL NOT NULL);
        CREATE TABLE sync_quarantine (
            id INTEGER PRIMARY KEY, device TEXT NOT NULL, batch_id TEXT NOT NULL,
            relay_seq INTEGER NOT NULL, collection TEXT, record_id TEXT, version TEXT,
            reason TEXT NOT NULL, payload TEXT NOT NULL, at REAL NOT NULL);
    """),
    Migration("0002_quarantined_batches", """
        CREATE TABLE sync_quarantined_batches (
            id INTEGER PRIMARY KEY, relay_seq INTEGER NOT NULL, device TEXT NOT NULL,
            batch_id TEXT NOT NULL, size INTEGER NOT NULL, sha256 TEXT NOT NULL,
            reason TEXT NOT NULL, at REAL NOT NULL, UNIQUE (device, batch_id, sha256));
    """),
)
KEY_META = "sync.key"
RELAY_META = "sync.relay"
CURSOR_META = "sync.pulled_seq"
BATCH_SECRET_META = "sync.batch_secret"  # never leaves the vault, not even to the group
LAST_SYNC_META = "sync.last_at"
BATCH_CHANGES = 500
PAGE_BATCHES = 50
WIRE_FORMAT = 1


MAX_BATCH_JSON = 64 * 2**20
MAX_NAME_KEPT = 128  # a device or batch id longer than the relay allows is cut when recorded


def pack(payload: dict[str, Any]) -> bytes:
    """JSON, then zlib: change records repeat their keys and versions, so this is ~4x less
    on the wire; compressed before sealing (ciphertext does not compress)."""
    return zlib.compress(json.dumps(payload, separators=(",", ":")).encode(), 6)


def unpack(blob: bytes, batch: SealedBatch) -> bytes:
    """The JSON of an opened batch; refuses a bomb that inflates past ``MAX_BATCH_JSON``."""
    inflate = zlib.decompressobj()
    try:
        data = inflate.decompress(blob, MAX_BATCH_JSON)
    except zlib.error:
        raise RelayProtocolError(f"batch {batch.batch_id} from device {batch.device} is "
                                 "authentic but not compressed JSON: that device runs an "
                                 "incompatible smallhold; not applied.") from None
    if inflate.unconsumed_tail or not inflate.eof:
        raise RelayProtocolError(f"batch {batch.batch_id} from device {batch.device} inflates "
                                 f"past {MAX_BATCH_JSON // 2**20} MiB; not applied.")
    return data


class WireChange(BaseModel):
    collection: str = Field(min_length=1)
    record_id: str = Field(min_length=1)
    version: str
    parents: list[str]
    op: Literal["put", "delete", "merge"]
    data: str | None
    at: float
    keep: str | None = None


class WireBatch(BaseModel):
    format: Literal[1]
    changes: list[WireChange]


@dataclass
class SyncReport:
    """What one sync did; the CLI prints it and the benchmark reads it."""

    pushed_batches: int = 0
    pushed_changes: int = 0
    pulled_batches: int = 0
    applied: int = 0
    already_known: int = 0
    merged: int = 0
    not_enabled: int = 0
    quarantined: int = 0
    quarantined_batches: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    seconds: float = 0.0
    merges: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class SyncSettings:
    """Pairing, relay and per-collection permission, as stored in this vault."""

    def __init__(self, handle: VaultHandle, *, clock: Callable[[], float] = time.time) -> None:
        self.handle = handle
        self.clock = clock
        handle.migrate(collections.MIGRATIONS, scope=collections.SCOPE)  # the log it reads
        handle.migrate(MIGRATIONS, scope=SCOPE)

    @property
    def sync_key(self) -> bytes | None:
        saved = self.handle.meta(KEY_META)
        return bytes.fromhex(saved) if saved else None

    @property
    def relay(self) -> str | None:
        return self.handle.meta(RELAY_META)

    def keys(self) -> GroupKeys:
        key = self.sync_key
        if key is None:
            raise SyncError("this device is not paired; run `smallhold sync pair --relay URL` "
                            "here or `smallhold sync join CODE --relay URL` with a code from "
                            "a paired device.")
        return GroupKeys.from_sync_key(key)

    def join(self, sync_key: bytes, relay: str, *, replace: bool = False) -> None:
        current = self.sync_key
        if current is not None and current != sync_key and not replace:
            raise SyncError("this device is already paired with another group; pass "
                            "--replace to leave it (records stay, sync state resets).")
        with self.handle.transaction() as conn:
            if current != sync_key:
                conn.execute("UPDATE sync_collections SET pushed_seq = 0")
                self.handle.set_meta(CURSOR_META, "0")
            self.handle.set_meta(KEY_META, sync_key.hex())
            self.handle.set_meta(RELAY_META, relay.rstrip("/"))

    def set_relay(self, relay: str) -> None:
        self.handle.set_meta(RELAY_META, relay.rstrip("/"))

    def enable(self, collection: str) -> None:
        """Allow a collection to leave this device; re-reads the relay for what was skipped."""
        with self.handle.transaction() as conn:
            conn.execute("INSERT INTO sync_collections (collection, enabled, changed_at) "
                         "VALUES (?, 1, ?) ON CONFLICT (collection) DO UPDATE SET "
                         "enabled = 1, changed_at = excluded.changed_at",
                         (collection, self.clock()))
            self.handle.set_meta(CURSOR_META, "0")

    def disable(self, collection: str) -> None:
        with self.handle.transaction() as conn:
            found = conn.execute("UPDATE sync_collections SET enabled = 0, changed_at = ? "
                                 "WHERE collection = ? AND enabled = 1",
                                 (self.clock(), collection)).rowcount
        if not found:
            raise SyncNotAllowedError(f"collection {collection!r} is not enabled for sync.")

    def enabled(self) -> dict[str, int]:
        """Enabled collections and their push cursors."""
        with self.handle.lock:
            rows = self.handle.conn.execute(
                "SELECT collection, pushed_seq FROM sync_collections WHERE enabled = 1 "
                "ORDER BY collection").fetchall()
        return {str(r[0]): int(r[1]) for r in rows}

    def status(self) -> dict[str, Any]:
        with self.handle.lock:
            conn = self.handle.conn
            rows = conn.execute(
                "SELECT s.collection, s.enabled, s.pushed_seq, (SELECT count(*) FROM changes c "
                "WHERE c.collection = s.collection AND c.origin = ? AND c.seq > s.pushed_seq) "
                "FROM sync_collections s ORDER BY s.collection",
                (self.handle.device_id,)).fetchall()
            quarantined = conn.execute("SELECT count(*) FROM sync_quarantine").fetchone()[0]
            batches = conn.execute("SELECT count(*) FROM sync_quarantined_batches").fetchone()[0]
        key = self.sync_key
        last = self.handle.meta(LAST_SYNC_META)
        return {
            "paired": key is not None,
            "group": GroupKeys.from_sync_key(key).group_id[:12] if key else None,
            "relay": self.relay,
            "device": self.handle.device_id,
            "collections": [{"name": r[0], "enabled": bool(r[1]), "pending": int(r[3])}
                            for r in rows],
            "relay_cursor": int(self.handle.meta(CURSOR_META) or 0),
            "last_sync_at": float(last) if last else None,
            "quarantined": int(quarantined),
            "quarantined_batches": int(batches),
        }

    def quarantine(self) -> list[dict[str, Any]]:
        with self.handle.lock:
            rows = self.handle.conn.execute(
                "SELECT device, batch_id, relay_seq, collection, record_id, version, reason, at "
                "FROM sync_quarantine ORDER BY id").fetchall()
        keys = ("device", "batch_id", "relay_seq", "collection", "record_id", "version",
                "reason", "at")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def quarantined_batches(self) -> list[dict[str, Any]]:
        """Batches that could not be read, oldest first: where they are and why."""
        with self.handle.lock:
            rows = self.handle.conn.execute(
                "SELECT relay_seq, device, batch_id, size, sha256, reason, at "
                "FROM sync_quarantined_batches ORDER BY id").fetchall()
        keys = ("relay_seq", "device", "batch_id", "size", "sha256", "reason", "at")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def collections_here(self) -> list[str]:
        """Collections with versions in this vault's change log (written here or received)."""
        with self.handle.lock:
            rows = self.handle.conn.execute(
                "SELECT DISTINCT collection FROM changes ORDER BY collection").fetchall()
        return [str(r[0]) for r in rows]


class SyncClient:
    """One sync of one vault through one relay."""

    def __init__(self, handle: VaultHandle, relay: RelayClient, *,
                 models: Mapping[str, type[BaseModel]] | None = None,
                 clock: Callable[[], float] = time.time,
                 batch_changes: int = BATCH_CHANGES) -> None:
        self.handle = handle
        self.settings = SyncSettings(handle, clock=clock)
        self.keys = self.settings.keys()
        self.relay = relay
        self.models = dict(models or {})
        self.clock = clock
        self.batch_changes = batch_changes
        self.me = handle.device_id

    # -- push -------------------------------------------------------------------------------

    def _batch_id(self, first: int, last: int) -> str:
        """``first-last-tag``: the same on a re-send, unguessable by the group's members."""
        secret = self.handle.meta(BATCH_SECRET_META)
        if secret is None:
            secret = os.urandom(32).hex()
            self.handle.set_meta(BATCH_SECRET_META, secret)
        span = f"{first}-{last}"
        tag = hmac.new(bytes.fromhex(secret), span.encode(), hashlib.sha256).hexdigest()[:20]
        return f"{span}-{tag}"

    def push(self, report: SyncReport) -> None:
        for collection, pushed in self.settings.enabled().items():
            while True:
                with self.handle.lock:
                    rows = self.handle.conn.execute(
                        "SELECT seq, record_id, version, parents, op, data, at, keep "
                        "FROM changes WHERE collection = ? AND origin = ? AND seq > ? "
                        "ORDER BY seq LIMIT ?",
                        (collection, self.me, pushed, self.batch_changes)).fetchall()
                if not rows:
                    break
                batch_id = self._batch_id(int(rows[0][0]), int(rows[-1][0]))
                payload = {"format": WIRE_FORMAT, "changes": [
                    {"collection": collection, "record_id": r[1], "version": r[2],
                     "parents": json.loads(r[3]), "op": r[4], "data": r[5], "at": r[6],
                     "keep": r[7]} for r in rows]}
                blob = seal(self.keys, self.me, batch_id, pack(payload))
                self.relay.put_batch(self.me, batch_id, blob)
                pushed = int(rows[-1][0])
                with self.handle.transaction() as conn:
                    conn.execute("UPDATE sync_collections SET pushed_seq = ? "
                                 "WHERE collection = ?", (pushed, collection))
                report.pushed_batches += 1
                report.pushed_changes += len(rows)

    # -- pull -------------------------------------------------------------------------------

    def pull(self, report: SyncReport) -> None:
        enabled = set(self.settings.enabled())
        while True:
            after = int(self.handle.meta(CURSOR_META) or 0)
            page = self.relay.batches(after, PAGE_BATCHES)
            if not page:
                return
            opened = [(b, self._open(b)) for b in page if b.device != self.me]
            with self.handle.transaction() as conn:  # the page, its quarantine and the cursor
                clock = vault_clock(self.handle)
                for batch, wire in opened:
                    if isinstance(wire, str):
                        report.quarantined_batches += self._quarantine_batch(conn, batch, wire)
                    else:
                        self._apply_batch(conn, clock, batch, wire, enabled, report)
                        report.pulled_batches += 1
                self.handle.set_meta(CLOCK_KEY, clock.last.encode())
                self.handle.set_meta(CURSOR_META, str(page[-1].seq))

    def _open(self, batch: SealedBatch) -> WireBatch | str:
        """The batch's changes, or why it cannot be read (it is then quarantined, not applied).

        Authentication, inflation and format are all checked here, before the page's
        transaction, so nothing of a batch is applied unless all of it parsed.
        """
        try:
            payload = unpack(open_sealed(self.keys, batch.device, batch.batch_id, batch.blob),
                             batch)
            return WireBatch.model_validate_json(payload)
        except RelayProtocolError as exc:
            return str(exc)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "the batch"
            return (f"batch {batch.batch_id} from device {batch.device} is authentic but not "
                    f"in the sync format ({where}: {first['msg']}): that device runs an "
                    "incompatible smallhold.")

    def _quarantine_batch(self, conn: sqlite3.Connection, batch: SealedBatch,
                          reason: str) -> int:
        """Record an unreadable batch once (a re-read of the relay adds no row); 1 if new."""
        return conn.execute(
            "INSERT INTO sync_quarantined_batches (relay_seq, device, batch_id, size, sha256, "
            "reason, at) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (device, batch_id, sha256) DO NOTHING",
            (batch.seq, batch.device[:MAX_NAME_KEPT], batch.batch_id[:MAX_NAME_KEPT],
             len(batch.blob), hashlib.sha256(batch.blob).hexdigest(), reason,
             self.clock())).rowcount

    def _apply_batch(self, conn: sqlite3.Connection, clock: HybridClock, batch: SealedBatch,
                     wire: WireBatch, enabled: set[str], report: SyncReport) -> None:
        for change in wire.changes:
            if change.collection not in enabled:
                report.not_enabled += 1
                continue
            problem = self._problem(change, batch.device)
            if problem is None:
                try:
                    clock.observe(Timestamp.decode(change.version), self.clock())
                except SyncError as exc:
                    problem = str(exc)
            if problem is not None:
                self._quarantine(conn, batch, change, problem, change.model_dump_json())
                report.quarantined += 1
                continue
            self._apply(conn, clock, change, report)

    def _problem(self, change: WireChange, device: str) -> str | None:
        """Why an authentic change must not be applied, or None."""
        try:
            stamp = Timestamp.decode(change.version)
        except SyncError as exc:
            return str(exc)
        if stamp.device != device:
            return f"version {change.version} claims device {stamp.device}, sent by {device}"
        if change.op == "merge" and change.keep not in change.parents:
            return "a merge must keep one of its parents"
        if change.data is None:
            return None if change.op != "put" else "a put carries no data"
        model = self.models.get(change.collection)
        try:
            if model is not None:
                model.model_validate_json(change.data)
            elif not isinstance(json.loads(change.data), dict):
                return "record data is not a JSON object"
        except ValidationError as exc:
            fields = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                               for e in exc.errors()[:3])
            return f"not a valid {change.collection} record: {fields}"
        except ValueError:
            return "record data is not JSON"
        return None

    def _quarantine(self, conn: sqlite3.Connection, batch: SealedBatch, change: WireChange,
                    reason: str, payload: str) -> None:
        conn.execute(
            "INSERT INTO sync_quarantine (device, batch_id, relay_seq, collection, record_id, "
            "version, reason, payload, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (batch.device, batch.batch_id, batch.seq, change.collection, change.record_id,
             change.version, reason, payload, self.clock()))

    def _apply(self, conn: sqlite3.Connection, clock: HybridClock, change: WireChange,
               report: SyncReport) -> None:
        coll, rid = change.collection, change.record_id
        if load_version(conn, coll, rid, change.version) is not None:
            report.already_known += 1
            return
        incoming = Version(change.version, tuple(change.parents), change.op, change.data,
                           Timestamp.decode(change.version).device, change.at, change.keep)
        superseded = conn.execute(
            "SELECT 1 FROM changes, json_each(changes.parents) WHERE changes.collection = ? "
            "AND changes.record_id = ? AND json_each.value = ? LIMIT 1",
            (coll, rid, change.version)).fetchone() is not None
        row = conn.execute("SELECT heads, version FROM records WHERE collection = ? AND id = ?",
                           (coll, rid)).fetchone()
        heads = tuple(json.loads(row[0])) if row else ()
        shown = load_version(conn, coll, rid, row[1]) if row else None
        outcome = integrate(heads, shown, incoming, superseded=superseded, me=self.me)
        log_version(conn, coll, rid, incoming)
        report.applied += 1
        if outcome.old_news:
            return
        if outcome.merge_keep is not None and shown is not None:
            merge = Version(clock.tick(self.clock()).encode(), outcome.heads, "merge",
                            shown.data if not shown.deleted else None, self.me, self.clock(),
                            keep=shown.version)
            log_version(conn, coll, rid, merge)
            show_version(conn, coll, rid, merge, (merge.version,))
            report.merged += 1
            report.merges.append(f"{coll}/{rid}")
            return
        target = incoming if outcome.shown == incoming.version else (
            load_version(conn, coll, rid, outcome.shown or "") or incoming)
        show_version(conn, coll, rid, target, outcome.heads)

    # -- both -------------------------------------------------------------------------------

    def run(self) -> SyncReport:
        """Push, pull, then push the merges the pull wrote; safe to kill and run again."""
        started = time.perf_counter()
        report = SyncReport()
        sent, received = self.relay.sent, self.relay.received
        self.push(report)
        self.pull(report)
        if report.merged:
            self.push(report)
        self.handle.set_meta(LAST_SYNC_META, repr(self.clock()))
        report.bytes_sent = self.relay.sent - sent
        report.bytes_received = self.relay.received - received
        report.seconds = time.perf_counter() - started
        return report


__all__ = ["BATCH_CHANGES", "MIGRATIONS", "SyncClient", "SyncReport", "SyncSettings",
           "WireBatch", "WireChange", "pack", "unpack"]
