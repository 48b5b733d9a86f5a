"""pocket: an offline-first assistant on a small language model.

Layout: ``conversations`` (the typed collections), ``chunking`` / ``window`` (semantic
context, pure), ``assistant`` (a turn), ``background`` (its jobs on the suite scheduler),
``gui`` (the desktop app), ``web`` (the browser page), ``cli`` (``smallhold chat``).
This module only declares the app; it imports nothing heavy.
"""

from smallhold.apps.pocket.errors import PocketError
from smallhold.kit.spec import AppSpec, Command, Ref

APP = AppSpec(
    name="pocket",
    summary="An offline-first assistant on a small local model.",
    errors=PocketError,
    commands=[Command("chat", Ref("smallhold.apps.pocket.cli:chat"),
                      "Chat with the local model (pocket).")],
    collections=Ref("smallhold.apps.pocket.conversations:SYNCED"),
    jobs=Ref("smallhold.apps.pocket.background:jobs"),
    web=Ref("smallhold.apps.pocket.web:pages_for"),
)

__all__ = ["APP"]
