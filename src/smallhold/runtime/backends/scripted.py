"""A deterministic backend for tests: replies come from a list or a function.

Like simonw/llm's MockModel or pydantic-ai's FunctionModel: no model, no randomness, but the
same stream shape as a real backend, so code above it runs unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence

from smallhold.errors import ContextOverflowError
from smallhold.runtime.types import ChatRequest, Delta, Finish, StreamEvent, Usage

ReplyFn = Callable[[ChatRequest], str]
_WORD = re.compile(r"\S+\s*|\s+")


class ScriptedBackend:
    """Replies in order from ``replies`` (cycling the last one), or by calling ``reply``.

    Tokens are whitespace-separated words, which makes counts predictable in tests.
    """

    name = "scripted"

    def __init__(
        self,
        replies: Sequence[str] | None = None,
        *,
        reply: ReplyFn | None = None,
        context: int = 4096,
        models: Sequence[str] = ("scripted",),
    ) -> None:
        if replies is None and reply is None:
            replies = ["ok"]
        self._replies = list(replies or [])
        self._reply = reply
        self._context = context
        self.models = list(models)
        self.requests: list[ChatRequest] = []

    def _next_reply(self, request: ChatRequest) -> str:
        if self._reply is not None:
            return self._reply(request)
        index = min(len(self.requests) - 1, len(self._replies) - 1)
        return self._replies[index]

    def count_tokens(self, model: str, text: str) -> int:
        return len(text.split())

    def context_length(self, model: str) -> int:
        return self._context

    def complete(self, model: str, prompt: str, request: ChatRequest
                 ) -> Iterator[StreamEvent]:
        """A raw completion: the request's one message is the prompt."""
        return self.stream_chat(request)

    def stream_chat(self, request: ChatRequest) -> Iterator[StreamEvent]:
        self.requests.append(request)
        prompt_tokens = sum(self.count_tokens(request.model, m.content) + 4
                            for m in request.messages)
        if prompt_tokens + 1 > self._context:
            raise ContextOverflowError(
                f"prompt is {prompt_tokens} tokens but the context holds {self._context}; "
                "shorten the conversation or use a model with a longer context."
            )
        text = self._next_reply(request)
        for stop in request.params.stop:
            if stop and stop in text:
                text = text[: text.index(stop)]
        pieces = _WORD.findall(text)
        finish = "stop"
        if len(pieces) > request.params.max_tokens:
            pieces = pieces[: request.params.max_tokens]
            finish = "length"
        emitted = 0
        for piece in pieces:
            if request.cancel is not None and request.cancel.cancelled:
                finish = "cancelled"
                break
            emitted += 1
            yield Delta(piece)
        yield Finish(
            finish_reason=finish,  # type: ignore[arg-type]
            usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=emitted),
            model=request.model,
        )

    def close(self) -> None:
        return None
