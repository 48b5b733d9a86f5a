"""iCalendar (RFC 5545) files as one ``Event`` per occurrence, with ``Problem`` rows for the rest.

Series are expanded by ``recurring-ical-events`` (RRULE with UNTIL or COUNT, RDATE, EXDATE,
RECURRENCE-ID overrides) over the calendar's own span: its earliest DTSTART to the later of
its last one-off event and ``today + horizon_days``, so open-ended series stop. Times keep
the zone they were written in; floating times stay floating (the reader knows the person's
zone, this parser does not). Lines are unfolded and checked here first, so a garbage line is
a ``Problem`` with its line number (icalendar refuses one outside a VEVENT for the whole
file) and a cut-short file loses only its unfinished component. Each UID is expanded on its
own, so a broken RRULE costs one series. The file is read whole: calendars are megabytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Literal

import icalendar
import recurring_ical_events

from smallhold.apps.life.errors import SourceError
from smallhold.apps.life.models import Event, Person, Problem, Source, record_id

# NAME *(";" param) ":" with quoted parameter values, which may hold ":" and ";" (RFC 5545 3.1)
_CONTENT_LINE = re.compile(
    r'[A-Za-z0-9-]+(?:;[A-Za-z0-9-]+=(?:"[^"]*"|[^";:,]*)(?:,(?:"[^"]*"|[^";:,]*))*)*:')
# a broken value in one of these makes the occurrences themselves unknowable
_CRITICAL = {"DTSTART", "DTEND", "DURATION", "RRULE", "RDATE", "EXDATE", "RECURRENCE-ID"}
# lines that change on every export of the same event: left out of a synthesised UID
_VOLATILE = ("DTSTAMP", "LAST-MODIFIED", "CREATED", "SEQUENCE")
_STATUS: dict[str, Literal["confirmed", "tentative", "cancelled"]] = {
    "CONFIRMED": "confirmed", "TENTATIVE": "tentative", "CANCELLED": "cancelled"}


HORIZON_DAYS = 120  # open-ended series are expanded this far past the ingest: a forecast
# of the coming six weeks (forecast.py) still sees them when the calendar was read two months ago


def parse_calendar(path: Path, *, horizon_days: int = HORIZON_DAYS,
                   today: date | None = None) -> Iterator[Event | Problem]:
    """Every occurrence in ``path``, series by series in file order; bad VEVENTs as Problems.

    Raises ``SourceError`` (one line) when the file cannot be read or is not iCalendar.
    """
    lines, problems = _content_lines(path)
    yield from problems
    try:
        calendars = icalendar.Calendar.from_ical("\r\n".join(lines) + "\r\n", multiple=True)
    except ValueError as err:  # what is left is well-formed line by line, so this is rare
        raise SourceError(f"{path.name}: not a readable iCalendar file ({err})") from err
    for cal in calendars:
        yield from _expand(cal, path.name, today or date.today(), horizon_days)


def _content_lines(path: Path) -> tuple[list[str], list[Problem]]:
    """Unfolded, well-formed content lines with balanced BEGIN/END, and what was dropped."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise SourceError(f"{path.name}: cannot read it ({err.strerror})") from err
    logical: list[tuple[int, bytes]] = []
    for number, raw in enumerate(data.removeprefix(b"\xef\xbb\xbf").splitlines(), 1):
        if raw[:1] in (b" ", b"\t") and logical:  # a folded continuation (RFC 5545 3.1)
            logical[-1] = (logical[-1][0], logical[-1][1] + raw[1:])
        else:
            logical.append((number, raw))
    file = path.name
    first = next((raw for _, raw in logical if raw.strip()), b"")
    if first.strip().upper() != b"BEGIN:VCALENDAR":
        raise SourceError(f"{file}: not an iCalendar file (it does not begin with "
                          "BEGIN:VCALENDAR)")
    out: list[str] = []
    problems: list[Problem] = []
    stack: list[tuple[str, int, int]] = []  # component name, its line, its index in out
    for number, raw in logical:
        line = raw.decode("utf-8", errors="replace")  # RFC 5545 text is UTF-8
        if not line.strip():
            continue
        name, _, value = line.partition(":")
        name, value = name.split(";")[0].upper(), value.strip().upper()
        reason = ""
        if not _CONTENT_LINE.match(line):
            reason = f"not an iCalendar content line: {line[:60]!r}"
        elif name == "END" and value not in (entry[0] for entry in stack):
            reason = f"END:{value} without its BEGIN"
        elif not stack and name != "BEGIN":  # icalendar refuses these for the whole file
            reason = f"{name} outside any component"
        if reason:
            problems.append(Problem(file=file, location=f"line {number}", reason=reason))
            continue
        if name == "BEGIN":
            stack.append((value, number, len(out)))
        elif name == "END":
            while stack.pop()[0] != value:  # an END closes whatever it encloses
                pass
        out.append(line)
    if stack:  # cut short: drop the unfinished component, close the calendar around it
        if len(stack) > 1:
            name, number, index = stack[1]
            del out[index:]
            problems.append(Problem(file=file, location=f"line {number}",
                                    reason=f"the file ends inside this {name}; it is left out"))
        out.append(f"END:{stack[0][0]}")
    return out, problems


