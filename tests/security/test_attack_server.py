"""Attacks on ``smallhold serve`` (issue 22, part 3), each against a real uvicorn on loopback.

A web page in the user's browser (a foreign Origin, a text/plain "simple" POST, a domain
rebound to 127.0.0.1), a caller without the API key, a body of 50 MB or one that never ends,
JSON nested 100,000 deep, a response_format schema the grammar converter chokes on, a prompt
of megabytes, a base model asked to chat: each gets a 4xx in the OpenAI error format before
the backend sees anything, and the server keeps answering others meanwhile.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import openai
import pytest
import uvicorn
from click.testing import CliRunner

from asgi_serving import serving_asgi
from smallhold.cli import main
from smallhold.config import RuntimeSettings, ServerSettings, Settings
from smallhold.errors import InvalidSchemaError
from smallhold.paths import Paths
from smallhold.runtime.backends.scripted import ScriptedBackend
from smallhold.runtime.runtime import Runtime
from smallhold.runtime.structured import schema_grammar
from smallhold.server import create_app

pytestmark = pytest.mark.timeout(60)
HI = [{"role": "user", "content": "hi"}]
CHAT = {"model": "scripted", "messages": HI}
EVIL = "https://evil.example"


@contextmanager
def _uvicorn(runtime: Runtime) -> Iterator[str]:
    """``create_app(runtime)`` on 127.0.0.1, on a port the kernel picks; yields the base URL."""
    try:
        with serving_asgi(create_app(runtime), lifespan="off") as url:
            yield url
    finally:
        runtime.close()


def _settings(**server: Any) -> Settings:
    return Settings(runtime=RuntimeSettings(backend="scripted", default_model="scripted"),
                    server=ServerSettings(**server))


@pytest.fixture
def backend() -> ScriptedBackend:
    return ScriptedBackend(["Hello there, friend."], context=4096)


@pytest.fixture
def url(paths: Paths, backend: ScriptedBackend) -> Iterator[str]:
    """A server with the default settings: loopback, no key, no CORS, 4 MiB bodies."""
    with _uvicorn(Runtime(_settings(), paths, backend=backend, trace=None)) as base:
        yield base


def _error(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["code"] == code, body
    error: dict[str, Any] = body["error"]
    return error


def _chat(url: str, body: Any = None, **kwargs: Any) -> httpx.Response:
    if body is None:
        body = CHAT
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30, **kwargs)


# -- a web page in the browser -----------------------------------------------------------


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "127.0.0.1.nip.io",
                                  "localhost:1", "user@127.0.0.1:{port}"])
def test_a_host_that_is_not_this_server_is_refused(url: str, backend: ScriptedBackend,
                                                   host: str) -> None:
    """DNS rebinding: the page's own domain, now resolving to 127.0.0.1, is in Host."""
    port = url.rsplit(":", 1)[1]
    resp = _chat(url, headers={"host": host.format(port=port)})
    _error(resp, 400, "invalid_host")
    assert httpx.get(f"{url}/v1/models", headers={"host": "evil.example"}).status_code == 400
    assert not backend.requests


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST",
                                  "[::1]:{port}"])
def test_the_servers_own_names_are_served(url: str, host: str) -> None:
    port = url.rsplit(":", 1)[1]
    resp = _chat(url, headers={"host": host.format(port=port)})
    assert resp.status_code == 200, resp.text


def test_a_page_of_another_site_is_refused_when_cors_is_off(url: str,
                                                            backend: ScriptedBackend) -> None:
    for origin in (EVIL, "null", "http://localhost:3000"):
        resp = _chat(url, headers={"origin": origin})
        assert "evil" not in resp.headers.get("access-control-allow-origin", "")
        _error(resp, 403, "origin_not_allowed")
    preflight = httpx.options(f"{url}/v1/chat/completions", headers={
        "origin": EVIL, "access-control-request-method": "POST"})
    assert preflight.status_code == 403
    assert "access-control-allow-origin" not in preflight.headers
    assert not backend.requests
    assert _chat(url, headers={"origin": url}).status_code == 200  # the server's own page


@pytest.mark.parametrize("content_type", [None, "text/plain", "text/plain;charset=UTF-8",
                                          "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x",
                                          "application/json; charset=latin-1"])
def test_a_body_that_is_not_declared_json_is_415(url: str, backend: ScriptedBackend,
                                                 content_type: str | None) -> None:
    """A form or a text/plain fetch is a "simple" request: the browser sends it without
    asking. Only a JSON content type, which needs a preflight, is read."""
    headers = {"content-type": content_type} if content_type else {}
    resp = httpx.post(f"{url}/v1/chat/completions", content=json.dumps(CHAT).encode(),
                      headers=headers)
    _error(resp, 415, "unsupported_media_type")
    assert not backend.requests
    ok = httpx.post(f"{url}/v1/chat/completions", content=json.dumps(CHAT).encode(),
                    headers={"content-type": "application/json; charset=utf-8"})
    assert ok.status_code == 200, ok.text


