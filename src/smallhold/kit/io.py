"""The one seam between an app and the person using it: questions, approvals, progress.

Apps never call ``input()``, ``click.confirm`` or print progress themselves; they ask their
home's :class:`UserIO`. The terminal gets :class:`ConsoleIO`; tests, the server and scripts
get :class:`ScriptedIO` (answers from a list, everything said recorded), so an approval
path is tested without a terminal, and a run with no one to ask refuses instead of hanging.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@runtime_checkable
class UserIO(Protocol):
    @property
    def interactive(self) -> bool:
        """Whether someone can answer questions now (a terminal on both ends)."""
        ...

    def confirm(self, question: str) -> bool:
        """Yes or no; without anyone to ask, no."""
        ...

    def notify(self, message: str) -> None:
        """Progress or a note for the person, never a result (results go to stdout)."""
        ...


class ConsoleIO:
    """The terminal: questions and notes on stderr, so stdout stays the command's output."""

    def __init__(self, *, quiet: bool = False, interactive: bool | None = None) -> None:
        self.quiet = quiet
        self._interactive = interactive

    @property
    def interactive(self) -> bool:
        if self._interactive is not None:
            return self._interactive
        return sys.stdin.isatty() and sys.stderr.isatty()

    def confirm(self, question: str) -> bool:
        if not self.interactive:
            return False
        import click

        return bool(click.confirm(question, err=True))

    def notify(self, message: str) -> None:
        if self.quiet:
            return
        from rich.markup import escape

        from smallhold.console import err_console

        err_console.print(f"[dim]{escape(message)}[/dim]", highlight=False)


@dataclass
class ScriptedIO:
    """Answers from a list (an exhausted list answers no); records what it was told."""

    answers: list[bool] = field(default_factory=list)
    interactive: bool = True
    asked: list[str] = field(default_factory=list)
    said: list[str] = field(default_factory=list)

    @classmethod
    def answering(cls, answers: Iterable[bool]) -> ScriptedIO:
        return cls(answers=list(answers))

    def confirm(self, question: str) -> bool:
        self.asked.append(question)
        return self.answers.pop(0) if self.answers and self.interactive else False

    def notify(self, message: str) -> None:
        self.said.append(message)


__all__ = ["ConsoleIO", "ScriptedIO", "UserIO"]
