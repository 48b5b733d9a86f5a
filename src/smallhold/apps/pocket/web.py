"""pocket in the browser: the chat page and its JSON API, mounted by the web shell at ``/pocket``.

    GET    /pocket/                        the page (the script fills it from the API)
    GET    /pocket/api/conversations       names, titles and turn counts
    GET    /pocket/api/conversations/NAME  one conversation's turns
    DELETE /pocket/api/conversations/NAME  forget it (turns, memory chunks, saved KV state)
    POST   /pocket/api/chat                {"conversation", "message"} → the answer, streamed
    GET    /pocket/api/device              battery, RAM, power mode and why, the model

The answer streams as newline-delimited JSON (``{"type": "delta", "text"}`` pieces, then one
``done``; an ``error`` if the turn fails half-way). A turn that cannot start (paused device,
empty message, bad name) is refused with a JSON error and a status before any streaming,
so the page can show the reason as it is.

A :class:`~smallhold.apps.pocket.assistant.Pocket` and its vault connection are not made for
concurrent turns, and a turn's generator holds the engine lock, the model's reference and
its trace record from its first step to its last: so every turn (and every deletion, which
touches the same session state) runs whole on one thread of its own, in arrival order, and
hands its events to the event loop. Reads (lists, history, device) go to worker threads; the
vault serialises their statements.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import anyio.to_thread
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from smallhold.apps.pocket.assistant import Pocket
from smallhold.apps.pocket.background import Outcome
from smallhold.errors import SmallholdError
from smallhold.kit.home import Home
from smallhold.kit.power import decide
from smallhold.runtime import Delta, GenerationParams
from smallhold.web import AppPages, error_body, error_response, json_error, page_response

log = logging.getLogger("smallhold.pocket.web")
T = TypeVar("T")
Event = dict[str, Any]
SCRIPT = "/static/pocket.js"
NDJSON = "application/x-ndjson"


class ChatIn(BaseModel):
    """The body of ``POST /api/chat``; the settings are optional (the GUI's defaults)."""

    model_config = ConfigDict(extra="forbid")
    conversation: str = Field(min_length=1, max_length=64)
    message: str
    max_tokens: int = Field(512, ge=16, le=4096)
    temperature: float = Field(0.7, ge=0.0, le=2.0)


class Turns:
    """The pocket's one turn thread, and what the last background run did."""

    def __init__(self, pocket: Pocket) -> None:
        self.pocket = pocket
        self.background: list[Outcome] = []
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pocket-web-turn")

    async def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the turn thread, after the turns queued before it."""
        return await asyncio.wrap_future(self._thread.submit(fn))

    def events(self, body: ChatIn) -> AsyncIterator[Event]:
        """Ask on the turn thread; the events arrive here as they are generated."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Event | None] = asyncio.Queue()

        def put(item: Event | None) -> None:
            with contextlib.suppress(RuntimeError):  # a closed loop: the server is stopping
                loop.call_soon_threadsafe(queue.put_nowait, item)

        def turn() -> None:
            params = GenerationParams(max_tokens=body.max_tokens, temperature=body.temperature)
            try:
                for event in self.pocket.ask(body.conversation, body.message, params):
                    if isinstance(event, Delta):
                        put({"type": "delta", "text": event.text})
                    else:
                        power = self.pocket.last.power
                        put({"type": "done", "finish_reason": event.finish_reason,
                             "model": self.pocket.last.model or event.model,
                             "completion_tokens": event.usage.completion_tokens,
                             "power": power.mode if power else None,
                             "notes": list(self.pocket.last.events)})
            except Exception as exc:  # the reader decides what the browser sees
                status, error = error_body(exc)
                put({"type": "error", "status": status, **error["error"]})
                put(None)
                return
            self._maintain()  # before the end, so the device panel then shows what ran
            put(None)

        self._thread.submit(turn)
        return _drain(queue)

    def _maintain(self) -> None:
        """The due background jobs, as the desktop app runs them after a turn."""
        try:
            self.background = self.pocket.maintain()[1]
        except Exception:
            log.exception("pocket's background jobs failed after a web turn")

    def close(self) -> None:
        self._thread.shutdown(wait=True, cancel_futures=True)


async def _drain(queue: asyncio.Queue[Event | None]) -> AsyncIterator[Event]:
    while (item := await queue.get()) is not None:
        yield item


def _line(event: Event) -> bytes:
    return (json.dumps(event, ensure_ascii=False) + "\n").encode()


# -- reads (blocking: run in worker threads) ---------------------------------------------------


def conversations(pocket: Pocket) -> dict[str, Any]:
    return {"conversations": [
        {"name": c.name, "title": c.title, "turns": c.turns, "created_at": c.created_at}
        for c in pocket.store.all()]}


def conversation(pocket: Pocket, name: str) -> dict[str, Any]:
    found = pocket.store.get(name)  # RecordNotFoundError (404) for an unknown name
    return {"name": found.name, "title": found.title, "turns": [
        {"index": t.index, "role": t.role, "content": t.content, "complete": t.complete,
         "at": t.at} for t in pocket.history(name)]}


def device(pocket: Pocket, background: list[Outcome]) -> dict[str, Any]:
    """What the desktop app's Device tab shows, as data."""
    runtime = pocket.runtime
    state = runtime.probe.read()
    power = decide(state, pocket.power_policy)
    model: dict[str, Any] = {"backend": runtime.backend.name}
    manager = runtime.manager
    if manager is not None:
        loaded = {m.name for m in manager.loaded()}
        try:
            plan = manager.plan(pocket.model)
            model |= {"name": plan.model, "tier": plan.tier, "kv_cache": plan.kv_cache,
                      "weights_bits": plan.weights_bits, "summary": plan.describe(),
                      "context": plan.n_ctx, "reasons": list(plan.reasons)}
        except SmallholdError as exc:  # e.g. no installed model fits in RAM now
            model |= {"name": runtime.resolve_model(pocket.model), "reasons": [str(exc)]}
        model["loaded"] = model["name"] in loaded
    else:
        model |= {"name": runtime.resolve_model(pocket.model), "reasons": [], "loaded": True}
    return {
        "ram": {"available": state.available_ram, "total": state.total_ram},
        "battery": {"percent": state.battery_percent, "charging": state.charging},
        "thermal_celsius": state.thermal_celsius,
        "power": {"mode": power.mode, "reason": power.reason, "max_tokens": power.max_tokens},
        "model": model,
        "background": [{"job": o.job, "action": o.action, "detail": o.detail}
                       for o in background],
    }


# -- the page ----------------------------------------------------------------------------------

PAGE = """
<div class="pocket">
  <aside class="sidebar" aria-label="conversations">
    <div class="side-head"><h2>Conversations</h2></div>
    <form id="new-conversation" class="new-conversation" autocomplete="off">
      <input id="new-name" name="name" maxlength="64" placeholder="New chat…"
             aria-label="new conversation name">
      <button type="submit" class="button small">New</button>
    </form>
    <ul id="conversations" class="conversations"></ul>
  </aside>
  <section class="chat" aria-label="chat">
    <div class="chat-head">
      <h1 id="chat-title">default</h1>
      <span id="chat-count" class="muted"></span>
      <button id="delete" type="button" class="button ghost small">Delete</button>
    </div>
    <div id="messages" class="messages" aria-live="polite">
      <p class="empty" id="empty">Ask anything. Conversations are kept in this profile's
        encrypted vault, on this machine.</p>
    </div>
    <form id="composer" class="composer" autocomplete="off">
      <textarea id="message" rows="1" placeholder="Ask something…"
                aria-label="message"></textarea>
      <button id="send" type="submit" class="button">Send</button>
    </form>
  </section>
  <aside class="device" aria-label="device">
    <h2>Device</h2>
    <dl id="device" class="facts">
      <dt>Power</dt><dd><span id="power-mode" class="pill">…</span>
        <span id="power-reason" class="reason"></span></dd>
      <dt>Battery</dt><dd id="battery">…</dd>
      <dt>Memory</dt><dd id="ram">…</dd>
      <dt>Model</dt><dd id="model">…</dd>
    </dl>
    <details id="why-model" hidden><summary>Why this model</summary>
      <ul id="model-reasons" class="reasons"></ul></details>
    <details id="jobs" hidden><summary>Background jobs</summary>
      <ul id="background" class="reasons"></ul></details>
    <h2>Settings</h2>
    <label class="setting">Longest answer (tokens)
      <input id="max-tokens" type="number" min="16" max="4096" value="512"></label>
    <label class="setting">Temperature
      <input id="temperature" type="number" min="0" max="2" step="0.1" value="0.7"></label>
  </aside>
</div>
"""


def pages(pocket: Pocket) -> AppPages:
    """pocket's pages for :func:`smallhold.web.build_web`, over an opened ``pocket``."""
    turns = Turns(pocket)

    async def page(request: Request) -> Response:
        api = request.scope.get("root_path", "") + "/api"
        return page_response(request, "pocket", PAGE, active="pocket", scripts=[SCRIPT],
                             data={"api": api}, body_class="app-pocket")

    async def list_conversations(request: Request) -> Response:
        return JSONResponse(await anyio.to_thread.run_sync(conversations, pocket))

    async def get_conversation(request: Request) -> Response:
        name = request.path_params["name"]
        return JSONResponse(await anyio.to_thread.run_sync(conversation, pocket, name))

    async def delete_conversation(request: Request) -> Response:
        name = request.path_params["name"]
        removed = await turns.call(lambda: pocket.forget_conversation(name))
        return JSONResponse({"name": name, "removed_turns": removed})

    async def device_state(request: Request) -> Response:
        return JSONResponse(await anyio.to_thread.run_sync(device, pocket, turns.background))

    async def chat(request: Request) -> Response:
        try:
            body = ChatIn.model_validate_json(await request.body())
        except ValidationError as exc:
            return json_error(400 if _bad_json(exc) else 422, "invalid_request",
                              _validation_message(exc))
        events = turns.events(body)
        first = await anext(events, None)
        if first is None or first["type"] == "error":
            if first is None:
                return error_response(RuntimeError("the turn ended without an answer"))
            return json_error(first["status"], first["code"], first["message"])

        async def stream() -> AsyncIterator[bytes]:
            yield _line(first)
            async for event in events:
                yield _line(event)

        return StreamingResponse(stream(), media_type=NDJSON)

    return AppPages(name="pocket", title="pocket", on_close=turns.close, routes=[
        Route("/", page, methods=["GET"]),
        Route("/api/conversations", list_conversations, methods=["GET"]),
        Route("/api/conversations/{name}", get_conversation, methods=["GET"]),
        Route("/api/conversations/{name}", delete_conversation, methods=["DELETE"]),
        Route("/api/chat", chat, methods=["POST"]),
        Route("/api/device", device_state, methods=["GET"]),
    ])


def _bad_json(exc: ValidationError) -> bool:
    return any(e["type"] in ("json_invalid", "model_type") for e in exc.errors())


def _validation_message(exc: ValidationError) -> str:
    """One line a person can act on: which field, what is wrong."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "the body"
    if first["type"] == "json_invalid":
        return "the request body is not valid JSON."
    return f"{where}: {first['msg'].lower()}."


__all__ = ["ChatIn", "Turns", "conversation", "conversations", "device", "pages", "pages_for"]



def pages_for(home: Home) -> AppPages:
    """pocket's pages on ``home`` (what its declaration names for the web shell)."""
    return pages(Pocket.on(home))
