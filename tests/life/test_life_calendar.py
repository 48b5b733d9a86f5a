"""parse_calendar against the personas' ground truth, and against broken and unusual files."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from life_data import SEEDS, Persona, Personas

from smallhold.apps.life.errors import SourceError
from smallhold.apps.life.models import Event, Problem
from smallhold.apps.life.sources.calendar import parse_calendar


def parsed(path: Path, **kwargs: object) -> tuple[list[Event], list[Problem]]:
    records = list(parse_calendar(path, **kwargs))  # type: ignore[arg-type]
    return ([r for r in records if isinstance(r, Event)],
            [r for r in records if isinstance(r, Problem)])


def persona_events(persona: Persona) -> list[Event]:
    as_of = date.fromisoformat(persona.truth["period"]["as_of"])
    events, problems = parsed(persona.calendar, today=as_of)
    assert problems == []
    return events


def wall(iso: str, zone: str) -> datetime:
    """The naive wall-clock time of an ISO time in ``zone`` (floating times are already)."""
    moment = datetime.fromisoformat(iso)
    return moment if moment.tzinfo is None else moment.astimezone(ZoneInfo(zone)).replace(
        tzinfo=None)


def ics(*events: str, extra: str = "") -> str:
    body = "".join(f"BEGIN:VEVENT\r\n{e.strip()}\r\nEND:VEVENT\r\n" for e in events)
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n{extra}{body}END:VCALENDAR\r\n"


def write(tmp_path: Path, text: str, name: str = "cal.ics") -> Path:
    path = tmp_path / name
    path.write_bytes(text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8"))
    return path


# ---------------------------------------------------------------- the personas' ground truth


@pytest.mark.parametrize("seed", SEEDS)
def test_every_vevent_is_read(life_personas: Personas, seed: int) -> None:
    persona = life_personas.get(seed)
    events = persona_events(persona)
    vevents = persona.truth["counts"]["vevents"]
    assert persona.calendar.read_text().count("BEGIN:VEVENT") == vevents
    # one override (the moved 1:1) shares its series' UID; every other VEVENT is its own UID
    assert len({e.uid for e in events}) == vevents - 1
    assert all(e.source.location == f"VEVENT {e.uid}" and e.source.kind == "calendar"
               and e.source.file == "calendar.ics" for e in events)


@pytest.mark.parametrize("seed", SEEDS)
def test_daily_meeting_hours_match(life_personas: Personas, seed: int) -> None:
    persona = life_personas.get(seed)
    domain = "@" + persona.truth["persona"]["employer_domain"]
    hours: dict[str, float] = defaultdict(float)
    for event in persona_events(persona):
        if event.all_day or event.status == "cancelled":
            continue
        if not any(a.email.endswith(domain) for a in event.attendees):
            continue
        start = datetime.fromisoformat(event.start)
        length = datetime.fromisoformat(event.end) - start
        hours[wall(event.start, persona.timezone).date().isoformat()] += length / timedelta(hours=1)
    for day in persona.truth["daily"]:
        assert round(hours.get(day["date"], 0.0), 3) == pytest.approx(day["meeting_hours"]), day


@pytest.mark.parametrize("seed", SEEDS)
def test_calendar_edge_cases(life_personas: Personas, seed: int) -> None:
    persona = life_personas.get(seed)
    cases = persona.truth["calendar_edge_cases"]
    zone = persona.timezone
    by_uid: dict[str, list[Event]] = defaultdict(list)
    for event in persona_events(persona):
        by_uid[event.uid].append(event)

    moved = cases["moved_occurrence"]
    original = datetime.fromisoformat(moved["recurrence_id"])
    series = by_uid[moved["uid"]]
    [override] = [e for e in series if wall(e.occurrence, zone) == original]
    assert wall(override.start, zone) == datetime.fromisoformat(moved["new_start"])
    assert override.recurring and "moved" in override.summary
    assert not [e for e in series if wall(e.start, zone) == original]  # the old slot is gone
    assert all(e.occurrence == e.start for e in series if e is not override)

    hands = cases["all_hands"]
    assert by_uid[hands["uid"]] and all(
        e.timezone == hands["tzid"] and e.recurring
        and wall(e.start, hands["tzid"]).strftime("%H:%M") == hands["local_time"]
        for e in by_uid[hands["uid"]])

    [utc] = by_uid[cases["utc_event"]["uid"]]
    assert utc.timezone == "" and utc.start.endswith("+00:00") and not utc.floating
    assert wall(utc.start, "UTC") == datetime.fromisoformat(cases["utc_event"]["start_utc"])

    tokyo = cases["tokyo_event"]
    [event] = by_uid[tokyo["uid"]]
    assert event.timezone == "Asia/Tokyo" and event.start.endswith("+09:00")
    assert wall(event.start, "Asia/Tokyo") == datetime.fromisoformat(tokyo["tokyo_start"])
    assert wall(event.start, zone) == datetime.fromisoformat(tokyo["local_start"])

    cancelled = by_uid[cases["cancelled"]["uid"]]
    assert cancelled and all(e.status == "cancelled" for e in cancelled)  # kept, but marked

    floating = by_uid[cases["floating"]["uid"]]
    assert len(floating) > 10 and all(
        e.floating and e.timezone == "" and datetime.fromisoformat(e.start).tzinfo is None
        for e in floating)


def test_all_day_events_are_dates(life_personas: Personas) -> None:
    persona = life_personas.get(SEEDS[0])
    all_day = [e for e in persona_events(persona) if e.all_day]
    assert all_day and all(len(e.start) == 10 and len(e.end) == 10 for e in all_day)
    vacation = [e for e in all_day if "acation" in e.summary]
    assert [(date.fromisoformat(e.end) - date.fromisoformat(e.start)).days
            for e in vacation] == [7]


def test_open_ended_series_stop_at_the_horizon(life_personas: Personas) -> None:
    persona = life_personas.get(SEEDS[0])
    horizon = date.fromisoformat(persona.truth["period"]["calendar_horizon"])
    later = horizon + timedelta(days=200)
    events, _ = parsed(persona.calendar, today=later, horizon_days=30)
    last = max(date.fromisoformat(e.start[:10]) for e in events)
    assert later + timedelta(days=23) <= last <= later + timedelta(days=31)


# ---------------------------------------------------------------- hand-written inputs


GOOD = """UID:good-1
DTSTART;TZID=Europe/Berlin:20250301T100000
DTEND;TZID=Europe/Berlin:20250301T110000
SUMMARY:Good one
ORGANIZER;CN="Doe, Jane":MAILTO:Jane.Doe@Example.COM
ATTENDEE;CN=Bob;PARTSTAT=ACCEPTED:mailto:BOB@example.com
ATTENDEE:urn:uuid:1234"""


def test_malformed_vevents_become_problems_and_the_rest_continues(tmp_path: Path) -> None:
    text = ics(
        GOOD,
        "UID:bad-start\nDTSTART:2025XX01T100000\nSUMMARY:Broken",
        "UID:no-start\nSUMMARY:Nothing to place",
        "UID:bad-rule\nDTSTART:20250301T100000Z\nRRULE:FREQ=SOMETIMES",
        "UID:good-2\nDTSTART;VALUE=DATE:20250302\nSUMMARY:All day\nthis line is garbage",
        extra="garbage outside any event\n")
    events, problems = parsed(write(tmp_path, text), today=date(2025, 3, 1))
    assert [e.uid for e in events] == ["good-1", "good-2"]
    where = {p.location: p.reason for p in problems}
    garbage = text.replace("\r\n", "\n").split("\n").index("this line is garbage") + 1
    assert where.keys() == {"line 4", "VEVENT bad-start", "VEVENT no-start", "VEVENT bad-rule",
                            f"line {garbage}"}
    assert "DTSTART" in where["VEVENT bad-start"] and "RRULE" in where["VEVENT bad-rule"]
    assert all(p.file == "cal.ics" for p in problems)
    good = events[0]
    assert good.start == "2025-03-01T10:00:00+01:00" and good.timezone == "Europe/Berlin"
    assert good.organizer is not None and good.organizer.email == "jane.doe@example.com"
    assert good.organizer.name == "Doe, Jane"
    assert [(a.email, a.name) for a in good.attendees] == [("bob@example.com", "Bob")]
    assert events[1].all_day and events[1].start == "2025-03-02" and events[1].end == "2025-03-03"


@pytest.mark.parametrize("content", [b"", b"hello, world\n", b"BEGIN:VCARD\r\nEND:VCARD\r\n",
                                     b"\x89PNG\r\n\x1a\n\x00\x00"])
def test_a_file_that_is_not_icalendar_is_a_source_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "notes.ics"
    path.write_bytes(content)
    with pytest.raises(SourceError, match=r"notes\.ics: not an iCalendar file") as caught:
        list(parse_calendar(path))
    assert "\n" not in str(caught.value)
    with pytest.raises(SourceError, match="cannot read"):
        list(parse_calendar(tmp_path / "missing.ics"))


def test_a_cut_short_file_keeps_its_complete_events(tmp_path: Path) -> None:
    text = ics(GOOD, "UID:cut\nDTSTART:20250305T100000Z\nSUMMARY:Cut")
    path = write(tmp_path, text[: text.index("SUMMARY:Cut")])
    events, problems = parsed(path, today=date(2025, 3, 1))
    assert [e.uid for e in events] == ["good-1"]
    assert [(p.location, "ends inside this VEVENT" in p.reason) for p in problems] == [
        ("line 13", True)]


def test_series_exdate_override_and_cancelled_instance(tmp_path: Path) -> None:
    master = """UID:weekly
