"""Run a blocking runtime stream in one worker thread and read its events on the event loop.

The whole generator lives in a single thread, from the first ``next`` to its ``finally``: the
engine's lock, the model manager's reference count and the trace record all begin and end on
the thread that owns them, and the event loop only ever awaits a memory channel. Leaving the
context cancels the generation and waits for the thread, so a model is free again when the
response ends, whether the client read it all or went away.

The worker never waits for the loop: each event is handed over with
``call_soon_threadsafe`` (asyncio, which uvicorn and Starlette's test client run), so
decoding goes on while the loop is busy writing to other clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import anyio.to_thread
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from smallhold.runtime.types import CancelToken, Completion, Delta, StreamEvent

# Threads that may run (or wait for a model to run) generations at once; more requests wait
# on the event loop without a thread, and the default pool stays free for light routes.
GENERATION_THREADS = 16


@dataclass(frozen=True)
class _Failed:
    error: Exception


_Item = StreamEvent | _Failed


class Events:
    """The reading end: ``await events.next()`` gives the next event, ``None`` at the end."""

    def __init__(self, receive: MemoryObjectReceiveStream[_Item]) -> None:
        self._receive = receive

    async def next(self) -> StreamEvent | None:
        try:
            item = await self._receive.receive()
        except anyio.EndOfStream:
            return None
        if isinstance(item, _Failed):
            raise item.error
        return item

    async def collect(self) -> Completion:
        parts: list[str] = []
        while (event := await self.next()) is not None:
            if isinstance(event, Delta):
                parts.append(event.text)
            else:
                return Completion(text="".join(parts), finish_reason=event.finish_reason,
                                  usage=event.usage, model=event.model,
                                  speculative=event.speculative)
        raise RuntimeError("the stream ended without a Finish event")


def _producer(start: Callable[[], Iterator[StreamEvent]], cancel: CancelToken,
              send: MemoryObjectSendStream[_Item],
              loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
    def deliver(item: _Item) -> None:  # runs on the event loop
        try:
            send.send_nowait(item)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            cancel.cancel()  # nobody reads any more: stop at the next token

    def push(item: _Item) -> None:
        # Hand the event over without waiting for the loop to take it: a blocking hop per
        # token would stall decoding whenever the loop is busy with other clients.
        try:
            loop.call_soon_threadsafe(deliver, item)
        except RuntimeError:  # the loop is closed: the server is shutting down
            cancel.cancel()

    def produce() -> None:
        events: Iterator[StreamEvent] | None = None
        try:
            if cancel.cancelled:  # the client left while this waited for a thread
                return
            events = start()
            for event in events:
                push(event)
        except Exception as exc:  # handed to the reader, which decides what the client sees
            push(_Failed(exc))
        finally:
            close = getattr(events, "close", None)
            if close is not None:
                close()
            # Queued after every event pushed above (the loop runs callbacks in order).
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(send.close)

    return produce


@asynccontextmanager
async def threaded_events(start: Callable[[], Iterator[StreamEvent]], cancel: CancelToken,
                          limiter: anyio.CapacityLimiter | None = None) -> AsyncIterator[Events]:
    """Call ``start()`` and iterate what it returns in a worker thread."""
    send, receive = anyio.create_memory_object_stream[_Item](max_buffer_size=math.inf)
    produce = _producer(start, cancel, send, asyncio.get_running_loop())
    async with anyio.create_task_group() as group:
        group.start_soon(_in_thread, produce, limiter)
        try:
            with receive:
                yield Events(receive)
        finally:
            cancel.cancel()


async def _in_thread(fn: Callable[[], None], limiter: anyio.CapacityLimiter | None) -> None:
    await anyio.to_thread.run_sync(fn, limiter=limiter)
