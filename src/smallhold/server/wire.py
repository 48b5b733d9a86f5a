"""Response bodies in the OpenAI wire format: completions, stream chunks, embeddings, models."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from smallhold.runtime.types import Completion, FinishReason, ToolCall, Usage

OWNER = "smallhold"


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def finish_reason(reason: FinishReason) -> str:
    # A cancelled generation only reaches a client that is still there when the server stops.
    return "length" if reason == "length" else "stop"


def usage_body(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    }


def calls_body(calls: Sequence[ToolCall]) -> list[dict[str, Any]]:
    return [{"id": c.id, "type": "function",
             "function": {"name": c.name, "arguments": c.arguments}} for c in calls]


def completion_body(completion: Completion, *, id: str, created: int,
                    calls: Sequence[ToolCall] = ()) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": completion.text}
    reason = finish_reason(completion.finish_reason)
    if calls:
        message = {"role": "assistant", "content": None, "tool_calls": calls_body(calls)}
        reason = "tool_calls"
    return {
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": completion.model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": reason,
        }],
        "usage": usage_body(completion.usage),
    }


class ChunkWriter:
    """The ``data:`` lines of one streamed completion, in order."""

    def __init__(self, model: str, *, include_usage: bool) -> None:
        self.id = completion_id()
        self.created = int(time.time())
        self.model = model
        self.include_usage = include_usage

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        body: dict[str, Any] = {
            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model, "choices": choices,
        }
        if self.include_usage:
            body["usage"] = None
        body.update(extra)
        return sse(body)

    def _choice(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}

    def role(self) -> bytes:
        return self._chunk([self._choice({"role": "assistant", "content": ""})])

    def content(self, text: str) -> bytes:
        return self._chunk([self._choice({"content": text})])

    def tool_calls(self, calls: Sequence[ToolCall]) -> bytes:
        return self._chunk([self._choice({"tool_calls": [
            {"index": i, **call} for i, call in enumerate(calls_body(calls))]})])

    def finish(self, reason: FinishReason, usage: Usage, *, calls: bool = False) -> bytes:
        out = self._chunk([self._choice({}, "tool_calls" if calls else finish_reason(reason))])
        if self.include_usage:
            out += self._chunk([], usage=usage_body(usage))
        return out + b"data: [DONE]\n\n"


def sse(body: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(body, ensure_ascii=False).encode("utf-8") + b"\n\n"


def embedding_body(vectors: NDArray[np.float32], model: str, *, encoding: str,
                   prompt_tokens: int) -> dict[str, Any]:
    data = []
    for i, vector in enumerate(vectors):
        if encoding == "base64":
            value: Any = base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
        else:
            value = vector.tolist()
        data.append({"object": "embedding", "index": i, "embedding": value})
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def model_body(name: str, created: int = 0) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": created, "owned_by": OWNER}


def model_list(names: Sequence[str], created: int = 0) -> dict[str, Any]:
    return {"object": "list", "data": [model_body(n, created) for n in names]}


def text_completion_body(completion: Completion, *, id: str, created: int) -> dict[str, Any]:
    return {
        "id": id,
        "object": "text_completion",
        "created": created,
        "model": completion.model,
        "choices": [{"text": completion.text, "index": 0, "logprobs": None,
                     "finish_reason": finish_reason(completion.finish_reason)}],
        "usage": usage_body(completion.usage),
    }


class TextChunkWriter(ChunkWriter):
    """The ``data:`` lines of one streamed ``/v1/completions`` answer."""

    def __init__(self, model: str, *, include_usage: bool) -> None:
        super().__init__(model, include_usage=include_usage)
        self.id = f"cmpl-{uuid.uuid4().hex}"

    def _text_chunk(self, text: str, finish: str | None) -> bytes:
        body: dict[str, Any] = {
            "id": self.id, "object": "text_completion", "created": self.created,
            "model": self.model,
            "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}],
        }
        if self.include_usage:
            body["usage"] = None
        return sse(body)

    def role(self) -> bytes:
        return b""

    def content(self, text: str) -> bytes:
        return self._text_chunk(text, None)

    def finish(self, reason: FinishReason, usage: Usage, *, calls: bool = False) -> bytes:
        out = self._text_chunk("", finish_reason(reason))
        if self.include_usage:
            out += sse({"id": self.id, "object": "text_completion", "created": self.created,
                        "model": self.model, "choices": [], "usage": usage_body(usage)})
        return out + b"data: [DONE]\n\n"
