"""What an app declares about itself, once, in its package's ``__init__.py``.

The CLI, the web shell, sync and the import-linter contract read these declarations
(:mod:`.registry`) instead of being edited for each app, so adding an app touches only its
own folder. Everything heavy is named by a ``"module:attribute"`` reference and imported
only when used: ``smallhold --help`` reads every app's declaration and must stay instant,
and one app's extra (ffmpeg bindings, Slack's SDK) must never slow down another's commands.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, TypeVar

from smallhold.errors import ConfigError, SmallholdError

if TYPE_CHECKING:
    import click
    from pydantic import BaseModel

    from smallhold.kit.home import Home
    from smallhold.kit.jobs import Job
    from smallhold.store.migrations import Migration

T = TypeVar("T")


@dataclass(frozen=True)
class Ref(Generic[T]):
    """A lazy ``"package.module:attribute"`` reference; :meth:`load` imports it.

    ``extra`` names the pip extra that provides the module's dependencies, so a missing
    one is a one-line :class:`ConfigError` saying what to install rather than a traceback.
    """

    target: str
    extra: str | None = None

    def __post_init__(self) -> None:
        module, _, attribute = self.target.partition(":")
        if not module or not attribute:
            raise ValueError(f"a reference is 'package.module:attribute', not {self.target!r}")

    def load(self) -> T:
        module_name, _, attribute = self.target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if self.extra is None or (exc.name or "").split(".")[0] == "smallhold":
                raise
            raise ConfigError(
                f"{module_name} needs the '{self.extra}' extra ({exc.name} is missing): "
                f"pip install 'smallhold[{self.extra}]' (scripts/setup.sh installs it)."
            ) from exc
        value: T = getattr(module, attribute)
        return value


@dataclass(frozen=True)
class Command:
    """A top-level ``smallhold NAME`` command an app adds (a click command or group)."""

    name: str
    ref: Ref[click.Command]
    help: str


# What an app's optional parts are, once loaded: built from the home, so no app wires its
# own vault, runtime or trace, and tests pass a home with a scripted backend.
JobsFactory = Callable[["Home"], "Sequence[Job]"]
WebFactory = Callable[["Home"], Any]  # -> smallhold.web.AppPages (the web shell's type)
Collections: TypeAlias = "Mapping[str, type[BaseModel]]"


@dataclass(frozen=True)
class AppSpec:
    """One app of the suite.

    - ``commands``: its top-level CLI commands (``chat``, ``code``).
    - ``errors``: the root of its exceptions, a :class:`SmallholdError` subclass, so callers
      can catch one app's failures and the docs can list them.
    - ``collections``: the typed vault collections it writes (name -> pydantic model), which
      sync offers and validates incoming records against.
    - ``migrations``: its own tables, as ``(scope, migrations)``, applied when a home opens
      for this app.
    - ``jobs``: its periodic background jobs, built from a home.
    - ``web``: its pages for the web shell, built from a home.
    - ``context_tokens``: the least context length its prompts need (the code agent's
      project files do not fit a chat-sized window).
    """

    name: str
    summary: str
    errors: type[SmallholdError]
    commands: Sequence[Command] = ()
    collections: Ref[Collections] | None = None
    migrations: Ref[tuple[str, Sequence[Migration]]] | None = None
    jobs: Ref[JobsFactory] | None = None
    web: Ref[WebFactory] | None = None
    context_tokens: int | None = None
    extra: str | None = None
    tags: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if not self.name.isidentifier() or self.name != self.name.lower():
            raise ValueError(f"an app name is a lower-case identifier, not {self.name!r}")
        if not issubclass(self.errors, SmallholdError):
            raise TypeError(f"{self.name}'s error root must subclass SmallholdError")

    def collection_models(self) -> dict[str, type[BaseModel]]:
        """The collections it offers to sync; loading them imports the app's models."""
        if self.collections is None:
            return {}
        models = dict(self.collections.load())
        strangers = [name for name in models if not name.startswith(f"{self.name}.")
                     and not name.startswith(f"{self.name}_")]
        if strangers:
            raise ValueError(f"{self.name}'s collections must be named {self.name}.* or "
                             f"{self.name}_*: {strangers}")
        return models


__all__ = ["AppSpec", "Collections", "Command", "JobsFactory", "Ref", "WebFactory"]
