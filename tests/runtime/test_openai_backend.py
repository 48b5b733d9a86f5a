"""The opt-in remote backend, against an in-process transport (no sockets, no network)."""

from __future__ import annotations

import json

import httpx
import pytest
from pydantic import SecretStr

from smallhold.config import OpenAISettings
from smallhold.errors import BackendError, ContextOverflowError, UnknownModelError
from smallhold.runtime.backends.openai import OpenAIBackend
from smallhold.runtime.types import ChatRequest, GenerationParams, Message, collect


def sse(*chunks: dict[str, object]) -> bytes:
    lines = [f"data: {json.dumps(c)}\n\n" for c in chunks] + ["data: [DONE]\n\n"]
    return "".join(lines).encode()


def request(**params: object) -> ChatRequest:
    return ChatRequest(model="m", messages=[Message(role="user", content="hi")],
                       params=GenerationParams.model_validate(params))


def test_streams_and_sends_the_key_only_as_a_header() -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        body = sse({"choices": [{"delta": {"content": "Hel"}}]},
                   {"choices": [{"delta": {"content": "lo"}, "finish_reason": "stop"}]},
                   {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}})
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    settings = OpenAISettings(base_url="http://127.0.0.1:9/v1", api_key=SecretStr("sk-x"))
    backend = OpenAIBackend(settings, transport=httpx.MockTransport(handler))
    done = collect(backend.stream_chat(request(seed=3, stop=["x"],
                                               json_schema={"type": "object"})))
    assert (done.text, done.usage.completion_tokens) == ("Hello", 2)
    sent = json.loads(seen[0].content)
    assert seen[0].headers["authorization"] == "Bearer sk-x"
    assert sent["seed"] == 3 and sent["stop"] == ["x"]
    assert sent["response_format"]["json_schema"]["schema"] == {"type": "object"}


@pytest.mark.parametrize(("status", "message", "error"), [
    (404, "model m not found", UnknownModelError),
    (400, "maximum context length exceeded", ContextOverflowError),
    (500, "boom", BackendError),
])
def test_remote_errors_are_typed(status: int, message: str, error: type[Exception]) -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"error": {"message": message}})

    backend = OpenAIBackend(OpenAISettings(), transport=httpx.MockTransport(handler))
    with pytest.raises(error):
        collect(backend.stream_chat(request()))


def test_unreachable_server_says_how_to_go_local() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    backend = OpenAIBackend(OpenAISettings(), transport=httpx.MockTransport(handler))
    with pytest.raises(BackendError, match=r'runtime\.backend = "llama"'):
        collect(backend.stream_chat(request()))


def test_garbage_stream_is_a_backend_error() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"data: {not json\n\n")

    backend = OpenAIBackend(OpenAISettings(), transport=httpx.MockTransport(handler))
    with pytest.raises(BackendError, match="malformed"):
        collect(backend.stream_chat(request()))
