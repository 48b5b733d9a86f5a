"""The trace log: every LLM call, tool call and runtime decision is a queryable row.

    log = TraceLog.open(resolve_paths(), profile)
    log.record_call(CallRecord(app="pocket", backend="llama", model=..., started_at=...))
    log.record_event("evict", model="qwen2.5-coder-0.5b-instruct", data={"reason": "lru"})
    with log.span("run_tests", app="code") as span:
        ...

Rows are mirrored as OpenTelemetry ``gen_ai.*`` spans through ``opentelemetry-api``; with
no exporter set up by the user that costs nothing and sends nothing.
"""

from __future__ import annotations

from smallhold.trace.log import GroupBy, Span, TraceLog
from smallhold.trace.records import (
    CallRecord,
    CallStats,
    EventRecord,
    RecordType,
    SpanRecord,
    TraceMessage,
    TraceRecord,
)

__all__ = [
    "CallRecord",
    "CallStats",
    "EventRecord",
    "GroupBy",
    "RecordType",
    "Span",
    "SpanRecord",
    "TraceLog",
    "TraceMessage",
    "TraceRecord",
]
