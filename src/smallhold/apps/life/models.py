"""What life keeps: the person's own records, as the sources said them, typed.

Every record keeps where it came from (``source``: the file's name and the place in it),
so an alert can cite the exact rows it stands on, and ``life forget SOURCE`` can remove a
source entirely. Ids are derived from the record's content (``record_id``), so ingesting
the same export twice, or a newer export that overlaps an older one, adds nothing twice.
Times are ISO 8601 strings with their UTC offset (an all-day event has a date only); money
is a decimal string, never a float.
"""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def record_id(*parts: object) -> str:
    """A stable id from the fields that make a record itself (24 hex digits)."""
    joined = "\x1f".join("" if p is None else str(p) for p in parts)
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()[:24]


class Source(_Model):
    """Where a record came from: the file and the place inside it, for citations."""

    file: str  # the file's name (not its path: a moved export is the same source)
    location: str  # "line 120", "record 5031", "message 14", "VEVENT uid=..."
    kind: Literal["calendar", "bank", "card", "health", "mail"]


class Person(_Model):
    email: str = ""  # lower-case; empty when only a name is known
    name: str = ""


class Event(_Model):
    """One occurrence of a calendar event (a recurring series gives one per occurrence)."""

    uid: str
    occurrence: str  # the occurrence's original start (RECURRENCE-ID), for series members
    summary: str = ""
    start: str  # ISO 8601 with offset, or a date for all-day events
    end: str
    all_day: bool = False
    timezone: str = ""  # the TZID it was written in ("" = UTC or floating)
    floating: bool = False  # no time zone: read as the person's local time
    status: Literal["confirmed", "tentative", "cancelled"] = "confirmed"
    organizer: Person | None = None
    attendees: list[Person] = Field(default_factory=list)
    location: str = ""
    description: str = ""  # free text; only the local model reads it (extract.py)
    recurring: bool = False
    source: Source


TransactionKind = Literal["income", "purchase", "refund", "card_payment", "transfer",
                          "withdrawal", "fee", "other"]


class Transaction(_Model):
    account: str  # the account's id as the statement gives it (masked is fine)
    posted: str  # ISO date the bank posted it
    occurred: str = ""  # ISO date of the purchase itself, when the source gives one
    amount: str  # decimal string; negative = money out of this account
    currency: str
    description: str = ""
    payee: str = ""  # cleaned merchant or counterparty name
    category: str = ""
    kind: TransactionKind = "other"
    bank_type: str = ""  # the source's own type (OFX TRNTYPE, CSV "Type")
    fitid: str = ""  # the bank's transaction id, when it gives one
    # a charge billed in another currency: the merchant's own price, as the statement gives
    # it ("Ursprünglicher Betrag 12,99 USD"); the converted ``amount`` moves with the rate
    original_amount: str = ""  # decimal string, same sign as ``amount``; "" = not given
    original_currency: str = ""
    source: Source


HealthKind = Literal["sleep_in_bed", "sleep_asleep", "sleep_awake", "steps", "heart_rate",
                     "resting_heart_rate", "other"]


class HealthSample(_Model):
    kind: HealthKind
    type: str  # the source's own type (HKCategoryTypeIdentifierSleepAnalysis, ...)
    start: str
    end: str
    value: float | None = None
    stage: str = ""  # sleep stage as recorded (AsleepCore, AsleepDeep, ...)
    unit: str = ""
    device: str = ""  # sourceName ("Maya's Apple Watch")
    source: Source


class Message(_Model):
    message_id: str
    thread: str  # the first Message-ID of its References chain (its own when it starts one)
    in_reply_to: str = ""
    references: list[str] = Field(default_factory=list)
    subject: str = ""
    sender: Person
    to: list[Person] = Field(default_factory=list)
    cc: list[Person] = Field(default_factory=list)
    date: str  # ISO 8601 with the sender's offset
    body: str = ""  # plain text; stays in the vault
    source: Source


class Problem(_Model):
    """A record a source could not give, and why; the rest of the source still counts."""

    file: str
    location: str
    reason: str


Record = Event | Transaction | HealthSample | Message


__all__ = ["Event", "HealthKind", "HealthSample", "Message", "Person", "Problem", "Record",
           "Source", "Transaction", "TransactionKind", "record_id"]
