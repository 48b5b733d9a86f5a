"""Scripted backends with the extra behaviour some server tests need: slowness, failures."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator

from smallhold.errors import BackendError
from smallhold.runtime.backends.scripted import ScriptedBackend
from smallhold.runtime.types import ChatRequest, Delta, Finish, StreamEvent


class SlowBackend(ScriptedBackend):
    """``words`` words, one every ``delay`` seconds; every stream's Finish lands in ``finished``."""

    def __init__(self, words: int = 2000, delay: float = 0.01) -> None:
        super().__init__(reply=lambda request: "word " * words)
        self.words = words
        self.delay = delay
        self.finished: queue.Queue[Finish] = queue.Queue()

    def stream_chat(self, request: ChatRequest) -> Iterator[StreamEvent]:
        for event in super().stream_chat(request):
            if isinstance(event, Finish):
                self.finished.put(event)
            yield event
            time.sleep(self.delay)


class FailsMidway(ScriptedBackend):
    """Sends two words, then fails as a remote backend would."""

    def stream_chat(self, request: ChatRequest) -> Iterator[StreamEvent]:
        self.requests.append(request)
        yield Delta("half ")
        yield Delta("an ")
        raise BackendError("the remote server hung up; check that it is running.")
