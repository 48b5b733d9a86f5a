"""life's tables in the vault: records by kind and content id, sources, problems, mappings.

Not the suite's synced collections: a health export alone is a million records, and the
change log that sync needs would double every write for data that is re-derived from the
user's own files anyway. Records are keyed by (kind, content id), so a second ingest of
the same file, or a newer export that overlaps an older one, inserts nothing twice
(``INSERT OR IGNORE``). A file is ingested in one transaction: it counts whole or not at all.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from smallhold.apps.life.alerts import Alert
from smallhold.apps.life.models import (
    Event,
    HealthSample,
    Message,
    Problem,
    Record,
    Transaction,
    record_id,
)
from smallhold.apps.life.sources.money import dedupe_key
from smallhold.store.handle import VaultHandle
from smallhold.store.migrations import Migration

SCOPE = "life"
MIGRATIONS = [Migration("0001_records", """
    CREATE TABLE life_records (
        kind TEXT NOT NULL,          -- event, transaction, health, message
        id TEXT NOT NULL,            -- content id (models.record_id)
        at TEXT NOT NULL,            -- the record's own time (ISO), for ranges
        file TEXT NOT NULL,          -- the source file's name, for citations and forget
        data TEXT NOT NULL,          -- the record as JSON
        PRIMARY KEY (kind, id)
    ) WITHOUT ROWID;
    CREATE INDEX life_records_at ON life_records (kind, at);
    CREATE INDEX life_records_file ON life_records (file);
    CREATE TABLE life_sources (
        file TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        kind TEXT NOT NULL,
        ingested_at REAL NOT NULL,
        records INTEGER NOT NULL,    -- records the file gave
        added INTEGER NOT NULL,      -- of which new
        problems INTEGER NOT NULL,
        PRIMARY KEY (file, sha256)
    );
    CREATE TABLE life_problems (
        file TEXT NOT NULL,
        location TEXT NOT NULL,
        reason TEXT NOT NULL,
        seen_at REAL NOT NULL,
        PRIMARY KEY (file, location)
    );
    CREATE TABLE life_csv_mappings (
        header TEXT PRIMARY KEY,     -- the CSV header's columns, joined: one bank's layout
        mapping TEXT NOT NULL
    );
"""), Migration("0002_alerts", """
    CREATE TABLE life_alerts (
        id TEXT PRIMARY KEY,         -- Alert.id: from its content, stable across runs
        kind TEXT NOT NULL,
        first_seen REAL NOT NULL,
        last_seen REAL NOT NULL,
        data TEXT NOT NULL
    );
"""), Migration("0003_graph", """
    CREATE TABLE life_entities (     -- the knowledge graph (graph.py), rebuilt from records
        id TEXT PRIMARY KEY,         -- me, person:EMAIL, org:DOMAIN, merchant:NAME
        kind TEXT NOT NULL,          -- person, organisation, merchant
        name TEXT NOT NULL,
        data TEXT NOT NULL
    );
    CREATE INDEX life_entities_kind ON life_entities (kind, name);
    CREATE TABLE life_relations (
        src TEXT NOT NULL,
        kind TEXT NOT NULL,          -- emails, meets, pays, works_at
        dst TEXT NOT NULL,
        first TEXT NOT NULL,         -- valid from (local ISO time or date)
        last TEXT NOT NULL,          -- to
        weight REAL NOT NULL,        -- messages, hours, money, sightings
        data TEXT NOT NULL,          -- counts, months, evidence
        PRIMARY KEY (src, kind, dst)
    );
    CREATE INDEX life_relations_dst ON life_relations (dst, kind);
"""), Migration("0004_extractions", """
    CREATE TABLE life_extractions (  -- what the local model named in one text (extract.py)
        unit TEXT NOT NULL,          -- record_id(kind, key, text): a changed text is read again
        model TEXT NOT NULL,         -- the model id that read it
        prompt INTEGER NOT NULL,     -- extract.PROMPT_VERSION: a new prompt reads it again
        kind TEXT NOT NULL,          -- message, event
        key TEXT NOT NULL,           -- Message-ID or event UID: the evidence's natural key
        at TEXT NOT NULL,            -- the record's own time
        file TEXT NOT NULL,          -- the source file, for citations and forget
        extracted_at REAL NOT NULL,
        data TEXT NOT NULL,          -- the names kept (each found in the text), counts, error
        PRIMARY KEY (unit, model, prompt)
    ) WITHOUT ROWID;
    CREATE INDEX life_extractions_file ON life_extractions (file);
