"""life's forecast: weeks ahead from a hand-built calendar (booked + expected one-offs vs the
limit), the greedy protective proposals with their effects, protected events never proposed,
the season from a year before, and `life forecast --json` on a persona."""

from __future__ import annotations

import shutil
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from life_data import Personas, smallhold_json

from smallhold.apps.life.daily import Records
from smallhold.apps.life.forecast import forecast, iso_week, percentile
from smallhold.apps.life.models import Event, Person, Source
from smallhold.apps.life.values import Priority, Profile, Values

ME = Profile(emails=["me@home.example", "me@acme.example"], timezone="Europe/Berlin")
TEAM = [Person(email="ann@acme.example"), Person(email="bob@acme.example")]
MUM = "mum@post.example"
AS_OF = date(2026, 3, 4)  # a Wednesday: the forecast starts Monday 2026-03-09 (W11)
CAL = Source(file="cal.ics", location="VEVENT x", kind="calendar")


def _event(uid: str, day: date, start: str, minutes: int, *, recurring: bool = False,
           summary: str = "", who: list[Person] | None = None, all_day: bool = False) -> Event:
    if all_day:
        return Event(uid=uid, occurrence="", summary=summary, start=str(day),
                     end=str(day + timedelta(1)), all_day=True, source=CAL)
    begin = datetime.fromisoformat(f"{day}T{start}:00+01:00")
    iso = begin.isoformat()
    return Event(uid=uid, occurrence=iso if recurring else "", summary=summary or uid,
                 start=iso, end=(begin + timedelta(minutes=minutes)).isoformat(),
                 recurring=recurring, attendees=who if who is not None else TEAM, source=CAL)


def _weekly(uid: str, weekday: int, start: str, minutes: int, first: date, last: date,
            **kw: Any) -> list[Event]:
    day = first + timedelta((weekday - first.weekday()) % 7)
    out = []
    while day <= last:
        out.append(_event(uid, day, start, minutes, recurring=True, **kw))
        day += timedelta(7)
    return out


def _calendar(first: date = date(2025, 12, 1), last: date = date(2026, 4, 30)) -> list[Event]:
    """A weekly 'Team sync' (1.5 h, Tuesdays), a weekly 1:1 (30 min, Thursdays), a weekly
    'Family call' with mum on Mondays (1 h, a work attendee too), two one-off hours a
    week in the past (Mondays and Friday afternoons), and two heavy booked weeks ahead."""
    events = _weekly("sync", 1, "10:00", 90, first, last, summary="Team sync")
    events += _weekly("one", 3, "14:00", 30, first, last, summary="1:1 with Ann")
    events += _weekly("fam", 0, "12:00", 60, first, last, summary="Family call",
                      who=[Person(email=MUM), TEAM[0]])
    monday = first - timedelta(first.weekday())
    while monday < AS_OF - timedelta(AS_OF.weekday()):
        events.append(_event(f"adhoc-{monday}", monday, "15:00", 60))
        events.append(_event(f"fri-{monday}", monday + timedelta(4), "14:00", 60))
        monday += timedelta(7)
    for monday in (date(2026, 3, 16), date(2026, 3, 23)):  # W12, W13: a launch is booked
        for k in range(5):
            events.append(_event(f"launch-{monday}-{k}", monday + timedelta(k), "09:00", 120))
    return events


def _values(limit: float | None = 12.0, protect: str | None = None) -> Values:
    priorities = [Priority(id="family", statement="Call mum every week",
                           targets={"contact": MUM, "reply_within_days": 3})]
    if protect:
        priorities.insert(0, Priority(id="sacred", statement="s", targets={
            "calendar_summary": protect, "weekday": "TU"}))
    if limit is not None:
        priorities.append(Priority(id="boundaries", statement="Meetings under a limit",
                                   targets={"meeting_hours_per_week_max": limit}))
    return Values(person=ME, priority=priorities)


