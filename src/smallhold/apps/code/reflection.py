"""Hypotheses about a failure, and what testing them showed.

Each repair states a diagnosis ("the test expects 3 because the parser should group from
the left") and acts on it in the same reply; the ledger keeps it as an open hypothesis. The
iteration's tests are the experiment: more tests passing supports it, the same or fewer
refutes it, and the next repair's prompt lists refuted diagnoses as "look for another cause",
which is what stops a small model from circling. Runs of loop format 1 reflected in a step
of their own (:class:`Reflection`, several ranked hypotheses); their records still load, and
:func:`choose` still ranks such a reflection.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field, field_validator

_WORD = re.compile(r"[a-z0-9_]+")
SAME_IDEA = 0.7  # word-set overlap above which two hypotheses count as one idea
# The bounds go into the JSON schema, so the decoding grammar enforces them: unbounded, a
# small model restating the traceback filled the token budget, the JSON was cut off and
# every re-ask cost another full-length call (three minutes of reflection on a 2-core CPU).
TEXT_CHARS = 300
MAX_HYPOTHESES = 3


def _clip(value: Any) -> Any:
    """Records written before the bounds still load: over-long text is cut, not refused."""
    if isinstance(value, str) and len(value) > TEXT_CHARS:
        return value[:TEXT_CHARS - 1] + "\u2026"
    return value


class Hypothesis(BaseModel):
    text: str = Field(max_length=TEXT_CHARS,
                      description="what might be wrong and why, in one or two sentences")
    # format 1's reflections estimated it; a repair's one-line diagnosis does not
    confidence: float | None = Field(default=None, ge=0.0, le=1.0,
                                     description="how likely this is, 0 to 1")

    clip_text = field_validator("text", mode="before")(_clip)


class Reflection(BaseModel):
    """What the model returns after a failure (structured output)."""

    diagnosis: str = Field(max_length=TEXT_CHARS,
                           description="what the test output shows, in one sentence")
    hypotheses: list[Hypothesis] = Field(min_length=1, max_length=MAX_HYPOTHESES)

    clip_diagnosis = field_validator("diagnosis", mode="before")(_clip)

    @field_validator("hypotheses", mode="before")
    @classmethod
    def _at_most(cls, value: Any) -> Any:
        return value[:MAX_HYPOTHESES] if isinstance(value, list) else value

    @field_validator("hypotheses")
    @classmethod
    def _distinct(cls, value: list[Hypothesis]) -> list[Hypothesis]:
        """A small model often restates one idea in other words; ranking copies of it would
        crowd out the second idea, so only the first wording of each is kept."""
        kept: list[Hypothesis] = []
        for hypothesis in value:
            if not any(similar(hypothesis.text, k.text) for k in kept):
                kept.append(hypothesis)
        return kept


class Tried(BaseModel):
    iteration: int
    text: str
    status: str  # open | supported | refuted
    evidence: str = ""


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def similar(a: str, b: str) -> bool:
    wa, wb = _words(a), _words(b)
    if not wa or not wb:
        return False
    return len(wa & wb) / len(wa | wb) >= SAME_IDEA


def choose(reflection: Reflection, ledger: Sequence[Tried]) -> Hypothesis | None:
    """The most confident hypothesis that is not a refuted one in other words."""
    refuted = [t.text for t in ledger if t.status == "refuted"]
    ranked = sorted(reflection.hypotheses, key=lambda h: -(h.confidence or 0.0))
    for hypothesis in ranked:
        if not any(similar(hypothesis.text, r) for r in refuted):
            return hypothesis
    return None


def judge(tried: Tried, passed_before: int, passed_after: int, ok: bool) -> Tried:
    """Record the experiment's result against the hypothesis it tested."""
    if ok or passed_after > passed_before:
        evidence = "the tests pass" if ok else f"passing tests rose {passed_before} -> " \
                                               f"{passed_after}"
        return tried.model_copy(update={"status": "supported", "evidence": evidence})
    return tried.model_copy(update={"status": "refuted", "evidence":
                                    f"passing tests {passed_before} -> {passed_after}"})
