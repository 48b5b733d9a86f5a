"""The facts per local day: meetings, sleep, steps, resting heart rate, late mail.

Checks reason over days, not raw records: a burnout is "meeting hours up, sleep down for
weeks", and both halves are per-day numbers in the person's own time zone (a night in
Berlin and one in Chicago end on different UTC dates). Every row keeps the references of
the records it was computed from, so an alert citing a day can cite the rows behind it.

Rules (the same as the persona generator's README, stated for any export):

- **Local day**: ``Values.person.timezone``; floating (zone-less) times are read as local.
- **Work domain**: among the person's own email domains, the one most *other* event
  attendees and organizers share (colleagues share the employer's domain; a partner at a
  webmail domain is outnumbered). None when the person has no address or no one shares one.
- **Meeting**: a timed, not cancelled event occurrence with at least one attendee at the
  work domain, credited to the local day it starts on (hours = its duration).
- **Workday**: Monday-Friday, unless a non-recurring all-day event (vacation, holiday)
  covers the day *and* no meeting takes place on it. People block a vacation loosely
  (a whole fortnight for five days off); the meetings they still attend say it was work.
  Yearly all-day events (birthdays) are reminders, not absences. A day the team's daily
  series (the standup) was taken out of the person's calendar (EXDATE) is also off when
  nothing says it was worked: no meeting, and no mail sent from the person's work address
  that day. A calendar marks a lone day off that way when no all-day event covers it, but
  a person also deletes a single standup they skip, so the skip alone is not enough:
  work seen that day keeps it a workday. An occurrence *cancelled* (``STATUS:CANCELLED``)
  is the meeting called off, not the person away: it never takes a day. Only the weekdays
  the series meets on count (a Monday-Thursday standup says nothing about Fridays).
- **Sleep**: a night belongs to the local date its ``InBed`` record ends on; its hours are
  the ``Asleep*`` stages inside that interval (``InBed``/``Awake`` are not sleep, and
  adding ``InBed`` would count the night twice). Stages outside any ``InBed`` (a Watch
  without a phone) are grouped into sessions (gaps under ``SESSION_GAP``), credited to
  the date a session ends.
- **Steps**: the sum of step samples whose start falls on the day. **Resting HR**: the
  mean of the day's resting-heart-rate samples.
- **Late sent mail**: messages from the person's addresses sent 22:00-05:00 local,
  credited to the evening they started (02:00 on Tuesday counts for Monday).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

from smallhold.apps.life.models import Event, HealthSample, Message, Transaction
from smallhold.apps.life.store import LifeStore
from smallhold.apps.life.values import Profile

LATE_START = time(22, 0)  # "evenings free": mail after 22:00 is late work
LATE_END = time(5, 0)  # and before 05:00 it still belongs to the night before
SESSION_GAP = timedelta(hours=2)  # stages closer than this are one night's sleep
DAILY_SHARE = 0.8  # a series on >= 80 % of its weekdays' dates in its run is a daily meeting
MIN_DAILY = (3, 10)  # a daily series meets on >= 3 weekdays a week, >= 10 times in all


@dataclass(frozen=True)
class Ref:
    """A record a number was computed from: (kind, natural key, its time)."""

    kind: str  # "event", "message", "health", "transaction", "day"
    key: str  # event uid, Message-ID, health source location, "date amount description"
    at: str = ""  # the record's own time (event occurrence start, message date)


@dataclass
class Day:
    """One local day's facts, with the references they rest on."""

    date: date
    workday: bool = False
    meeting_hours: float = 0.0
    sleep_hours: float | None = None  # None: no sleep recorded for this night
    steps: int = 0
    resting_hr: float | None = None
    late_sent_emails: int = 0
    meetings: list[Ref] = field(default_factory=list)
    sleep: list[Ref] = field(default_factory=list)
    late_mail: list[Ref] = field(default_factory=list)
    health: list[Ref] = field(default_factory=list)  # steps and resting heart rate samples


@dataclass
class Records:
    """Everything the checks read, loaded once from the store."""

    events: list[Event]
    health: list[HealthSample]
    messages: list[Message]
    transactions: list[Transaction] = field(default_factory=list)


def zone(profile: Profile) -> tzinfo:
    return ZoneInfo(profile.timezone or "UTC")