def _expand(cal: icalendar.Component, file: str, today: date,
            horizon_days: int) -> Iterator[Event | Problem]:
    """Check each VEVENT, group them by UID, and expand each series over the span."""
    series: dict[str, list[icalendar.Component]] = {}
    starts: list[date] = []
    ends: list[date] = []
    for vevent in cal.walk("VEVENT"):
        uid = str(vevent.get("UID", "")).strip()
        if not uid:  # stable across re-exports: derived from the event's own lines
            uid = record_id(*(line for line in vevent.content_lines()
                              if not line.upper().startswith(_VOLATILE)))
            vevent["UID"] = uid
        reason = _broken(vevent)
        if reason:
            yield Problem(file=file, location=f"VEVENT {uid}", reason=reason)
            continue
        series.setdefault(uid, []).append(vevent)
        starts.append(_day(_start(vevent)))
        if "RRULE" not in vevent and "RDATE" not in vevent:
            ends.append(_day(_end(vevent)))
    if not series:
        return
    begin = min(starts) - timedelta(days=1)  # a day's margin for zones east and west
    stop = max([*ends, today + timedelta(days=horizon_days)]) + timedelta(days=1)
    if stop <= begin:  # an old or all-future calendar still shows its own first weeks
        stop = begin + timedelta(days=horizon_days + 1)
    wr_timezone = cal.get("X-WR-TIMEZONE")
    for uid, components in series.items():
        sub = icalendar.Calendar()
        for component in components:
            sub.add_component(component)
        recurring = any(key in c for c in components
                        for key in ("RRULE", "RDATE", "RECURRENCE-ID"))
        if wr_timezone is not None and recurring and all(
                (_tzname(_start(c))).upper() == "UTC" for c in components):
            # Google's meaning: a UTC series in a calendar that names its zone repeats at the
            # same local hour (strict RFC 5545 slides it at DST); others keep their own zone
            sub["X-WR-TIMEZONE"] = wr_timezone
        source = Source(file=file, location=f"VEVENT {uid}", kind="calendar")
        try:
            events = [_event(occurrence, uid, recurring, source)
                      for occurrence in recurring_ical_events.of(sub).between(begin, stop)
                      if isinstance(occurrence, icalendar.Event)]
        except Exception as err:  # the library raises many types; one series fails
            yield Problem(file=file, location=source.location,
                          reason=f"cannot expand the series: {type(err).__name__}: {err}")
            continue
        yield from events


