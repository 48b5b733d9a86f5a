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

Every generation of one model runs on that model's own thread (:class:`ModelThreads`), in
the order the requests came. llama.cpp's CPU backend is built with OpenMP, and libgomp keeps
a team of worker threads for every thread that has run a graph; once those outnumber the
cores it cuts its spin-wait from 300,000 to 1,000 iterations, so each of the hundreds of
barriers in a token sleeps and wakes through the kernel. Generations spread over a pool of
request threads made four concurrent clients take 30 s for what one thread did in 15 s
(2 cores, 0.5B model, BENCHMARKS.md); one thread per model keeps one team.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from smallhold.runtime.types import CancelToken, Completion, Delta, StreamEvent


class ModelThreads:
    """One generation thread per model name, made on first use; requests queue in order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._threads: dict[str, ThreadPoolExecutor] = {}

    def for_model(self, name: str) -> Executor:
        with self._lock:
            if name not in self._threads:
                self._threads[name] = ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix=f"smallhold-generate-{name}")
            return self._threads[name]

    def shutdown(self) -> None:
        with self._lock:
            threads, self._threads = list(self._threads.values()), {}
        for pool in threads:
            pool.shutdown(wait=True, cancel_futures=True)


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
                          executor: Executor | None = None) -> AsyncIterator[Events]:
    """Call ``start()`` and iterate what it returns on ``executor``'s thread (the event
    loop's default pool if None)."""
    send, receive = anyio.create_memory_object_stream[_Item](max_buffer_size=math.inf)
    demand = threading.Semaphore(0)
    produce = _producer(start, cancel, send, asyncio.get_running_loop(), demand)
    async with anyio.create_task_group() as group:
        group.start_soon(_in_thread, produce, executor)
        try:
            with receive:
                yield Events(receive, demand)
        finally:
            cancel.cancel()
            demand.release()  # a worker waiting for demand sees the cancel


async def _in_thread(fn: Callable[[], None], executor: Executor | None) -> None:
    """Run ``fn`` there and wait for it even when cancelled: the model is not free until the
    thread is done (a request still queued returns at once, as it sees the cancel)."""
    done = asyncio.get_running_loop().run_in_executor(executor, fn)
    with anyio.CancelScope(shield=True):
        await done