""")]

SCHEMA = (SCOPE, MIGRATIONS)  # what the app's declaration applies when a home opens for it
KINDS: dict[type[Any], str] = {Event: "event", Transaction: "transaction",
                               HealthSample: "health", Message: "message"}
MODELS: dict[str, type[Any]] = {v: k for k, v in KINDS.items()}
BATCH = 5000


def key_of(record: Record, repeat: int = 1) -> tuple[str, str, str]:
    """(kind, content id, time) of a record: what makes it itself, not where it was read.

    A transaction without the bank's id is its account, date, amount and description, plus
    ``repeat``: the second identical coffee of a day in one statement is a second record,
    and an overlapping statement that lists the same two numbers them the same way."""
    if isinstance(record, Event):
        return "event", record_id(record.uid, record.occurrence), record.start
    if isinstance(record, Transaction):
        ident = dedupe_key(record) if record.fitid else f"{dedupe_key(record)}#{repeat}"
        return "transaction", record_id(record.source.kind, ident), record.posted
    if isinstance(record, HealthSample):
        return "health", record_id(record.type, record.stage, record.start, record.end,
                                   record.value, record.device), record.start
    return "message", record_id(record.message_id), record.date


@dataclass
class Counted:
    records: int = 0
    added: int = 0
    problems: int = 0


class LifeStore:
    def __init__(self, handle: VaultHandle) -> None:
        self.handle = handle
        handle.migrate(MIGRATIONS, scope=SCOPE)

    def known_source(self, file: str, sha256: str) -> bool:
        with self.handle.lock:
            row = self.handle.conn.execute("SELECT 1 FROM life_sources WHERE file = ? AND "
                                           "sha256 = ?", (file, sha256)).fetchone()
        return row is not None

    def ingest(self, file: str, sha256: str, kind: str,
               items: Iterable[Record | Problem]) -> Counted:
        """Store a file's records and problems in one transaction; count what was new."""
        counted = Counted()
        now = time.time()
        with self.handle.transaction() as conn:
            conn.execute("DELETE FROM life_problems WHERE file = ?", (file,))
            batch: list[tuple[str, str, str, str, str]] = []
            repeats: Counter[str] = Counter()
            for item in items:
                if isinstance(item, Problem):
                    counted.problems += 1
                    conn.execute("INSERT OR REPLACE INTO life_problems VALUES (?, ?, ?, ?)",
                                 (item.file, item.location, item.reason, now))
                    continue
                repeat = 1
                if isinstance(item, Transaction) and not item.fitid:
                    base = dedupe_key(item)
                    repeats[base] += 1
                    repeat = repeats[base]
                kind_of, ident, at = key_of(item, repeat)
                batch.append((kind_of, ident, at, item.source.file, item.model_dump_json()))
                counted.records += 1
                if len(batch) >= BATCH:
                    counted.added += _insert(conn, batch)
                    batch = []
            counted.added += _insert(conn, batch)
            conn.execute("INSERT OR REPLACE INTO life_sources VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (file, sha256, kind, now, counted.records, counted.added,
                          counted.problems))
        return counted

    def records(self, kind: str, *, since: str = "", until: str = "~",
                page: int = 2000) -> Iterator[Any]:
        """Records of ``kind`` whose time is in [since, until), oldest first, read a page
        at a time (keyset on (time, id)), so a million health samples never sit in memory
        together and the vault's lock is not held while the caller works."""
        model = MODELS[kind]
        after_at, after_id = since, ""
        while True:
            with self.handle.lock:
                rows = self.handle.conn.execute(
                    "SELECT at, id, data FROM life_records WHERE kind = ? AND (at, id) > (?, ?)"
                    " AND at >= ? AND at < ? ORDER BY at, id LIMIT ?",
                    (kind, after_at, after_id, since, until, page)).fetchall()
            for _at, _id, data in rows:
                yield model.model_validate_json(data)
            if len(rows) < page:
                return
            after_at, after_id = rows[-1][0], rows[-1][1]

    def counts(self) -> dict[str, int]:
        with self.handle.lock:
            rows = self.handle.conn.execute(
                "SELECT kind, count(*) FROM life_records GROUP BY kind").fetchall()
        return {kind: n for kind, n in rows}

    def sources(self) -> list[dict[str, Any]]:
        with self.handle.lock:
            rows = self.handle.conn.execute(
                "SELECT file, sha256, kind, ingested_at, records, added, problems FROM "
                "life_sources ORDER BY ingested_at").fetchall()
        names = ("file", "sha256", "kind", "ingested_at", "records", "added", "problems")
        return [dict(zip(names, row, strict=True)) for row in rows]

    def problems(self, file: str | None = None) -> list[Problem]:
        with self.handle.lock:
            rows = self.handle.conn.execute(
                "SELECT file, location, reason FROM life_problems WHERE ? IS NULL OR file = ? "
                "ORDER BY file, seen_at", (file, file)).fetchall()
        return [Problem(file=f, location=loc, reason=r) for f, loc, r in rows]

    def forget(self, file: str) -> int:
        """Delete everything that came from source ``file`` (its records, problems, ingest
        rows and what the model read in its texts); the vault's ``secure_delete`` overwrites
        the freed pages. Returns the number of records removed."""
        with self.handle.transaction() as conn:
            removed = conn.execute("DELETE FROM life_records WHERE file = ?", (file,)).rowcount
            conn.execute("DELETE FROM life_extractions WHERE file = ?", (file,))
            conn.execute("DELETE FROM life_problems WHERE file = ?", (file,))
            conn.execute("DELETE FROM life_sources WHERE file = ?", (file,))
        return int(removed)

    def save_alerts(self, alerts: Iterable[Alert]) -> int:
        """Keep ``alerts``; one already known keeps its first sighting. Returns how many are
        new."""
        now, new = time.time(), 0
        with self.handle.transaction() as conn:
            for alert in alerts:
                known = conn.execute("SELECT 1 FROM life_alerts WHERE id = ?",
                                     (alert.id,)).fetchone()
                if known:
                    conn.execute("UPDATE life_alerts SET last_seen = ?, data = ? WHERE id = ?",
                                 (now, alert.model_dump_json(), alert.id))
                else:
                    new += 1
                    conn.execute("INSERT INTO life_alerts VALUES (?, ?, ?, ?, ?)",
                                 (alert.id, alert.kind, now, now, alert.model_dump_json()))
        return new

    def alerts(self) -> list[Alert]:
        """Every alert kept, newest first."""
        with self.handle.lock:
            rows = self.handle.conn.execute(
                "SELECT data FROM life_alerts ORDER BY first_seen DESC, id").fetchall()
        return [Alert.model_validate_json(data) for (data,) in rows]

    def mapping(self, header: str) -> dict[str, Any] | None:
        with self.handle.lock:
            row = self.handle.conn.execute("SELECT mapping FROM life_csv_mappings WHERE "
                                           "header = ?", (header,)).fetchone()
        return json.loads(row[0]) if row else None

    def save_mapping(self, header: str, mapping: dict[str, Any]) -> None:
        with self.handle.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO life_csv_mappings VALUES (?, ?)",
                         (header, json.dumps(mapping, sort_keys=True)))


def _insert(conn: sqlite3.Connection, batch: list[tuple[str, str, str, str, str]]) -> int:
    if not batch:
        return 0
    before = conn.total_changes
    conn.executemany("INSERT OR IGNORE INTO life_records VALUES (?, ?, ?, ?, ?)", batch)
    return conn.total_changes - before


__all__ = ["BATCH", "KINDS", "MIGRATIONS", "SCHEMA", "SCOPE", "Counted", "LifeStore", "key_of"]
