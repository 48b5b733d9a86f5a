"""How a command opens its home: the same :class:`~.home.Home` as everyone, plus whatever a
test put in click's context object (:class:`~.home.Overrides`).

This is how a CLI test runs a real command on a scripted backend and a simulated phone:
``CliRunner().invoke(main, ["chat", "hi"], obj=Overrides(probe=simulated(3, battery=4)))``.
"""

from __future__ import annotations

from dataclasses import replace

import click

from smallhold.config import Settings
from smallhold.kit.home import Home, Overrides
from smallhold.kit.io import ConsoleIO
from smallhold.kit.spec import AppSpec
from smallhold.runtime.backends.base import ChatBackend


def overrides() -> Overrides:
    """What the running command's context supplies (nothing outside a test)."""
    ctx = click.get_current_context(silent=True)
    found = ctx.find_object(Overrides) if ctx is not None else None
    return found or Overrides()


def open_home(profile: str | None, *, app: AppSpec | str | None = None, quiet: bool = False,
              settings: Settings | None = None, backend: ChatBackend | None = None) -> Home:
    """The home of ``profile`` for a command; ``quiet`` (``--json``) keeps progress notes
    off stderr; ``settings`` are the command's own (``serve --model`` changes the default
    model) and ``backend`` its own (a running server's), used unless a test supplied some."""
    given = overrides()
    if given.io is None:
        given = replace(given, io=ConsoleIO(quiet=quiet))
    if given.settings is None and settings is not None:
        given = replace(given, settings=settings)
    if given.backend is None and backend is not None:
        given = replace(given, backend=backend)
    return Home.open(profile, app=app, overrides=given)


__all__ = ["open_home", "overrides"]
