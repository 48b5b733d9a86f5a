"""The pocket desktop/mobile app (Toga): conversations, streamed chat, device status, settings.

The window is a thin layer over :class:`~smallhold.apps.pocket.assistant.Pocket`: the model
runs in a worker thread and hands each piece of the answer to the event loop, which appends
it to the transcript, so the interface stays responsive while a small device thinks. Until
the first piece arrives (a model loading, a long prompt being read) a spinner turns and the
status line counts the seconds; Stop cancels the answer (what arrived is kept, marked
incomplete); the model picker offers the installed chat models. Toga's
``toga-dummy`` backend runs the same code in tests; GTK runs it on the Linux desktop, and
Briefcase packages it for Android and iOS (see ``docs/mobile.md``).
"""

from __future__ import annotations

import asyncio
import textwrap
import threading
from collections.abc import Callable
from typing import Any

import toga
from toga.style import Pack

from smallhold.apps.pocket.assistant import Pocket
from smallhold.apps.pocket.background import Outcome
from smallhold.errors import SmallholdError
from smallhold.kit.power import decide
from smallhold.runtime import CancelToken, Delta, GenerationParams

APP_ID = "org.smallhold.pocket"
WRAP = 100
_DONE = object()


class PocketApp(toga.App):
    """One window: conversation list and chat, device status and settings as tabs."""

    def __init__(self, pocket_factory: Callable[[], Pocket], **kwargs: Any) -> None:
        self._factory = pocket_factory
        self.params = GenerationParams(max_tokens=512, temperature=0.7)
        super().__init__(formal_name="smallhold pocket", app_id=APP_ID, **kwargs)

    # -- building -------------------------------------------------------------------------

    def startup(self) -> None:
        self.pocket = self._factory()
        self.current = "default"
        self.busy = False
        self.background: list[Outcome] = []
        self._raw = ""
        self.conversations = toga.Selection(on_change=self._on_pick,
                                            style=Pack(flex=1))
        new = toga.Button("New", on_press=self._on_new)
        self.new_name = toga.TextInput(placeholder="new conversation name", style=Pack(flex=1))
        # Labels in scroll containers, not read-only text views: toga-gtk 0.5.3's text view
        # spins GTK's loop on every change, which deadlocks with PyGObject 3.50's asyncio loop
        self.transcript = toga.Label("", style=Pack(margin=8))
        self.message = toga.TextInput(placeholder="Ask something…",
                                      on_confirm=self._on_send,  # type: ignore[arg-type]
                                      style=Pack(flex=1))
        self.send_button = toga.Button("Send", on_press=self._on_send)
        self.stop_button = toga.Button("Stop", on_press=self._on_stop, enabled=False)
        self.spinner = toga.ActivityIndicator()
        self.status = toga.Label("")
        self.cancel: CancelToken | None = None
        self.models = toga.Selection(items=self.chat_models())
        self.models.value = self.pocket.runtime.resolve_model(self.pocket.model)
        self.models.on_change = self._on_model  # after the first value: not a user's pick
        chat = toga.Box(children=[
            toga.Box(children=[self.conversations, self.new_name, new, self.models]),
            toga.ScrollContainer(content=self.transcript, horizontal=False,
                                 style=Pack(flex=1)),
            toga.Box(children=[self.message, self.send_button, self.stop_button]),
            toga.Box(children=[self.spinner, self.status]),
        ], style=Pack(direction="column", flex=1))
        self.device = toga.Label("", style=Pack(margin=8))
        self.max_tokens = toga.NumberInput(min=16, max=4096, value=self.params.max_tokens,
                                           on_change=self._on_settings)
        self.temperature = toga.NumberInput(min=0, max=2, step=0.1,
                                            value=self.params.temperature,
                                            on_change=self._on_settings)
        settings = toga.Box(children=[
            toga.Label("Longest answer (tokens)"), self.max_tokens,
            toga.Label("Temperature"), self.temperature,
        ], style=Pack(direction="column"))
        self.tabs = toga.OptionContainer(content=[
            ("Chat", chat), ("Device", toga.ScrollContainer(content=self.device)),
            ("Settings", settings)],
            style=Pack(flex=1))
        window = toga.MainWindow(title=self.formal_name)  # type: ignore[no-untyped-call]
        window.content = self.tabs
        self.main_window = window
        window.show()  # first: toga-gtk flushes GTK events when a text view changes
        self.refresh_conversations()
        self.show_conversation(self.current)
        self.refresh_device()

    # -- state → widgets ------------------------------------------------------------------

    def chat_models(self) -> list[str]:
        """The chat models this device can answer with (installed or assemblable; yours)."""
        runtime = self.pocket.runtime
        if runtime.manager is None:
            return [runtime.resolve_model(self.pocket.model)]
        from smallhold.runtime import assets
        from smallhold.runtime.registry import MODELS
        from smallhold.runtime.usermodels import UserModels

        specs = [*MODELS, *UserModels(runtime.paths).specs()]
        return [s.name for s in specs if s.kind == "chat" and assets.status(
            s, runtime.paths.models_dir).status in ("ready", "assemblable")]

    def refresh_conversations(self) -> None:
        names = [c.name for c in self.pocket.store.all()]
        if self.current not in names:
            names.append(self.current)
        self.conversations.items = sorted(names)
        self.conversations.value = self.current

    def show_conversation(self, name: str) -> None:
        self.current = name
        lines = []
        for turn in self.pocket.history(name):
            who = "You" if turn.role == "user" else "pocket"
            lines.append(f"{who}: {turn.content}{'' if turn.complete else ' […]'}")
        self._set_transcript("\n\n".join(lines))

    def refresh_device(self) -> None:
        runtime = self.pocket.runtime
        state = runtime.probe.read()
        power = decide(state, self.pocket.power_policy)
        lines = [f"RAM: {state.available_ram / 2**30:.1f} GiB free of "
                 f"{state.total_ram / 2**30:.1f} GiB"]
        if state.battery_percent is not None:
            lines.append(f"Battery: {state.battery_percent:.0f} %"
                         f"{' (charging)' if state.charging else ''}")
        lines.append(f"Power policy: {power.mode} — {power.reason}")
        if runtime.manager is not None:
            plan = runtime.manager.plan(self.pocket.model)
            lines += [f"Model: {plan.model} ({plan.describe()})",
                      *(f"  • {r}" for r in plan.reasons)]
        else:
            lines.append(f"Model: {runtime.resolve_model(self.pocket.model)} "
                         f"({runtime.backend.name} backend)")
        lines += [f"Background {o.job}: {o.action} ({o.detail})" for o in self.background]
        self.device.text = "\n".join(lines)
        self.status.text = f"{power.mode}: {power.reason}"

    def _set_transcript(self, raw: str) -> None:
        """Labels do not wrap, so the transcript is wrapped here (raw text kept for appends)."""
        self._raw = raw
        self.transcript.text = "\n".join(textwrap.fill(line, WRAP) if line else ""
                                          for line in raw.split("\n"))

    # -- events ---------------------------------------------------------------------------

    def _on_pick(self, widget: Any, **kwargs: Any) -> None:
        if widget.value and widget.value != self.current:
            self.show_conversation(str(widget.value))

    def _on_new(self, widget: Any, **kwargs: Any) -> None:
        name = (self.new_name.value or "").strip()
        try:
            self.pocket.store.check_name(name)
        except SmallholdError as exc:
            self.status.text = str(exc)
            return
        self.current = name
        self.new_name.value = ""
        self.refresh_conversations()
        self.show_conversation(name)

    def _on_model(self, widget: Any, **kwargs: Any) -> None:
        if widget.value and widget.value != self.pocket.model:
            self.pocket.model = str(widget.value)
            self.refresh_device()

    def _on_stop(self, widget: Any, **kwargs: Any) -> None:
        if self.cancel is not None:
            self.cancel.cancel()
            self.status.text = "stopping…"

    def _on_settings(self, widget: Any, **kwargs: Any) -> None:
        self.params = GenerationParams(
            max_tokens=int(self.max_tokens.value or 512),
            temperature=float(self.temperature.value if self.temperature.value is not None
                              else 0.7))

    async def _on_send(self, widget: Any, **kwargs: Any) -> None:
        text = (self.message.value or "").strip()
        if text and not self.busy:
            self.message.value = ""
            await self.send(text)

    async def send(self, text: str) -> str:
        """Ask in the current conversation, streaming into the transcript; returns the answer."""
        self.busy = True
        self.send_button.enabled = False
        self.stop_button.enabled = True
        self.cancel = cancel = CancelToken()
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[object] = asyncio.Queue()
        prefix = f"{self._raw}\n\n" if self._raw else ""
        self._set_transcript(f"{prefix}You: {text}\n\npocket: ")
        name, params = self.current, self.params

        def work() -> None:
            try:
                for event in self.pocket.ask(name, text, params, cancel=cancel):
                    if isinstance(event, Delta):
                        loop.call_soon_threadsafe(pieces.put_nowait, event.text)
                self.background = self.pocket.maintain()[1]  # due jobs, if power allows
            except SmallholdError as exc:
                loop.call_soon_threadsafe(pieces.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(pieces.put_nowait, _DONE)

        threading.Thread(target=work, name="pocket-answer", daemon=True).start()
        answer: list[str] = []
        waiting = asyncio.ensure_future(self._count_up())
        try:
            while (item := await pieces.get()) is not _DONE:
                if isinstance(item, SmallholdError):
                    self.status.text = str(item)
                    continue
                waiting.cancel()
                self.spinner.stop()
                answer.append(str(item))
                self._set_transcript(self._raw + str(item))
        finally:
            waiting.cancel()
            self.spinner.stop()
            self.busy = False
            self.send_button.enabled = True
            self.stop_button.enabled = False
            stopped = cancel.cancelled
            self.cancel = None
        self.refresh_conversations()
        self.refresh_device()
        if stopped:
            self.status.text = "stopped: the answer so far is kept"
        return "".join(answer)

    async def _count_up(self) -> None:
        """The spinner and the seconds, until the first piece of the answer."""
        started = loop_time = asyncio.get_running_loop().time()
        self.spinner.start()
        while True:
            self.status.text = f"thinking… {loop_time - started:.0f} s"
            await asyncio.sleep(0.5)
            loop_time = asyncio.get_running_loop().time()


def run_app(pocket_factory: Callable[[], Pocket]) -> None:
    """Start the app on the platform's backend (GTK on Linux) and block until it closes."""
    PocketApp(pocket_factory).main_loop()


def main() -> None:
    """The packaged app's entry point (Briefcase): the default profile's pocket."""
    from smallhold.apps.pocket.assistant import open_pocket

    with open_pocket() as pocket:
        run_app(lambda: pocket)


__all__ = ["APP_ID", "PocketApp", "main", "run_app"]
