"""Hybrid recall score: meaning, words, and how alive a memory still is, in one number.

Vector similarity finds paraphrases, FTS5 finds exact names and numbers the embedding blurs
("X1234567"), and strength (recency of reinforcement, importance, decayed weight) breaks ties
in favour of what the user keeps coming back to. The weights sum to one so a score is
comparable across queries; they were chosen so that a strong semantic match beats a
keyword-only match, and a keyword hit lifts an otherwise middling semantic one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

VECTOR_WEIGHT = 0.60
KEYWORD_WEIGHT = 0.25
STRENGTH_WEIGHT = 0.15
RECENCY_HALF_LIFE_S = 30 * 86400.0


@dataclass(frozen=True)
class ScoreParts:
    vector: float  # cosine similarity clipped to [0, 1]
    keyword: float  # bm25 squashed to [0, 1); 0 when no query word matched
    recency: float  # 1 just reinforced, 0.5 after one half-life
    importance: float  # [0, 1], set by the app or the user
    weight: float  # [0, 1], lowered by consolidation when not reinforced

    @property
    def total(self) -> float:
        strength = 0.5 * self.recency + 0.5 * self.importance
        raw = (VECTOR_WEIGHT * self.vector + KEYWORD_WEIGHT * self.keyword
               + STRENGTH_WEIGHT * strength)
        return raw * (0.5 + 0.5 * self.weight)  # a fading memory ranks lower, never vanishes


def keyword_score(bm25: float | None) -> float:
    """SQLite's bm25() is negative, more negative = better; map it to [0, 1)."""
    if bm25 is None:
        return 0.0
    strength = max(0.0, -bm25)
    return strength / (1.0 + strength)


def recency(age_s: float, half_life_s: float = RECENCY_HALF_LIFE_S) -> float:
    return math.pow(0.5, max(0.0, age_s) / half_life_s)


def score(*, cosine: float, bm25: float | None, age_s: float, importance: float,
          weight: float) -> ScoreParts:
    return ScoreParts(vector=min(1.0, max(0.0, cosine)), keyword=keyword_score(bm25),
                      recency=recency(age_s), importance=min(1.0, max(0.0, importance)),
                      weight=min(1.0, max(0.0, weight)))


__all__ = ["KEYWORD_WEIGHT", "STRENGTH_WEIGHT", "VECTOR_WEIGHT", "ScoreParts", "keyword_score",
           "recency", "score"]
