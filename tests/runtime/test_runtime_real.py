"""The runtime facade on the real SmolLM2 model: chat, structured output, trace rows."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from smallhold.config import Settings
from smallhold.paths import Paths
from smallhold.runtime.runtime import Runtime
from smallhold.runtime.types import GenerationParams
from smallhold.trace import TraceLog

pytestmark = pytest.mark.model


class Capital(BaseModel):
    country: str
    capital: str


def test_structured_output_and_trace(settings: Settings, paths: Paths) -> None:
    settings.runtime.default_model = "smollm2-135m-instruct"
    settings.runtime.n_ctx = 1024
    trace = TraceLog.open(paths)
    runtime = Runtime(settings, paths, trace=trace, app="test")
    try:
        answer = runtime.structured("What is the capital of France?", Capital)
        assert isinstance(answer, Capital) and answer.country and answer.capital
        reply = runtime.chat("Say hello.", params=GenerationParams(max_tokens=8, temperature=0))
        assert reply.text.strip()
        calls = trace.list(kind="call")
        assert len(calls) >= 2
        assert all(c.model == "smollm2-135m-instruct" for c in calls)
        kinds = {e.kind for e in trace.list(kind="event")}
        assert {"tier", "load"} <= kinds
    finally:
        runtime.close()
    assert "unload" in {e.kind for e in trace.list(kind="event")}