def _broken(vevent: icalendar.Component) -> str:
    """Why this VEVENT's times cannot be known ("" when they can)."""
    for name, message in vevent.errors:
        if name is not None and name.upper() in _CRITICAL:
            return f"{name}: {message}"
    if "DTSTART" not in vevent:
        return "no DTSTART"
    try:
        _end(vevent)  # reads DTSTART too
    except (ValueError, TypeError) as err:
        return f"bad DTSTART, DTEND or DURATION: {err}"
    return ""


def _end(vevent: icalendar.Component) -> date:
    """DTEND, or DTSTART + DURATION, or RFC 5545's default (a day for dates, zero for times)."""
    start = _start(vevent)
    if "DTEND" in vevent:
        end: object = vevent.decoded("DTEND")
    elif "DURATION" in vevent:
        end = start + vevent.decoded("DURATION")
    else:
        end = start if isinstance(start, datetime) else start + timedelta(days=1)
    if not isinstance(end, date):
        raise TypeError(f"DTEND is {type(end).__name__}, not a date or time")
    return end


def _start(vevent: icalendar.Component) -> date:
    start: object = vevent.decoded("DTSTART")
    if not isinstance(start, date):  # two DTSTART lines decode to a list
        raise TypeError(f"DTSTART is {type(start).__name__}, not one date or time")
    return start


def _tzname(value: date) -> str:
    return (value.tzname() or "") if isinstance(value, datetime) else ""


def _day(value: date) -> date:
    return value.date() if isinstance(value, datetime) else value


def _event(occurrence: icalendar.Event, uid: str, recurring: bool, source: Source) -> Event:
    start = _start(occurrence)
    end = _end(occurrence)
    original = occurrence.get("RECURRENCE-ID")
    original_start = original.dt if isinstance(getattr(original, "dt", None), date) else start
    attendees = occurrence.get("ATTENDEE")
    return Event(
        uid=uid,
        occurrence=original_start.isoformat(),
        summary=_text(occurrence, "SUMMARY"),
        start=start.isoformat(),
        end=end.isoformat(),
        all_day=not isinstance(start, datetime),
        timezone=_timezone(occurrence, start),
        floating=isinstance(start, datetime) and start.tzinfo is None,
        status=_STATUS.get(_text(occurrence, "STATUS").upper(), "confirmed"),
        organizer=_person(occurrence.get("ORGANIZER")),
        attendees=[p for a in _listed(attendees) if (p := _person(a)) is not None],
        location=_text(occurrence, "LOCATION"),
        description=_text(occurrence, "DESCRIPTION"),
        recurring=recurring,
        source=source,
    )


def _text(component: icalendar.Component, name: str) -> str:
    return str(component.get(name, "")).strip()


def _timezone(occurrence: icalendar.Component, start: date) -> str:
    """The TZID the start was written in; "" for UTC, floating times and dates."""
    if not isinstance(start, datetime) or start.tzinfo is None:
        return ""
    tzid = getattr(occurrence.get("DTSTART"), "params", {}).get("TZID")
    if tzid:
        return str(tzid)
    key = getattr(start.tzinfo, "key", "")  # zoneinfo zones know their name
    return "" if not isinstance(key, str) or key.upper() in ("UTC", "ETC/UTC") else key


def _listed(value: object) -> list[object]:
    """icalendar gives one value for one ATTENDEE line and a list for several."""
    return list(value) if isinstance(value, list) else [] if value is None else [value]


def _person(value: object) -> Person | None:
    """A CAL-ADDRESS (``mailto:``, any case) and its CN, as a Person; None when empty."""
    if value is None:
        return None
    address = str(value).strip()
    name = str(getattr(value, "params", {}).get("CN", "")).strip().strip('"')
    scheme, colon, rest = address.partition(":")
    if colon and scheme.lower() == "mailto":
        email = rest.strip().lower()
    else:  # urn:uuid:... and friends name no mailbox; a bare address is still one
        email = address.lower() if "@" in address and not colon else ""
    if not email and not name:
        return None
    return Person(email=email, name=name)


__all__ = ["HORIZON_DAYS", "parse_calendar"]