def test_hours_per_week_are_booked_plus_the_usual_one_offs() -> None:
    found = forecast(Records(_calendar(), [], []), _values(), AS_OF)
    assert [w.label for w in found.weeks] == [f"2026-W{n}" for n in range(11, 17)]
    assert found.weeks[0].start == date(2026, 3, 9) and found.limit == 12.0
    # the last 12 whole weeks had 2 h of one-offs over 5 workdays: 0.4 h a workday
    assert found.one_off_per_workday == pytest.approx(0.4)
    assert found.history == [iso_week(date(2026, 3, 2) - timedelta(weeks=k))
                             for k in range(12, 0, -1)]
    assert len(found.history_cites) == 24  # the one-offs the expected load rests on
    assert {r.key for r in found.history_cites} >= {"adhoc-2026-02-23", "fri-2026-02-23"}
    w11 = found.weeks[0]
    assert (w11.recurring, w11.one_off, w11.expected) == (3.0, 0.0, 2.0)
    assert w11.hours == 5.0 and not w11.over
    assert w11.series == {"sync": 1.5, "one": 0.5, "fam": 1.0}
    assert {r.key for r in w11.cites} == {"sync", "one", "fam"}
    w12 = found.weeks[1]  # 10 h booked one-off: more than the usual 2 h, none expected
    assert (w12.one_off, w12.expected, w12.hours) == (10.0, 0.0, 13.0) and w12.over
    assert [w.label for w in found.over] == ["2026-W12", "2026-W13"]
    assert "launch-2026-03-16-0" in {r.key for r in w12.cites}


def test_a_planned_day_off_lowers_the_expected_one_offs() -> None:
    events = [*_calendar(), _event("off", date(2026, 3, 13), "", 0, all_day=True,
                                   summary="Day off")]
    w11 = forecast(Records(events, [], []), _values(), AS_OF).weeks[0]
    assert w11.workdays == 4 and w11.expected == pytest.approx(1.6)


def test_the_greedy_proposal_brings_the_weeks_under_with_the_least_cut() -> None:
    found = forecast(Records(_calendar(), [], []), _values(), AS_OF)
    [first, *_] = found.proposals
    # skipping the 1.5 h sync clears both 1 h excesses; shortening it (90 -> 60) saves only
    # 0.5 h; the family call would clear too but conflicts with the contact priority
    assert first.action == "skip" and first.uid == "sync" and first.subject == "Team sync"
    assert first.weeks == ["2026-W12", "2026-W13"]
    assert [(e.week, e.before, e.after, e.limit) for e in first.effects] == [
        ("2026-W12", 13.0, 11.5, 12.0), ("2026-W13", 13.0, 11.5, 12.0)]
    assert "brings 2026-W12 from 13.0 h to 11.5 h (limit 12)" in first.text
    assert first.advice.conflicts == []
    assert [n.priority for n in first.advice.supports] == ["boundaries"]
    assert {r.key for r in first.cites} == {"sync"} and len(first.cites) == 2
    assert len(found.proposals) == 1  # both weeks are under after it: nothing more


def test_protected_events_are_never_proposed_nor_a_conflict_while_others_help() -> None:
    found = forecast(Records(_calendar(), [], []), _values(protect="Team sync"), AS_OF)
    # the sync would clear both weeks, but the person protects it; skipping the family call
    # would too, but conflicts with "call mum": the 1:1 and a shorter call come first
    assert [(p.action, p.uid) for p in found.proposals] == [("skip", "one"),
                                                            ("shorten", "fam")]
    assert all(p.advice.conflicts == [] for p in found.proposals)
    assert [(e.before, e.after) for e in found.proposals[1].effects] == [(12.5, 12.25)] * 2
    assert any(n.startswith("2026-W12, 2026-W13 stay over") for n in found.notes)


def test_a_change_against_a_priority_is_proposed_only_alone_and_named() -> None:
    first, last = date(2025, 12, 1), date(2026, 4, 30)
    events = _weekly("fam", 0, "12:00", 25, first, last, summary="Family call",
                     who=[Person(email=MUM), TEAM[0]])  # too short to shorten
    events += _weekly("sync", 1, "10:00", 90, first, last, summary="Team sync")
    events += [_event(f"launch-{k}", date(2026, 3, 17) + timedelta(k), "13:00", 60)
               for k in range(3)]
    found = forecast(Records(events, [], []), _values(limit=4.5, protect="Team sync"),
                     AS_OF)
    [proposal] = found.proposals
    assert (proposal.action, proposal.uid, proposal.weeks) == ("skip", "fam", ["2026-W12"])
    [conflict] = proposal.advice.conflicts
    assert conflict.priority == "family" and conflict.rank == 2 and MUM in conflict.reason
    assert [n.priority for n in proposal.advice.supports] == ["boundaries"]


def test_without_a_stated_limit_the_persons_own_usual_is_the_limit() -> None:
    found = forecast(Records(_calendar(), [], []), _values(limit=None), AS_OF)
    assert found.limit == 5.0 and "75th percentile" in found.limit_from
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 75) == 4.0
    assert [w.label for w in found.over] == ["2026-W12", "2026-W13"]


