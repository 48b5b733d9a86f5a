"""Recommendations weighed against the ordered priorities: supports and conflicts in the
person's order, with reasons; each alert's suggested action; a decision's plan by rule."""

from __future__ import annotations

from datetime import date, timedelta

from life_data import Personas

from smallhold.apps.life.advice import Change, weigh
from smallhold.apps.life.alerts import Alert, Evidence, RecordRef
from smallhold.apps.life.checks.actions import advise
from smallhold.apps.life.daily import Day, Records
from smallhold.apps.life.decide import plan_changes, priority_status, weigh_plan
from smallhold.apps.life.models import Message, Person, Source, Transaction
from smallhold.apps.life.values import Priority, Profile, Values
from smallhold.store.handle import VaultHandle

ME = Profile(emails=["me@home.example", "me@acme.example"], timezone="Europe/Berlin")
MUM = "mum@post.example"


def _values() -> Values:
    return Values(person=ME, priority=[
        Priority(id="health", statement="Sleep 7 h", targets={"sleep_hours_min": 7.0,
                                                              "steps_min": 7000}),
        Priority(id="dinner", statement="Sunday dinner", targets={
            "calendar_summary": "Family dinner", "weekday": "SU"}),
        Priority(id="save", statement="Save 20 %", targets={"savings_rate_min": 0.2}),
        Priority(id="mum", statement="Write back to mum", targets={"contact": MUM,
                                                                   "reply_within_days": 3}),
        Priority(id="meetings", statement="Meetings under 20 h",
                 targets={"meeting_hours_per_week_max": 20}),
        Priority(id="kind", statement="Be kind"),  # no target: no rule can check it
    ])


def test_supports_and_conflicts_come_in_the_priorities_order() -> None:
    advice = weigh("Take the night shift for the bonus", [
        Change(aspect="meeting_hours", direction="less", why="no day meetings"),
        Change(aspect="sleep", direction="less", why="night shifts"),
        Change(aspect="spending", direction="less", why="the bonus is saved"),
        Change(aspect="contact", direction="less", subject=MUM, why="no evenings free"),
        Change(aspect="contact", direction="more", subject="boss@acme.example",
               why="more time with the boss"),
    ], _values(), {"health": "missed now: 6.1 h of sleep against 7"})
    assert [(n.priority, n.rank) for n in advice.conflicts] == [("health", 1), ("mum", 4)]
    assert [(n.priority, n.rank) for n in advice.supports] == [("save", 3), ("meetings", 5)]
    health = advice.conflicts[0]
    assert health.reason == ("night shifts: you want to sleep at least 7 h a night "
                             "(missed now: 6.1 h of sleep against 7)")
    assert MUM in advice.conflicts[1].reason and "boss" not in advice.conflicts[1].reason
    assert "save at least 20% of income" in advice.supports[0].reason
    assert advice.unchecked == ["kind"]
    assert advice.text == "Take the night shift for the bonus"


def test_a_protected_event_and_a_change_about_no_one_in_particular() -> None:
    values = _values()
    keep = weigh("move the client dinner", [Change(
        aspect="protected_event", direction="more", subject="family dinner")], values)
    assert [n.priority for n in keep.supports] == ["dinner"] and keep.conflicts == []
    other = weigh("skip the team dinner", [Change(
        aspect="protected_event", direction="less", subject="Team dinner")], values)
    assert other.conflicts == [] and other.supports == []  # not the protected one
    away = weigh("move abroad", [Change(aspect="contact", direction="less")], values)
    assert [n.priority for n in away.conflicts] == ["mum"]  # everyone, so mum too
    assert weigh("nothing", [], values).conflicts == []


def _src(kind: str) -> Source:
    return Source(file="x", location="line 1", kind=kind)


def test_each_alert_kind_gets_advice_from_its_evidence() -> None:
    values = _values()
    letter = Message(message_id="<m1>", thread="<m1>", subject="Call me",
                     sender=Person(email=MUM, name="Mum"), date="2025-03-01T10:00:00+01:00",
                     source=_src("mail"))
    records = Records(events=[], health=[], messages=[letter])
    neglect = Alert(kind="neglected_relationship", title="1 messages from Mum unanswered",
                    start=date(2025, 3, 1), end=date(2025, 3, 9), rule="r", evidence=[
                        Evidence(what="unanswered message", values={"subject": "Call me"},
                                 records=[RecordRef(kind="message", key="<m1>")])])
    advice = advise(neglect, values, records)
    assert advice.text == "Write back to Mum: 1 message(s) since 2025-03-01, the latest 'Call me'."
    assert [n.priority for n in advice.supports] == ["mum"] and advice.conflicts == []
    spend = Alert(kind="overspending", title="t", start=date(2025, 2, 1), end=date(2025, 2, 28),
                  rule="r", evidence=[
                      Evidence(what="the month's income and spending", values={
                          "income": 4000.0, "spending": 3800.0, "savings_rate": 0.05,
                          "goal": 0.2}),
                      Evidence(what="the largest one-off purchases", values={"total": 1200.0},
                               records=[RecordRef(kind="transaction", key="k")])])
    advice = advise(spend, values, records)
    assert "the 1 largest in 2025-02 came to 1,200.00" in advice.text
    assert "you would have saved 35%" in advice.text  # (4000 - 3800 + 1200) / 4000
    assert [n.priority for n in advice.supports] == ["save"]
    sub = Alert(kind="subscription_increase", title="FLIX went from 9.99 to 12.99 a month",
                start=date(2025, 3, 15), end=date(2025, 4, 15), rule="r", evidence=[
                    Evidence(what="charges before the rise", values={"amount": 9.99}),
                    Evidence(what="charges after the rise", values={"amount": 12.99})])
    assert "+3.00 a month, 36.00 a year" in advise(sub, values, records).text


