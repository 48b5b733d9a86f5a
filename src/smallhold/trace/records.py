"""The rows of the trace log, as pydantic models.

Three record types share one id space (uuid4 hex) so any id can be shown or used as a
``parent_id``: a :class:`CallRecord` per LLM call, an :class:`EventRecord` per runtime
decision (load, unload, evict, preload, tier, memory-pressure), and a :class:`SpanRecord`
per tool call or timed decision. ``type`` tells them apart in JSON.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import uuid4

from pydantic import BaseModel, ConfigDict, Field

RecordType = Literal["call", "event", "span"]
SpanStatus = Literal["running", "ok", "error"]


def new_id() -> str:
    return uuid4().hex


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TraceMessage(_Record):
    role: str
    content: str


class CallRecord(_Record):
    """One LLM call: what went in, what came out, and what it cost in time and tokens."""

    type: Literal["call"] = "call"
    id: str = Field(default_factory=new_id)
    app: str
    backend: str
    model: str
    session: str | None = None
    messages: list[TraceMessage] = Field(default_factory=list)
    output: str = ""
    finish_reason: str | None = None
    tokens_in: int = Field(0, ge=0)
    tokens_out: int = Field(0, ge=0)
    cached_tokens: int = Field(0, ge=0, description="prompt tokens served from a saved KV state")
    ttft_s: float | None = Field(None, ge=0, description="seconds to the first output token")
    latency_s: float = Field(0.0, ge=0, description="seconds from request to last token")
    tier: str | None = None
    speculative: str | None = None
    error: str | None = None
    parent_id: str | None = None
    started_at: float = Field(description="epoch seconds when the request began")
    cost: float = Field(0.0, ge=0, description="money spent; 0.0 for local models")

    @property
    def timestamp(self) -> float:
        return self.started_at

    @property
    def tokens_per_s(self) -> float | None:
        """Output tokens over the whole latency (prefill included); None when undefined."""
        if self.error is not None or self.tokens_out == 0 or self.latency_s <= 0:
            return None
        return self.tokens_out / self.latency_s


class EventRecord(_Record):
    """A runtime decision at one instant, with whatever facts explain it in ``data``."""

    type: Literal["event"] = "event"
    id: str = Field(default_factory=new_id)
    kind: str
    app: str = "runtime"
    model: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    parent_id: str | None = None
    at: float

    @property
    def timestamp(self) -> float:
        return self.at


class SpanRecord(_Record):
    """A timed piece of work (a tool call, a decision); ``running`` until it ends."""

    type: Literal["span"] = "span"
    id: str = Field(default_factory=new_id)
    name: str
    kind: str = "tool"
    app: str
    attrs: dict[str, Any] = Field(default_factory=dict)
    parent_id: str | None = None
    started_at: float
    ended_at: float | None = None
    status: SpanStatus = "running"
    message: str | None = None

    @property
    def timestamp(self) -> float:
        return self.started_at

    @property
    def duration_s(self) -> float | None:
        return None if self.ended_at is None else self.ended_at - self.started_at


TraceRecord = Annotated[CallRecord | EventRecord | SpanRecord, Field(discriminator="type")]


class CallStats(_Record):
    """Aggregates over the calls of one model or app; percentiles interpolate linearly."""

    key: str
    calls: int
    errors: int
    tokens_in: int
    tokens_out: int
    cost: float
    tokens_per_s: float | None = Field(description="mean over successful calls with output")
    latency_p50_s: float | None
    latency_p95_s: float | None
    ttft_p50_s: float | None
    ttft_p95_s: float | None


__all__ = [
    "CallRecord",
    "CallStats",
    "EventRecord",
    "RecordType",
    "SpanRecord",
    "SpanStatus",
    "TraceMessage",
    "TraceRecord",
    "new_id",
]
