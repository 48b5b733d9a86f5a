"""The agent's work as it happens, on a terminal: what the model is writing, token by token.

A run sat on "iteration 1: planning" for two minutes with nothing moving. On a terminal the
CLI now shows a panel with the last lines of the model's reply as they are generated, under
a line naming the step, the tokens so far and the seconds; each step's note stays printed
above it. Off a terminal (a pipe, ``--json``) nothing changes: the notes are lines on stderr.
Approvals stop the panel while they ask, so the question and the answer are not drawn over.
"""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.text import Text

from smallhold.apps.code import approval

SHOWN_LINES = 12


class LiveView:
    """The panel; :meth:`step` and :meth:`token` are the agent's ``notify`` and ``watch``."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.status = "starting"
        self.text = ""
        self.tokens = 0
        self.started = time.monotonic()
        self.live = Live(self._render(), console=console, transient=True,
                         refresh_per_second=8, auto_refresh=True)

    def __enter__(self) -> LiveView:
        self.live.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.live.stop()

    def step(self, message: str) -> None:
        """A new step: its note is printed above the panel and the panel starts empty."""
        self.live.console.print(Text(message, style="dim"))
        self.status, self.text, self.tokens, self.started = message, "", 0, time.monotonic()
        self.live.update(self._render())

    def token(self, piece: str) -> None:
        self.text += piece
        self.tokens += 1
        self.live.update(self._render())

    def _render(self) -> Panel | Group:
        seconds = time.monotonic() - self.started
        title = f"{self.status} · {self.tokens} tokens · {seconds:.0f} s"
        if not self.text:
            return Group(Text(title, style="dim"))
        lines = self.text.splitlines()[-SHOWN_LINES:]
        return Panel(Text("\n".join(lines)), title=title, title_align="left",
                     border_style="dim")

    def paused(self, decider: approval.Decider) -> approval.Decider:
        """``decider`` with the panel stopped while it asks someone."""
        view = self

        class Paused:
            def decide(self, request: approval.Request) -> approval.Decision:
                view.live.stop()
                try:
                    return decider.decide(request)
                finally:
                    view.live.start()

        return Paused()
