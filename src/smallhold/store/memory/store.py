"""Vector memory inside the vault: remember, recall, reinforce, forget, consolidate.

Three tables move together in one transaction: ``memories`` (the record), ``memory_vectors``
(a sqlite-vec ``vec0`` table, cosine distance, with kind and archived as metadata columns so
the KNN search filters inside the index) and ``memory_fts`` (FTS5 over text and tags). They
share the integer rowid of ``memories``. ``memory_events`` is the history the user can read:
every remember, reinforce, merge, fade, archive and forget, with its numbers.

The embedder is injected (the store layer sits below the runtime); its name and dimension are
recorded on first use, and a different one is refused, because vectors from two models are
not comparable.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, Field

from smallhold.errors import RecordNotFoundError, RecordValidationError, StoreError
from smallhold.store.handle import VaultHandle
from smallhold.store.memory import decay, ranking
from smallhold.store.migrations import Migration

SCOPE = "memory"
META_KEY = "memory.embedder"
MAX_TEXT_CHARS = 20_000
_WORD = re.compile(r"\w+", re.UNICODE)


class TextEmbedder(Protocol):
    """What the memory needs of an embedding model (the runtime's Embedder fits)."""

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]: ...


class Memory(BaseModel):
    id: str
    kind: str
    text: str
    tags: list[str] = Field(default_factory=list)
    importance: float
    weight: float
    created_at: float
    updated_at: float
    reinforced_at: float
    reinforcements: int
    origin: str
    archived_at: float | None = None
    archived_reason: str | None = None


class Hit(BaseModel):
    memory: Memory
    score: float
    vector: float
    keyword: float
    recency: float


class MemoryEvent(BaseModel):
    memory_id: str
    action: str
    reason: str
    data: dict[str, Any]
    at: float


# Aliases, because ``list`` inside the class body is the method, not the builtin.
Events = list[MemoryEvent]
Actions = list[decay.Action]


def _migrations(dim: int) -> list[Migration]:
    return [
        Migration("0001_memories", f"""
            CREATE TABLE memories (
                rowid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL,
                text TEXT NOT NULL, tags TEXT NOT NULL, importance REAL NOT NULL,
                weight REAL NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL,
                reinforced_at REAL NOT NULL, reinforcements INTEGER NOT NULL,
                origin TEXT NOT NULL, archived_at REAL, archived_reason TEXT);
            CREATE INDEX memories_kind ON memories (kind, archived_at);
            CREATE VIRTUAL TABLE memory_vectors USING vec0(
                embedding float[{int(dim)}] distance_metric=cosine, kind text,
                archived integer);
            CREATE VIRTUAL TABLE memory_fts USING fts5(text, tags);
            CREATE TABLE memory_events (
                seq INTEGER PRIMARY KEY, memory_id TEXT NOT NULL, action TEXT NOT NULL,
                reason TEXT NOT NULL, data TEXT NOT NULL, at REAL NOT NULL);
            CREATE INDEX memory_events_id ON memory_events (memory_id, seq);
        """),
    ]


_COLUMNS = ("rowid, id, kind, text, tags, importance, weight, created_at, updated_at, "
            "reinforced_at, reinforcements, origin, archived_at, archived_reason")


def _memory(row: Sequence[Any]) -> Memory:
    return Memory(id=row[1], kind=row[2], text=row[3], tags=json.loads(row[4]),
                  importance=row[5], weight=row[6], created_at=row[7], updated_at=row[8],
                  reinforced_at=row[9], reinforcements=row[10], origin=row[11],
                  archived_at=row[12], archived_reason=row[13])


def fts_query(text: str) -> str | None:
    """Every word of the query as a quoted FTS5 term joined by OR; None when it has none.

    Quoting makes user input inert (no FTS5 syntax errors from ``"`` or ``AND``).
    """
    words = [w for w in _WORD.findall(text.lower()) if len(w) > 1]
    if not words:
        return None
    return " OR ".join(f'"{w}"' for w in dict.fromkeys(words))


