"""Consolidation as a pure plan: which memories fade, which merge, which are archived, and why.

A memory's weight is a function of the time since it was last reinforced, halving every
``half_life`` scaled by importance (an important memory fades up to three times slower), so
running the pass twice gives the same weights: nothing compounds. Near-duplicates of one kind
(cosine at or above ``merge_threshold``) fold into the stronger one, keeping both texts'
tags and reinforcements. A weight under ``archive_floor`` archives the memory: out of recall,
still on disk, restorable. The applier in :mod:`smallhold.store.memory.store` records every
action with its numbers, which is how a user can see why something was forgotten.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class DecayPolicy:
    half_life_s: float = 60 * 86400.0
    merge_threshold: float = 0.95
    archive_floor: float = 0.05
    min_change: float = 0.01  # smaller weight changes are not worth a row in the history


@dataclass(frozen=True)
class Candidate:
    """What the planner needs of one live memory."""

    id: str
    kind: str
    weight: float
    importance: float
    reinforced_at: float
    reinforcements: int
    vector: NDArray[np.float32]


@dataclass(frozen=True)
class Fade:
    id: str
    old: float
    new: float
    idle_days: float


@dataclass(frozen=True)
class Merge:
    keep: str
    drop: str
    similarity: float


@dataclass(frozen=True)
class Archive:
    id: str
    weight: float
    floor: float


Action = Fade | Merge | Archive


def decayed_weight(importance: float, idle_s: float, policy: DecayPolicy) -> float:
    half_life = policy.half_life_s * (1.0 + 2.0 * min(1.0, max(0.0, importance)))
    return math.pow(0.5, max(0.0, idle_s) / half_life)


def plan(memories: Sequence[Candidate], now: float, policy: DecayPolicy = DecayPolicy()
         ) -> list[Action]:
    """Merges first (so a duplicate's reinforcements count for the survivor), then fades."""
    actions: list[Action] = []
    dropped: set[str] = set()
    by_kind: dict[str, list[Candidate]] = {}
    for memory in memories:
        by_kind.setdefault(memory.kind, []).append(memory)
    for group in by_kind.values():
        # Strongest first, so each duplicate folds into the best of its cluster.
        group.sort(key=lambda m: (-m.importance, -m.reinforcements, -m.reinforced_at, m.id))
        if len(group) > 1:
            matrix = np.stack([m.vector for m in group]).astype(np.float32)
            sims = matrix @ matrix.T
            for i, keep in enumerate(group):
                if keep.id in dropped:
                    continue
                for j in range(i + 1, len(group)):
                    other = group[j]
                    if other.id not in dropped and sims[i, j] >= policy.merge_threshold:
                        dropped.add(other.id)
                        actions.append(Merge(keep.id, other.id, float(sims[i, j])))
    for memory in memories:
        if memory.id in dropped:
            continue
        new = decayed_weight(memory.importance, now - memory.reinforced_at, policy)
        if new < policy.archive_floor:
            actions.append(Archive(memory.id, new, policy.archive_floor))
        elif abs(new - memory.weight) >= policy.min_change:
            actions.append(Fade(memory.id, memory.weight, new,
                                (now - memory.reinforced_at) / 86400.0))
    return actions


__all__ = ["Action", "Archive", "Candidate", "DecayPolicy", "Fade", "Merge", "decayed_weight",
           "plan"]