def test_the_checks_attach_advice_without_changing_alert_ids() -> None:
    from smallhold.apps.life.checks import checks_over

    rows = [Transaction(account="c", posted=d, occurred=d, amount=a, currency="EUR",
                        description=w, kind=k, source=_src("card"))
            for d, a, w, k in [("2025-01-01", "3000.00", "PAY", "income"),
                               ("2025-02-01", "3000.00", "PAY", "income"),
                               ("2025-03-01", "3000.00", "PAY", "income"),
                               ("2025-02-10", "-2900.00", "TV SHOP", "purchase")]]
    records = Records(events=[], health=[], messages=[], transactions=rows)
    [alert] = checks_over(records, _values(), date(2025, 3, 5))
    assert alert.advice is not None and alert.advice.supports[0].priority == "save"
    bare = alert.model_copy(update={"advice": None, "id": ""})
    assert Alert.model_validate(bare.model_dump()).id == alert.id


def test_a_decisions_plan_is_weighed_with_each_priority_in_the_data() -> None:
    values = _values()
    assert [(c.aspect, c.direction) for c in plan_changes("take the job offer and buy a car?")
            ] == [("meeting_hours", "more"), ("spending", "more")]
    assert plan_changes("should I call my sister?") == []
    start = date(2025, 3, 3)
    days = [Day(date=start + timedelta(i), workday=(start + timedelta(i)).weekday() < 5,
                meeting_hours=3.0 if (start + timedelta(i)).weekday() < 5 else 0.0,
                sleep_hours=6.0, steps=9000) for i in range(28)]
    status = priority_status(Records([], [], []), values, [], days, date(2025, 3, 31))
    assert status["health"].startswith("missed now: 6.0 h of sleep")
    assert "9,000 steps" not in status["health"]  # the met half is not a miss
    assert status["meetings"].startswith("met now: 15.0 h of meetings a week")
    advice = weigh_plan("Take the job offer in Berlin?", Records([], [], []), values, [],
                        date(2025, 3, 31))
    assert [n.priority for n in advice.conflicts] == ["meetings"]
    assert "'job' in the question" in advice.conflicts[0].reason


def test_decide_names_the_plans_conflicts_in_the_prompt_and_the_decision(
        life_personas: Personas, vault: VaultHandle, settings: object, paths: object) -> None:
    from smallhold.apps.life.daily import load_records
    from smallhold.apps.life.decide import decide
    from smallhold.apps.life.ingest import ingest
    from smallhold.apps.life.store import LifeStore
    from smallhold.apps.life.values import load_values
    from smallhold.runtime import Runtime
    from smallhold.runtime.backends.scripted import ScriptedBackend

    persona = life_personas.get(2)
    store = LifeStore(vault)
    ingest(store, [persona.folder])
    backend = ScriptedBackend(["More money, less time [F1]. What I do not know: the rent."])
    runtime = Runtime(settings, paths, backend=backend, app="life")  # type: ignore[arg-type]
    as_of = date.fromisoformat(persona.truth["period"]["as_of"])
    decision = decide("Take the job offer and buy a house?", load_records(store),
                      load_values(vault), [], as_of, runtime)
    assert decision.plan is not None
    # the persona saved 5 % in its overspent month but ~25 % lately: met, and still named
    assert [n.priority for n in decision.plan.conflicts] == ["save_20_percent",
                                                             "work_boundaries"]
    saving, meetings = decision.plan.conflicts
    assert "'buy' in the question" in saving.reason and "now:" in saving.reason
    assert "'job' in the question" in meetings.reason and "h of meetings a week" in \
        meetings.reason
    values = [f for f in decision.facts if f.topic == "values"]
    assert {f.cites[0] for f in values} >= {"health_first", "save_20_percent",
                                             "work_boundaries"}
    sent = backend.requests[0].messages[1].content
    assert "Conflicts with their priorities, found by rule:" in sent
    assert "- save_20_percent (priority 3)" in sent