def test_configured_cors_origins_get_a_preflight_and_nobody_else(
        paths: Paths, backend: ScriptedBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    app_origin = "https://notes.example"
    monkeypatch.setenv("SMALLHOLD_SERVER__CORS_ORIGINS", f"{app_origin}, https://b.example")
    from smallhold.config import load_settings

    settings = load_settings(paths).model_copy(update={"runtime": RuntimeSettings(
        backend="scripted", default_model="scripted")})
    with _uvicorn(Runtime(settings, paths, backend=backend, trace=None)) as url:
        preflight = httpx.options(f"{url}/v1/chat/completions", headers={
            "origin": app_origin, "access-control-request-method": "POST",
            "access-control-request-headers": "content-type, authorization"})
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == app_origin
        assert "content-type" in preflight.headers["access-control-allow-headers"]
        resp = _chat(url, headers={"origin": app_origin})
        assert resp.status_code == 200
        assert resp.headers["access-control-allow-origin"] == app_origin
        _error(_chat(url, headers={"origin": EVIL}), 403, "origin_not_allowed")
        refused = httpx.options(f"{url}/v1/chat/completions", headers={
            "origin": EVIL, "access-control-request-method": "POST"})
        assert refused.status_code == 403
    assert len(backend.requests) == 1


# -- the API key -----------------------------------------------------------------------


def test_with_an_api_key_every_call_needs_it_and_health_tells_nothing(
        paths: Paths, backend: ScriptedBackend, caplog: pytest.LogCaptureFixture) -> None:
    key = "s3cret-key-for-test"
    runtime = Runtime(_settings(api_key=key), paths, backend=backend, trace=None)
    with _uvicorn(runtime) as url:
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": key},
                        {"authorization": f"Basic {key}"},
                        {"authorization": f"Bearer {key[:-1]}"}):
            resp = _chat(url, headers=headers)
            error = _error(resp, 401, "invalid_api_key")
            assert error["type"] == "invalid_request_error"
            assert resp.headers["www-authenticate"] == "Bearer"
            assert key not in resp.text
        _error(httpx.get(f"{url}/v1/models"), 401, "invalid_api_key")
        assert not backend.requests
        assert httpx.get(f"{url}/health").json() == {"status": "ok"}  # no backend, no models
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
        reply = client.chat.completions.create(model="scripted", messages=HI)
        assert reply.choices[0].message.content == "Hello there, friend."
        client.close()
        full = httpx.get(f"{url}/health", headers={"authorization": f"Bearer {key}"}).json()
        assert full["backend"] == "scripted"
    assert key not in caplog.text


# -- sizes and shapes ------------------------------------------------------------------


def _raw_request(url: str, head: str, body: bytes) -> socket.socket:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=20)
    sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
    return sock


def _read_response(sock: socket.socket) -> tuple[int, dict[str, Any]]:
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


def test_a_50_mb_body_is_413_before_it_is_sent_and_others_are_served_meanwhile(
        url: str, backend: ScriptedBackend) -> None:
    """The client announces 50 MB and sends 9 bytes: the answer comes at once, without the
    server waiting for (or ever holding) the rest; a small request meanwhile is served."""
    head = ("POST /v1/chat/completions HTTP/1.1\nHost: 127.0.0.1\n"
            "Content-Type: application/json\nContent-Length: 50000000\n")
    sock = _raw_request(url, head, b'{"model":')
    assert _chat(url).status_code == 200
    status, body = _read_response(sock)
    assert status == 413
    assert body["error"]["code"] == "request_too_large"
    assert "max_body_bytes" in body["error"]["message"]
    assert len(backend.requests) == 1  # only the small one


def test_a_chunked_body_is_cut_off_at_the_limit_without_its_end(
        url: str, backend: ScriptedBackend) -> None:
    """No Content-Length to refuse up front: the body is counted as it arrives, and 413
    comes once it passes 4 MiB, though the last chunk was never sent."""
    head = ("POST /v1/chat/completions HTTP/1.1\nHost: 127.0.0.1\n"
            "Content-Type: application/json\nTransfer-Encoding: chunked\n")
    chunk = b"x" * (1024 * 1024)
    frames = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(4))
    # 4 MiB and one byte more, and no end: neither the chunk's CRLF nor the 0-length chunk
    # (stopping there also leaves nothing unread that would reset the connection).
    sock = _raw_request(url, head, frames + b"1\r\nx")
    status, body = _read_response(sock)
    assert status == 413 and body["error"]["code"] == "request_too_large"
    assert not backend.requests


def test_json_nested_100000_deep_is_a_400_not_a_500(url: str,
                                                    backend: ScriptedBackend) -> None:
    chat = json.dumps(CHAT).encode()[:-1]
    for raw in (b"[" * 100_000 + b"]" * 100_000,
                b'{"messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
                chat + b', "extra": ' + b"[" * 70 + b"]" * 70 + b"}"):  # parses, too deep
        resp = httpx.post(f"{url}/v1/chat/completions", content=raw,
                          headers={"content-type": "application/json"})
        error = _error(resp, 400, "invalid_json")
        assert "deep" in error["message"]
    assert not backend.requests


