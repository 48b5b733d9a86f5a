"""The one protocol every chat backend implements."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from smallhold.runtime.types import ChatRequest, StreamEvent


@runtime_checkable
class ChatBackend(Protocol):
    """Streams a chat completion; the last event is always a ``Finish``.

    Implementations raise ``smallhold.errors`` types only, honour ``request.cancel`` between
    tokens (finishing with ``finish_reason="cancelled"``), and treat ``request.session`` as a
    hint that the same conversation will come back, so its state is worth keeping.
    """

    name: str

    def stream_chat(self, request: ChatRequest) -> Iterator[StreamEvent]: ...

    def count_tokens(self, model: str, text: str) -> int: ...

    def context_length(self, model: str) -> int: ...

    def close(self) -> None: ...