class MemoryStore:
    """The memories of one vault; safe to share between threads (the vault's lock)."""

    def __init__(self, handle: VaultHandle, embedder: TextEmbedder, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.handle = handle
        self.embedder = embedder
        self.clock = clock
        recorded = handle.meta(META_KEY)
        signature = json.dumps({"name": embedder.name, "dim": embedder.dim})
        if recorded is not None and json.loads(recorded) != json.loads(signature):
            raise StoreError(
                f"the memories in this vault were embedded with {recorded}, not "
                f"{embedder.name} ({embedder.dim} dims); vectors of different models cannot "
                "be compared. Use the same embedding model.")
        handle.migrate(_migrations(embedder.dim), scope=SCOPE)
        if recorded is None:
            handle.set_meta(META_KEY, signature)

    # -- writing ---------------------------------------------------------------------------

    def embed(self, text: str) -> NDArray[np.float32]:
        """``text`` as this store indexes it, for a memory keyed by other words than it shows."""
        vector = np.asarray(self.embedder.embed([text])[0], dtype=np.float32)
        if vector.shape != (self.embedder.dim,):
            raise RecordValidationError(f"the embedder returned shape {vector.shape}, expected "
                                        f"({self.embedder.dim},)")
        return vector

    def remember(self, text: str, *, kind: str = "note", tags: Sequence[str] = (),
                 importance: float = 0.5, vector: NDArray[np.float32] | None = None) -> Memory:
        """Store ``text`` with its embedding; ``vector`` skips embedding (bulk import)."""
        body = text.strip()
        if not body:
            raise RecordValidationError("a memory needs some text; it was empty.")
        if len(body) > MAX_TEXT_CHARS:
            raise RecordValidationError(f"a memory is at most {MAX_TEXT_CHARS} characters "
                                        f"(got {len(body)}); split it into smaller ones.")
        if not 0.0 <= importance <= 1.0:
            raise RecordValidationError(f"importance is between 0 and 1, got {importance}")
        if not kind.strip():
            raise RecordValidationError("a memory needs a kind (for example 'note').")
        embedding = self.embed(body) if vector is None else np.asarray(vector, np.float32)
        if embedding.shape != (self.embedder.dim,):
            raise RecordValidationError(f"the vector has shape {embedding.shape}; this memory "
                                        f"uses {self.embedder.dim} dimensions.")
        now = self.clock()
        memory = self._new(body, kind, tags, importance, now)
        with self.handle.transaction() as conn:
            self._insert(conn, memory, embedding)
            self._event(conn, memory.id, "remember", "stored", {"kind": kind}, now)
        return memory

    def remember_many(self, items: Sequence[tuple[str, NDArray[np.float32]]], *,
                      kind: str = "note") -> int:
        """Bulk insert of (text, vector) pairs in one transaction; returns the count."""
        now = self.clock()
        with self.handle.transaction() as conn:
            for text, vector in items:
                self._insert(conn, self._new(text, kind, (), 0.5, now),
                             np.asarray(vector, np.float32))
        return len(items)

    def _new(self, text: str, kind: str, tags: Sequence[str], importance: float,
             now: float) -> Memory:
        return Memory(id=uuid.uuid4().hex, kind=kind, text=text, tags=sorted(set(tags)),
                      importance=importance, weight=1.0, created_at=now, updated_at=now,
                      reinforced_at=now, reinforcements=0, origin=self.handle.device_id)

    def _insert(self, conn: sqlite3.Connection, memory: Memory,
                vector: NDArray[np.float32]) -> None:
        cursor = conn.execute(
            f"INSERT INTO memories ({_COLUMNS.removeprefix('rowid, ')}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
            (memory.id, memory.kind, memory.text, json.dumps(memory.tags), memory.importance,
             memory.weight, memory.created_at, memory.updated_at, memory.reinforced_at,
             memory.reinforcements, memory.origin))
        rowid = cursor.lastrowid
        conn.execute("INSERT INTO memory_vectors (rowid, embedding, kind, archived) "
                     "VALUES (?, ?, ?, 0)", (rowid, vector.tobytes(), memory.kind))
        conn.execute("INSERT INTO memory_fts (rowid, text, tags) VALUES (?, ?, ?)",
                     (rowid, memory.text, " ".join(memory.tags)))

    def _event(self, conn: sqlite3.Connection, memory_id: str, action: str, reason: str,
               data: dict[str, Any], at: float) -> None:
        conn.execute("INSERT INTO memory_events (memory_id, action, reason, data, at) "
                     "VALUES (?, ?, ?, ?, ?)", (memory_id, action, reason, json.dumps(data), at))

    def _row(self, conn: sqlite3.Connection, memory_id: str) -> Sequence[Any]:
        row = conn.execute(f"SELECT {_COLUMNS} FROM memories WHERE id = ?",
                           (memory_id,)).fetchone()
        if row is None:
            raise RecordNotFoundError(f"no memory with id {memory_id!r}; `smallhold memory "
                                      "list` shows the ids.")
        return tuple(row)

    def resolve_id(self, prefix: str) -> str:
        """The full id for a unique prefix (the short ids tables show); else ``prefix``."""
        with self.handle.lock:
            rows = self.handle.conn.execute(
                "SELECT id FROM memories WHERE substr(id, 1, ?) = ? LIMIT 2",
                (len(prefix), prefix)).fetchall()
        return str(rows[0][0]) if len(rows) == 1 else prefix

    def get(self, memory_id: str) -> Memory:
        with self.handle.lock:
            return _memory(self._row(self.handle.conn, memory_id))

    def reinforce(self, memory_id: str, reason: str = "used") -> Memory:
        """The memory mattered again: full weight, fresh recency, restored if archived."""
        now = self.clock()
        with self.handle.transaction() as conn:
            row = self._row(conn, memory_id)
            conn.execute("UPDATE memories SET weight = 1.0, reinforced_at = ?, updated_at = ?, "
                         "reinforcements = reinforcements + 1, archived_at = NULL, "
                         "archived_reason = NULL WHERE id = ?", (now, now, memory_id))
            conn.execute("UPDATE memory_vectors SET archived = 0 WHERE rowid = ?", (row[0],))
            self._event(conn, memory_id, "reinforce", reason, {"weight_before": row[6]}, now)
            return _memory(self._row(conn, memory_id))

    def forget(self, memory_id: str, reason: str = "asked by the user") -> None:
        """Delete the memory everywhere; the history keeps only that it was forgotten."""
        now = self.clock()
        with self.handle.transaction() as conn:
            row = self._row(conn, memory_id)
            conn.execute("DELETE FROM memory_vectors WHERE rowid = ?", (row[0],))
            conn.execute("DELETE FROM memory_fts WHERE rowid = ?", (row[0],))
            conn.execute("DELETE FROM memories WHERE rowid = ?", (row[0],))
            self._event(conn, memory_id, "forget", reason, {"kind": row[2]}, now)

    # -- reading ---------------------------------------------------------------------------

    def recall(self, query: str, k: int = 5, *, kind: str | None = None,
               tags: Sequence[str] = (), include_archived: bool = False,
               since: float | None = None) -> list[Hit]:
        """The ``k`` best memories for ``query`` by the hybrid score of :mod:`.ranking`."""
        if k < 1:
            raise RecordValidationError(f"k must be at least 1, got {k}")
        if not query.strip():
            raise RecordValidationError("the query is empty; say what to recall.")
        vector = self.embed(query)
        pool = max(4 * k, 32)
        now = self.clock()
        with self.handle.lock:
            conn = self.handle.conn
            where, params = "embedding MATCH ? AND k = ?", [vector.tobytes(), pool]
            if kind is not None:
                where += " AND kind = ?"
                params.append(kind)
            if not include_archived:
                where += " AND archived = 0"
            cosine = {int(r[0]): 1.0 - float(r[1]) for r in conn.execute(
                f"SELECT rowid, distance FROM memory_vectors WHERE {where}", params)}
            keyword: dict[int, float] = {}
            match = fts_query(query)
            if match is not None:
                keyword = {int(r[0]): float(r[1]) for r in conn.execute(
                    "SELECT rowid, bm25(memory_fts) FROM memory_fts WHERE memory_fts MATCH ? "
                    "ORDER BY bm25(memory_fts) LIMIT ?", (match, pool))}
            rowids = set(cosine) | set(keyword)
            rows = self._rows_by_rowid(conn, rowids)
            missing = [rid for rid in keyword if rid not in cosine and rid in rows]
            for rid in missing:  # keyword-only hits: their similarity from the stored vector
                blob = conn.execute("SELECT embedding FROM memory_vectors WHERE rowid = ?",
                                    (rid,)).fetchone()
                cosine[rid] = float(np.frombuffer(blob[0], np.float32) @ vector)
        hits = []
        wanted = set(tags)
        for rid, row in rows.items():
            memory = _memory(row)
            if kind is not None and memory.kind != kind:
                continue
            if memory.archived_at is not None and not include_archived:
                continue
            if wanted and not wanted.issubset(memory.tags):
                continue
            if since is not None and memory.created_at < since:
                continue
            parts = ranking.score(cosine=cosine.get(rid, 0.0), bm25=keyword.get(rid),
                                  age_s=now - memory.reinforced_at,
                                  importance=memory.importance, weight=memory.weight)
            hits.append(Hit(memory=memory, score=parts.total, vector=parts.vector,
                            keyword=parts.keyword, recency=parts.recency))
        hits.sort(key=lambda h: (-h.score, h.memory.id))
        return hits[:k]

    def _rows_by_rowid(self, conn: sqlite3.Connection, rowids: set[int]
                       ) -> dict[int, Sequence[Any]]:
        if not rowids:
            return {}
        marks = ",".join("?" * len(rowids))
        return {int(r[0]): tuple(r) for r in conn.execute(
            f"SELECT {_COLUMNS} FROM memories WHERE rowid IN ({marks})", tuple(rowids))}

    def list(self, *, kind: str | None = None, archived: bool = False, limit: int = 100
             ) -> list[Memory]:
        clause = "archived_at IS NOT NULL" if archived else "archived_at IS NULL"
        params: list[Any] = []
        if kind is not None:
            clause += " AND kind = ?"
            params.append(kind)
        params.append(limit)
        with self.handle.lock:
            rows = self.handle.conn.execute(
                f"SELECT {_COLUMNS} FROM memories WHERE {clause} "
                "ORDER BY created_at DESC, rowid DESC LIMIT ?", params).fetchall()
        return [_memory(r) for r in rows]

    def count(self) -> int:
        with self.handle.lock:
            return int(self.handle.conn.execute("SELECT count(*) FROM memories").fetchone()[0])

    def history(self, memory_id: str | None = None, limit: int = 100) -> Events:
        sql = "SELECT memory_id, action, reason, data, at FROM memory_events"
        params: tuple[Any, ...] = ()
        if memory_id is not None:
            sql += " WHERE memory_id = ?"
            params = (memory_id,)
        with self.handle.lock:
            rows = self.handle.conn.execute(sql + " ORDER BY seq DESC LIMIT ?",
                                            (*params, limit)).fetchall()
        return [MemoryEvent(memory_id=r[0], action=r[1], reason=r[2], data=json.loads(r[3]),
                            at=r[4]) for r in rows]

    # -- consolidation ---------------------------------------------------------------------

    def consolidate(self, policy: decay.DecayPolicy | None = None, *,
                    dry_run: bool = False) -> Actions:
        """Plan with :func:`.decay.plan` over the live memories and apply it (unless dry)."""
        now = self.clock()
        with self.handle.lock:
            conn = self.handle.conn
            rows = conn.execute(
                "SELECT m.id, m.kind, m.weight, m.importance, m.reinforced_at, "
                "m.reinforcements, v.embedding FROM memories m JOIN memory_vectors v "
                "ON v.rowid = m.rowid WHERE m.archived_at IS NULL").fetchall()
        candidates = [decay.Candidate(id=r[0], kind=r[1], weight=r[2], importance=r[3],
                                      reinforced_at=r[4], reinforcements=r[5],
                                      vector=np.frombuffer(r[6], np.float32)) for r in rows]
        actions = decay.plan(candidates, now, policy or decay.DecayPolicy())
        if dry_run or not actions:
            return actions
        with self.handle.transaction() as conn:
            for action in actions:
                self._apply(conn, action, now)
        return actions

    def _apply(self, conn: sqlite3.Connection, action: decay.Action, now: float) -> None:
        if isinstance(action, decay.Fade):
            conn.execute("UPDATE memories SET weight = ?, updated_at = ? WHERE id = ?",
                         (action.new, now, action.id))
            self._event(conn, action.id, "fade", f"not reinforced for {action.idle_days:.0f} "
                        "days", {"old": action.old, "new": action.new}, now)
        elif isinstance(action, decay.Archive):
            self._archive(conn, action.id, f"weight {action.weight:.3f} fell under the floor "
                          f"{action.floor}", {"weight": action.weight}, now)
        else:
            keep = self._row(conn, action.keep)
            drop = self._row(conn, action.drop)
            tags = sorted(set(json.loads(keep[4])) | set(json.loads(drop[4])))
            conn.execute(
                "UPDATE memories SET tags = ?, importance = max(importance, ?), "
                "reinforcements = reinforcements + ?, reinforced_at = max(reinforced_at, ?), "
                "updated_at = ? WHERE id = ?",
                (json.dumps(tags), drop[5], drop[10], drop[9], now, action.keep))
            conn.execute("UPDATE memory_fts SET tags = ? WHERE rowid = ?",
                         (" ".join(tags), keep[0]))
            self._event(conn, action.keep, "merge", f"absorbed near-duplicate {action.drop}",
                        {"similarity": action.similarity, "other": action.drop}, now)
            self._archive(conn, action.drop, f"near-duplicate of {action.keep} (cosine "
                          f"{action.similarity:.3f})", {"into": action.keep}, now)

    def _archive(self, conn: sqlite3.Connection, memory_id: str, reason: str,
                 data: dict[str, Any], now: float) -> None:
        conn.execute("UPDATE memories SET archived_at = ?, archived_reason = ?, updated_at = ? "
                     "WHERE id = ?", (now, reason, now, memory_id))
        conn.execute("UPDATE memory_vectors SET archived = 1 WHERE rowid = "
                     "(SELECT rowid FROM memories WHERE id = ?)", (memory_id,))
        self._event(conn, memory_id, "archive", reason, data, now)


__all__ = ["Hit", "Memory", "MemoryEvent", "MemoryStore", "TextEmbedder", "fts_query"]
