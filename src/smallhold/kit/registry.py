"""The apps of the suite, found by looking, not by a list someone must remember to edit.

Every sub-package of :mod:`smallhold.apps` whose ``__init__`` exports ``APP`` (an
:class:`~.spec.AppSpec`) is an app. The kit sits below the apps in the layers, so it
imports them by name, the way a plugin host loads plugins: import-linter sees no upward
import, and the independence contract between apps (``smallhold.apps.*``) still holds.
Reading the declarations imports only each app's ``__init__``, which must stay light.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from typing import TYPE_CHECKING

from smallhold.kit.spec import AppSpec, Command

if TYPE_CHECKING:
    from pydantic import BaseModel

APPS_PACKAGE = "smallhold.apps"


@cache
def _discover(search: tuple[str, ...]) -> tuple[AppSpec, ...]:
    found: list[AppSpec] = []
    for module in sorted(pkgutil.iter_modules(list(search)), key=lambda m: m.name):
        if not module.ispkg or module.name.startswith("_"):
            continue
        package = importlib.import_module(f"{APPS_PACKAGE}.{module.name}")
        spec = getattr(package, "APP", None)
        if spec is None:
            continue
        if not isinstance(spec, AppSpec):
            raise TypeError(f"{package.__name__}.APP is not an AppSpec")
        if spec.name != module.name:
            raise ValueError(f"{package.__name__} declares itself as {spec.name!r}; an app's "
                             "name is its folder's")
        found.append(spec)
    return tuple(found)


def installed() -> tuple[AppSpec, ...]:
    """The declared apps, by name. A folder added to ``smallhold.apps.__path__`` (how a
    test adds a toy app) is found too."""
    package = importlib.import_module(APPS_PACKAGE)
    return _discover(tuple(package.__path__))


def get(name: str) -> AppSpec:
    for spec in installed():
        if spec.name == name:
            return spec
    raise KeyError(name)


def commands() -> dict[str, Command]:
    """Every app's top-level commands by name; two apps claiming one name is an error."""
    table: dict[str, Command] = {}
    owner: dict[str, str] = {}
    for spec in installed():
        for command in spec.commands:
            if command.name in table:
                raise ValueError(f"the command {command.name!r} is declared by both "
                                 f"{owner[command.name]} and {spec.name}")
            table[command.name], owner[command.name] = command, spec.name
    return table


def collection_models() -> dict[str, type[BaseModel]]:
    """Every collection the apps offer to sync, with the model its records must match."""
    models: dict[str, type[BaseModel]] = {}
    for spec in installed():
        models.update(spec.collection_models())
    return models


def forget() -> None:
    """Look again next time (after a test added or removed an app folder)."""
    _discover.cache_clear()


__all__ = ["APPS_PACKAGE", "collection_models", "commands", "forget", "get", "installed"]
