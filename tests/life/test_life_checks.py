"""life's checks: each planted pattern found with the exact records it rests on, nothing on
the negatives, and each detector on a small hand-made case (runs without ../shared)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from life_data import Personas

from smallhold.apps.life.alerts import Alert, Evidence
from smallhold.apps.life.checks import run_checks
from smallhold.apps.life.checks.calendar import detect_priority_conflict
from smallhold.apps.life.checks.health import detect_burnout
from smallhold.apps.life.checks.money import (
    detect_overspending,
    detect_subscription_increase,
)
from smallhold.apps.life.checks.people import detect_neglected_relationship
from smallhold.apps.life.daily import Day
from smallhold.apps.life.ingest import ingest
from smallhold.apps.life.models import Event, Message, Person, Source, Transaction
from smallhold.apps.life.store import LifeStore
from smallhold.apps.life.values import Priority, Profile, Values, load_values
from smallhold.store.handle import VaultHandle

SEEDS = [0, 2, 5, 7]


def _alerts(seed: int, personas: Personas, vault: VaultHandle) -> tuple[list[Alert],
                                                                         dict[str, Any]]:
    persona = personas.get(seed)
    store = LifeStore(vault)
    ingest(store, [persona.folder / f for f in ("calendar.ics", "bank.ofx", "card.csv",
                                                 "health", "mail.mbox", "priorities.toml")])
    truth = persona.truth
    return run_checks(store, load_values(vault), date.fromisoformat(
        truth["period"]["as_of"])), truth


def _one(alerts: list[Alert], kind: str) -> Alert:
    [alert] = [a for a in alerts if a.kind == kind]
    return alert


def _keys(alert: Alert, kind: str) -> list[str]:
    return [r.key for e in alert.evidence for r in e.records if r.kind == kind]


@pytest.mark.parametrize("seed", SEEDS)
def test_every_planted_pattern_is_found_with_its_records(seed: int, life_personas: Personas,
                                                         vault: VaultHandle) -> None:
    alerts, truth = _alerts(seed, life_personas, vault)
    p = truth["patterns"]
    assert sorted(a.kind for a in alerts) == sorted(p)  # one each, nothing else
    assert all(a.evidence for a in alerts)

    burnout, planted = _one(alerts, "burnout"), p["burnout"]
    start, end = date.fromisoformat(planted["start"]), date.fromisoformat(planted["end"])
    overlap = (min(end, burnout.end) - max(start, burnout.start)).days + 1
    assert overlap * 2 >= (end - start).days + 1
    assert burnout.start >= date.fromisoformat(planted["baseline_window"][0])
    extra = set(planted["evidence"]["extra_meeting_uids"])
    assert len(extra & set(_keys(burnout, "event"))) * 2 >= len(extra)  # the window's cited
    cited_days = {e.records[0].key for e in burnout.evidence if e.what.startswith("sleep")}
    assert cited_days <= {d["date"] for d in truth["daily"]}
    assert sorted(burnout.violates) == sorted(planted["violates"])

    over, planted = _one(alerts, "overspending"), p["overspending"]
    assert f"{over.start:%Y-%m}" == planted["month"]
    assert over.evidence[0].values["income"] == pytest.approx(planted["income"])
    assert over.evidence[0].values["spending"] == pytest.approx(planted["spending"])
    cited = _keys(over, "transaction")
    for row in planted["evidence"]["card_rows"]:
        assert f"{row['date']} {row['amount']:.2f} {row['description']}" in cited

    sub, planted = _one(alerts, "subscription_increase"), p["subscription_increase"]
    assert sub.title.startswith(planted["merchant"] + " ")
    assert sub.start == date.fromisoformat(planted["first_new_charge"])
    assert [" ".join(k.split(" ")[:2]) for k in _keys(sub, "transaction")] == [
        f"{r['date']} {r['amount']:.2f}" for r in planted["evidence"]["card_rows"]]
    assert sub.evidence[-1].values["subject"] == planted["evidence"]["notice_email_subject"]

    neglect, planted = _one(alerts, "neglected_relationship"), p["neglected_relationship"]
    assert planted["contact"] in neglect.rule and neglect.violates == planted["violates"]
    assert [(r.key, r.at, e.values["subject"]) for e in neglect.evidence
            if e.what == "unanswered message" for r in e.records] == [
        (u["message_id"], u["date"], u["subject"]) for u in planted["evidence"]["unanswered"]]
    assert [(r.key, r.at) for e in neglect.evidence if e.what == "last reply"
            for r in e.records] == [(planted["last_reply"]["message_id"],
                                     planted["last_reply"]["date"])]

    conflict, planted = _one(alerts, "priority_conflict"), p["priority_conflict"]
    assert _keys(conflict, "event") == [planted["event_uid"],
                                        planted["evidence"]["conflicts_with_uid"]]
    assert str(conflict.evidence[0].values["start"]).startswith(planted["start"])
    assert str(conflict.evidence[1].values["start"]).startswith(
        planted["evidence"]["occurrence_start"])
    assert conflict.violates == planted["violates"]


@pytest.mark.parametrize("seed", SEEDS)
def test_nothing_is_flagged_on_the_negatives(seed: int, life_personas: Personas,
                                             vault: VaultHandle) -> None:
    alerts, truth = _alerts(seed, life_personas, vault)
    text = " ".join(a.title + " " + a.rule for a in alerts)
    for negative in truth["negatives"]:
        if "sender" in negative:
            assert negative["sender"] not in text
        if "merchant" in negative:
            assert negative["merchant"] not in text.upper()
        if "start" in negative or "date" in negative:
            first = date.fromisoformat(negative.get("start", negative.get("date", "")))
            last = date.fromisoformat(negative.get("end", negative.get("date", "")))
            assert not [a for a in alerts if a.kind == "burnout"
                        and a.start <= last and first <= a.end]
    over = _one(alerts, "overspending")
    assert not [k for k in _keys(over, "transaction") if "PMT" in k or "SAVINGS" in k]


def test_an_alert_needs_evidence_and_its_id_is_stable() -> None:
    args: dict[str, Any] = dict(kind="overspending", title="t", start=date(2025, 1, 1),
                                end=date(2025, 1, 31), rule="r")
    with pytest.raises(ValueError, match="evidence"):
        Alert(**args, evidence=[])
    one, two = (Alert(**args, evidence=[Evidence(what="x", values={"a": 1})]) for _ in "12")
    assert one.id == two.id and len(one.id) == 16


# -- hand-made cases: the rules, without the generator ------------------------------------

ME = Profile(emails=["me@home.example", "me@acme.example"], timezone="Europe/Berlin")


def _values(**targets: Any) -> Values:
    return Values(person=ME, priority=[Priority(id=f"p_{k}", statement=k, targets={k: v})
                                       for k, v in targets.items()])


def _src(kind: str = "card") -> Source:
    return Source(file="x", location="line 1", kind=kind)  # type: ignore[arg-type]


def test_burnout_needs_more_meetings_and_less_sleep_for_ten_days() -> None:
    start = date(2025, 3, 3)  # a Monday
    days = []
    for i in range(60):
        d = start + timedelta(i)
        hot = 35 <= i < 49
        days.append(Day(date=d, workday=d.weekday() < 5,
                        meeting_hours=(5.0 if hot else 1.5) if d.weekday() < 5 else 0.0,
                        sleep_hours=5.5 if hot else 7.8, steps=3000 if hot else 9000))
    values = _values(sleep_hours_min=7.0, meeting_hours_per_week_max=20)
    [alert] = detect_burnout(days, values)
    assert (alert.start, alert.end) == (start + timedelta(35), start + timedelta(48))
    assert alert.violates == ["p_sleep_hours_min", "p_meeting_hours_per_week_max"]
    for day in days[35:49]:
        day.sleep_hours = 7.8  # busy weeks, good sleep: work, not burnout
    assert detect_burnout(days, values) == []


def _buy(day: str, amount: str, what: str, kind: str = "purchase") -> Transaction:
    return Transaction(account="c", posted=day, occurred=day, amount=amount, currency="EUR",
                       description=what, kind=kind, source=_src())  # type: ignore[arg-type]


def test_overspending_counts_neither_card_payments_nor_transfers() -> None:
    rows = [_buy(f"2025-0{m}-01", "3000.00", "PAY", "income") for m in (1, 2, 3)]
    rows += [_buy(f"2025-0{m}-03", "-1500.00", "RENT") for m in (1, 2)]
    rows += [_buy("2025-01-20", "-2000.00", "CARD BILL", "card_payment"),
             _buy("2025-01-21", "-900.00", "TO SAVINGS", "transfer"),
             _buy("2025-02-10", "-1200.00", "TV SHOP"), _buy("2025-02-12", "100.00", "TV SHOP",
                                                             "refund")]
    [alert] = detect_overspending(rows, _values(savings_rate_min=0.2), date(2025, 3, 5))
    assert f"{alert.start:%Y-%m}" == "2025-02"  # January: 50 % saved despite the card bill
    # (March is not a full month inside the data: not judged)
    assert alert.evidence[0].values["spending"] == 2600.0
    assert _keys(alert, "transaction")[-1] == "2025-02-10 -1200.00 TV SHOP"  # not the rent


def test_a_price_rise_that_stays_is_flagged_a_flat_or_varying_bill_not() -> None:
    rows = [_buy(f"2025-0{m}-15", a, "FLIX") for m, a in
            zip(range(1, 6), ["-9.99", "-9.99", "-12.99", "-12.99", "-12.99"], strict=True)]
    rows += [_buy(f"2025-0{m}-03", "-10.99", "MUSIC") for m in range(1, 6)]
    rows += [_buy(f"2025-0{m}-20", a, "POWER") for m, a in
             zip(range(1, 6), ["-80.00", "-80.10", "-120.40", "-131.00", "-99.00"],
                 strict=True)]
    notice = Message(message_id="<n@flix>", thread="<n@flix>", subject="Price change",
                     body="Your Flix plan costs 12.99 from March.", sender=Person(
                         email="no-reply@flix.example"), date="2025-03-01T10:00:00+01:00",
                     source=_src("mail"))
    [alert] = detect_subscription_increase(rows, [notice], _values(), date(2025, 6, 1))
    assert alert.title.startswith("FLIX ") and alert.start == date(2025, 3, 15)
    assert _keys(alert, "message") == ["<n@flix>"]


def _mail(mid: str, sender: str, day: str, reply_to: str = "") -> Message:
    return Message(message_id=mid, thread=mid, in_reply_to=reply_to, subject=f"s {mid}",
                   sender=Person(email=sender), date=f"{day}T12:00:00+01:00",
                   source=_src("mail"))


def test_unanswered_family_mail_is_flagged_a_newsletter_never() -> None:
    mum = "mum@post.example"
    mails = [_mail("<1>", mum, "2025-03-01"), _mail("<r1>", "me@home.example", "2025-03-02",
                                                     "<1>"),
             _mail("<2>", mum, "2025-03-05"), _mail("<3>", mum, "2025-03-12")]
    mails += [_mail(f"<n{i}>", "news@letter.example", f"2025-03-{i + 10}") for i in range(5)]
    values = Values(person=ME, priority=[Priority(id="close", statement="s", targets={
        "contact": mum, "reply_within_days": 4})])
    [alert] = detect_neglected_relationship(mails, values, date(2025, 3, 20))
    assert [e.records[0].key for e in alert.evidence] == ["<2>", "<3>", "<r1>"]
    assert detect_neglected_relationship(mails, values, date(2025, 3, 8)) == []  # 3 days
    assert detect_neglected_relationship(mails, _values(), date(2025, 3, 20)) == []


def test_a_planned_work_dinner_on_the_protected_evening_conflicts() -> None:
    cal = _src("calendar")
    boss, partner = Person(email="boss@acme.example"), Person(email="kim@home.example")
    team = [boss, Person(email="ann@acme.example")]  # colleagues outnumber the partner
    events = [Event(uid="dinner", occurrence=f"2025-04-{d}T18:00:00+02:00", summary="Family dinner",
                    start=f"2025-04-{d}T18:00:00+02:00", end=f"2025-04-{d}T20:00:00+02:00",
                    attendees=[partner], recurring=True, source=cal) for d in ("06", "13", "20")]
    events += [Event(uid=u, occurrence="", summary=u, start=f"2025-04-{d}T19:00:00+02:00",
                     end=f"2025-04-{d}T21:00:00+02:00", attendees=team, source=cal)
               for u, d in (("past", "06"), ("client", "20"), ("monday", "14"))]
    values = Values(person=ME, priority=[Priority(id="family", statement="s", targets={
        "calendar_summary": "Family dinner", "weekday": "SU"})])
    [alert] = detect_priority_conflict(events, values, date(2025, 4, 10))
    assert _keys(alert, "event") == ["client", "dinner"] and alert.violates == ["family"]
