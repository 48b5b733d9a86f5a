"""The scripted backend's stream contract, and structured output's retry-then-fail path."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, Field

from smallhold.errors import ContextOverflowError, StructuredOutputError
from smallhold.runtime.backends.scripted import ScriptedBackend
from smallhold.runtime.structured import generate_structured
from smallhold.runtime.types import (
    CancelToken,
    ChatRequest,
    Completion,
    Finish,
    GenerationParams,
    Message,
    collect,
)


class Person(BaseModel):
    name: str
    age: int = Field(ge=0, le=150)


def ask(backend: ScriptedBackend, text: str = "hi", **params: object) -> Completion:
    request = ChatRequest(model="scripted", messages=[Message(role="user", content=text)],
                          params=GenerationParams.model_validate(params))
    return collect(backend.stream_chat(request))


def test_replies_in_order_then_repeat_the_last() -> None:
    backend = ScriptedBackend(["one", "two"])
    assert [ask(backend).text for _ in range(3)] == ["one", "two", "two"]


def test_stop_max_tokens_and_cancel() -> None:
    backend = ScriptedBackend(reply=lambda r: "alpha beta gamma delta")
    assert ask(backend, stop=["gamma"]).text == "alpha beta "
    cut = ask(backend, max_tokens=2)
    assert (cut.text, cut.finish_reason) == ("alpha beta ", "length")
    token = CancelToken()
    request = ChatRequest(model="scripted", messages=[Message(role="user", content="x")],
                          cancel=token)
    stream = backend.stream_chat(request)
    next(stream)
    token.cancel()
    rest = list(stream)
    assert isinstance(rest[-1], Finish) and rest[-1].finish_reason == "cancelled"


def test_context_overflow_is_typed() -> None:
    with pytest.raises(ContextOverflowError, match="context holds 10"):
        ask(ScriptedBackend(context=10), "word " * 50)


def _chat_with(backend: ScriptedBackend):  # type: ignore[no-untyped-def]
    def chat(history: list[Message], params: GenerationParams) -> Completion:
        request = ChatRequest(model="scripted", messages=history, params=params)
        return collect(backend.stream_chat(request))

    return chat


def test_structured_sends_schema_and_retries_with_the_error() -> None:
    backend = ScriptedBackend(['{"name": "Ada", "age": 400}', '{"name": "Ada", "age": 36}'])
    person = generate_structured(_chat_with(backend), [Message(role="user", content="who?")],
                                 Person)
    assert person == Person(name="Ada", age=36)
    first, second = backend.requests
    assert first.params.json_schema == Person.model_json_schema()
    assert "age" in second.messages[-1].content and "invalid" in second.messages[-1].content


def test_structured_gives_up_with_a_typed_error() -> None:
    backend = ScriptedBackend(["not json"])
    with pytest.raises(StructuredOutputError, match=r"no valid Person after 3 tries"):
        generate_structured(_chat_with(backend), [Message(role="user", content="who?")], Person)
    assert len(backend.requests) == 3
