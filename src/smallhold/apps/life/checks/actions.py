"""What to do about an alert: one short action per kind, from the alert's own evidence.

A warning that says only "this is bad" leaves the person to work out the remedy, and a
remedy that quietly works against something else they care about is worse than none. So
each alert gets an ``Advice``: a sentence whose numbers all come from the evidence (or the
records it cites), what the action changes, and that change weighed against the
priorities (:func:`smallhold.apps.life.advice.weigh`), conflicts named.
"""

from __future__ import annotations

from collections.abc import Callable

from smallhold.apps.life.advice import Advice, Change, weigh
from smallhold.apps.life.alerts import Alert, Evidence
from smallhold.apps.life.daily import Records
from smallhold.apps.life.values import Values


def _evidence(alert: Alert, what: str) -> Evidence | None:
    return next((e for e in alert.evidence if e.what.startswith(what)), None)


def _number(evidence: Evidence | None, key: str) -> float | None:
    value = evidence.values.get(key) if evidence else None
    return float(value) if isinstance(value, int | float) else None


def _burnout(alert: Alert, values: Values, records: Records) -> tuple[str, list[Change]]:
    meet, sleep = _evidence(alert, "meetings per workday"), _evidence(alert, "sleep per night")
    steps = _evidence(alert, "steps per day")
    base, now = _number(meet, "baseline"), _number(meet, "window")
    target, slept = _number(sleep, "target"), _number(sleep, "window")
    text = "Cut meetings back"
    if base is not None and now is not None:
        text += f" toward your usual {base:.1f} h a workday (they ran at {now:.1f} h)"
    if target is not None and slept is not None:
        text += f" and guard {target:g} h of sleep (you got {slept:.1f} h)"
    changes = [Change(aspect="meeting_hours", direction="less", why="fewer meetings"),
               Change(aspect="sleep", direction="more", why="more sleep")]
    walked, usual = _number(steps, "window"), _number(steps, "baseline")
    if walked is not None and usual is not None and walked < usual:
        text += f"; walk again (steps fell from {usual:,.0f} to {walked:,.0f} a day)"
        changes.append(Change(aspect="activity", direction="more", why="walking again"))
    return text + ".", changes


def _overspending(alert: Alert, values: Values, records: Records) -> tuple[str, list[Change]]:
    month, buys = alert.evidence[0], _evidence(alert, "the largest one-off purchases")
    income, spending = _number(month, "income"), _number(month, "spending")
    goal, total = _number(month, "goal"), _number(buys, "total")
    text = "Hold one-off purchases"
    if goal is not None:
        text += f" until saving is back at {goal:.0%}"
    if buys is not None and total is not None and income and spending is not None:
        text += (f": the {len(buys.records)} largest in {alert.start:%Y-%m} came to "
                 f"{total:,.2f}; without them you would have saved "
                 f"{(income - spending + total) / income:.0%}")
    return text + ".", [Change(aspect="spending", direction="less",
                               why="holding one-off purchases")]


def _subscription(alert: Alert, values: Values, records: Records) -> tuple[str, list[Change]]:
    name = alert.title.split(" went from ")[0]
    old = _number(_evidence(alert, "charges before"), "amount")
    new = _number(_evidence(alert, "charges after"), "amount")
    text = f"Check whether {name} is still worth it"
    if old is not None and new is not None:
        text += (f" at {new:.2f} a month (+{new - old:.2f} a month, {12 * (new - old):.2f} a "
                 "year); cancel or downgrade if not")
    return text + ".", [Change(aspect="spending", direction="less",
                               why=f"cancelling or downgrading {name}")]


def _neglected(alert: Alert, values: Values, records: Records) -> tuple[str, list[Change]]:
    waiting = [e for e in alert.evidence if e.what == "unanswered message"]
    ids = {r.key for e in waiting for r in e.records}
    senders = [m.sender for m in records.messages if m.message_id in ids]
    email = senders[0].email if senders else ""
    name = (senders[0].name or email) if senders else "them"
    latest = waiting[-1].values.get("subject") if waiting else None
    text = f"Write back to {name}: {len(waiting)} message(s) since {alert.start}"
    if latest:
        text += f", the latest '{latest}'"
    return text + ".", [Change(aspect="contact", direction="more", subject=email,
                               why=f"writing back to {name}")]


def _conflict(alert: Alert, values: Values, records: Records) -> tuple[str, list[Change]]:
    uids = [r.key for e in alert.evidence for r in e.records if r.kind == "event"]
    summaries = {e.uid: e.summary for e in records.events if e.uid in uids}
    planned = summaries.get(uids[0], "the meeting") if uids else "the meeting"
    protected = summaries.get(uids[-1], "") if len(uids) > 1 else ""
    text = f"Move or decline '{planned}' on {alert.start}"
    text += f": it takes your '{protected}'." if protected else "."
    return text, [Change(aspect="protected_event", direction="more", subject=protected,
                         why=f"keeping '{protected or 'the protected time'}' free")]


def _over_commitment(alert: Alert, values: Values,
                     records: Records) -> tuple[str, list[Change]]:
    hours = _number(alert.evidence[0], "hours")
    limit = values.target("meeting_hours_per_week_max")
    text = f"Decline or move meetings in the week of {alert.start}"
    if hours is not None and limit is not None:
        text += (f": {hours - float(limit[1]):.1f} h of the {hours:.1f} h planned are over "
                 f"your {float(limit[1]):g} h")
    return (text + " (`smallhold life forecast` proposes which).",
            [Change(aspect="meeting_hours", direction="less", why="fewer meetings that week")])


ACTIONS: dict[str, Callable[[Alert, Values, Records], tuple[str, list[Change]]]] = {
    "burnout": _burnout, "overspending": _overspending, "subscription_increase": _subscription,
    "neglected_relationship": _neglected, "priority_conflict": _conflict,
    "over_commitment": _over_commitment}


def advise(alert: Alert, values: Values, records: Records,
           status: dict[str, str] | None = None) -> Advice:
    """The alert's suggested action, weighed against ``values``' priorities."""
    text, changes = ACTIONS[alert.kind](alert, values, records)
    return weigh(text, changes, values, status)


def with_advice(alerts: list[Alert], values: Values, records: Records) -> list[Alert]:
    """The alerts, each carrying its advice (ids unchanged: advice is not their content)."""
    return [a.model_copy(update={"advice": advise(a, values, records)}) for a in alerts]


__all__ = ["ACTIONS", "advise", "with_advice"]
