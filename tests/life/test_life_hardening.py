"""Real exports' habits: a skipped or cancelled standup is not a day off, subscriptions billed
in another currency are judged on their own price, and a US CSV's currency is never guessed."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from smallhold.apps.life.checks.money import detect_subscription_increase
from smallhold.apps.life.daily import Records, build_days
from smallhold.apps.life.ingest import ingest
from smallhold.apps.life.models import Event, Message, Person, Problem, Source, Transaction
from smallhold.apps.life.sources.csvbank import parse_csv, parse_original
from smallhold.apps.life.sources.money import merchant_name, parse_csv_remembering
from smallhold.apps.life.store import LifeStore
from smallhold.apps.life.values import Profile, Values, load_values
from smallhold.store.handle import VaultHandle

ME = Profile(emails=["me@home.example", "me@acme.example"], timezone="Europe/Berlin")
TEAM = [Person(email="ann@acme.example"), Person(email="bob@acme.example")]
CAL = Source(file="cal.ics", location="VEVENT standup", kind="calendar")
MONDAY = date(2025, 3, 3)


def _standup(day: date, status: str = "confirmed") -> Event:
    start = f"{day}T09:30:00+01:00"
    return Event(uid="standup", occurrence=start, summary="Standup", start=start,
                 end=f"{day}T09:45:00+01:00", recurring=True, attendees=TEAM,
                 status=status, source=CAL)


def _weeks_of_standups(skip: set[date], cancel: frozenset[date] = frozenset(),
                       weekdays: int = 5) -> list[Event]:
    days = [MONDAY + timedelta(i) for i in range(21)
            if (MONDAY + timedelta(i)).weekday() < weekdays]
    return [_standup(d, "cancelled" if d in cancel else "confirmed") for d in days
            if d not in skip]


def _sent(day: date, hour: int = 11) -> Message:
    return Message(message_id=f"<{day}@acme>", thread=f"<{day}@acme>",
                   sender=Person(email="me@acme.example"), to=[TEAM[0]],
                   date=f"{day}T{hour:02d}:00:00+01:00",
                   source=Source(file="m", location="message 1", kind="mail"))


def _workday(events: list[Event], messages: list[Message], day: date) -> bool:
    rows = build_days(Records(events, [], messages), ME, MONDAY, MONDAY + timedelta(20))
    return next(r.workday for r in rows if r.date == day)


def test_a_skipped_standup_with_work_that_day_is_still_a_workday() -> None:
    wednesday = MONDAY + timedelta(9)
    events = _weeks_of_standups({wednesday})
    # the person took the standup out of their calendar and mailed a colleague at 11:00
    assert _workday(events, [_sent(wednesday)], wednesday)
    # with nothing at all that day, the taken-out standup still marks a day off
    assert not _workday(events, [_sent(wednesday + timedelta(1))], wednesday)


def test_a_cancelled_standup_is_the_meeting_called_off_not_a_day_off() -> None:
    wednesday = MONDAY + timedelta(9)
    events = _weeks_of_standups(set(), cancel=frozenset({wednesday}))
    assert _workday(events, [], wednesday)


def test_a_four_day_standup_says_nothing_about_fridays() -> None:
    events = _weeks_of_standups(set(), weekdays=4)  # Monday to Thursday
    assert _workday(events, [], MONDAY + timedelta(4))


# -- subscriptions billed in another currency --------------------------------------------

def _charge(month: int, booked: str, text: str = "NETFLIX.COM", original: str = "",
            code: str = "") -> Transaction:
    day = f"2025-{month:02d}-15"
    return Transaction(account="c", posted=day, occurred=day, amount=f"-{booked}",
                       currency="EUR", description=text, kind="purchase",
                       original_amount=f"-{original}" if original else "",
                       original_currency=code,
                       source=Source(file="c.csv", location=f"line {month}", kind="card"))


# USD 9.99 a month on a EUR card: the booked amount follows the rate by a few %
RATES = ["0.9211", "0.9480", "0.9052", "0.9317", "0.9598", "0.9140"]


def _booked(usd: str, rate: str) -> str:
    return str((Decimal(usd) * Decimal(rate)).quantize(Decimal("0.01")))


def test_fx_noise_on_a_foreign_subscription_is_no_price_rise() -> None:
    steady = [_charge(m + 1, _booked("9.99", r), original="9.99", code="USD")
              for m, r in enumerate(RATES)]
    assert detect_subscription_increase(steady, [], Values(person=ME), date(2025, 7, 1)) == []
    marked = [_charge(m + 1, _booked("9.99", r), text="NETFLIX.COM FOREIGN TRX")
              for m, r in enumerate(RATES)]
    assert detect_subscription_increase(marked, [], Values(person=ME), date(2025, 7, 1)) == []


def test_a_foreign_price_rise_is_found_on_the_merchants_own_price() -> None:
    prices = ["9.99", "9.99", "9.99", "13.99", "13.99", "13.99"]
    rows = [_charge(m + 1, _booked(p, r), original=p, code="USD")
            for m, (p, r) in enumerate(zip(prices, RATES, strict=True))]
    [alert] = detect_subscription_increase(rows, [], Values(person=ME), date(2025, 7, 1))
    assert alert.title == "NETFLIX.COM went from 9.99 to 13.99 USD a month (+40%)"
    assert alert.start == date(2025, 4, 15)
    assert alert.evidence[0].values["currency"] == "USD"
    first_new = alert.evidence[1].records[0].key  # the booked row, as the statement has it
    assert first_new == f"2025-04-15 -{_booked('13.99', RATES[3])} NETFLIX.COM"
    # the bank wrote the price and the rate into the text instead: one merchant all the same
    texts = [_charge(m + 1, _booked(p, r), text=f"NETFLIX.COM USD {p} KURS {r}")
             for m, (p, r) in enumerate(zip(prices, RATES, strict=True))]
    [alert] = detect_subscription_increase(texts, [], Values(person=ME), date(2025, 7, 1))
    assert alert.title.startswith("NETFLIX.COM went from 9.99 to 13.99 USD")
    assert merchant_name("Netflix.com USD 13.99 Kurs 0.9317") == "NETFLIX.COM"


def test_without_the_original_a_rise_must_clear_the_fx_band() -> None:
    noisy = ["9.21", "9.48", "9.05", "12.93", "13.42", "12.79"]  # +40 % beyond +-5 % noise
    rows = [_charge(m + 1, a, text="STREAM INTL") for m, a in enumerate(noisy)]
    [alert] = detect_subscription_increase(rows, [], Values(person=ME), date(2025, 7, 1))
    assert "billed abroad" in alert.rule and alert.start == date(2025, 4, 15)
    same = [_charge(m + 1, a, text="STREAM") for m, a in enumerate(noisy)]  # not abroad:
    assert detect_subscription_increase(same, [], Values(person=ME), date(2025, 7, 1)) == []


def test_the_original_amount_column_is_read(tmp_path: Path) -> None:
    assert parse_original("12,99 USD", "", True) == (Decimal("12.99"), "USD")
    assert parse_original("USD 1,234.50", "", True) == (Decimal("1234.50"), "USD")
    assert parse_original("9.99", "gbp", True) == (Decimal("9.99"), "GBP")
    assert parse_original("", "", True) is None
    path = tmp_path / "dkb.csv"
    path.write_bytes(('"Belegdatum";"Beschreibung";"Betrag (EUR)";"Ursprünglicher Betrag";\n'
                      '"15.01.2025";"NETFLIX.COM";"-9,21";"9,99 USD";\n'
                      '"16.01.2025";"BÄCKEREI";"-3,20";"";\n').encode("cp1252"))
    rows = [r for r in parse_csv(path) if isinstance(r, Transaction)]
    assert [(r.amount, r.currency, r.original_amount, r.original_currency) for r in rows] == [
        ("-9.21", "EUR", "-9.99", "USD"), ("-3.20", "EUR", "", "")]


# -- a currency is never guessed --------------------------------------------------------

US_CARD = ("Transaction Date,Post Date,Description,Category,Type,Amount,Memo\n"
           "01/15/2025,01/16/2025,CORNER CAFE,Food & Drink,Sale,-4.50,\n")


class _Mappings:
    def __init__(self) -> None:
        self.saved: dict[str, dict[str, object]] = {}

    def mapping(self, header: str) -> dict[str, object] | None:
        return self.saved.get(header)

    def save_mapping(self, header: str, mapping: dict[str, object]) -> None:
        self.saved[header] = mapping


def test_a_us_csv_takes_the_stated_currency_or_says_it_has_none(tmp_path: Path) -> None:
    path = tmp_path / "card.csv"
    path.write_text(US_CARD, encoding="utf-8")
    [row] = list(parse_csv_remembering(path, _Mappings(), "USD"))
    assert isinstance(row, Transaction) and row.currency == "USD"
    note, row = list(parse_csv_remembering(path, _Mappings()))
    assert isinstance(note, Problem) and note.location == "header"
    assert "no currency" in note.reason and "never guessed" in note.reason
    assert isinstance(row, Transaction) and row.currency == ""  # not "USD" by default


def test_ingest_reads_the_priorities_first_for_the_currency(tmp_path: Path,
                                                            vault: VaultHandle) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "a-card.csv").write_text(US_CARD, encoding="utf-8")  # sorts before the values
    (folder / "priorities.toml").write_text('[person]\nname = "Sam"\ncurrency = "CAD"\n',
                                            encoding="utf-8")
    store = LifeStore(vault)
    report = ingest(store, [folder])
    assert report.problems == 0 and load_values(vault).person.currency == "CAD"
    assert [t.currency for t in store.records("transaction")] == ["CAD"]


def test_ingest_without_a_stated_currency_reports_it(tmp_path: Path,
                                                     vault: VaultHandle) -> None:
    path = tmp_path / "card.csv"
    path.write_text(US_CARD, encoding="utf-8")
    store = LifeStore(vault)
    report = ingest(store, [path])
    assert report.problems == 1 and report.added == 1
    [problem] = store.problems()
    assert problem.location == "header" and "currency" in problem.reason
