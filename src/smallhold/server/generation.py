"""Run a blocking runtime stream in one worker thread and read its events on the event loop.

The whole generator lives in a single thread, from the first ``next`` to its ``finally``: the
engine's lock, the model manager's reference count and the trace record all begin and end on
the thread that owns them, and the event loop only ever awaits a memory channel. Leaving the
context cancels the generation and waits for the thread, so a model is free again when the
response ends, whether the client read it all or went away.

The worker decodes one event ahead of the reader and no further: it waits for ``next()`` to
ask before it computes the next token. On a small CPU llama.cpp's threads fill every core, and
any Python work that runs at the same time (the loop encoding and writing the previous chunk)
stalls all of them at the next barrier; taking turns instead measured 1.22× the tokens/s of
free-running decoding at one client on 2 cores (BENCHMARKS.md). Events are handed over with
``call_soon_threadsafe`` (asyncio, which uvicorn and Starlette's test client run).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
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

    def __init__(self, receive: MemoryObjectReceiveStream[_Item],
                 demand: threading.Semaphore) -> None:
        self._receive = receive
        self._demand = demand

    async def next(self) -> StreamEvent | None:
        self._demand.release()  # the worker may decode the next token now
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
              loop: asyncio.AbstractEventLoop, demand: threading.Semaphore) -> Callable[[], None]:
    def deliver(item: _Item) -> None:  # runs on the event loop
        try:
            send.send_nowait(item)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            cancel.cancel()  # nobody reads any more: stop at the next token

    def push(item: _Item) -> None:
        try:
            loop.call_soon_threadsafe(deliver, item)
        except RuntimeError:  # the loop is closed: the server is shutting down
            cancel.cancel()

    def wait_for_demand() -> None:
        while not demand.acquire(timeout=0.05):
            if cancel.cancelled:  # the reader left: run to the end without waiting
                return

    def produce() -> None:
        events: Iterator[StreamEvent] | None = None
        try:
            if cancel.cancelled:  # the client left while this waited for a thread
                return
            events = start()
            wait_for_demand()
            for event in events:
                push(event)
                wait_for_demand()
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
    demand = threading.Semaphore(0)
    produce = _producer(start, cancel, send, asyncio.get_running_loop(), demand)
    async with anyio.create_task_group() as group:
        group.start_soon(_in_thread, produce, limiter)
        try:
            with receive:
                yield Events(receive, demand)
        finally:
            cancel.cancel()
            demand.release()  # a worker waiting for demand sees the cancel


async def _in_thread(fn: Callable[[], None], limiter: anyio.CapacityLimiter | None) -> None:
    await anyio.to_thread.run_sync(fn, limiter=limiter)