DTSTART;TZID=America/New_York:20250303T090000
DURATION:PT30M
RRULE:FREQ=WEEKLY;COUNT=4
EXDATE;TZID=America/New_York:20250310T090000
SUMMARY:Weekly"""
    cancelled = """UID:weekly
RECURRENCE-ID;TZID=America/New_York:20250317T090000
DTSTART;TZID=America/New_York:20250317T090000
DURATION:PT30M
STATUS:CANCELLED
SUMMARY:Weekly"""
    events, problems = parsed(write(tmp_path, ics(master, cancelled)), today=date(2025, 3, 1))
    assert problems == []
    assert [(e.start, e.end, e.status) for e in events] == [
        ("2025-03-03T09:00:00-05:00", "2025-03-03T09:30:00-05:00", "confirmed"),
        # the DST change on 9 March: the wall time stays, the offset moves
        ("2025-03-17T09:00:00-04:00", "2025-03-17T09:30:00-04:00", "cancelled"),
        ("2025-03-24T09:00:00-04:00", "2025-03-24T09:30:00-04:00", "confirmed")]
    assert all(e.recurring and e.timezone == "America/New_York" for e in events)


def test_a_custom_vtimezone_gives_its_own_offsets(tmp_path: Path) -> None:
    zone = """BEGIN:VTIMEZONE
