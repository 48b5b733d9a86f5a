"""Chat completions through a real server and the official openai client, on ScriptedBackend."""

from __future__ import annotations

import json
import threading
import time

import httpx
import openai
import pytest
from server_backends import FailsMidway, SlowBackend
from server_harness import Served, ServeFactory, scripted_settings, served_runtime

from smallhold.paths import Paths
from smallhold.runtime.backends.scripted import ScriptedBackend
from smallhold.runtime.runtime import Runtime
from smallhold.runtime.types import Message

pytestmark = pytest.mark.timeout(60)


def test_completion_maps_the_request_and_reports_usage(api: Served) -> None:
    resp = api.client.chat.completions.create(
        model="scripted",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Hi "},
                                         {"type": "text", "text": "there"}]},
        ],
        max_completion_tokens=20, temperature=0.2, top_p=0.9, seed=3, stop="\n\n",
    )
    assert resp.object == "chat.completion"
    assert resp.id.startswith("chatcmpl-")
    assert resp.model == "scripted"
    choice = resp.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "Hello there, friend."
    assert choice.finish_reason == "stop"
    assert resp.usage is not None
    # ScriptedBackend counts words, plus 4 per message.
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (12, 3)
    assert resp.usage.total_tokens == 15
    assert resp.usage.prompt_tokens_details is not None
    assert resp.usage.prompt_tokens_details.cached_tokens == 0

    request = api.scripted.requests[-1]
    assert request.messages == [Message(role="system", content="Be brief."),
                                Message(role="user", content="Hi there")]
    p = request.params
    assert (p.max_tokens, p.temperature, p.top_p, p.seed, p.stop) == (20, 0.2, 0.9, 3, ["\n\n"])
    assert p.json_schema is None
    assert request.session is None


