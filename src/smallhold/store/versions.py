"""One version of one record: what the change log keeps and device sync exchanges.

Collections write versions (:mod:`smallhold.store.collections`) and sync merges them
(:mod:`smallhold.store.sync.merge`); the type lives here, below both, so writing a record
never imports the sync package.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Op = Literal["put", "delete", "merge"]


@dataclass(frozen=True)
class Version:
    """One version of one record as the log keeps it."""

    version: str
    parents: tuple[str, ...]
    op: Op
    data: Any
    origin: str
    at: float
    keep: str | None = None  # for a merge: the parent whose value it carries

    @property
    def deleted(self) -> bool:
        """A merge keeping a tombstone carries ``data=None`` and stays deleted."""
        return self.op == "delete" or (self.op == "merge" and self.data is None)


__all__ = ["Op", "Version"]
