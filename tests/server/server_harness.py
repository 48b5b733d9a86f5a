"""A real uvicorn server on 127.0.0.1 (free port, own thread) around a runtime."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

import openai

from asgi_serving import serving_asgi
from smallhold.config import RuntimeSettings, Settings
from smallhold.paths import Paths
from smallhold.runtime.backends.base import ChatBackend
from smallhold.runtime.backends.scripted import ScriptedBackend
from smallhold.runtime.runtime import Runtime
from smallhold.server import create_app


@contextmanager
def serving(runtime: Runtime) -> Iterator[str]:
    """Serve ``create_app(runtime)`` until the block exits; yields the base URL."""
    with serving_asgi(create_app(runtime), lifespan="off") as url:
        yield url


@dataclass
class Served:
    url: str
    runtime: Runtime
    backend: ChatBackend
    client: openai.OpenAI

    @property
    def scripted(self) -> ScriptedBackend:
        assert isinstance(self.backend, ScriptedBackend)
        return self.backend


def scripted_settings() -> Settings:
    return Settings(runtime=RuntimeSettings(backend="scripted", default_model="scripted"))


@contextmanager
def served_runtime(runtime: Runtime) -> Iterator[Served]:
    """A server and an OpenAI client (no retries) on ``runtime``, closed afterwards."""
    with serving(runtime) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="local", max_retries=0,
                               timeout=60)
        try:
            yield Served(url, runtime, runtime.backend, client)
        finally:
            client.close()
            runtime.close()


def served(backend: ChatBackend, paths: Paths,
           settings: Settings | None = None) -> AbstractContextManager[Served]:
    return served_runtime(Runtime(settings or scripted_settings(), paths, backend=backend,
                                  trace=None))


ServeFactory = Callable[..., Served]
