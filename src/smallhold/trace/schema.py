"""The trace log's tables, as named migrations in the ``trace`` scope (append, never edit)."""

from __future__ import annotations

from smallhold.store.migrations import Migration

SCOPE = "trace"

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "0001_calls_and_events",
        """
        CREATE TABLE trace_calls (
            id TEXT PRIMARY KEY,
            app TEXT NOT NULL,
            backend TEXT NOT NULL,
            model TEXT NOT NULL,
            session TEXT,
            messages TEXT NOT NULL,
            output TEXT NOT NULL,
            finish_reason TEXT,
            tokens_in INTEGER NOT NULL,
            tokens_out INTEGER NOT NULL,
            cached_tokens INTEGER NOT NULL,
            ttft_s REAL,
            latency_s REAL NOT NULL,
            tier TEXT,
            speculative TEXT,
            error TEXT,
            parent_id TEXT,
            started_at REAL NOT NULL,
            cost REAL NOT NULL
        );
        CREATE INDEX trace_calls_started ON trace_calls (started_at);
        CREATE INDEX trace_calls_app ON trace_calls (app, started_at);
        CREATE INDEX trace_calls_model ON trace_calls (model, started_at);
        CREATE TABLE trace_events (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            app TEXT NOT NULL,
            model TEXT,
            data TEXT NOT NULL,
            parent_id TEXT,
            at REAL NOT NULL
        );
        CREATE INDEX trace_events_at ON trace_events (at);
        """,
    ),
    Migration(
        "0002_spans",
        """
        CREATE TABLE trace_spans (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            kind TEXT NOT NULL,
            app TEXT NOT NULL,
            attrs TEXT NOT NULL,
            parent_id TEXT,
            started_at REAL NOT NULL,
            ended_at REAL,
            status TEXT NOT NULL,
            message TEXT
        );
        CREATE INDEX trace_spans_started ON trace_spans (started_at);
        """,
    ),
)

__all__ = ["MIGRATIONS", "SCOPE"]
