"""Nightly consolidation: old detail becomes a month's summary in memory, with its trail.

A person's daily rows matter in detail for the recent weeks (that is where the checks look);
older months matter as a whole ("March was heavy: 62 meeting hours, 6.9 h of sleep").
Each finished month becomes one memory of kind ``life.month`` in the vault's vector memory,
written from the numbers (no model: a summary must not be wrong), tagged with the month and
the sources it came from, so recall can find "when was I last this busy" and the person can
trace it back. Then the memory store's own consolidation runs: memories not reinforced by
use decay and are archived, each with a ``memory_events`` row saying why
(``smallhold life memory`` shows both).

A month already summarised is not written again (its tag is the key), so the job is safe to
run every night, or twice.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date

from smallhold.apps.life.checks.money import month_totals
from smallhold.apps.life.daily import Day, Records, build_days, data_span
from smallhold.apps.life.values import Values
from smallhold.store.memory import MemoryStore

KIND = "life.month"


@dataclass(frozen=True)
class Summary:
    month: str  # YYYY-MM
    text: str
    tags: list[str]


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def month_summaries(records: Records, values: Values, as_of: date) -> list[Summary]:
    """One summary per calendar month that ended before ``as_of``, from the numbers."""
    span = data_span(records, values.person)
    if span is None:
        return []
    days = build_days(records, values.person, span[0], min(span[1], as_of))
    by_month: dict[str, list[Day]] = defaultdict(list)
    for day in days:
        by_month[f"{day.date:%Y-%m}"].append(day)
    money = {month: totals for month, totals in month_totals(records.transactions,
                                                              as_of).items()}
    current = f"{as_of:%Y-%m}"
    out: list[Summary] = []
    for month, rows in sorted(by_month.items()):
        if month >= current:
            continue
        hours = sum(d.meeting_hours for d in rows)
        sleep = _mean([d.sleep_hours for d in rows if d.sleep_hours is not None])
        steps = _mean([float(d.steps) for d in rows if d.steps])
        late = sum(d.late_sent_emails for d in rows)
        parts = [f"In {month}: {hours:.0f} meeting hours over {len(rows)} days"]
        if sleep is not None:
            parts.append(f"sleep {sleep:.1f} h a night on average")
        if steps is not None:
            parts.append(f"{steps:,.0f} steps a day")
        if late:
            parts.append(f"{late} late-night email(s)")
        if month in money:
            income, spending, _rows = money[month]
            rate = float((income - spending) / income) if income else None
            parts.append(f"income {income:,.2f}, spending {spending:,.2f}"
                         + (f" (saved {rate:.0%})" if rate is not None else ""))
        out.append(Summary(month, "; ".join(parts) + ".", [f"month:{month}", "source:life"]))
    return out


def consolidate(memory: MemoryStore, records: Records, values: Values,
                as_of: date) -> tuple[int, int]:
    """Write the missing month summaries, then let memory decay what is not used.
    Returns (summaries written, consolidation actions)."""
    known = {tag for m in memory.list(kind=KIND, limit=10_000) for tag in m.tags}
    known |= {tag for m in memory.list(kind=KIND, archived=True, limit=10_000) for tag in m.tags}
    written = 0
    for summary in month_summaries(records, values, as_of):
        if f"month:{summary.month}" in known:
            continue
        memory.remember(summary.text, kind=KIND, tags=summary.tags, importance=0.6)
        written += 1
    return written, len(memory.consolidate())


__all__ = ["KIND", "Summary", "consolidate", "month_summaries"]
