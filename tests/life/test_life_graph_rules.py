"""The rule-built things of the graph: places from locations, habits from one's own recurring
events (and when they lapsed), goals from the stated priorities, accounts from statements.

Inputs are hand-made records, so each rule is checked on the case that tells it apart: a
video link is no place, a meeting with others is no habit, three weeks are a streak.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import pytest

from smallhold.apps.life.graph import ME, Graph, build_graph, place_name
from smallhold.apps.life.models import Event, Person, Source, Transaction
from smallhold.apps.life.values import Priority, Profile, Values

TZ = ZoneInfo("Europe/Berlin")
ME_PERSON = Person(email="me@home.example", name="Mia Meyer")
VALUES = Values(person=Profile(name="Mia Meyer", emails=[ME_PERSON.email],
                               timezone="Europe/Berlin"))
AS_OF = datetime(2025, 4, 30, 23, 0, tzinfo=TZ)


def _event(uid: str, day: date, summary: str, *, location: str = "",
           people: tuple[Person, ...] = (), organizer: Person | None = None,
           all_day: bool = False,
           status: Literal["confirmed", "cancelled"] = "confirmed") -> Event:
    start, end = (day.isoformat(), (day + timedelta(days=1)).isoformat()) if all_day else (
        f"{day.isoformat()}T18:00:00+02:00", f"{day.isoformat()}T19:30:00+02:00")
    return Event(uid=uid, occurrence=start, summary=summary, start=start, end=end,
                 all_day=all_day, location=location, attendees=list(people),
                 organizer=organizer, status=status,
                 source=Source(file="cal.ics", location=f"VEVENT {uid}", kind="calendar"))


def _weekly(uid: str, first: date, weeks: int, summary: str, *,
            people: tuple[Person, ...] = (), organizer: Person | None = None,
            all_day: bool = False) -> list[Event]:
    return [_event(uid, first + timedelta(weeks=n), summary, people=people,
                   organizer=organizer, all_day=all_day) for n in range(weeks)]


def _graph(events: list[Event], transactions: list[Transaction] | None = None,
           values: Values = VALUES) -> Graph:
    return build_graph([], events, transactions or [], values, AS_OF)


@pytest.mark.parametrize(("location", "place"), [
    ("  Café   Luna ", "Café Luna"),
    ("Conference Room B; https://zoom.us/j/123456", "Conference Room B"),
    ("Harbor Grill, 12 Pier St", "Harbor Grill, 12 Pier St"),
    ("Zoom Room 4", "Zoom Room 4"),  # a room with a name, not a call
    ("https://teams.microsoft.com/l/meetup-join/19abc", ""),
    ("meet.google.com/abc-defg-hij", ""),
    ("Zoom", ""), ("Microsoft Teams Meeting", ""), ("Google Meet", ""),
    ("Join Zoom Meeting https://us02web.zoom.us/j/8 (Passcode: 1234)", ""),
    ("Phone call", ""), ("TBD", ""), ("n/a", ""), ("", ""), ("  ", ""),
])
def test_a_location_is_a_place_unless_it_says_how_to_call_in(location: str,
                                                             place: str) -> None:
    assert place_name(location) == place


def test_places_get_visits_or_meetings_with_dates_months_and_evidence() -> None:
    ben = Person(email="ben@work.example", name="Ben Carter")
    events = [
        _event("dentist", date(2025, 2, 11), "Dentist", location="Bright Smile Dental"),
        _event("d1", date(2025, 3, 4), "Client dinner", location="Harbor Grill",
               people=(ME_PERSON, ben), organizer=ben),
        _event("d2", date(2025, 4, 8), "Dinner", location="  harbor   GRILL ",
               people=(ben,)),
        _event("call", date(2025, 4, 9), "Sync", location="https://zoom.us/j/1",
               people=(ben,)),
        _event("gone", date(2025, 4, 10), "Lunch", location="Harbor Grill",
               people=(ben,), status="cancelled"),
        _event("next", date(2025, 5, 6), "Dinner again", location="Harbor Grill",
               people=(ben,)),
    ]
    graph = _graph(events)
    places = {e.id: e for e in graph.entities if e.kind == "place"}
    assert set(places) == {"place:bright smile dental", "place:harbor grill"}
    grill = places["place:harbor grill"]
    assert grill.name == "Harbor Grill" and grill.data["source"] == "rule"
    assert [r["key"] for r in grill.data["planned"]] == ["next"]  # after as_of: not met yet
    edges = {(r.kind, r.dst): r for r in graph.relations if r.dst.startswith("place:")}
    assert set(edges) == {("visits", "place:bright smile dental"),
                          ("meets_at", "place:harbor grill")}
    met = edges[("meets_at", "place:harbor grill")]
    assert met.src == ME and met.data["count"] == 2 and met.data["source"] == "rule"
    assert met.first[:10] == "2025-03-04" and met.last[:10] == "2025-04-08"
    assert met.data["months"] == {"2025-03": 1, "2025-04": 1}
    assert [r["key"] for r in met.data["evidence"]] == ["d1", "d2"]
    assert met.data["hours"] == 3.0


def test_habits_are_ones_own_events_on_four_weeks_and_lapse_after_three_quiet_ones() -> None:
    ben = Person(email="ben@work.example", name="Ben Carter")
    events = [
        *_weekly("gym", date(2025, 3, 3), 6, "Gym"),
        _event("gym-x", date(2025, 4, 29), "gym!"),  # the same habit, spelled otherwise
        *_weekly("yoga", date(2025, 1, 7), 5, "Yoga", organizer=ME_PERSON,
                 people=(ME_PERSON,)),  # the owner as organizer and attendee: still alone
        *_weekly("run", date(2025, 4, 1), 3, "Run"),  # three weeks: a streak, not a habit
        *_weekly("sync", date(2025, 2, 3), 8, "Sync", people=(ben,)),  # a meeting
        *_weekly("trash", date(2025, 2, 3), 8, "Trash day", all_day=True),
        *_weekly("plan", date(2025, 5, 5), 5, "Planning run"),  # all still to come
        _event("gym-off", date(2025, 4, 22), "Gym", status="cancelled"),
    ]
    graph = _graph(events)
    habits = {e.id: e for e in graph.entities if e.kind == "habit"}
    assert set(habits) == {"habit:gym", "habit:yoga"}
    gym, yoga = habits["habit:gym"], habits["habit:yoga"]
    assert gym.name == "Gym" and gym.data["weeks"] == 7 and not gym.data["lapsed"]
    assert yoga.data["lapsed"] and yoga.data["last"] == "2025-02-04"
    does = {r.dst: r for r in graph.relations if r.kind == "does"}
    assert does["habit:gym"].data["count"] == 7 and does["habit:gym"].weight == 7 * 1.5
    assert does["habit:yoga"].data["lapsed"] and does["habit:yoga"].data["last_done"] == (
        "2025-02-04")
    assert [r["key"] for r in does["habit:yoga"].data["evidence"]] == ["yoga"] * 5
    assert does["habit:gym"].data["months"] == {"2025-03": 5, "2025-04": 2}


def test_a_habit_lapses_only_when_the_quiet_weeks_reach_the_spans_end() -> None:
    events = _weekly("swim", date(2025, 3, 1), 5, "Swim")  # last: 2025-03-29
    graph = build_graph([], events, [], VALUES, datetime(2025, 4, 18, tzinfo=TZ))
    [swim] = [e for e in graph.entities if e.kind == "habit"]
    assert not swim.data["lapsed"]  # 20 days quiet
    graph = build_graph([], events, [], VALUES, datetime(2025, 4, 19, 12, tzinfo=TZ))
    [swim] = [e for e in graph.entities if e.kind == "habit"]
    assert swim.data["lapsed"] and swim.data["last"] == "2025-03-29"


def test_goals_are_the_stated_priorities_in_order_with_their_targets() -> None:
    values = VALUES.model_copy(update={"priorities": [
        Priority(id="health_first", statement="Sleep 7 hours.",
                 targets={"sleep_hours_min": 7.0}),
        Priority(id="family", statement="Call my brother every week.")]})
    graph = _graph([], values=values)
    goals = {e.id: e for e in graph.entities if e.kind == "goal"}
    assert goals["goal:health_first"].name == "Sleep 7 hours."
    assert goals["goal:health_first"].data["targets"] == {"sleep_hours_min": 7.0}
    aims = {r.dst: r for r in graph.relations if r.kind == "aims_for"}
    assert [aims[g].data["rank"] for g in ("goal:health_first", "goal:family")] == [1, 2]
    assert aims["goal:family"].src == ME and aims["goal:family"].data["source"] == "rule"
    assert aims["goal:family"].data["evidence"][0]["key"] == "family"


def test_accounts_come_from_the_statements_with_their_transactions() -> None:
    def row(account: str, day: str, amount: str,
            kind: Literal["bank", "card"] = "bank") -> Transaction:
        return Transaction(account=account, posted=day, amount=amount, currency="EUR",
                           description=f"row {day}", kind="purchase",
                           source=Source(file=f"{kind}.csv", location=f"line {day}",
                                         kind=kind))

    rows = [row("DE89 3704", "2025-01-05", "-5.00"), row("DE89 3704", "2025-02-05", "-7.00"),
            row("4821", "2025-02-06", "-3.00", "card"), row("", "2025-02-07", "-1.00")]
    graph = _graph([], rows)
    accounts = {e.id: e for e in graph.entities if e.kind == "account"}
    assert set(accounts) == {"account:DE89 3704", "account:4821"}
    assert accounts["account:4821"].data["sources"] == ["card"]
    holds = {r.dst: r for r in graph.relations if r.kind == "holds"}
    iban = holds["account:DE89 3704"]
    assert iban.data["count"] == 2 and (iban.first, iban.last) == ("2025-01-05", "2025-02-05")
    assert [r["amount"] for r in iban.data["evidence"]] == ["-5.00", "-7.00"]
