"""The runtime facade that apps, the CLI and the server use: chat, stream, structured, embed.

It picks the backend from settings (llama by default; openai only when configured; scripted
when a test passes one in), and writes every call to the trace log with its timings.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from smallhold.config import Settings, load_settings
from smallhold.errors import ConfigError, SmallholdError
from smallhold.paths import Paths, resolve_paths
from smallhold.runtime.backends.base import ChatBackend
from smallhold.runtime.device import DeviceProbe, PsutilProbe
from smallhold.runtime.registry import get_model
from smallhold.runtime.structured import generate_structured
from smallhold.runtime.types import (
    CancelToken,
    ChatRequest,
    Completion,
    Delta,
    Finish,
    GenerationParams,
    Message,
    StreamEvent,
    collect,
)
from smallhold.trace import CallRecord, TraceLog

if TYPE_CHECKING:
    from smallhold.runtime.embeddings import Embedder
    from smallhold.runtime.manager import ModelManager

T = TypeVar("T", bound=BaseModel)
MessagesIn = Sequence[Message] | Sequence[dict[str, str]] | str


def as_messages(messages: MessagesIn, system: str | None = None) -> list[Message]:
    if isinstance(messages, str):
        out = [Message(role="user", content=messages)]
    else:
        out = [m if isinstance(m, Message) else Message.model_validate(m) for m in messages]
    if system and not any(m.role == "system" for m in out):
        out.insert(0, Message(role="system", content=system))
    return out


class Runtime:
    def __init__(
        self,
        settings: Settings,
        paths: Paths,
        *,
        backend: ChatBackend | None = None,
        probe: DeviceProbe | None = None,
        trace: TraceLog | None = None,
        app: str = "runtime",
    ) -> None:
        self.settings = settings
        self.paths = paths
        self.probe = probe or PsutilProbe()
        self.trace = trace
        self.app = app
        self.manager: ModelManager | None = None
        self.backend = backend or self._make_backend()
        self._embedder: Embedder | None = None

    @classmethod
    def open(cls, settings: Settings | None = None, paths: Paths | None = None,
             **kwargs: Any) -> Runtime:
        paths = paths or resolve_paths()
        settings = settings or load_settings(paths)
        if "trace" not in kwargs:
            kwargs["trace"] = TraceLog.open(paths, settings.profile)
        return cls(settings, paths, **kwargs)

    def _make_backend(self) -> ChatBackend:
        kind = self.settings.runtime.backend
        if kind == "openai":
            from smallhold.runtime.backends.openai import OpenAIBackend

            return OpenAIBackend(self.settings.openai)
        if kind == "scripted":
            from smallhold.runtime.backends.scripted import ScriptedBackend

            return ScriptedBackend()
        from smallhold.runtime.backends.llama import LlamaBackend
        from smallhold.runtime.manager import ModelManager

        usage = None
        if self.trace is not None:
            trace = self.trace

            def usage() -> list[tuple[str, int]]:
                return list(trace.recent_models())

        self.manager = ModelManager(self.settings.runtime, self.paths, self.probe,
                                    events=self.trace, usage=usage)
        return LlamaBackend(self.manager)

    def prepare(self, model: str | None = None) -> None:
        """Assemble the model's file on first use, with a progress bar on stderr, so a
        command's first output is not delayed by a silent multi-second copy."""
        if self.backend.name != "llama":
            return
        from smallhold.console import byte_progress
        from smallhold.runtime import assets

        spec = get_model(self.resolve_model(model))
        with byte_progress(f"preparing {spec.name} (first run only)") as progress:
            assets.ensure_model(spec, self.paths.models_dir, progress)

    def resolve_model(self, model: str | None) -> str:
        if self.backend.name != "llama":
            return model or self.settings.runtime.default_model
        return get_model(model or self.settings.runtime.default_model).name

    def smaller_model(self, model: str | None = None) -> str | None:
        """A smaller installed model than ``model`` to save power, or None (none / not llama)."""
        if self.manager is None:
            return None
        return self.manager.smaller_model(self.resolve_model(model))

    # -- chat ------------------------------------------------------------------------------

    def stream(self, messages: MessagesIn, *, model: str | None = None,
               params: GenerationParams | None = None, session: str | None = None,
               app: str | None = None, cancel: CancelToken | None = None,
               system: str | None = None) -> Iterator[StreamEvent]:
        request = ChatRequest(
            model=self.resolve_model(model), messages=as_messages(messages, system),
            params=params or GenerationParams(), session=session, cancel=cancel,
        )
        return self._traced(request, app or self.app)

    def stream_text(self, prompt: str, *, model: str | None = None,
                    params: GenerationParams | None = None, session: str | None = None,
                    app: str | None = None, cancel: CancelToken | None = None
                    ) -> Iterator[StreamEvent]:
        """A raw completion of ``prompt``, with no chat template: what a base model (which
        has none) is for, and ``/v1/completions``. Traced like a chat call whose one user
        message is the prompt."""
        complete = getattr(self.backend, "complete", None)
        if complete is None:
            raise ConfigError(f"the {self.backend.name} backend has no raw text completions; "
                              "use chat instead.")
        request = ChatRequest(
            model=self.resolve_model(model), messages=[Message(role="user", content=prompt)],
            params=params or GenerationParams(), session=session, cancel=cancel,
        )
        return self._traced(request, app or self.app,
                            lambda: complete(request.model, prompt, request))

    def _traced(self, request: ChatRequest, app: str,
                source: Callable[[], Iterator[StreamEvent]] | None = None
                ) -> Iterator[StreamEvent]:
        started_wall = time.time()
        started = time.perf_counter()
        first: float | None = None
        parts: list[str] = []
        error: str | None = None
        finish: Finish | None = None
        try:
            events = source() if source is not None else self.backend.stream_chat(request)
            for event in events:
                if isinstance(event, Delta):
                    if first is None:
                        first = time.perf_counter() - started
                    parts.append(event.text)
                else:
                    finish = event
                yield event
        except SmallholdError as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self._record(request, app, started_wall, time.perf_counter() - started, first,
                         "".join(parts), finish, error)

    def _record(self, request: ChatRequest, app: str, started_at: float, latency: float,
                ttft: float | None, output: str, finish: Finish | None, error: str | None) -> None:
        if self.trace is None:
            return
        plan_tier = None
        if self.manager is not None and error is None:
            loaded = {m.name: m for m in self.manager.loaded()}
            info = loaded.get(finish.model if finish else request.model)
            plan_tier = f"{info.tier}/kv-{info.kv_cache}" if info else None
        usage = finish.usage if finish else None
        self.trace.record_call(CallRecord(
            app=app, backend=self.backend.name, model=finish.model if finish else request.model,
            session=request.session,
            messages=[m.for_wire() for m in request.messages], output=output,
            finish_reason=finish.finish_reason if finish else ("error" if error else "abandoned"),
            tokens_in=usage.prompt_tokens if usage else 0,
            tokens_out=usage.completion_tokens if usage else 0,
            cached_tokens=usage.cached_tokens if usage else 0,
            ttft_s=ttft, latency_s=latency, tier=plan_tier,
            speculative=finish.speculative if finish else None,
            error=error, started_at=started_at,
        ))

    def chat(self, messages: MessagesIn, **kwargs: Any) -> Completion:
        return collect(self.stream(messages, **kwargs))

    def structured(self, messages: MessagesIn, output_type: type[T], *, model: str | None = None,
                   retries: int = 2, params: GenerationParams | None = None,
                   app: str | None = None) -> T:
        def call(history: list[Message], p: GenerationParams) -> Completion:
            return self.chat(history, model=model, params=p, app=app)

        return generate_structured(call, as_messages(messages), output_type, params=params,
                                   retries=retries)

    # -- embeddings ------------------------------------------------------------------------

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            from smallhold.runtime.embeddings import Embedder

            self._embedder = Embedder.open(self.paths)
        return self._embedder

    def forget_session(self, session: str) -> None:
        """Drop what the runtime keeps of conversation ``session`` (its saved KV state, in RAM
        and spilled to disk, in this process and others) because it was deleted. Only the
        llama backend keeps any."""
        if self.manager is not None:
            self.manager.forget(session)

    def close(self) -> None:
        self.backend.close()