def local(value: str, tz: tzinfo) -> datetime:
    """An ISO time as the person's local time (a naive/floating time is already local)."""
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=tz)
    return moment.astimezone(tz)


def domain(email: str) -> str:
    return email.rsplit("@", 1)[-1].lower() if "@" in email else ""


def work_domain(events: Iterable[Event], profile: Profile) -> str | None:
    """The person's own domain that most other attendees share (see the module's rules)."""
    mine = {domain(e) for e in profile.emails if domain(e)}
    shared: Counter[str] = Counter()
    for event in events:
        people = [*event.attendees, *([event.organizer] if event.organizer else [])]
        for person in {p.email.lower() for p in people if p.email}:
            if not profile.owns(person) and domain(person) in mine:
                shared[domain(person)] += 1
    return shared.most_common(1)[0][0] if shared else None


def is_meeting(event: Event, work: str | None) -> bool:
    return (work is not None and not event.all_day and event.status != "cancelled"
            and any(domain(p.email) == work for p in event.attendees))


def span_hours(start: datetime, end: datetime) -> float:
    """Elapsed hours (in UTC: aware datetimes in one zone subtract as wall clocks, so a
    night across a daylight-saving change would gain or lose an hour)."""
    return (end.astimezone(UTC) - start.astimezone(UTC)).total_seconds() / 3600


def hours(event: Event, tz: tzinfo) -> float:
    return span_hours(local(event.start, tz), local(event.end, tz))


def _days_off(events: Iterable[Event]) -> set[date]:
    """Dates covered by a one-off all-day event (end date exclusive, as iCalendar says)."""
    off: set[date] = set()
    for event in events:
        if event.all_day and not event.recurring and event.status != "cancelled":
            first, last = date.fromisoformat(event.start[:10]), date.fromisoformat(event.end[:10])
            off.update(first + timedelta(i) for i in range(max((last - first).days, 1)))
    return off


def _series(events: Iterable[Event], work: str | None,
            tz: tzinfo) -> dict[str, tuple[set[date], set[date]]]:
    """Per recurring work series: the local dates it met, and the dates it was cancelled."""
    series: dict[str, tuple[set[date], set[date]]] = defaultdict(lambda: (set(), set()))
    for event in events:
        if not event.recurring or event.all_day:
            continue
        day = local(event.occurrence or event.start, tz).date()
        if is_meeting(event, work):
            series[event.uid][0].add(day)
        elif event.status == "cancelled" and is_meeting(
                event.model_copy(update={"status": "confirmed"}), work):
            series[event.uid][1].add(day)
    return series


def _daily_skips(held: set[date], cancelled: set[date]) -> set[date]:
    """Dates a daily series was taken out of the calendar inside its run, on the weekdays it
    meets (those it is on more often than not); cancelled occurrences are not skips. The
    series is daily when it is on >= ``DAILY_SHARE`` of those weekdays' dates."""
    first, last = min(held | cancelled), max(held | cancelled)
    run = [first + timedelta(i) for i in range((last - first).days + 1)]
    on = held | cancelled
    meets = {w for w in range(5)
             if 2 * sum(d in on for d in run if d.weekday() == w)
             > sum(d.weekday() == w for d in run)}
    expected = [d for d in run if d.weekday() in meets]
    if (len(meets) < MIN_DAILY[0] or len(held) < MIN_DAILY[1]
            or len([d for d in expected if d in on]) < DAILY_SHARE * len(expected)):
        return set()
    return {d for d in expected if d not in on}


def _skipped_by_daily_series(records: Records, profile: Profile, work: str | None,
                             tz: tzinfo) -> set[date]:
    """Days a daily work series (a standup) was taken out of the calendar and no mail was
    sent from the person's work address (see the module's rules: work seen keeps the day;
    ``build_days`` also keeps any day with a meeting)."""
    skipped: set[date] = set()
    for held, cancelled in _series(records.events, work, tz).values():
        if held:
            skipped |= _daily_skips(held, cancelled)
    if not skipped:
        return skipped
    worked = {local(m.date, tz).date() for m in records.messages
              if profile.owns(m.sender.email) and domain(m.sender.email) == work}
    return skipped - worked


