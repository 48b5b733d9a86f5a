"""Any OpenAI-compatible server, opt-in by config (``runtime.backend = "openai"``), never default.

Requests go only to the configured ``openai.base_url``; the API key is sent as a bearer token
and never logged or traced. The reply is a server-sent event stream, read with ``httpx-sse``
(a reply that is not ``text/event-stream`` is a malformed stream, not an empty answer).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
from httpx_sse import SSEError, connect_sse

from smallhold.config import OpenAISettings
from smallhold.errors import BackendError, ContextOverflowError, UnknownModelError
from smallhold.runtime.types import ChatRequest, Delta, Finish, StreamEvent, Usage


class OpenAIBackend:
    name = "openai"

    def __init__(self, settings: OpenAISettings, *, transport: httpx.BaseTransport | None = None,
                 context: int = 8192) -> None:
        self.settings = settings
        self._context = context
        headers = {}
        key = settings.api_key.get_secret_value()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.Client(base_url=settings.base_url.rstrip("/") + "/",
                                    headers=headers, timeout=settings.timeout,
                                    transport=transport)

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        p = request.params
        body: dict[str, Any] = {
            "model": self.settings.model or request.model,
            "messages": [m.for_wire() for m in request.messages],
            "max_tokens": p.max_tokens, "temperature": p.temperature, "top_p": p.top_p,
            "stream": True, "stream_options": {"include_usage": True},
        }
        if p.seed is not None:
            body["seed"] = p.seed
        if p.stop:
            body["stop"] = p.stop
        if p.json_schema is not None:
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "output", "schema": p.json_schema}}
        return body

    def stream_chat(self, request: ChatRequest) -> Iterator[StreamEvent]:
        usage = Usage()
        finish = "stop"
        try:
            with connect_sse(self._client, "POST", "chat/completions",
                             json=self._body(request)) as source:
                resp = source.response
                if resp.status_code >= 400:
                    self._raise(resp.status_code, resp.read().decode("utf-8", "replace"))
                for event in source.iter_sse():
                    if request.cancel is not None and request.cancel.cancelled:
                        finish = "cancelled"
                        break
                    if not event.data:
                        continue
                    if event.data.strip() == "[DONE]":
                        break
                    chunk = json.loads(event.data)
                    if chunk.get("usage"):
                        usage = Usage(prompt_tokens=chunk["usage"].get("prompt_tokens", 0),
                                      completion_tokens=chunk["usage"].get("completion_tokens", 0))
                    for choice in chunk.get("choices", []):
                        text = (choice.get("delta") or {}).get("content")
                        if text:
                            yield Delta(text)
                        if choice.get("finish_reason"):
                            finish = "length" if choice["finish_reason"] == "length" else "stop"
        except SSEError as exc:  # a transport error to httpx, but the server did answer
            raise BackendError(f"{self.settings.base_url} sent a malformed stream: {exc}") from exc
        except httpx.HTTPError as exc:
            raise BackendError(
                f"the OpenAI-compatible server at {self.settings.base_url} failed ({exc}); check "
                "that it is running, or set runtime.backend = \"llama\" to run locally."
            ) from exc
        except ValueError as exc:
            raise BackendError(f"{self.settings.base_url} sent a malformed stream: {exc}") from exc
        yield Finish(finish_reason=finish, usage=usage, model=request.model)  # type: ignore[arg-type]

    def _raise(self, status: int, text: str) -> None:
        try:
            message = json.loads(text)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = text[:300]
        if status == 404:
            raise UnknownModelError(f"the remote server does not know that model: {message}")
        if status == 400 and "context" in message.lower():
            raise ContextOverflowError(message)
        raise BackendError(f"the remote server answered {status}: {message}")

    def count_tokens(self, model: str, text: str) -> int:
        return max(1, len(text) // 4)

    def context_length(self, model: str) -> int:
        return self._context

    def close(self) -> None:
        self._client.close()
