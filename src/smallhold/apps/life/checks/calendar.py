"""Calendar ahead: planned work that lands on a protected time, and weeks over the limit.

A protected time is the person's own recurring event named by a priority
(``calendar_summary`` on ``weekday``). A conflict is a planned (after ``as_of``),
not cancelled work meeting (an attendee at the work domain) overlapping one of its
occurrences: caught before the day, it can still be moved.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta

from smallhold.apps.life.alerts import Alert, Evidence, RecordRef
from smallhold.apps.life.daily import hours, is_meeting, local, work_domain, zone
from smallhold.apps.life.models import Event
from smallhold.apps.life.values import Values

WEEKDAYS = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]  # iCalendar's BYDAY names
FORECAST_WEEKS = 4  # planned meetings further out are too incomplete to sum


def _protected(events: list[Event], summary: str, weekday: int, values: Values) -> list[Event]:
    tz = zone(values.person)
    return [e for e in events if not e.all_day and e.status != "cancelled"
            and e.summary.strip().lower() == summary.strip().lower()
            and local(e.start, tz).weekday() == weekday]


def detect_priority_conflict(events: list[Event], values: Values, as_of: date) -> list[Alert]:
    tz = zone(values.person)
    work = work_domain(events, values.person)
    alerts = []
    for priority in values.priorities:
        summary, day = priority.targets.get("calendar_summary"), priority.targets.get("weekday")
        if not isinstance(summary, str) or str(day).upper()[:2] not in WEEKDAYS:
            continue
        protected = _protected(events, summary, WEEKDAYS.index(str(day).upper()[:2]), values)
        for event in events:
            start, end = local(event.start, tz) if not event.all_day else None, None
            if start is None or start.date() <= as_of or not is_meeting(event, work):
                continue
            end = local(event.end, tz)
            for other in protected:
                o_start, o_end = local(other.start, tz), local(other.end, tz)
                if other.uid != event.uid and start < o_end and o_start < end:
                    alerts.append(_conflict(event, other, start, end, o_start, o_end,
                                            priority.id))
    return alerts


def _conflict(event: Event, other: Event, start: datetime, end: datetime, o_start: datetime,
              o_end: datetime, priority: str) -> Alert:
    return Alert(
        kind="priority_conflict", title=f"'{event.summary}' overlaps '{other.summary}' on "
        f"{start:%a %Y-%m-%d}", start=start.date(), end=end.date(), severity="warning",
        rule="a planned work meeting (an attendee at your work domain) overlapping an "
        f"occurrence of the protected '{other.summary}' set by the priority {priority}",
        evidence=[Evidence(what="the planned meeting", values={
                      "start": start.isoformat(), "end": end.isoformat()},
                           records=[RecordRef(kind="event", key=event.uid, at=event.start)]),
                  Evidence(what="the protected occurrence", values={
                      "start": o_start.isoformat(), "end": o_end.isoformat()},
                           records=[RecordRef(kind="event", key=other.uid, at=other.start)])],
        violates=[priority])


def detect_over_commitment(events: list[Event], values: Values, as_of: date) -> list[Alert]:
    """Coming weeks whose already planned meetings exceed ``meeting_hours_per_week_max``."""
    target = values.target("meeting_hours_per_week_max")
    if target is None:
        return []
    tz, work = zone(values.person), work_domain(events, values.person)
    monday = as_of + timedelta(days=7 - as_of.weekday())  # the first whole week ahead
    weeks: dict[date, list[Event]] = defaultdict(list)
    for event in events:
        if is_meeting(event, work):
            day = local(event.start, tz).date()
            week = day - timedelta(days=day.weekday())
            if monday <= week < monday + timedelta(weeks=FORECAST_WEEKS):
                weeks[week].append(event)
    alerts = []
    for week, planned in sorted(weeks.items()):
        total = sum(hours(e, tz) for e in planned)
        if total > float(target[1]):
            alerts.append(Alert(
                kind="over_commitment", title=f"{total:.1f} h of meetings planned for the "
                f"week of {week}", start=week, end=week + timedelta(days=6),
                rule=f"meetings already planned for a coming week exceed "
                f"meeting_hours_per_week_max {target[1]} ({target[0].id})",
                evidence=[Evidence(what="planned meetings", values={"hours": round(total, 2)},
                                   records=[RecordRef(kind="event", key=e.uid, at=e.start)
                                            for e in planned])],
                violates=[target[0].id]))
    return alerts


__all__ = ["detect_over_commitment", "detect_priority_conflict"]
