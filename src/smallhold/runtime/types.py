"""Data types shared by every backend: messages, generation parameters, stream events."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from smallhold.errors import GenerationCancelled

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "cancelled"]


class ToolCall(BaseModel):
    """A function the model asked to call: ``arguments`` is JSON text, as OpenAI carries it."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    arguments: str


class Message(BaseModel):
    model_config = ConfigDict(frozen=True)

    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()  # an assistant turn that called tools
    tool_call_id: str | None = None  # a tool turn: which call it answers

    def for_template(self) -> dict[str, Any]:
        """The turn as chat templates read it (Qwen's and Hermes-style ones loop over
        ``tool_calls`` and write each call's ``arguments`` with ``tojson``, so a dict)."""
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [{"id": c.id, "type": "function", "function": {
                "name": c.name, "arguments": _json_or_text(c.arguments)}}
                for c in self.tool_calls]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        return out

    def for_wire(self) -> dict[str, Any]:
        """The turn in the OpenAI wire format."""
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [{"id": c.id, "type": "function", "function": {
                "name": c.name, "arguments": c.arguments}} for c in self.tool_calls]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        return out


def _json_or_text(text: str) -> Any:
    import json

    try:
        return json.loads(text)
    except ValueError:
        return text


class GenerationParams(BaseModel):
    """What a caller may ask of one generation; backends honour every field."""

    max_tokens: int = Field(512, ge=1)
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    seed: int | None = None
    stop: list[str] = Field(default_factory=list)
    json_schema: dict[str, Any] | None = Field(
        None, description="constrain decoding to JSON matching this schema"
    )
    tools: list[dict[str, Any]] | None = Field(
        None, description="functions the model may call (OpenAI's tools), shown to it through "
        "its chat template"
    )


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = Field(0, description="prompt tokens served from a saved KV state")


@dataclass(frozen=True)
class Delta:
    """A piece of generated text, in order."""

    text: str


@dataclass(frozen=True)
class Finish:
    """The last event of every stream."""

    finish_reason: FinishReason
    usage: Usage
    model: str
    speculative: str | None = None


StreamEvent = Delta | Finish


@dataclass
class Completion:
    text: str
    finish_reason: FinishReason
    usage: Usage
    model: str
    speculative: str | None = None


class CancelToken:
    """Set from any thread to stop a generation at its next token."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise GenerationCancelled("generation cancelled by the caller")


@dataclass
class ChatRequest:
    """One chat call as a backend sees it."""

    model: str
    messages: list[Message]
    params: GenerationParams = field(default_factory=GenerationParams)
    session: str | None = None
    cancel: CancelToken | None = None


def collect(events: Iterable[StreamEvent]) -> Completion:
    """Drain a stream into one :class:`Completion`."""
    parts: list[str] = []
    for event in events:
        if isinstance(event, Delta):
            parts.append(event.text)
        else:
            return Completion(
                text="".join(parts),
                finish_reason=event.finish_reason,
                usage=event.usage,
                model=event.model,
                speculative=event.speculative,
            )
    raise RuntimeError("stream ended without a Finish event")


def deltas(events: Iterable[StreamEvent]) -> Iterator[str]:
    for event in events:
        if isinstance(event, Delta):
            yield event.text
