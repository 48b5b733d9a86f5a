"""People: someone who matters writes, and the person has stopped writing back.

Who matters comes from the person's Values (a priority's ``contact`` with
``reply_within_days``); without one, from their own habit: a sender they used to answer
(at least ``MIN_ANSWERED`` times, usually within ``HABIT_DAYS``). A newsletter is never
answered, so it is never a relationship. A message counts as answered when a later
message from one of the person's addresses names it in ``In-Reply-To``.
"""

from __future__ import annotations

from datetime import date
from statistics import median

from smallhold.apps.life.alerts import Alert, Evidence, RecordRef
from smallhold.apps.life.daily import local, zone
from smallhold.apps.life.models import Message
from smallhold.apps.life.values import Values

MIN_ANSWERED = 3  # three answers make a habit; one could be politeness
HABIT_DAYS = 3.0  # "used to answer within days"
DEFAULT_REPLY_DAYS = 7  # an inferred contact left a week without answer is worth a note


def _contacts(messages: list[Message], values: Values,
              replies: dict[str, Message]) -> dict[str, tuple[float, str | None]]:
    """contact email -> (days allowed to reply, the priority id it comes from)."""
    wanted: dict[str, tuple[float, str | None]] = {}
    for priority in values.priorities:
        contact = priority.targets.get("contact")
        if isinstance(contact, str) and contact:
            days = float(priority.targets.get("reply_within_days", DEFAULT_REPLY_DAYS))
            wanted.setdefault(contact.lower(), (days, priority.id))
    if wanted:
        return wanted
    delays: dict[str, list[float]] = {}
    for message in messages:
        reply = replies.get(message.message_id)
        if reply is not None and not values.person.owns(message.sender.email):
            hours = (local(reply.date, zone(values.person)) - local(message.date, zone(
                values.person))).total_seconds() / 86400
            delays.setdefault(message.sender.email.lower(), []).append(hours)
    return {who: (float(DEFAULT_REPLY_DAYS), None) for who, d in delays.items()
            if len(d) >= MIN_ANSWERED and median(d) <= HABIT_DAYS}


def detect_neglected_relationship(messages: list[Message], values: Values,
                                  as_of: date) -> list[Alert]:
    tz = zone(values.person)
    known = [m for m in messages if local(m.date, tz).date() <= as_of]
    replies: dict[str, Message] = {}
    for m in known:
        if values.person.owns(m.sender.email) and m.in_reply_to:
            replies.setdefault(m.in_reply_to, m)
    alerts = []
    for contact, (allowed, priority) in sorted(_contacts(known, values, replies).items()):
        theirs = [m for m in known if m.sender.email.lower() == contact]
        answered = [m for m in theirs if m.message_id in replies]
        last_reply = max((replies[m.message_id] for m in answered), key=lambda r: r.date,
                         default=None)
        after = local(last_reply.date, tz) if last_reply else None
        waiting = [m for m in theirs if m.message_id not in replies
                   and (after is None or local(m.date, tz) > after)]
        if not waiting:
            continue
        since = local(waiting[0].date, tz).date()
        if (as_of - since).days <= allowed:
            continue
        evidence = [Evidence(what="unanswered message", values={"subject": m.subject},
                             records=[RecordRef(kind="message", key=m.message_id,
                                                at=str(local(m.date, tz).date()))])
                    for m in waiting]
        if last_reply is not None:
            evidence.append(Evidence(what="last reply", values={"subject": last_reply.subject},
                                     records=[RecordRef(kind="message",
                                                        key=last_reply.message_id,
                                                        at=str(local(last_reply.date,
                                                                     tz).date()))]))
        name = waiting[0].sender.name or contact
        alerts.append(Alert(
            kind="neglected_relationship", title=f"{len(waiting)} messages from {name} "
            f"unanswered since {since}", start=since, end=as_of,
            severity="high" if (as_of - since).days > 3 * allowed else "warning",
            rule=f"messages from {contact} with no reply from your addresses (In-Reply-To) "
            f"for more than {allowed:g} days"
            + (f" (reply_within_days of {priority})" if priority else
               f" (you used to answer {MIN_ANSWERED}+ times within {HABIT_DAYS:g} days)"),
            evidence=evidence, violates=[priority] if priority else []))
    return alerts




__all__ = ["detect_neglected_relationship"]
