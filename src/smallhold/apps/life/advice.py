"""Every recommendation weighed against the person's ordered priorities, conflicts named.

A recommendation (an alert's suggested action, a forecast's protective change, a plan in a
decision question) is described by what it *changes*: meeting hours, sleep, activity,
spending, contact with a person, a protected event, each ``more`` or ``less``. A
priority's targets say which way the person wants each of those to go
(``sleep_hours_min``: sleep more; ``meeting_hours_per_week_max``: meetings less;
``contact``: that person more; ``calendar_summary``: that event kept). ``weigh`` compares
the two, pure and deterministic: a change the person's target asks for *supports* that
priority, the opposite change *conflicts* with it, and both lists keep the priorities'
own order (the first conflict is the most important one). The reasons are plain words
with the numbers the caller knows (``status``: "missed now: 5.6 h a night against 7").
Priorities without a target a rule can read are listed as ``unchecked``: stated, so they
matter, but no rule can say what serves them, and saying nothing is better than guessing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from smallhold.apps.life.values import Priority, Values

Aspect = Literal["meeting_hours", "sleep", "activity", "spending", "contact", "protected_event"]
Direction = Literal["more", "less"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Change(_Model):
    """One thing a recommendation moves, and which way."""

    aspect: Aspect
    direction: Direction
    subject: str = ""  # the contact's address, the event's summary; "" = in general
    why: str = ""  # how the recommendation moves it, in words ("skips 'Team sync'")


class PriorityNote(_Model):
    """A priority a recommendation serves or works against, and the reason."""

    priority: str  # the priority's id
    rank: int  # its place in the person's order, 1 = most important
    reason: str


class Advice(_Model):
    """A recommendation, what it changes, and how it stands against the priorities."""

    text: str
    changes: list[Change] = Field(default_factory=list)
    supports: list[PriorityNote] = Field(default_factory=list)
    conflicts: list[PriorityNote] = Field(default_factory=list)
    unchecked: list[str] = Field(default_factory=list)  # priority ids no rule can test


# target key -> (the aspect it speaks about, the direction the person wants, in words)
WANTS: dict[str, tuple[Aspect, Direction, str]] = {
    "sleep_hours_min": ("sleep", "more", "sleep at least {} h a night"),
    "steps_min": ("activity", "more", "walk at least {} steps a day"),
    "savings_rate_min": ("spending", "less", "save at least {} of income"),
    "meeting_hours_per_week_max": ("meeting_hours", "less", "keep meetings under {} h a week"),
    "contact": ("contact", "more", "stay in touch with {}"),
    "calendar_summary": ("protected_event", "more", "keep '{}' free"),
}


def _wants(priority: Priority) -> list[tuple[Aspect, Direction, str, str]]:
    """(aspect, wanted direction, the target in words, its subject) for each known target."""
    found = []
    for key, value in priority.targets.items():
        if key not in WANTS:
            continue
        aspect, direction, words = WANTS[key]
        number = isinstance(value, int | float) and not isinstance(value, bool)
        shown = (f"{value:.0%}" if key == "savings_rate_min" and number
                 else f"{value:g}" if number else str(value))
        subject = str(value).strip().lower() if aspect in ("contact", "protected_event") else ""
        found.append((aspect, direction, words.format(shown), subject))
    return found


def _same(change: Change, subject: str) -> bool:
    """A change about one person or event speaks only to a priority about that one; a
    change about no one in particular ("moving abroad": less contact) speaks to all."""
    return not subject or not change.subject or change.subject.strip().lower() == subject


def weigh(text: str, changes: list[Change], values: Values,
          status: Mapping[str, str] | None = None) -> Advice:
    """``text`` with ``changes`` checked against ``values``' priorities, in their order.

    ``status`` maps a priority id to what the data says about it now ("missed: saved 12 %
    over the last 3 months against 20 %"); it is added to that priority's reason, so a
    conflict with a target already missed says so."""
    supports: list[PriorityNote] = []
    conflicts: list[PriorityNote] = []
    unchecked: list[str] = []
    for rank, priority in enumerate(values.priorities, start=1):
        wants = _wants(priority)
        if not wants:
            unchecked.append(priority.id)
            continue
        good: list[str] = []
        bad: list[str] = []
        for aspect, direction, words, subject in wants:
            for change in changes:
                if change.aspect != aspect or not _same(change, subject):
                    continue
                how = change.why or f"{change.direction} {aspect.replace('_', ' ')}"
                (good if change.direction == direction else bad).append(
                    f"{how}: you want to {words}")
        note = (status or {}).get(priority.id, "")
        for reasons, out in ((good, supports), (bad, conflicts)):
            if reasons:
                reason = "; ".join(dict.fromkeys(reasons)) + (f" ({note})" if note else "")
                out.append(PriorityNote(priority=priority.id, rank=rank, reason=reason))
    return Advice(text=text, changes=changes, supports=supports, conflicts=conflicts,
                  unchecked=unchecked)


__all__ = ["WANTS", "Advice", "Aspect", "Change", "Direction", "PriorityNote", "weigh"]