def _sleep(health: list[HealthSample], tz: tzinfo) -> dict[date, tuple[float, list[Ref]]]:
    beds = [h for h in health if h.kind == "sleep_in_bed"]
    stages = sorted((h for h in health if h.kind == "sleep_asleep"), key=lambda h: h.start)
    nights: dict[date, tuple[float, list[Ref]]] = {}
    used: set[int] = set()
    spans = [(local(b.start, tz), local(b.end, tz), b) for b in beds]
    starts = [(local(s.start, tz), local(s.end, tz)) for s in stages]
    for begin, end, bed in spans:
        total, refs = 0.0, [Ref("health", bed.source.location, bed.start)]
        for i, (s0, s1) in enumerate(starts):
            if begin <= s0 and s1 <= end:
                used.add(i)
                total += span_hours(s0, s1)
                refs.append(Ref("health", stages[i].source.location, stages[i].start))
        night = end.date()
        before, old = nights.get(night, (0.0, []))
        nights[night] = (before + total, old + refs)
    session: list[int] = []
    orphans = [i for i in range(len(stages)) if i not in used]
    for n, i in enumerate(orphans):
        session.append(i)
        nxt = orphans[n + 1] if n + 1 < len(orphans) else None
        if nxt is None or starts[nxt][0] - starts[i][1] >= SESSION_GAP:
            night = starts[session[-1]][1].date()
            total = sum(span_hours(*starts[j]) for j in session)
            before, old = nights.get(night, (0.0, []))
            nights[night] = (before + total, old + [Ref("health", stages[j].source.location,
                                                          stages[j].start) for j in session])
            session = []
    return nights


def build_days(records: Records, profile: Profile, start: date, end: date) -> list[Day]:
    """One ``Day`` per local date in [start, end], computed from ``records`` alone."""
    tz = zone(profile)
    days = {start + timedelta(i): Day(start + timedelta(i))
            for i in range((end - start).days + 1)}
    work = work_domain(records.events, profile)
    for event in records.events:
        if is_meeting(event, work):
            row = days.get(local(event.start, tz).date())
            if row is not None:
                row.meeting_hours += hours(event, tz)
                row.meetings.append(Ref("event", event.uid, event.start))
    for night, (total, refs) in _sleep(records.health, tz).items():
        if night in days:
            days[night].sleep_hours, days[night].sleep = round(total, 3), refs
    resting: dict[date, list[float]] = defaultdict(list)
    for sample in records.health:
        if sample.kind in ("steps", "resting_heart_rate") and sample.value is not None:
            row = days.get(local(sample.start, tz).date())
            if row is None:
                continue
            if sample.kind == "steps":
                row.steps += round(sample.value)
            else:
                resting[row.date].append(sample.value)
            row.health.append(Ref("health", sample.source.location, sample.start))
    for day, values in resting.items():
        days[day].resting_hr = round(sum(values) / len(values), 1)
    for message in records.messages:
        if not profile.owns(message.sender.email):
            continue
        sent = local(message.date, tz)
        evening = sent.date() - timedelta(1) if sent.time() < LATE_END else sent.date()
        if (sent.time() >= LATE_START or sent.time() < LATE_END) and evening in days:
            days[evening].late_sent_emails += 1
            days[evening].late_mail.append(Ref("message", message.message_id, message.date))
    off = _days_off(records.events) | _skipped_by_daily_series(records, profile, work, tz)
    for row in days.values():
        row.meeting_hours = round(row.meeting_hours, 4)
        row.workday = row.date.weekday() < 5 and not (row.date in off and not row.meetings)
    return [days[d] for d in sorted(days)]


def load_records(store: LifeStore) -> Records:
    """Every event, health sample and message, and the transactions, from the store."""
    return Records(events=list(store.records("event")), health=list(store.records("health")),
                   messages=list(store.records("message")),
                   transactions=list(store.records("transaction")))


def data_span(records: Records, profile: Profile) -> tuple[date, date] | None:
    """The first and last local dates with health or mail data (the calendar runs ahead)."""
    tz = zone(profile)
    dates = [local(h.start, tz).date() for h in records.health]
    dates += [local(m.date, tz).date() for m in records.messages]
    return (min(dates), max(dates)) if dates else None


def daily(store: LifeStore, profile: Profile, start: date, end: date) -> list[Day]:
    """``build_days`` over everything in the store."""
    return build_days(load_records(store), profile, start, end)


__all__ = ["Day", "Records", "Ref", "build_days", "daily", "data_span", "hours", "is_meeting",
           "load_records", "local", "work_domain", "zone"]
