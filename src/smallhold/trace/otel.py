"""OpenTelemetry spans for the trace log, through ``opentelemetry-api`` only.

smallhold configures no exporter: with no SDK installed and set up by the user, every call
here is a no-op. Attributes carry names, counts and ids, never prompt text, output text,
tool arguments or error messages, which may hold the user's data.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, TracerProvider
from opentelemetry.util.types import AttributeValue

from smallhold.trace.records import CallRecord

TRACER_NAME = "smallhold"

# gen_ai.system names the software that ran the model, not our backend's short name.
_SYSTEMS = {"llama": "llama.cpp"}


def tracer(provider: TracerProvider | None = None) -> Tracer:
    """The smallhold tracer; the global provider unless one is given (tests pass their own)."""
    if provider is None:
        return trace.get_tracer(TRACER_NAME)
    return provider.get_tracer(TRACER_NAME)


def gen_ai_system(backend: str) -> str:
    return _SYSTEMS.get(backend, backend)


def call_attributes(call: CallRecord) -> dict[str, AttributeValue]:
    attrs: dict[str, AttributeValue] = {
        "gen_ai.system": gen_ai_system(call.backend),
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": call.model,
        "gen_ai.usage.input_tokens": call.tokens_in,
        "gen_ai.usage.output_tokens": call.tokens_out,
        "smallhold.app": call.app,
        "smallhold.trace_id": call.id,
        "smallhold.cached_tokens": call.cached_tokens,
    }
    if call.finish_reason is not None:
        attrs["gen_ai.response.finish_reasons"] = (call.finish_reason,)
    if call.tier is not None:
        attrs["smallhold.tier"] = call.tier
    if call.speculative is not None:
        attrs["smallhold.speculative"] = call.speculative
    if call.error is not None:
        # Semantic conventions want a low-cardinality class here; the text stays in the log.
        attrs["error.type"] = "_OTHER"
    return attrs


def emit_call_span(call: CallRecord, provider: TracerProvider | None = None) -> None:
    """One CLIENT span covering the call, timed from the record (it is written afterwards)."""
    start_ns = int(call.started_at * 1e9)
    span = tracer(provider).start_span(
        f"chat {call.model}",
        kind=SpanKind.CLIENT,
        start_time=start_ns,
        attributes=call_attributes(call),
    )
    if call.error is not None:
        span.set_status(Status(StatusCode.ERROR))
    span.end(end_time=start_ns + int(call.latency_s * 1e9))


@contextmanager
def work_span(
    name: str, *, app: str, kind: str, trace_id: str, provider: TracerProvider | None = None
) -> Iterator[Span]:
    """A current span around a tool call or decision, so spans and calls inside nest under it."""
    attrs: dict[str, AttributeValue] = {
        "smallhold.app": app,
        "smallhold.span.kind": kind,
        "smallhold.trace_id": trace_id,
    }
    if kind == "tool":
        attrs["gen_ai.operation.name"] = "execute_tool"
        attrs["gen_ai.tool.name"] = name
    with tracer(provider).start_as_current_span(
        name, attributes=attrs, record_exception=False, set_status_on_exception=False
    ) as span:
        yield span


__all__ = [
    "TRACER_NAME",
    "call_attributes",
    "emit_call_span",
    "gen_ai_system",
    "tracer",
    "work_span",
]
