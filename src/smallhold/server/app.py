"""The OpenAI-compatible HTTP API over a :class:`~smallhold.runtime.runtime.Runtime`.

    GET  /health                 liveness, backend, default model, loaded models
    GET  /v1/models              every model usable here (chat, base, embedding) and aliases
    GET  /v1/models/{id}         one of them
    POST /v1/chat/completions    chat, JSON or Server-Sent Events; X-Smallhold-Session keys KV reuse
    POST /v1/completions         raw text completion (no chat template), for base models
    POST /v1/embeddings          all-MiniLM-L6-v2 sentence vectors
    GET  /smallhold/ps           the loaded models: memory, idle time, keep-alive left
    POST /smallhold/stop         unload a model now ({"model": NAME})

``[server] aliases`` maps names clients hard-code (``gpt-4o-mini``,
``text-embedding-3-small``) to smallhold models; every endpoint resolves them first.

Every request first passes the guard (:mod:`smallhold.server.guard`): Host, Origin, API key,
JSON content type and body size are checked before any endpoint reads a byte of the body.

Blocking work (generation, embedding, file checks, the model manager's lock) runs in worker
threads, so the event loop always answers. Generations for one model run one at a time on
that model's own thread, in arrival order (``generation.ModelThreads``); the server itself
accepts any number of connections.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from smallhold.errors import ContextOverflowError, SmallholdError, UnknownModelError
from smallhold.httpguard import AUTHENTICATED, GuardPolicy, RequestGuard
from smallhold.runtime import assets
from smallhold.runtime.registry import MODELS, get_model
from smallhold.server.chat import ChatCompletion, TextCompletion
from smallhold.server.errors import (
    ApiError,
    from_exception,
    from_validation,
    http_exception,
    parse_json,
    unexpected,
)
from smallhold.server.generation import ModelThreads
from smallhold.server.guard import openai_error, server_policy
from smallhold.server.schemas import (
    MAX_SESSION_CHARS,
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
)
from smallhold.server.wire import embedding_body, model_body, model_list

if TYPE_CHECKING:
    from smallhold.runtime.runtime import Runtime

SESSION_HEADER = "x-smallhold-session"
_USABLE = ("ready", "assemblable")
PROMPT_CHARS_PER_TOKEN = 16
"""A prompt longer than this many characters per token of context cannot fit, and is refused
before it is tokenised (tokenising megabytes takes the model's thread for a minute). English
and code average 3 to 5 characters per token in every tokenizer smallhold ships; 16 leaves
room for long whitespace runs, and a prompt under the bound is still counted exactly."""


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _validated(raw: bytes, model: type[BaseModel]) -> Any:
    data = parse_json(raw)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise from_validation(exc) from None


async def _body(request: Request, model: type[BaseModel]) -> Any:
    # Parsing a body of megabytes, or compiling its response_format, is CPU work: in a thread.
    return await anyio.to_thread.run_sync(_validated, await request.body(), model)


def unalias(runtime: Runtime, name: str | None) -> str | None:
    """The smallhold model an alias stands for (a name that is no alias is itself)."""
    if name is None:
        return None
    return runtime.settings.server.aliases.get(name, name)


def model_names(runtime: Runtime) -> list[str]:
    """Every model a request may name (blocking: looks at model files): chat models first,
    then base and embedding models, then the configured aliases."""
    if runtime.backend.name == "llama":
        order = {"chat": 0, "base": 1, "embedding": 2}
        usable = [spec for spec in MODELS if spec.kind in order
                  and assets.status(spec, runtime.paths.models_dir).status in _USABLE]
        names = [s.name for s in sorted(usable, key=lambda s: order[s.kind])]
    else:
        names = chat_model_names(runtime)
        names.append(runtime.settings.runtime.embedding_model)
    names += [a for a, target in runtime.settings.server.aliases.items()
              if target in names and a not in names]
    return names


def chat_model_names(runtime: Runtime) -> list[str]:
    """Models a chat request may name (blocking: looks at model files)."""
    if runtime.backend.name == "llama":  # a base model has no chat template: it cannot chat
        return [spec.name for spec in MODELS if spec.kind == "chat"
                and assets.status(spec, runtime.paths.models_dir).status in _USABLE]
    names = [runtime.resolve_model(None)]
    declared = getattr(runtime.backend, "models", None)
    if isinstance(declared, list | tuple):
        names += [n for n in declared if isinstance(n, str) and n not in names]
    return names


def resolve_chat_model(runtime: Runtime, requested: str | None) -> str:
    """The registry name for ``requested``; unknown names fail here, before any generation."""
    requested = unalias(runtime, requested)
    if runtime.backend.name == "llama":
        spec = get_model(requested or runtime.settings.runtime.default_model)
        if spec.kind == "embedding":
            raise UnknownModelError(
                f"{spec.name} is an embedding model; use POST /v1/embeddings for it, or pick a "
                "chat model from GET /v1/models."
            )
        if spec.kind != "chat":
            raise ApiError(400, f"{spec.name} is a base model with no chat template, so it "
                                "cannot chat; send it text to continue at POST "
                                "/v1/completions, or chat with an instruct model from "
                                "GET /v1/models.", param="model", code="model_not_chat")
        return spec.name
    if requested is None:
        return runtime.resolve_model(None)
    declared = getattr(runtime.backend, "models", None)
    if isinstance(declared, list | tuple):  # a backend that says what it serves is held to it
        known = chat_model_names(runtime)
        if requested not in known:
            raise UnknownModelError(
                f"no model named {requested!r} here; available: {', '.join(known)}."
            )
    return runtime.resolve_model(requested)


def _session(request: Request, body: ChatCompletionRequest) -> str | None:
    session = request.headers.get(SESSION_HEADER) or body.user
    if session is not None and len(session) > MAX_SESSION_CHARS:
        raise ApiError(400, f"the {SESSION_HEADER} header is longer than {MAX_SESSION_CHARS} "
                            "characters; use a shorter conversation key.",
                       param=SESSION_HEADER, code="invalid_value")
    return session or None


def check_prompt_size(runtime: Runtime, model: str, body: ChatCompletionRequest) -> None:
    """Refuse a prompt that cannot fit ``model``'s context by its length in characters alone
    (blocking: the backend may look at the device to know the context)."""
    chars = sum(len(m.content) for m in body.to_messages())
    context = runtime.backend.context_length(model)
    limit = context * PROMPT_CHARS_PER_TOKEN
    if chars > limit:
        raise ContextOverflowError(
            f"the prompt is {chars:,} characters, more than {model}'s {context:,}-token context "
            f"can hold (at most {limit:,} characters); shorten the conversation."
        )


def _chat_model(runtime: Runtime, body: ChatCompletionRequest) -> str:
    model = resolve_chat_model(runtime, body.model)
    check_prompt_size(runtime, model, body)
    return model


async def chat_completions(request: Request) -> ASGIApp:
    runtime = _runtime(request)
    try:
        body: ChatCompletionRequest = await _body(request, ChatCompletionRequest)
        model = await anyio.to_thread.run_sync(_chat_model, runtime, body)
        session = _session(request, body)
    except Exception as exc:
        return from_exception(exc).response()
    threads: ModelThreads = request.app.state.model_threads
    return ChatCompletion(runtime, body, model=model, session=session,
                          executor=threads.for_model(model))


def resolve_text_model(runtime: Runtime, requested: str | None) -> str:
    """A model for a raw completion: any chat or base model (not an embedding model)."""
    requested = unalias(runtime, requested)
    if runtime.backend.name == "llama":
        spec = get_model(requested or runtime.settings.runtime.default_model)
        if spec.kind not in ("chat", "base"):
            raise UnknownModelError(f"{spec.name} is an embedding model; use POST "
                                    "/v1/embeddings for it.")
        return spec.name
    return resolve_chat_model(runtime, requested)


def _text_model(runtime: Runtime, body: CompletionRequest) -> str:
    model = resolve_text_model(runtime, body.model)
    context = runtime.backend.context_length(model)
    if len(body.text) > context * PROMPT_CHARS_PER_TOKEN:
        raise ContextOverflowError(
            f"the prompt is {len(body.text):,} characters, more than {model}'s {context:,}-"
            "token context can hold; shorten it.")
    return model


async def completions(request: Request) -> ASGIApp:
    runtime = _runtime(request)
    try:
        body: CompletionRequest = await _body(request, CompletionRequest)
        model = await anyio.to_thread.run_sync(_text_model, runtime, body)
        session = request.headers.get(SESSION_HEADER) or body.user or None
    except Exception as exc:
        return from_exception(exc).response()
    threads: ModelThreads = request.app.state.model_threads
    return TextCompletion(runtime, body, model=model, session=session,
                          executor=threads.for_model(model))


def _embed(runtime: Runtime, body: EmbeddingRequest) -> dict[str, Any]:
    name = unalias(runtime, body.model) or runtime.settings.runtime.embedding_model
    spec = get_model(name)
    if spec.kind != "embedding":
        raise UnknownModelError(
            f"{spec.name} is a chat model; embeddings come from "
            f"{runtime.settings.runtime.embedding_model}."
        )
    embedder = runtime.embedder
    if body.dimensions is not None and body.dimensions != embedder.dim:
        raise ApiError(400, f"{embedder.name} makes {embedder.dim}-dimensional vectors; leave "
                            f"out 'dimensions' or set it to {embedder.dim}.",
                       param="dimensions", code="invalid_value")
    texts = body.texts
    vectors = embedder.embed(texts)
    count = getattr(embedder, "count_tokens", None)
    tokens = sum(count(t) if count else len(t.split()) for t in texts)
    return embedding_body(vectors, embedder.name, encoding=body.encoding_format,
                          prompt_tokens=tokens)


async def embeddings(request: Request) -> Response:
    runtime = _runtime(request)
    try:
        body: EmbeddingRequest = await _body(request, EmbeddingRequest)
        result = await anyio.to_thread.run_sync(_embed, runtime, body)
    except Exception as exc:
        return from_exception(exc).response()
    return JSONResponse(result)


async def models(request: Request) -> Response:
    runtime = _runtime(request)
    try:
        names = await anyio.to_thread.run_sync(model_names, runtime)
    except Exception as exc:
        return from_exception(exc).response()
    return JSONResponse(model_list(names))


async def model(request: Request) -> Response:
    runtime = _runtime(request)
    wanted = request.path_params["model_id"]
    try:
        names = await anyio.to_thread.run_sync(model_names, runtime)
        if wanted not in names:
            raise ApiError(404, f"no model named {wanted!r} here; GET /v1/models lists them.",
                           param="model", code="model_not_found")
    except Exception as exc:
        return from_exception(exc).response()
    return JSONResponse(model_body(wanted))


def _ps(runtime: Runtime) -> dict[str, Any]:
    manager = runtime.manager
    if manager is None:
        return {"backend": runtime.backend.name, "models": []}
    keep = runtime.settings.runtime.keep_alive
    models = []
    for m in manager.loaded():
        left = None if keep < 0 else max(0.0, keep - m.idle_seconds) if not m.refs else keep
        models.append({"name": m.name, "tier": m.tier, "kv_cache": m.kv_cache,
                       "n_ctx": m.n_ctx, "busy": m.refs > 0, "bytes": m.predicted_bytes,
                       "idle_seconds": round(m.idle_seconds, 1),
                       "keep_alive_left_seconds": None if left is None else round(left, 1),
                       "load_seconds": round(m.load_seconds, 2)})
    return {"backend": runtime.backend.name, "keep_alive": keep, "models": models}


async def ps(request: Request) -> Response:
    return JSONResponse(await anyio.to_thread.run_sync(_ps, _runtime(request)))


class _StopRequest(BaseModel):
    model: str


def _stop(runtime: Runtime, name: str) -> dict[str, Any]:
    manager = runtime.manager
    if manager is None:
        raise ApiError(400, f"the {runtime.backend.name} backend loads no models here.")
    resolved = get_model(unalias(runtime, name) or name).name
    if resolved not in {m.name for m in manager.loaded()}:
        return {"model": resolved, "unloaded": False, "reason": "not loaded"}
    if not manager.unload(resolved, reason="smallhold stop"):
        raise ApiError(409, f"{resolved} is answering a request; stop it when it is done.",
                       code="model_busy")
    return {"model": resolved, "unloaded": True}


async def stop(request: Request) -> Response:
    runtime = _runtime(request)
    try:
        body: _StopRequest = await _body(request, _StopRequest)
        result = await anyio.to_thread.run_sync(_stop, runtime, body.model)
    except Exception as exc:
        return from_exception(exc).response()
    return JSONResponse(result)


def _health(runtime: Runtime) -> dict[str, Any]:
    try:
        default = runtime.resolve_model(None)
    except SmallholdError:
        default = runtime.settings.runtime.default_model
    manager = runtime.manager
    loaded = [m.name for m in manager.loaded()] if manager is not None else []
    return {"status": "ok", "backend": runtime.backend.name, "default_model": default,
            "loaded": loaded}


async def health(request: Request) -> Response:
    # Open without the API key (for supervisors), so then it tells nothing but that it is up.
    if not getattr(request.state, AUTHENTICATED, True):
        return JSONResponse({"status": "ok"})
    # The manager's lock is held while a model loads: ask it from a thread.
    return JSONResponse(await anyio.to_thread.run_sync(_health, _runtime(request)))


def create_app(runtime: Runtime, policy: GuardPolicy | None = None) -> Starlette:
    """The ASGI app; ``uvicorn.run(create_app(runtime, policy))`` serves it.

    ``policy`` says who may call it (``smallhold serve`` builds it for the address it binds);
    None: loopback on any port, with ``runtime.settings.server``'s key, limits and origins.
    """
    if policy is None:
        server = runtime.settings.server
        policy = server_policy(server, host=server.host, port=None)
    threads = ModelThreads()

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(threads.shutdown)

    app = Starlette(
        lifespan=lifespan,
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/v1/models/{model_id:path}", model, methods=["GET"]),
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/completions", completions, methods=["POST"]),
            Route("/v1/embeddings", embeddings, methods=["POST"]),
            Route("/smallhold/ps", ps, methods=["GET"]),
            Route("/smallhold/stop", stop, methods=["POST"]),
        ],
        exception_handlers={HTTPException: http_exception, Exception: unexpected},
        middleware=[Middleware(RequestGuard, policy=policy, error=openai_error)],
    )
    app.state.runtime = runtime
    app.state.model_threads = threads
    return app
