"""Vector memory with decay: see :mod:`.store` for the tables, :mod:`.ranking` and :mod:`.decay`."""

from smallhold.store.memory.decay import DecayPolicy
from smallhold.store.memory.store import Hit, Memory, MemoryEvent, MemoryStore, TextEmbedder

__all__ = ["DecayPolicy", "Hit", "Memory", "MemoryEvent", "MemoryStore", "TextEmbedder"]
