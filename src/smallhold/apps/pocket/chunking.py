"""Semantic chunking: split old conversation into pieces at topic boundaries.

A boundary falls where the embedding similarity of two neighbouring sentences drops: below an
absolute floor, or well below the similarity typical of this stretch of text (mean minus one
standard deviation), which adapts to embedders whose scores sit higher or lower. Chunks also
end at a size limit so one recalled chunk never eats the budget. Pure functions over
sentences and their vectors; the caller embeds.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
FLOOR = 0.2
MAX_CHUNK_CHARS = 700


def split_sentences(text: str) -> list[str]:
    """Sentences by end punctuation and line breaks; fragments under 2 chars dropped."""
    return [s.strip() for s in _SENTENCE_END.split(text) if len(s.strip()) >= 2]


@dataclass(frozen=True)
class Piece:
    """A sentence and where it came from (a turn index), so chunks can cite their turns."""

    text: str
    turn: int


@dataclass(frozen=True)
class Chunk:
    text: str
    first_turn: int
    last_turn: int
    vector: NDArray[np.float32]


def _unit(vectors: NDArray[np.float32]) -> NDArray[np.float32]:
    norms = np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-9)
    return np.asarray(vectors / norms, dtype=np.float32)


def gap_similarity(vectors: NDArray[np.float32], width: int = 2) -> NDArray[np.float32]:
    """Similarity across each gap between neighbouring sentences, ``width`` on each side.

    One sentence against the next is noisy (a short reply resembles nothing); comparing the
    mean of the few sentences before a gap with the few after it follows the topic instead.
    """
    unit = _unit(vectors)
    sims = np.empty(len(unit) - 1, np.float32)
    for gap in range(1, len(unit)):
        left = unit[max(0, gap - width):gap].mean(axis=0)
        right = unit[gap:gap + width].mean(axis=0)
        sims[gap - 1] = float(_unit(left) @ _unit(right))
    return sims


def boundaries(vectors: NDArray[np.float32], *, floor: float = FLOOR,
               width: int = 2) -> list[int]:
    """Indices ``i`` where a new topic starts at sentence ``i`` (never 0)."""
    if len(vectors) < 2:
        return []
    sims = gap_similarity(vectors, width)
    cut = max(floor, float(sims.mean() - sims.std())) if len(sims) >= 3 else floor
    return [i + 1 for i, s in enumerate(sims) if s < cut]


def topic_chunks(pieces: Sequence[Piece], vectors: NDArray[np.float32], *,
                 floor: float = FLOOR, max_chars: int = MAX_CHUNK_CHARS) -> list[Chunk]:
    """Group consecutive pieces into chunks at topic boundaries and the size limit.

    A chunk's vector is the normalised mean of its sentences' vectors, so storing it needs no
    second embedding pass.
    """
    if len(pieces) != len(vectors):
        raise ValueError("one vector per piece")
    starts = set(boundaries(vectors, floor=floor))
    groups: list[list[int]] = []
    size = 0
    for i, piece in enumerate(pieces):
        if not groups or i in starts or size + len(piece.text) > max_chars:
            groups.append([])
            size = 0
        groups[-1].append(i)
        size += len(piece.text) + 1
    chunks = []
    for group in groups:
        mean = vectors[group].mean(axis=0)
        mean = mean / max(float(np.linalg.norm(mean)), 1e-9)
        chunks.append(Chunk(" ".join(pieces[i].text for i in group), pieces[group[0]].turn,
                            pieces[group[-1]].turn, mean.astype(np.float32)))
    return chunks


__all__ = ["Chunk", "Piece", "boundaries", "split_sentences", "topic_chunks"]
