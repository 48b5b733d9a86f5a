"""The chat loop: line editing, history and slash commands that never reach the model.

``input()`` gave no line editing (the Up arrow printed ``^[[A``) and sent ``/help`` to the
model, which answered it and saved it. The loop reads lines with prompt_toolkit (arrows,
history, Ctrl-R search) and handles ``/...`` itself. History lives in memory only, seeded
from the conversation's own earlier questions, which are in the vault: a history file on disk
would keep the user's words outside it.

:func:`command` is pure (a line and the chat's settings in, what to do out), so the slash
commands are tested without a terminal; :func:`run` is the loop around it.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from smallhold.runtime import GenerationParams

HELP = """\
/help                this list
/bye                 leave (also Ctrl-D or an empty line)
/clear               start afresh: later questions do not see earlier ones (the old
                     conversation stays saved)
/set temperature T   /set max-tokens N   /set seed N   /set system TEXT
/set                 the current settings
/model [NAME]        the model in use, or switch to NAME (`smallhold models list`)
/save NAME           keep this conversation under NAME as well"""


@dataclass(frozen=True)
class Settings:
    """What the loop is using now; commands return a changed copy."""

    conversation: str
    params: GenerationParams
    model: str | None = None
    system: str | None = None


@dataclass(frozen=True)
class Action:
    """What a line asks for: ``say`` is text to print; ``ask`` a question for the model;
    ``settings`` the settings from now on; ``save_as`` a name to copy the conversation
    to; ``switch_model`` a model to check and load; ``quit`` to leave."""

    settings: Settings
    say: str = ""
    ask: str = ""
    save_as: str = ""
    switch_model: str = ""
    quit: bool = False


_SETTABLE = {"temperature": ("temperature", float), "max-tokens": ("max_tokens", int),
             "max_tokens": ("max_tokens", int), "seed": ("seed", int)}


def _set(settings: Settings, args: Sequence[str]) -> Action:
    p = settings.params
    if not args:
        shown = [f"conversation {settings.conversation}",
                 f"model {settings.model or '(the default)'}", f"temperature {p.temperature}",
                 f"max-tokens {p.max_tokens}",
                 f"seed {p.seed if p.seed is not None else '(random)'}"]
        if settings.system:
            shown.append(f"system {settings.system!r}")
        return Action(settings, say="; ".join(shown))
    key, values = args[0].lower(), list(args[1:])
    if key == "system":
        if not values:
            return Action(settings, say="usage: /set system TEXT")
        text = " ".join(values)
        return Action(replace(settings, system=text), say=f"system prompt set ({len(text)} "
                                                          "characters)")
    if key not in _SETTABLE or len(values) != 1:
        return Action(settings, say="usage: /set temperature T | max-tokens N | seed N | "
                                    "system TEXT")
    name, kind = _SETTABLE[key]
    try:
        value = kind(values[0])
        params = p.model_copy(update={name: value})
        GenerationParams.model_validate(params.model_dump())  # the same bounds as the CLI's
    except ValueError as exc:
        return Action(settings, say=f"{key} {values[0]!r} is not valid: {exc}".splitlines()[0])
    return Action(replace(settings, params=params), say=f"{key} = {value}")


def command(line: str, settings: Settings) -> Action:
    """What ``line`` asks for. Anything not starting with ``/`` is a question; ``//x``
    sends ``/x`` to the model (a question that starts with a slash)."""
    text = line.strip()
    if not text:
        return Action(settings, quit=True)
    if not text.startswith("/"):
        return Action(settings, ask=text)
    if text.startswith("//"):
        return Action(settings, ask=text[1:])
    try:
        name, *args = shlex.split(text[1:])
    except ValueError:  # an unbalanced quote
        name, *args = text[1:].split()
    name = name.lower()
    if name in ("bye", "exit", "quit"):
        return Action(settings, quit=True)
    if name in ("help", "?"):
        return Action(settings, say=HELP)
    if name == "clear":
        fresh = _next_name(settings.conversation)
        return Action(replace(settings, conversation=fresh),
                      say=f"context cleared: now in conversation {fresh!r} "
                          f"({settings.conversation!r} is kept: smallhold chat show "
                          f"{settings.conversation})")
    if name == "set":
        return _set(settings, args)
    if name == "model":
        if not args:
            return Action(settings, say=f"model: {settings.model or '(the default)'}")
        return Action(settings, switch_model=args[0])
    if name == "save":
        if len(args) != 1:
            return Action(settings, say="usage: /save NAME")
        return Action(settings, save_as=args[0])
    return Action(settings, say=f"unknown command /{name}; /help lists them (start with // "
                                "to send a line beginning with / to the model)")


def _next_name(name: str) -> str:
    stem, _, number = name.rpartition("-")
    if stem and number.isdigit():
        return f"{stem}-{int(number) + 1}"
    return f"{name}-2"


Reader = Callable[[str], str]


def reader(history: Sequence[str], *, input: Any = None, output: Any = None) -> Reader:
    """A line reader with editing and in-memory history (earlier questions first); ``input``
    and ``output`` are prompt_toolkit's, for tests (a pipe input, a dummy output)."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import InMemoryHistory

    remembered = InMemoryHistory()
    for line in history:
        remembered.append_string(line)
    session: PromptSession[str] = PromptSession(history=remembered, input=input,
                                                output=output, enable_history_search=True)
    return lambda prompt: session.prompt(prompt)
