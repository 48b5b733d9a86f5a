"""The trace log: every LLM call, runtime decision and tool call is a row in the vault.

One :class:`TraceLog` wraps one connection and is safe to share between threads (the
server records from several): a lock serialises every transaction on it. Each write is
mirrored as an OpenTelemetry span through :mod:`smallhold.trace.otel`, a no-op unless the
user set up an exporter.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from opentelemetry.trace import Status, StatusCode, TracerProvider
from pydantic import TypeAdapter

from smallhold.errors import SmallholdError, TraceError
from smallhold.paths import DEFAULT_PROFILE, Paths
from smallhold.store.migrations import migrate
from smallhold.store.sqlcipher import DB_ERRORS
from smallhold.store.vault import open_vault
from smallhold.trace import otel
from smallhold.trace.records import (
    CallRecord,
    CallStats,
    EventRecord,
    RecordType,
    TraceRecord,
    new_id,
)
from smallhold.trace.schema import MIGRATIONS, SCOPE
from smallhold.trace.stats import summarize

GroupBy = Literal["model", "app"]
# Aliases, because ``list`` inside the class body is the method, not the builtin.
Records = list[TraceRecord]
ModelCounts = list[tuple[str, int]]
StatsRows = list[CallStats]

_TABLES: dict[RecordType, str] = {
    "call": "trace_calls", "event": "trace_events", "span": "trace_spans"
}
_TIME_COLUMN: dict[RecordType, str] = {"call": "started_at", "event": "at", "span": "started_at"}
_CALL_COLUMNS = (
    "id, app, backend, model, session, messages, output, finish_reason, tokens_in, tokens_out, "
    "cached_tokens, ttft_s, latency_s, tier, speculative, error, parent_id, started_at, cost"
)
_STATS_COLUMNS = (
    "id, app, backend, model, finish_reason, tokens_in, tokens_out, cached_tokens, ttft_s, "
    "latency_s, error, started_at, cost"
)
_record_adapter: TypeAdapter[TraceRecord] = TypeAdapter(TraceRecord)


@dataclass
class Span:
    """The handle of an open span: its id (a ``parent_id`` for work inside it) and attributes."""

    id: str
    name: str
    attrs: dict[str, Any] = field(default_factory=dict)

    def set(self, key: str, value: Any) -> None:
        """Add an attribute, stored when the span ends (in the log only, never in OTel)."""
        self.attrs[key] = value


class TraceLog:
    """Append and query trace rows on one SQLite connection (migrated on construction)."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        clock: Callable[[], float] = time.time,
        tracer_provider: TracerProvider | None = None,
        lock: threading.RLock | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._conn = conn
        self._clock = clock
        self._provider = tracer_provider
        self._on_close = on_close
        # Shared with the other users of a vault connection, so transactions never interleave.
        self._lock = lock or threading.RLock()
        try:
            migrate(conn, MIGRATIONS, scope=SCOPE, clock=clock)
        except SmallholdError as exc:
            raise TraceError(str(exc)) from exc
        except DB_ERRORS as exc:
            raise TraceError(f"cannot prepare the trace tables ({exc}).") from exc

    @classmethod
    def open(
        cls,
        paths: Paths,
        profile: str = DEFAULT_PROFILE,
        *,
        clock: Callable[[], float] = time.time,
        tracer_provider: TracerProvider | None = None,
    ) -> TraceLog:
        """The trace log of a profile, inside its encrypted vault; closed by :meth:`close`.

        A profile without a vault gets its default one (keyring or key file, see
        :func:`smallhold.store.vault.open_vault`); a locked passphrase vault raises
        :class:`~smallhold.errors.VaultLockedError`, whose message says how to unlock it.
        """
        vault = open_vault(paths, profile, create_default=True)
        try:
            return cls(vault.conn, clock=clock, tracer_provider=tracer_provider,
                       lock=vault.lock, on_close=vault.close)
        except BaseException:
            vault.close()
            raise

    def close(self) -> None:
        """Close the vault if this log opened it; a borrowed connection is the caller's."""
        if self._on_close is not None:
            with self._lock:
                self._on_close()
            self._on_close = None

    def __enter__(self) -> TraceLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def _db(self, action: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                with self._conn:
                    yield self._conn
            except DB_ERRORS as exc:
                raise TraceError(
                    f"cannot {action} the trace log in {_db_file(self._conn)} ({exc}). "
                    "Check free disk space and that no other program holds the file."
                ) from exc

    def record_call(self, call: CallRecord) -> str:
        """Store one LLM call and emit its OTel span; returns its id."""
        messages = json.dumps([m.model_dump() for m in call.messages], ensure_ascii=False)
        with self._db("write to") as conn:
            conn.execute(
                f"INSERT INTO trace_calls ({_CALL_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    call.id, call.app, call.backend, call.model, call.session, messages,
                    call.output, call.finish_reason, call.tokens_in, call.tokens_out,
                    call.cached_tokens, call.ttft_s, call.latency_s, call.tier,
                    call.speculative, call.error, call.parent_id, call.started_at, call.cost,
                ),
            )
        otel.emit_call_span(call, self._provider)
        return call.id

    def record_event(
        self,
        kind: str,
        *,
        app: str = "runtime",
        model: str | None = None,
        data: dict[str, Any] | None = None,
        parent_id: str | None = None,
    ) -> str:
        """Store a runtime decision (load, unload, evict, preload, tier, memory-pressure...)."""
        event = EventRecord(
            kind=kind, app=app, model=model, data=data or {}, parent_id=parent_id, at=self._clock()
        )
        with self._db("write to") as conn:
            conn.execute(
                "INSERT INTO trace_events (id, kind, app, model, data, parent_id, at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (event.id, kind, app, model, _dumps(event.data), parent_id, event.at),
            )
        return event.id

    @contextmanager
    def span(
        self,
        name: str,
        *,
        app: str,
        kind: str = "tool",
        attrs: dict[str, Any] | None = None,
        parent_id: str | None = None,
    ) -> Iterator[Span]:
        """Time a tool call or decision: a ``running`` row now, ``ok``/``error`` at the end.

        An exception is recorded as ``error`` with its message, then re-raised.
        """
        handle = Span(id=new_id(), name=name, attrs=dict(attrs or {}))
        started = self._clock()
        with self._db("write to") as conn:
            conn.execute(
                "INSERT INTO trace_spans (id, name, kind, app, attrs, parent_id, started_at, "
                "status) VALUES (?, ?, ?, ?, ?, ?, ?, 'running')",
                (handle.id, name, kind, app, _dumps(handle.attrs), parent_id, started),
            )
        status, message = "ok", None
        with otel.work_span(
            name, app=app, kind=kind, trace_id=handle.id, provider=self._provider
        ) as otel_span:
            try:
                yield handle
            except BaseException as exc:
                status, message = "error", f"{type(exc).__name__}: {exc}"
                otel_span.set_status(Status(StatusCode.ERROR))
                otel_span.set_attribute("error.type", type(exc).__qualname__)
                raise
            finally:
                with self._db("write to") as conn:
                    conn.execute(
                        "UPDATE trace_spans SET ended_at = ?, status = ?, message = ?, attrs = ? "
                        "WHERE id = ?",
                        (self._clock(), status, message, _dumps(handle.attrs), handle.id),
                    )

    def list(
        self,
        kind: RecordType | None = None,
        app: str | None = None,
        model: str | None = None,
        limit: int = 50,
        since: float | None = None,
    ) -> Records:
        """Newest first. Spans have no model, so a ``model`` filter leaves them out."""
        kinds: tuple[RecordType, ...] = (kind,) if kind else ("call", "event", "span")
        found: Records = []
        with self._db("read") as conn:
            for k in kinds:
                if model is not None and k == "span":
                    continue
                found.extend(_select(conn, k, app=app, model=model, since=since, limit=limit))
        found.sort(key=lambda r: r.timestamp, reverse=True)
        return found[:limit]

    def get(self, id: str) -> TraceRecord | None:
        """The record with exactly this id, of any type, or None."""
        with self._db("read") as conn:
            for k in _TABLES:
                rows = _select(conn, k, where=("id = ?", id), limit=1)
                if rows:
                    return rows[0]
        return None

    def find(self, prefix: str) -> TraceRecord:
        """The one record whose id starts with ``prefix``; TraceError if none or several."""
        prefix = prefix.strip().lower()
        if not prefix:
            raise TraceError(
                "give a trace id (or its first characters); see `smallhold trace list`."
            )
        matches: Records = []
        with self._db("read") as conn:
            for k in _TABLES:
                # A range on the primary key: ids are hex, and U+10FFFF sorts after any of them.
                matches.extend(_select(conn, k, where=("id >= ? AND id < ?", prefix,
                                                       prefix + "\U0010ffff"), limit=2))
        if not matches:
            raise TraceError(f"no trace entry has an id starting with {prefix!r}; "
                             "see `smallhold trace list` for ids.")
        if len(matches) > 1:
            ids = ", ".join(m.id for m in matches[:5])
            raise TraceError(f"{prefix!r} matches several trace entries ({ids}...); "
                             "give more characters of the id.")
        return matches[0]

    def stats(
        self, group_by: GroupBy = "model", *, since: float | None = None
    ) -> StatsRows:
        """Per model or app: counts, errors, tokens, mean tokens/s, p50/p95 latency and ttft."""
        if group_by not in ("model", "app"):
            raise ValueError(f"group_by must be 'model' or 'app', not {group_by!r}")
        sql = f"SELECT {_STATS_COLUMNS} FROM trace_calls"
        params: tuple[Any, ...] = ()
        if since is not None:
            sql, params = sql + " WHERE started_at >= ?", (since,)
        groups: dict[str, list[CallRecord]] = defaultdict(list)
        with self._db("read") as conn:
            for row in _rows(conn, sql, params):
                call = CallRecord.model_validate(dict(row))
                groups[call.model if group_by == "model" else call.app].append(call)
        results = [summarize(key, calls) for key, calls in groups.items()]
        return sorted(results, key=lambda s: (-s.calls, s.key))

    def recent_models(self, app: str | None = None, limit: int = 100) -> ModelCounts:
        """Models of the last ``limit`` successful calls, most used first (ties: most recent)."""
        where, params = ("WHERE error IS NULL AND app = ?", (app, limit)) if app else (
            "WHERE error IS NULL", (limit,))
        sql = (
            "SELECT model, count(*) AS n, max(started_at) AS last FROM ("
            f"SELECT model, started_at FROM trace_calls {where} ORDER BY started_at DESC LIMIT ?"
            ") GROUP BY model ORDER BY n DESC, last DESC"
        )
        with self._db("read") as conn:
            return [(str(r["model"]), int(r["n"])) for r in _rows(conn, sql, params)]


