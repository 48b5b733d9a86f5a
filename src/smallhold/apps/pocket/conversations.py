"""Conversations and their turns, kept in the vault as typed collections.

A turn is written before the model is asked (the user's words are never lost to a crash or an
out-of-memory kill mid-answer) and the answer after; an answer cut short is kept and marked
incomplete. Collections ``pocket.conversations`` and ``pocket.turns`` are what sync offers
the user to enable.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, Field

from smallhold.errors import RecordNotFoundError, RecordValidationError
from smallhold.store.collections import Collection
from smallhold.store.handle import VaultHandle

CONVERSATIONS = "pocket.conversations"
TURNS = "pocket.turns"
MAX_MESSAGE_CHARS = 100_000
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class Conversation(BaseModel):
    name: str
    title: str = ""
    created_at: float
    turns: int = 0
    indexed_upto: int = 0  # turns below this index are chunked into vector memory


class Turn(BaseModel):
    conversation: str
    index: int = Field(ge=0)
    role: Literal["user", "assistant"]
    content: str
    at: float
    complete: bool = True


def turn_id(name: str, index: int) -> str:
    return f"{name}:{index:07d}"


class ConversationStore:
    def __init__(self, handle: VaultHandle, *, clock: Callable[[], float] = time.time) -> None:
        self.handle = handle
        self.clock = clock
        self.conversations = Collection(handle, CONVERSATIONS, Conversation, clock=clock)
        self.turns = Collection(handle, TURNS, Turn, clock=clock)

    @staticmethod
    def check_name(name: str) -> str:
        if not _NAME.match(name):
            raise RecordValidationError(
                f"{name!r} is not a conversation name: use up to 64 letters, digits, '.', "
                "'-' or '_', starting with a letter or digit.")
        return name

    def get(self, name: str) -> Conversation:
        try:
            return self.conversations.get(self.check_name(name)).value
        except RecordNotFoundError:
            raise RecordNotFoundError(f"no conversation named {name!r}; `smallhold chat list` "
                                      "shows them.") from None

    def open(self, name: str) -> Conversation:
        """The conversation ``name``, created empty when new."""
        try:
            return self.get(name)
        except RecordNotFoundError:
            conversation = Conversation(name=name, created_at=self.clock())
            self.conversations.put(conversation, name)
            return conversation

    def all(self) -> list[Conversation]:
        return sorted((r.value for r in self.conversations.all()), key=lambda c: c.name)

    def add_turn(self, name: str, role: Literal["user", "assistant"], content: str, *,
                 complete: bool = True) -> Turn:
        if len(content) > MAX_MESSAGE_CHARS:
            raise RecordValidationError(f"a message is at most {MAX_MESSAGE_CHARS:,} "
                                        f"characters (got {len(content):,}); split it.")
        with self.handle.transaction():
            conversation = self.open(name)
            turn = Turn(conversation=name, index=conversation.turns, role=role,
                        content=content, at=self.clock(), complete=complete)
            self.turns.put(turn, turn_id(name, turn.index))
            title = conversation.title or (content[:60] if role == "user" else "")
            self.conversations.put(conversation.model_copy(
                update={"turns": conversation.turns + 1, "title": title}), name)
        return turn

    def recent(self, name: str, limit: int) -> list[Turn]:
        """The newest ``limit`` turns, oldest first."""
        rows = self.turns.where("conversation", name, order_by="index", descending=True,
                                limit=limit)
        return [r.value for r in reversed(rows)]

    def between(self, name: str, start: int, stop: int) -> list[Turn]:
        """Turns with ``start <= index < stop``, oldest first (one query, not one per turn)."""
        rows = self.turns.where("conversation", name, order_by="index")
        return [r.value for r in rows if start <= r.value.index < stop]

    def get_turn(self, name: str, index: int) -> Turn | None:
        try:
            return self.turns.get(turn_id(name, index)).value
        except RecordNotFoundError:
            return None

    def mark_indexed(self, name: str, upto: int) -> None:
        with self.handle.transaction():
            conversation = self.get(name)
            if upto > conversation.indexed_upto:
                self.conversations.put(conversation.model_copy(
                    update={"indexed_upto": upto}), name)

    def remove(self, name: str) -> int:
        """Delete a conversation and its turns; returns how many turns went."""
        with self.handle.transaction():
            conversation = self.get(name)
            for index in range(conversation.turns):
                with contextlib.suppress(RecordNotFoundError):
                    self.turns.delete(turn_id(name, index))
            self.conversations.delete(name)
        return conversation.turns


SYNCED = {CONVERSATIONS: Conversation, TURNS: Turn}  # what pocket offers to sync

__all__ = ["CONVERSATIONS", "SYNCED", "TURNS", "Conversation", "ConversationStore", "Turn",
           "turn_id"]