BAD_SCHEMAS = [
    ({"type": "object", "properties": {"a": {"$ref": "#/$defs/Missing"}}}, "Missing"),
    ({"type": "colour"}, "colour"),
    ({"type": "object", "properties": {"a": {"$ref": "https://evil.example/s.json"}}},
     "not local"),
    ({"type": "object", "properties": {"a": 5}}, "int"),
    # Past the caps, but small enough that an unfixed converter fails or copes without
    # taking the machine's memory (10**9 would: it writes the repetition out in full).
    ({"type": "array", "items": {"type": "string"}, "maxItems": 100_000}, "maxItems"),
    ({"type": "string", "minLength": 50_000}, "minLength"),
]


@pytest.mark.parametrize(("schema", "said"), BAD_SCHEMAS)
def test_a_response_format_schema_that_cannot_become_a_grammar_is_a_400(
        url: str, backend: ScriptedBackend, schema: dict[str, Any], said: str) -> None:
    body = {**CHAT, "response_format": {"type": "json_schema",
                                        "json_schema": {"name": "x", "schema": schema}}}
    error = _error(_chat(url, body), 400, "invalid_value")
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "response_format.json_schema.schema"
    assert said in error["message"]
    assert not backend.requests


@pytest.mark.parametrize(("schema", "said"), BAD_SCHEMAS)
def test_the_runtime_says_why_a_schema_has_no_grammar(schema: dict[str, Any],
                                                      said: str) -> None:
    """Every caller of the engine (not only the server) gets a typed error, not an assert."""
    with pytest.raises(InvalidSchemaError, match=said):
        schema_grammar(schema)
    assert "root ::=" in schema_grammar({"type": "object", "properties": {
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 300},
                 "maxItems": 3}}})


class _CountingBackend(ScriptedBackend):
    """Records every text it is asked to tokenise."""

    def __init__(self, context: int) -> None:
        super().__init__(["ok"], context=context)
        self.tokenised = 0

    def count_tokens(self, model: str, text: str) -> int:
        self.tokenised += len(text)
        return super().count_tokens(model, text)


def test_a_prompt_far_past_the_context_is_refused_before_it_is_tokenised(
        paths: Paths) -> None:
    backend = _CountingBackend(context=512)
    with _uvicorn(Runtime(_settings(), paths, backend=backend, trace=None)) as url:
        huge = [{"role": "user", "content": "x" * 3_000_000}]
        error = _error(_chat(url, {**CHAT, "messages": huge}), 400, "context_length_exceeded")
        assert "512" in error["message"] and "characters" in error["message"]
        assert backend.tokenised == 0 and not backend.requests
        assert _chat(url).status_code == 200  # and the next request is served as usual


def test_a_base_model_is_refused_for_chat_before_it_loads(paths: Paths) -> None:
    """gemma-3-270m has no chat template: its chat request is a 400 that names
    /v1/completions and instruct models, not a 500 after loading 250 MB. /v1/models lists it
    (for /v1/completions), after every chat model."""
    settings = Settings(runtime=RuntimeSettings(backend="llama"))
    runtime = Runtime(settings, paths, trace=None)
    with _uvicorn(runtime) as url:
        error = _error(_chat(url, {**CHAT, "model": "gemma-3-270m"}), 400, "model_not_chat")
        assert error["param"] == "model" and "instruct" in error["message"]
        assert "/v1/completions" in error["message"]
        listed = [m["id"] for m in httpx.get(f"{url}/v1/models").json()["data"]]
        if "gemma-3-270m" in listed:  # listed when its package is installed
            assert listed.index("gemma-3-270m") > listed.index("smollm2-135m-instruct")
        assert runtime.manager is not None and runtime.manager.loaded() == []


# -- smallhold serve ---------------------------------------------------------------------


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append({"app": app, **kw}))
    monkeypatch.setenv("SMALLHOLD_RUNTIME__BACKEND", "scripted")
    return calls


@pytest.mark.parametrize("args", [["--allow-remote", "--host", "0.0.0.0"],
                                  ["--allow-remote"]])
def test_allow_remote_without_a_key_refuses_to_start_in_one_line(
        runs: list[dict[str, Any]], args: list[str]) -> None:
    result = CliRunner().invoke(main, ["serve", *args])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "--api-key" in lines[0], result.output
    assert runs == []


def test_allow_remote_with_a_key_warns_and_never_prints_the_key(
        runs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMALLHOLD_SERVER__API_KEY", "env-k3y-secret")
    result = CliRunner().invoke(main, ["serve", "--allow-remote", "--host", "0.0.0.0"])
    assert result.exit_code == 0, result.output
    assert "reachable from other machines" in result.output
    assert "env-k3y-secret" not in result.output
    (call,) = runs
    assert call["app"].user_middleware  # the guard is in front of the routes


def test_a_wildcard_host_list_needs_a_key(runs: list[dict[str, Any]],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMALLHOLD_SERVER__ALLOWED_HOSTS", "*")
    result = CliRunner().invoke(main, ["serve"])
    assert result.exit_code == 2 and "api_key" in result.output
    assert runs == []