def test_max_tokens_cuts_with_finish_reason_length(api: Served) -> None:
    resp = api.client.chat.completions.create(
        model="scripted", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    assert resp.choices[0].message.content == "Hello there, "
    assert resp.choices[0].finish_reason == "length"
    assert api.scripted.requests[-1].params.max_tokens == 2


def test_model_may_be_left_out_and_developer_is_a_system_message(api: Served) -> None:
    body = {"messages": [{"role": "developer", "content": "rules"},
                         {"role": "user", "content": "hi"}]}
    resp = httpx.post(f"{api.url}/v1/chat/completions", json=body)
    assert resp.status_code == 200
    assert resp.json()["model"] == "scripted"
    assert api.scripted.requests[-1].messages[0] == Message(role="system", content="rules")


def test_stream_sends_role_then_deltas_then_finish_and_usage(api: Served) -> None:
    stream = api.client.chat.completions.create(
        model="scripted", messages=[{"role": "user", "content": "hi"}], stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert {c.id for c in chunks} == {chunks[0].id}
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello there, friend."
    reasons = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert reasons[-1] == "stop" and reasons.count("stop") == 1
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3


def test_stream_without_usage_is_plain_sse_ending_in_done(api: Served) -> None:
    body = {"model": "scripted", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with httpx.stream("POST", f"{api.url}/v1/chat/completions", json=body) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in resp.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[len("data: "):]) for line in lines[:-1]]
    assert all(chunk["choices"] and "usage" not in chunk for chunk in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize(("response_format", "expected"), [
    ({"type": "json_schema", "json_schema": {
        "name": "place", "strict": True,
        "schema": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}},
     {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
    ({"type": "json_object"}, {"type": "object"}),
    ({"type": "text"}, None),
])
def test_response_format_reaches_the_backend_as_a_schema(
        serve: ServeFactory, response_format: dict[str, object],
        expected: dict[str, object] | None) -> None:

    api = serve(ScriptedBackend(['{"city": "Paris"}']))
    resp = api.client.chat.completions.create(
        model="scripted", messages=[{"role": "user", "content": "Where is the Louvre?"}],
        response_format=response_format)
    assert api.scripted.requests[-1].params.json_schema == expected
    assert json.loads(resp.choices[0].message.content or "") == {"city": "Paris"}


def test_session_comes_from_the_header_or_the_user_field(api: Served) -> None:
    hi = [{"role": "user", "content": "hi"}]
    api.client.chat.completions.create(model="scripted", messages=hi,
                                       extra_headers={"X-Smallhold-Session": "conv-1"})
    assert api.scripted.requests[-1].session == "conv-1"
    api.client.chat.completions.create(model="scripted", messages=hi,
                                       user="alice")
    assert api.scripted.requests[-1].session == "alice"
    api.client.chat.completions.create(model="scripted", messages=hi,
                                       user="alice", extra_headers={"X-Smallhold-Session": "c2"})
    assert api.scripted.requests[-1].session == "c2"


def test_models_and_health(api: Served) -> None:
    assert [m.id for m in api.client.models.list()] == ["scripted", "all-minilm-l6-v2"]
    health = httpx.get(f"{api.url}/health").json()
    assert health == {"status": "ok", "backend": "scripted", "default_model": "scripted",
                      "loaded": []}


def test_disconnect_mid_stream_cancels_the_generation(serve: ServeFactory) -> None:
    backend = SlowBackend(words=2000, delay=0.01)  # 20 s if nobody stops it
    api = serve(backend)
    stream = api.client.chat.completions.create(
        model="scripted", messages=[{"role": "user", "content": "talk"}], stream=True)
    received = [next(stream) for _ in range(4)]
    assert received[1].choices[0].delta.content == "word "
    stream.close()
    finish = backend.finished.get(timeout=5)
    assert finish.finish_reason == "cancelled"
    assert finish.usage.completion_tokens < 500
    # The server is fine afterwards.
    assert httpx.get(f"{api.url}/health").status_code == 200


def test_disconnect_while_waiting_for_a_full_answer_cancels_too(serve: ServeFactory) -> None:
    backend = SlowBackend(words=2000, delay=0.01)
    api = serve(backend)
    body = {"model": "scripted", "messages": [{"role": "user", "content": "talk"}]}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{api.url}/v1/chat/completions", json=body, timeout=0.5)
    finish = backend.finished.get(timeout=5)
    assert finish.finish_reason == "cancelled"
    assert finish.usage.completion_tokens < 500


def test_generation_never_blocks_the_event_loop(serve: ServeFactory) -> None:
    backend = SlowBackend(words=60, delay=0.02)  # about 1.2 s per answer
    api = serve(backend)
    answers: list[str] = []

    def ask() -> None:
        resp = api.client.chat.completions.create(
            model="scripted", messages=[{"role": "user", "content": "go"}])
        answers.append(resp.choices[0].message.content or "")

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    started = time.perf_counter()
    assert httpx.get(f"{api.url}/health", timeout=2).status_code == 200
    assert time.perf_counter() - started < 0.8  # a blocked loop would wait out a 1.2 s answer
    for t in threads:
        t.join(timeout=20)
    assert answers == ["word " * 60] * 3


def test_openai_client_sees_a_clean_error_when_the_backend_fails_midway(
        serve: ServeFactory) -> None:

    api = serve(FailsMidway())
    stream = api.client.chat.completions.create(
        model="scripted", messages=[{"role": "user", "content": "go"}], stream=True)
    text = ""
    with pytest.raises(openai.APIError, match="remote server hung up"):
        for chunk in stream:
            text += chunk.choices[0].delta.content or ""
    assert text == "half an "


def test_calls_are_traced_from_the_worker_threads(paths: Paths) -> None:
    backend = SlowBackend(words=2000, delay=0.01)
    runtime = Runtime.open(scripted_settings(), paths, backend=backend)
    with served_runtime(runtime) as api:
        api.client.chat.completions.create(
            model="scripted", messages=[{"role": "user", "content": "hi"}], max_tokens=3,
            extra_headers={"X-Smallhold-Session": "s1"})
        stream = api.client.chat.completions.create(
            model="scripted", messages=[{"role": "user", "content": "talk"}], stream=True)
        next(stream)
        stream.close()
        backend.finished.get(timeout=5)
        assert runtime.trace is not None
        deadline = time.monotonic() + 5
        while len(calls := runtime.trace.list("call", app="server")) < 2:
            assert time.monotonic() < deadline, "the cancelled call was never traced"
            time.sleep(0.05)
    by_reason = {c.finish_reason: c for c in calls}
    assert set(by_reason) == {"length", "cancelled"}
    assert by_reason["length"].session == "s1"
    assert by_reason["length"].tokens_out == 3


def test_generations_of_a_model_share_one_thread(serve: ServeFactory) -> None:
    """llama.cpp's OpenMP keeps a worker team per calling thread; one thread per model keeps
    one team (more teams than cores made decoding half as fast under concurrency)."""
    seen: list[str] = []

    def reply(_request: object) -> str:
        seen.append(threading.current_thread().name)
        time.sleep(0.05)
        return "ok"

    api = serve(ScriptedBackend(reply=reply))

    def ask() -> None:
        api.client.chat.completions.create(
            model="scripted", messages=[{"role": "user", "content": "go"}], stream=True
        ).close()

    clients = [threading.Thread(target=ask) for _ in range(4)]
    for t in clients:
        t.start()
    for t in clients:
        t.join(timeout=20)
    assert len(seen) == 4 and len(set(seen)) == 1
    assert seen[0].startswith("smallhold-generate-scripted")
