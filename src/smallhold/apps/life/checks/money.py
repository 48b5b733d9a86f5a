"""Money: a month that saved less than the person's goal, and a subscription that got dearer.

Counting follows the statement's own types: income is pay in (``income``); spending is
purchases, withdrawals and fees, less refunds; card payments and transfers to savings
move money between the person's own accounts and are not spending (counting the card bill
and the card's purchases would count every purchase twice). A transaction belongs to the
month of the purchase itself when the source gives it, else of its posting.

A subscription billed in another currency is judged on the merchant's own price when the
statement gives it (``original_amount``, or "USD 15.49" in the text): a rate that moves
does not move the price. Without it, the booked amounts of a charge billed abroad may
wander by ``FX_NOISE`` month to month; only a step beyond that band, and at least
``RISE``, is a price rise.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal
from itertools import pairwise
from statistics import median

from smallhold.apps.life.alerts import Alert, Evidence, RecordRef
from smallhold.apps.life.daily import local, zone
from smallhold.apps.life.models import Message, Transaction
from smallhold.apps.life.sources.money import billed_abroad, foreign_in_text, merchant_name
from smallhold.apps.life.values import Values

SPENDING = {"purchase", "refund", "withdrawal", "fee"}  # refunds are positive: they subtract
LARGEST = 5  # the few purchases that explain a month; more is a statement, not evidence
RISE = Decimal("1.20")  # +20 %: price rises below that are rounding or currency noise
STABLE = Decimal("0.005")  # a subscription bills the same price (to the cent, bar rounding);
# a utility bill that varies month to month is usage, not a price, and is left alone
MONTHLY_GAP = (25, 36)  # days between charges of a monthly bill (28-31, plus posting drift)
SAME_DAY = 4  # billing day of month may drift this much (weekends, short months)
FX_NOISE = Decimal("0.05")  # a card's rate moves a charge billed abroad by a few % a month
MIN_BEFORE = 2  # two equal charges before the rise: an established price, not a trial
NOTICE_DAYS = 60  # a price notice comes within two months before the new charge


def when(t: Transaction) -> date:
    return date.fromisoformat(t.occurred or t.posted)


def ref(t: Transaction) -> RecordRef:
    return RecordRef(kind="transaction", key=f"{when(t)} {t.amount} {t.description}",
                     at=str(when(t)))


def _month_end(month: date) -> date:
    return (month.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)


def month_totals(transactions: list[Transaction],
                 as_of: date) -> dict[str, tuple[Decimal, Decimal, list[Transaction]]]:
    """(income, spending, its transactions) per full calendar month inside the data."""
    if not transactions:
        return {}
    first = min(when(t) for t in transactions)
    last = min(max(when(t) for t in transactions), as_of)
    months: dict[str, tuple[Decimal, Decimal, list[Transaction]]] = {}
    for t in transactions:
        day = when(t)
        start = day.replace(day=1)
        if start < first or _month_end(day) > last or t.kind not in SPENDING | {"income"}:
            continue
        key = f"{day:%Y-%m}"
        income, spending, rows = months.get(key, (Decimal(0), Decimal(0), []))
        amount = Decimal(t.amount)
        if t.kind == "income":
            income += amount
        else:
            spending -= amount
        months[key] = (income, spending, [*rows, t])
    return months


def detect_overspending(transactions: list[Transaction], values: Values,
                        as_of: date) -> list[Alert]:
    target = values.target("savings_rate_min")
    if target is None:
        return []
    goal = float(target[1])
    months = month_totals(transactions, as_of)
    seen: dict[str, set[str]] = defaultdict(set)  # payee -> months it was charged in
    for key, (_, _, rows) in months.items():
        for t in rows:
            seen[t.payee or t.description].add(key)
    alerts = []
    for key, (income, spending, rows) in sorted(months.items()):
        if income <= 0:
            continue
        rate = float((income - spending) / income)
        if rate >= goal:
            continue
        # one-off purchases explain a bad month; the rent and the gym are every month
        regular = {p for p, ms in seen.items() if len(ms) > 1 and len(ms) >= len(months) / 2}
        buys = sorted((t for t in rows if t.kind == "purchase"
                       and (t.payee or t.description) not in regular),
                      key=lambda t: Decimal(t.amount))[:LARGEST]
        start = date.fromisoformat(f"{key}-01")
        alerts.append(Alert(
            kind="overspending", title=f"Saved {rate:.0%} of income in {key} (goal {goal:.0%})",
            start=start, end=_month_end(start), severity="warning",
            rule=f"a full calendar month whose savings rate (income - spending) / income is "
            f"below the savings_rate_min target {goal:g}; card payments and transfers are "
            "not spending, refunds subtract",
            evidence=[
                Evidence(what="the month's income and spending", values={
                    "income": float(income), "spending": float(spending),
                    "savings_rate": round(rate, 4), "goal": goal},
                    records=[ref(t) for t in rows if t.kind == "income"]),
                Evidence(what="the largest one-off purchases", records=[ref(t) for t in buys],
                         values={"total": float(-sum(Decimal(t.amount) for t in buys))}),
            ], violates=[target[0].id]))
    return alerts


def merchant(t: Transaction) -> str:
    return merchant_name(t.payee or t.description)


def prices(charges: list[Transaction]) -> tuple[list[Decimal], str, Decimal]:
    """(each charge's price, its currency, the tolerance a stable price has).

    The merchant's own price when every charge carries one in one currency (then exact:
    ``STABLE``); else the booked amounts, with ``FX_NOISE`` when the charges were billed
    abroad (the rate moves them) and ``STABLE`` when not."""
    own = [(Decimal(t.original_amount), t.original_currency) if t.original_amount
           else foreign_in_text(f"{t.description} {t.payee}", t.currency) for t in charges]
    codes = {o[1] for o in own if o is not None}
    if all(o is not None for o in own) and len(codes) == 1:
        return [abs(o[0]) for o in own if o is not None], codes.pop(), STABLE
    booked = [-Decimal(t.amount) for t in charges]
    abroad = any(billed_abroad(t) for t in charges)
    return booked, charges[-1].currency, FX_NOISE if abroad else STABLE


def _monthly(charges: list[Transaction]) -> bool:
    days = [when(t) for t in charges]
    gaps = [(b - a).days for a, b in pairwise(days)]
    anchor = median(d.day for d in days)
    return (len(days) >= MIN_BEFORE + 1 and all(MONTHLY_GAP[0] <= g <= MONTHLY_GAP[1]
                                                for g in gaps)
            and all(min(abs(d.day - anchor), 31 - abs(d.day - anchor)) <= SAME_DAY
                    for d in days))


def _notice(name: str, messages: list[Message], first_new: date,
            values: Values) -> Message | None:
    word = next((w for w in re.split(r"[^A-Za-z]+", name) if len(w) >= 4), "")
    if not word:
        return None
    tz = zone(values.person)
    for message in reversed(messages):
        sent = local(message.date, tz).date()
        text = f"{message.subject} {message.body}".lower()
        if first_new - timedelta(NOTICE_DAYS) <= sent <= first_new and word.lower() in text:
            return message
    return None


def detect_subscription_increase(transactions: list[Transaction], messages: list[Message],
                                 values: Values, as_of: date) -> list[Alert]:
    by_merchant: dict[str, list[Transaction]] = defaultdict(list)
    for t in transactions:
        if t.kind == "purchase" and when(t) <= as_of:
            by_merchant[merchant(t)].append(t)
    alerts = []
    for name, charges in sorted(by_merchant.items()):
        charges.sort(key=when)
        if not _monthly(charges):
            continue
        amounts, currency, tolerance = prices(charges)
        for i in range(MIN_BEFORE, len(charges)):
            old = amounts[i - 1]
            before_ok = all(abs(a - old) <= old * tolerance for a in amounts[:i])
            new = amounts[i]
            after_ok = all(abs(a - new) <= new * tolerance for a in amounts[i:])
            beyond = tolerance == STABLE or min(amounts[i:]) >= max(amounts[:i]) * RISE
            if before_ok and after_ok and new >= old * RISE and beyond:
                break
        else:
            continue
        rise = float(amounts[i] / old - 1)
        own = currency if tolerance == STABLE and currency != charges[-1].currency else ""
        mark: dict[str, float | int | str | None] = {"currency": own} if own else {}
        evidence = [Evidence(what="charges before the rise", records=[ref(t) for t in charges[:i]],
                             values={"amount": float(old), **mark}),
                    Evidence(what="charges after the rise", records=[ref(t) for t in charges[i:]],
                             values={"amount": float(amounts[i]), "rise": round(rise, 3), **mark})]
        notice = _notice(name, messages, when(charges[i]), values)
        if notice is not None:
            evidence.append(Evidence(what="price notice in the mailbox", values={
                "subject": notice.subject}, records=[RecordRef(
                    kind="message", key=notice.message_id, at=notice.date)]))
        alerts.append(Alert(
            kind="subscription_increase", title=f"{name} went from {old} to {amounts[i]}"
            f"{' ' + own if own else ''} a month (+{rise:.0%})", start=when(charges[i]),
            end=when(charges[-1]),
            severity="info",
            rule=f"a charge from the same payee about monthly (every {MONTHLY_GAP[0]}-"
            f"{MONTHLY_GAP[1]} days, within {SAME_DAY} days of the same day of month) that "
            f"rose by >= {float(RISE) - 1:.0%} after {MIN_BEFORE}+ equal charges and stayed at "
            "the new price" + (f" (the merchant's own price in {own})" if own else
                               f" (billed abroad: equal within {float(FX_NOISE):.0%}, the "
                               "rise beyond that band)" if tolerance != STABLE else ""),
            evidence=evidence))
    return alerts


__all__ = ["detect_overspending", "detect_subscription_increase", "month_totals", "when"]
