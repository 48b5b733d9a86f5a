"""``POST /v1/chat/completions`` and ``/v1/completions`` as ASGI responses: JSON, or
Server-Sent Events.

Nothing is sent before the first event of the generation has arrived, so a prompt that does
not fit the context, an unknown or missing model, or a model that cannot load still gets a
proper status code and error body, also with ``stream: true``. While generating, a task
listens for the client going away and cancels the generation, which frees the model.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any

import anyio
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from smallhold.errors import GenerationCancelled
from smallhold.runtime.types import CancelToken, Completion, Delta, StreamEvent, ToolCall
from smallhold.server.errors import from_exception
from smallhold.server.generation import Events, threaded_events
from smallhold.server.schemas import ChatCompletionRequest, CompletionRequest
from smallhold.server.tools import read_calls
from smallhold.server.wire import (
    ChunkWriter,
    TextChunkWriter,
    completion_body,
    completion_id,
    sse,
    text_completion_body,
)

if TYPE_CHECKING:
    from smallhold.runtime.runtime import Runtime

APP = "server"
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


async def _watch_disconnect(receive: Receive, cancel: CancelToken) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            cancel.cancel()
            return


class ChatCompletion:
    """The response to one chat request; ``model`` is already resolved and known to exist."""

    def __init__(self, runtime: Runtime, body: ChatCompletionRequest, *, model: str,
                 session: str | None, executor: Executor | None = None) -> None:
        self.runtime = runtime
        self.body = body
        self.model = model
        self.session = session
        self.executor = executor
        self.cancel = CancelToken()

    def _start(self) -> Iterator[StreamEvent]:
        return self.runtime.stream(
            self.body.to_messages(), model=self.model, params=self.body.to_params(),
            session=self.session, app=APP, cancel=self.cancel,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(_watch_disconnect, receive, self.cancel)
            try:
                async with threaded_events(self._start, self.cancel, self.executor) as events:
                    if self.body.stream and self._calling:
                        await self._stream_calls(events, scope, receive, send)
                    elif self.body.stream:
                        await self._stream(events, scope, receive, send)
                    else:
                        await self._complete(events, scope, receive, send)
            finally:
                group.cancel_scope.cancel()

    async def _error(self, exc: Exception, scope: Scope, receive: Receive, send: Send) -> None:
        if self.cancel.cancelled:
            return  # the client is gone; nobody to tell
        await from_exception(exc).response()(scope, receive, send)

    @property
    def _calling(self) -> bool:
        return isinstance(self.body, ChatCompletionRequest) and self.body.calling

    def _calls(self, completion: Completion) -> list[ToolCall]:
        if not self._calling:
            return []
        assert isinstance(self.body, ChatCompletionRequest)
        return read_calls(completion.text, self.body)

    async def _stream_calls(self, events: Events, scope: Scope, receive: Receive,
                            send: Send) -> None:
        """A streamed answer that may be tool calls: whether it is one is known only at
        its end, so it is generated whole, then sent as calls or as text in the same
        chunk format (role, content or tool_calls, finish, usage)."""
        try:
            completion = await events.collect()
        except Exception as exc:
            await self._error(exc, scope, receive, send)
            return
        calls = self._calls(completion)
        writer = self._writer()
        writer.model = completion.model
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        await self._body(send, writer.role())
        if calls:
            await self._body(send, writer.tool_calls(calls))
        elif completion.text:
            await self._body(send, writer.content(completion.text))
        await self._body(send, writer.finish(completion.finish_reason, completion.usage,
                                             calls=bool(calls)))
        await self._body(send, b"", more=False)

    async def _complete(self, events: Events, scope: Scope, receive: Receive,
                        send: Send) -> None:
        try:
            completion = await events.collect()
        except Exception as exc:
            await self._error(exc, scope, receive, send)
            return
        await JSONResponse(self._body_of(completion))(scope, receive, send)

    def _body_of(self, completion: Completion) -> dict[str, Any]:
        return completion_body(completion, id=completion_id(), created=int(time.time()),
                               calls=self._calls(completion))

    def _writer(self) -> ChunkWriter:
        return ChunkWriter(self.model, include_usage=self.body.include_usage)

    async def _stream(self, events: Events, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            event = await events.next()
        except Exception as exc:
            await self._error(exc, scope, receive, send)
            return
        writer = self._writer()
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        try:
            first = writer.role()
            if first:
                await self._body(send, first)
            while event is not None and not self.cancel.cancelled:
                if isinstance(event, Delta):
                    if event.text:
                        await self._body(send, writer.content(event.text))
                else:
                    writer.model = event.model
                    await self._body(send, writer.finish(event.finish_reason, event.usage))
                event = await events.next()
        except GenerationCancelled:
            pass
        except Exception as exc:
            # Headers are out: report in the stream, as OpenAI does (the client raises APIError).
            if not self.cancel.cancelled:
                await self._body(send, sse(from_exception(exc).body()))
        if not self.cancel.cancelled:
            await self._body(send, b"", more=False)

    async def _body(self, send: Send, data: bytes, *, more: bool = True) -> None:
        try:
            await send({"type": "http.response.body", "body": data, "more_body": more})
        except OSError:  # the connection broke under a write: stop generating
            self.cancel.cancel()


class TextCompletion(ChatCompletion):
    """The response to one ``/v1/completions`` request: the prompt as it is, no template."""

    def __init__(self, runtime: Runtime, body: CompletionRequest, *, model: str,
                 session: str | None, executor: Executor | None = None) -> None:
        self.text_body = body
        super().__init__(runtime, body, model=model, session=session,  # type: ignore[arg-type]
                         executor=executor)

    def _start(self) -> Iterator[StreamEvent]:
        return self.runtime.stream_text(
            self.text_body.text, model=self.model, params=self.text_body.to_params(),
            session=self.session, app=APP, cancel=self.cancel,
        )

    def _body_of(self, completion: Completion) -> dict[str, Any]:
        return text_completion_body(completion, id=f"cmpl-{uuid.uuid4().hex}",
                                    created=int(time.time()))

    def _writer(self) -> ChunkWriter:
        return TextChunkWriter(self.model, include_usage=self.text_body.include_usage)