def test_a_heavier_season_a_year_ago_raises_the_expected_load() -> None:
    events = _calendar(first=date(2024, 11, 4))  # the same 2 h of one-offs a week since...
    for monday in (date(2025, 3, 10), date(2025, 3, 17), date(2025, 3, 24)):
        for k in range(3):  # ...but a March rush a year ago: 4.5 h more a week
            events.append(_event(f"rush-{monday}-{k}", monday + timedelta(k), "09:00", 90))
    found = forecast(Records(events, [], []), _values(limit=7.0), AS_OF)
    w11, w12 = found.weeks[:2]
    # W11 a year ago and its neighbours: 2, 6.5, 6.5 h against 2 h usual that winter
    assert w11.seasonal is not None and w11.seasonal.usual == 2.0
    assert w11.seasonal.weeks == ["2025-W10", "2025-W11", "2025-W12"]
    assert w11.seasonal.ratio == pytest.approx((2 + 6.5 + 6.5) / 3 / 2, abs=0.01)
    assert w11.expected == pytest.approx(2.0 * w11.seasonal.ratio, abs=0.02)
    assert w11.over and w11.hours == pytest.approx(3.0 + 5.0)  # without the season: 5 h
    assert any(r.key.startswith("rush-2025-03-10") for r in w11.seasonal.cites)
    assert w12.seasonal is not None and w12.seasonal.ratio == pytest.approx(3.0)  # capped
    assert found.weeks[-1].seasonal is None  # late April a year ago was ordinary
    # keeping Friday afternoons free saves the half of the expected one-offs that land there
    found = forecast(Records(events, [], []), _values(limit=7.0, protect="Team sync"), AS_OF)
    [block] = [p for p in found.proposals if p.action == "block"]
    assert block.subject.startswith("Friday afternoons") and block.weeks == ["2026-W11"]
    assert "50% of your one-off meeting hours" in block.text
    assert block.effects[0].before - block.effects[0].after == pytest.approx(
        found.weeks[0].expected / 2)
    assert block.cites and all(r.key.startswith("fri-") for r in block.cites)


def test_too_little_history_says_so_and_forecasts_what_is_booked() -> None:
    events = _calendar(first=date(2026, 2, 16))
    found = forecast(Records(events, [], []), _values(limit=None), AS_OF)
    assert found.one_off_per_workday is None and found.limit is None
    assert found.weeks[0].expected == 0.0 and not found.over
    assert any("whole week" in n for n in found.notes)


def test_life_forecast_json_on_a_persona(life_personas: Personas, tmp_path: Path) -> None:
    persona = life_personas.get(2)
    folder = tmp_path / "exports"
    shutil.copytree(persona.folder, folder)
    (folder / "ground_truth.json").unlink()
    smallhold_json("life", "ingest", str(folder))
    as_of = persona.truth["period"]["as_of"]
    found = smallhold_json("life", "forecast", "--as-of", as_of, "--weeks", "4")
    weeks: list[dict[str, Any]] = found["weeks"]
    assert len(weeks) == 4 and found["limit"] == 20
    assert "work_boundaries" in str(found["limit_from"])
    for week in weeks:
        assert week["hours"] == pytest.approx(week["recurring"] + week["one_off"]
                                              + week["expected"], abs=0.02)
        assert week["cites"] and all(c["kind"] == "event" for c in week["cites"])
    assert not found["proposals"]  # the persona's ~8 h weeks are far under 20
    tight = tmp_path / "tight.toml"  # the same person with a limit their weeks break
    text = (folder / "priorities.toml").read_text(encoding="utf-8")
    tight.write_text(text.replace("meeting_hours_per_week_max = 20",
                                  "meeting_hours_per_week_max = 4"), encoding="utf-8")
    smallhold_json("life", "values", "--set", str(tight))
    found = smallhold_json("life", "forecast", "--as-of", as_of, "--weeks", "4")
    proposals: list[dict[str, Any]] = found["proposals"]
    assert proposals and all(p["effects"] and p["cites"] for p in proposals)
    assert all("Family dinner" not in p["subject"] for p in proposals)
    for p in proposals:
        assert all(e["after"] < e["before"] for e in p["effects"])
        assert {"priority", "rank", "reason"} <= set((p["supports"] + p["conflicts"])[0])
