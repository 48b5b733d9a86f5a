"""life's daily facts: the personas' ground-truth rows, and the rules on hand-made records."""

from __future__ import annotations

from datetime import date

import pytest
from life_data import Personas

from smallhold.apps.life.daily import Records, build_days, daily, load_records, work_domain
from smallhold.apps.life.ingest import ingest
from smallhold.apps.life.models import Event, HealthSample, Message, Person, Source
from smallhold.apps.life.store import LifeStore
from smallhold.apps.life.values import Profile, load_values
from smallhold.store.handle import VaultHandle

FIELDS = ("workday", "meeting_hours", "sleep_hours", "steps", "resting_hr", "late_sent_emails")


@pytest.mark.parametrize("seed", [0, 1, 5, 11])  # Chicago/LA/Berlin, both DST changes
def test_daily_rows_equal_the_ground_truth(seed: int, life_personas: Personas,
                                           vault: VaultHandle) -> None:
    persona = life_personas.get(seed)
    store = LifeStore(vault)
    ingest(store, [persona.folder / f for f in ("calendar.ics", "health", "mail.mbox",
                                                 "priorities.toml")])
    period = persona.truth["period"]
    rows = daily(store, load_values(vault).person, date.fromisoformat(period["start"]),
                 date.fromisoformat(period["end"]))
    assert [str(r.date) for r in rows] == [t["date"] for t in persona.truth["daily"]]
    for row, truth in zip(rows, persona.truth["daily"], strict=True):
        got = {f: getattr(row, f) for f in FIELDS}
        assert got == pytest.approx({f: truth[f] for f in FIELDS}, abs=1e-3), row.date
        assert bool(row.meetings) == (row.meeting_hours > 0)
        assert row.late_sent_emails == len(row.late_mail)
    assert work_domain(load_records(store).events, load_values(vault).person) == \
        persona.truth["persona"]["employer_domain"]


def _src(n: int, kind: str = "calendar") -> Source:
    return Source(file="x", location=f"record {n}", kind=kind)  # type: ignore[arg-type]


def test_rules_on_hand_made_records() -> None:
    """Work domain, floating time, DST night, the evening credit and a vacation day."""
    me = Profile(emails=["me@home.example", "me@acme.example"], timezone="America/Chicago")
    colleague, partner = Person(email="ann@acme.example"), Person(email="kim@home.example")
    events = [
        Event(uid="m1", occurrence="", start="2025-03-07T10:00:00-06:00",
              end="2025-03-07T11:30:00-06:00", attendees=[colleague, partner], source=_src(1)),
        Event(uid="m2", occurrence="", start="2025-03-07T15:00:00", end="2025-03-07T15:30:00",
              floating=True, attendees=[colleague], source=_src(2)),
        Event(uid="x", occurrence="", start="2025-03-07T16:00:00Z", end="2025-03-07T17:00:00Z",
              status="cancelled", attendees=[colleague], source=_src(3)),
        Event(uid="dinner", occurrence="", start="2025-03-09T18:00:00-05:00",
              end="2025-03-09T20:00:00-05:00", attendees=[partner], source=_src(4)),
        Event(uid="off", occurrence="", start="2025-03-10", end="2025-03-11", all_day=True,
              source=_src(5)),
    ]
    health = [  # the spring-forward night: 23:00 CST to 07:00 CDT is 7 h, not 8
        HealthSample(kind="sleep_in_bed", type="s", start="2025-03-08T23:00:00-06:00",
                     end="2025-03-09T07:00:00-05:00", stage="InBed", source=_src(6, "health")),
        HealthSample(kind="sleep_asleep", type="s", start="2025-03-08T23:00:00-06:00",
                     end="2025-03-09T07:00:00-05:00", stage="AsleepCore",
                     source=_src(7, "health")),
        HealthSample(kind="steps", type="n", start="2025-03-07T12:00:00-06:00",
                     end="2025-03-07T12:10:00-06:00", value=1200, source=_src(8, "health")),
    ]
    late = Message(message_id="<a@x>", thread="<a@x>", sender=Person(email="me@acme.example"),
                   date="2025-03-08T01:30:00-06:00", source=_src(9, "mail"))
    rows = build_days(Records(events, health, [late]), me, date(2025, 3, 7), date(2025, 3, 10))
    by = {str(r.date): r for r in rows}
    assert work_domain(events, me) == "acme.example"  # ann outnumbers nobody at home
    assert by["2025-03-07"].meeting_hours == 2.0 and by["2025-03-07"].steps == 1200
    assert [r.key for r in by["2025-03-07"].meetings] == ["m1", "m2"]
    assert by["2025-03-07"].late_sent_emails == 1  # 01:30 Saturday is Friday's evening
    assert by["2025-03-09"].sleep_hours == 7.0 and by["2025-03-09"].meeting_hours == 0.0
    assert by["2025-03-07"].workday and not by["2025-03-08"].workday
    assert not by["2025-03-10"].workday  # a Monday under an all-day event, no meetings
