"""The app kit: what every app of the suite stands on.

- :class:`Home` (``home.py``): one opened profile: settings, vault, traced runtime,
  embedder, the durable engine and the user I/O seam, each injectable through
  :class:`Overrides`.
- :class:`AppSpec` (``spec.py``): an app's one declaration; :mod:`.registry` finds them.
- ``jobs.py`` / ``power.py``: periodic background jobs under one power policy.
- ``io.py``: questions, approvals and progress, for the terminal or for tests.

Names are imported on first use: every app's ``__init__`` imports :mod:`.spec` to declare
itself, and ``smallhold --help`` reads those declarations, so importing this package must
not pull in the runtime and the store.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from smallhold.kit.home import Home, Overrides, opened
    from smallhold.kit.io import ConsoleIO, ScriptedIO, UserIO
    from smallhold.kit.jobs import Job, Jobs, Outcome
    from smallhold.kit.power import PowerDecision, PowerPolicy, decide
    from smallhold.kit.spec import AppSpec, Command, Ref

_WHERE = {
    "Home": "home", "Overrides": "home", "opened": "home",
    "ConsoleIO": "io", "ScriptedIO": "io", "UserIO": "io",
    "Job": "jobs", "Jobs": "jobs", "Outcome": "jobs",
    "PowerDecision": "power", "PowerPolicy": "power", "decide": "power",
    "AppSpec": "spec", "Command": "spec", "Ref": "spec",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'smallhold.kit' has no attribute {name!r}")
    return getattr(importlib.import_module(f"smallhold.kit.{_WHERE[name]}"), name)


__all__ = ["AppSpec", "Command", "ConsoleIO", "Home", "Job", "Jobs", "Outcome", "Overrides",
           "PowerDecision", "PowerPolicy", "Ref", "ScriptedIO", "UserIO", "decide", "opened"]
