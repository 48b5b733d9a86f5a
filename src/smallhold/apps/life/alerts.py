"""What a check says: an alert, the rule that fired, and the records it stands on.

An alert is only as good as what it cites: the person must be able to open the very
rows (an event's uid, a message's Message-ID, a card row's date, amount and description)
and see the pattern themselves. So ``Alert.evidence`` is never empty, every evidence item
names its records and numbers, and the id is derived from the content, so running the
checks again gives the same ids (an alert dismissed once stays recognisable).
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from smallhold.apps.life.advice import Advice

AlertKind = Literal["burnout", "overspending", "subscription_increase",
                    "neglected_relationship", "priority_conflict", "over_commitment"]
Severity = Literal["info", "warning", "high"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RecordRef(_Model):
    """One cited record: its kind and its natural key (what the person can look up)."""

    kind: Literal["event", "message", "transaction", "health", "day"]
    key: str  # event uid, Message-ID, "date amount description", health location, a date
    at: str = ""  # its time: event occurrence start, message date, transaction date


class Evidence(_Model):
    what: str  # a short description: "unanswered message", "largest purchase"
    records: list[RecordRef] = Field(default_factory=list)
    values: dict[str, float | int | str | None] = Field(default_factory=dict)


class Alert(_Model):
    id: str = ""  # filled from the content when empty
    kind: AlertKind
    title: str
    start: date
    end: date
    severity: Severity = "warning"
    rule: str  # the rule that fired, in plain words, with its thresholds
    evidence: list[Evidence]
    violates: list[str] = Field(default_factory=list)  # priority ids from Values
    # what to do about it, weighed against the priorities (checks/actions.py); not part of
    # the id: the same finding keeps its id when the person's priorities change
    advice: Advice | None = None

    @model_validator(mode="after")
    def _check(self) -> Alert:
        if not self.evidence:
            raise ValueError("an alert needs evidence: no alert without cited records")
        if not self.id:
            content = json.dumps([self.kind, str(self.start), str(self.end), self.title,
                                  [e.model_dump(mode="json") for e in self.evidence]],
                                 sort_keys=True)
            object.__setattr__(self, "id", hashlib.sha256(content.encode()).hexdigest()[:16])
        return self


__all__ = ["Alert", "AlertKind", "Evidence", "RecordRef", "Severity"]