def _dumps(data: dict[str, Any]) -> str:
    # default=str: a Path or enum in event data must not make recording fail.
    return json.dumps(data, ensure_ascii=False, default=str)


def _rows(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
    # Plain dicts: the standard module's Row does not fit SQLCipher's cursors, nor theirs ours.
    cursor = conn.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor]


def _select(
    conn: sqlite3.Connection,
    kind: RecordType,
    *,
    where: tuple[Any, ...] | None = None,
    app: str | None = None,
    model: str | None = None,
    since: float | None = None,
    limit: int,
) -> Records:
    clauses: list[str] = []
    params: list[Any] = []
    if where is not None:
        clauses.append(where[0])
        params.extend(where[1:])
    time_column = _TIME_COLUMN[kind]
    for clause, value in (("app = ?", app), ("model = ?", model), (f"{time_column} >= ?", since)):
        if value is not None:
            clauses.append(clause)
            params.append(value)
    sql = f"SELECT * FROM {_TABLES[kind]}"
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    sql += f" ORDER BY {time_column} DESC, rowid DESC LIMIT ?"
    params.append(limit)
    return [_decode(kind, row) for row in _rows(conn, sql, tuple(params))]


def _decode(kind: RecordType, row: dict[str, Any]) -> TraceRecord:
    data = dict(row)
    data["type"] = kind
    for column in ("messages", "data", "attrs"):
        if column in data:
            data[column] = json.loads(data[column])
    return _record_adapter.validate_python(data)


def _db_file(conn: sqlite3.Connection) -> str:
    try:
        row = conn.execute("SELECT file FROM pragma_database_list WHERE name = 'main'").fetchone()
    except DB_ERRORS:
        return "its database"
    return str(Path(row[0])) if row and row[0] else "memory"


__all__ = ["GroupBy", "Span", "TraceLog"]