TZID:Office Time
BEGIN:STANDARD
TZOFFSETFROM:+0530
TZOFFSETTO:+0530
DTSTART:19700101T000000
END:STANDARD
END:VTIMEZONE
"""
    event = ("UID:x\nDTSTART;TZID=Office Time:20250301T100000\n"
             "DTEND;TZID=Office Time:20250301T103000")
    [found], _ = parsed(write(tmp_path, ics(event, extra=zone)), today=date(2025, 3, 1))
    assert (found.start, found.timezone) == ("2025-03-01T10:00:00+05:30", "Office Time")


def test_a_missing_uid_gets_a_stable_one(tmp_path: Path) -> None:
    event = "DTSTAMP:{stamp}\nDTSTART:20250301T100000Z\nSUMMARY:No uid"
    first, _ = parsed(write(tmp_path, ics(event.format(stamp="20250101T000000Z")), "a.ics"))
    again, _ = parsed(write(tmp_path, ics(event.format(stamp="20250202T000000Z")), "b.ics"))
    assert len(first[0].uid) == 24 and first[0].uid == again[0].uid
    assert first[0].source.location == f"VEVENT {first[0].uid}"


def test_a_utc_series_follows_the_calendars_named_zone(tmp_path: Path) -> None:
    """Google's X-WR-TIMEZONE: a UTC series repeats at the same local hour across DST."""
    series = "UID:s\nDTSTART:20250303T140000Z\nDURATION:PT1H\nRRULE:FREQ=WEEKLY;COUNT=2"
    one_off = "UID:o\nDTSTART:20250303T140000Z\nDURATION:PT1H"
    text = ics(series, one_off, "UID:f\nDTSTART:20250303T090000\nDURATION:PT1H",
               extra="X-WR-TIMEZONE:America/New_York\n")
    events, _ = parsed(write(tmp_path, text), today=date(2025, 3, 1))
    assert [e.start for e in events if e.uid == "s"] == [
        "2025-03-03T09:00:00-05:00", "2025-03-10T09:00:00-04:00"]
    assert [e.start for e in events if e.uid == "o"] == ["2025-03-03T14:00:00+00:00"]
    assert [(e.start, e.floating) for e in events if e.uid == "f"] == [
        ("2025-03-03T09:00:00", True)]


def test_lines_outside_the_calendar_are_problems(tmp_path: Path) -> None:
    text = ics(GOOD) + "X-TRAILER:left by a tool\r\nEND:VEVENT\r\n"
    events, problems = parsed(write(tmp_path, text), today=date(2025, 3, 1))
    assert [e.uid for e in events] == ["good-1"]
    assert [p.reason for p in problems] == ["X-TRAILER outside any component",
                                            "END:VEVENT without its BEGIN"]
