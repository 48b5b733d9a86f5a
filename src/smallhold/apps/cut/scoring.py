"""Scoring boundaries against ground truth, the way the benchmark and the tests do it.

A detection matches a hard cut within ``tolerance`` frames, or a gradual transition
anywhere in ``[start - tolerance, end + tolerance]``; matching is one to one (closest
first), and an unmatched detection, a flash included, is a false positive. These are the
rules the synthetic clips' README gives, so PySceneDetect is scored the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Truth:
    cuts: Sequence[int]
    gradual: Sequence[tuple[int, int]] = ()
    negatives: Sequence[int] = ()  # frames that must not be boundaries (a flash)


@dataclass(frozen=True)
class Score:
    true_positives: int
    false_positives: int
    false_negatives: int
    flash_alarms: int

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        wanted = self.true_positives + self.false_negatives
        return self.true_positives / wanted if wanted else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def __add__(self, other: Score) -> Score:
        return Score(self.true_positives + other.true_positives,
                     self.false_positives + other.false_positives,
                     self.false_negatives + other.false_negatives,
                     self.flash_alarms + other.flash_alarms)


def score(detected: Sequence[int], truth: Truth, tolerance: int = 2) -> Score:
    targets = [(c - tolerance, c + tolerance, c) for c in truth.cuts] + [
        (a - tolerance, b + tolerance, (a + b) / 2) for a, b in truth.gradual]
    pairs = sorted((abs(d - centre), i, j) for i, d in enumerate(detected)
                   for j, (lo, hi, centre) in enumerate(targets) if lo <= d <= hi)
    used_d: set[int] = set()
    used_t: set[int] = set()
    for _gap, i, j in pairs:
        if i not in used_d and j not in used_t:
            used_d.add(i)
            used_t.add(j)
    unmatched = [d for i, d in enumerate(detected) if i not in used_d]
    flashes = sum(1 for d in unmatched
                  if any(abs(d - f) <= tolerance for f in truth.negatives))
    return Score(len(used_d), len(unmatched), len(targets) - len(used_t), flashes)


__all__ = ["Score", "Truth", "score"]
