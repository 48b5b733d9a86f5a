"""The default backend: in-process llama.cpp through the model manager."""

from __future__ import annotations

from collections.abc import Iterator

from smallhold.runtime.manager import ModelManager
from smallhold.runtime.types import ChatRequest, StreamEvent


class LlamaBackend:
    name = "llama"

    def __init__(self, manager: ModelManager) -> None:
        self.manager = manager

    def stream_chat(self, request: ChatRequest) -> Iterator[StreamEvent]:
        with self.manager.use(request.model) as engine:
            yield from engine.chat(request.messages, request.params, session=request.session,
                                   cancel=request.cancel)

    def complete(self, model: str, prompt: str, request: ChatRequest) -> Iterator[StreamEvent]:
        with self.manager.use(model) as engine:
            yield from engine.complete(prompt, request.params, session=request.session,
                                       cancel=request.cancel)

    def count_tokens(self, model: str, text: str) -> int:
        with self.manager.use(model) as engine:
            return int(engine.count_tokens(text))

    def context_length(self, model: str) -> int:
        return self.manager.plan(model).n_ctx

    def close(self) -> None:
        self.manager.close()
