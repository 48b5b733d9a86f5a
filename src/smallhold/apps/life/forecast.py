"""Predictive planning: the coming weeks' meeting load, and changes that would protect them.

``forecast`` looks ``weeks`` whole weeks ahead of ``as_of`` (from the next Monday, as the
over-commitment check does). A week's forecast is three numbers, each from the data:

- **booked**: the work meetings already on the calendar that week (``daily.is_meeting``),
  recurring series and one-off meetings apart. Series are stored expanded per occurrence
  (``sources.calendar`` expands open-ended ones ``HORIZON_DAYS`` past the ingest);
  ``known_until`` says how far they reach, and a week past it is named in ``notes``.
- **expected**: one-off meetings not booked yet. The calendar keeps no booking dates, so
  "how much a week grew after it was booked" cannot be measured; what can is the typical
  one-off load: the median, over the last ``HISTORY_WEEKS`` whole weeks with a workday,
  of one-off meeting hours per workday, times the week's workdays (a planned holiday
  counts), less what is already booked one-off (booked meetings are part of that load,
  not extra to it). The median: one burnout fortnight must not set the norm.
- **seasonal**: when the calendar reaches back a year and the same weeks then (the week
  and its neighbours) held at least ``SEASON_RATIO`` times, and ``SEASON_MIN_HOURS``
  more than, the one-off load usual in the quarter before them, the expected part is
  scaled by that ratio (capped at ``SEASON_CAP``) and the week says so, citing the
  meetings of a year ago: "by your Q4 pattern", from the person's own last Q4.

A week is over when booked + expected exceeds the limit: the stated
``meeting_hours_per_week_max``, or without one the person's own usual load (the
``USUAL_PERCENTILE``-th percentile of their weekly meeting hours over the history weeks).

Proposals, for over weeks only, are greedy: among skipping or shortening a recurring
series in the over weeks, or keeping a weekday afternoon free of new meetings (which saves
the share of one-off hours that landed there in the history weeks), take the change that
brings every over week under the limit while cutting least; when none does, the one that
removes most of the excess; repeat. A series the person protects (a priority's
``calendar_summary``) is never proposed, and a change that conflicts with a priority
(``advice.weigh``: say, a series with the person a priority names) is taken only when
nothing without a conflict helps. Every number comes from the calendar; no model is asked.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from itertools import pairwise
from statistics import median
from typing import Any, Literal

from smallhold.apps.life.advice import Advice, Change, weigh
from smallhold.apps.life.daily import (
    Records,
    Ref,
    build_days,
    hours,
    is_meeting,
    local,
    work_domain,
    zone,
)
from smallhold.apps.life.models import Event
from smallhold.apps.life.values import Values

FORECAST_WEEKS = 6  # six weeks: far enough to change a plan, near enough to be booked
HISTORY_WEEKS = 12  # a quarter of whole weeks: every rhythm (fortnightly, monthly) shows
MIN_HISTORY = 4  # fewer weeks and a "typical week" is an anecdote
USUAL_PERCENTILE = 75  # without a stated limit: over a week the person's heavier quarter
SEASON_RATIO = 1.25  # a year ago these weeks were a quarter heavier than that quarter...
SEASON_MIN_HOURS = 2.0  # ...and by two hours at least: a 30-minute bump is no season
SEASON_CAP = 3.0  # one odd week a year ago must not triple a forecast beyond this
AFTERNOON = (time(12), time(18))  # the block a person can keep free of new meetings
MAX_PROPOSALS = 5  # more is a new calendar, not protection
MIN_SAVING = 0.05  # hours: a change that saves less than three minutes is not one
DAY_NAMES = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


@dataclass(frozen=True)
class Meeting:
    """One meeting occurrence, in the person's local time."""

    uid: str
    summary: str
    start: datetime
    hours: float
    recurring: bool
    attendees: tuple[str, ...]
    at: str  # the event's own start, as stored (what a citation names)

    @property
    def ref(self) -> Ref:
        return Ref("event", self.uid, self.at)


@dataclass
class Seasonal:
    """The same weeks a year earlier, against the quarter before them."""

    weeks: list[str]
    hours: float  # one-off meeting hours a week then
    usual: float  # one-off hours a week in the quarter before them
    ratio: float  # applied to the expected part (capped)
    cites: list[Ref] = field(default_factory=list)


@dataclass
class Week:
    start: date  # its Monday
    label: str  # ISO week, "2026-W11"
    workdays: int
    recurring: float  # booked recurring meeting hours
    one_off: float  # booked one-off meeting hours
    expected: float  # one-off hours expected on top (see the module)
    hours: float  # recurring + one_off + expected
    limit: float | None
    over: bool
    series: dict[str, float] = field(default_factory=dict)  # uid -> booked hours
    seasonal: Seasonal | None = None
    cites: list[Ref] = field(default_factory=list)


@dataclass
class Effect:
    week: str
    before: float
    after: float
    limit: float


@dataclass
class Proposal:
    action: Literal["skip", "shorten", "block"]
    text: str
    subject: str  # the series' summary, or the weekday afternoon
    uid: str  # the series' uid ("" for a block)
    weeks: list[str]
    saves: float  # hours a week summed over the weeks it touches
    effects: list[Effect]
    advice: Advice
    cites: list[Ref] = field(default_factory=list)


@dataclass
class Forecast:
    as_of: date
    weeks: list[Week]
    limit: float | None
    limit_from: str
    one_off_per_workday: float | None
    history: list[str]  # the history weeks the typical load comes from
    known_until: date | None  # the last day stored recurring occurrences reach
    proposals: list[Proposal] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    history_cites: list[Ref] = field(default_factory=list)  # the one-offs "expected" rests on

    @property
    def over(self) -> list[Week]:
        return [w for w in self.weeks if w.over]


def iso_week(monday: date) -> str:
    year, week, _ = monday.isocalendar()
    return f"{year}-W{week:02d}"


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _meetings(events: list[Event], values: Values) -> list[Meeting]:
    tz, work = zone(values.person), work_domain(events, values.person)
    found = []
    for event in events:
        if is_meeting(event, work):
            people = tuple(sorted({p.email.lower() for p in event.attendees if p.email}))
            found.append(Meeting(event.uid, event.summary, local(event.start, tz),
                                 hours(event, tz), event.recurring, people, event.start))
    return found


def percentile(values: list[float], pct: float) -> float:
    """The ``pct``-th percentile, linear between the nearest ranks (as numpy's default)."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class _History:
    """Per whole week: workdays, one-off and total meeting hours (weeks with a workday)."""

    workdays: dict[date, int]
    one_off: dict[date, float]
    total: dict[date, float]
    one_off_refs: dict[date, list[Meeting]]

    def weeks(self, first: date, last: date) -> list[date]:
        return [w for w in sorted(self.workdays) if first <= w <= last and self.workdays[w]]


def _history(meetings: list[Meeting], records: Records, values: Values, first: date,
             last: date) -> _History:
    days = build_days(records, values.person, first, last)
    workdays: dict[date, int] = defaultdict(int)
    for row in days:
        workdays[_monday(row.date)] += row.workday
    one_off: dict[date, float] = defaultdict(float)
    total: dict[date, float] = defaultdict(float)
    refs: dict[date, list[Meeting]] = defaultdict(list)
    for m in meetings:
        day = m.start.date()
        if first <= day <= last:
            total[_monday(day)] += m.hours
            if not m.recurring:
                one_off[_monday(day)] += m.hours
                refs[_monday(day)].append(m)
    return _History(dict(workdays), one_off, total, refs)


def _seasonal(week: date, hist: _History, calendar_start: date) -> Seasonal | None:
    """The same weeks a year earlier against the quarter before them (see the module)."""
    then = week - timedelta(weeks=52)
    window = [then + timedelta(weeks=k) for k in (-1, 0, 1)]
    begins = _monday(calendar_start)  # weeks before the calendar's first meeting say nothing
    base = hist.weeks(max(then - timedelta(weeks=HISTORY_WEEKS + 1), begins),
                      then - timedelta(weeks=2))
    if (window[0] < begins or len(base) < MIN_HISTORY
            or not all(hist.workdays.get(w) for w in window)):
        return None
    heavy = sum(hist.one_off.get(w, 0.0) for w in window) / len(window)
    usual = median(hist.one_off.get(w, 0.0) for w in base)
    if usual <= 0 or heavy < usual * SEASON_RATIO or heavy - usual < SEASON_MIN_HOURS:
        return None
    return Seasonal([iso_week(w) for w in window], round(heavy, 2), round(usual, 2),
                    round(min(heavy / usual, SEASON_CAP), 2),
                    [m.ref for w in window for m in hist.one_off_refs.get(w, [])])


def _protected(values: Values) -> set[str]:
    return {str(p.targets["calendar_summary"]).strip().lower() for p in values.priorities
            if isinstance(p.targets.get("calendar_summary"), str)}


def _contacts(values: Values) -> set[str]:
    return {str(p.targets["contact"]).strip().lower() for p in values.priorities
            if isinstance(p.targets.get("contact"), str)}


def _cadence(starts: list[date]) -> str:
    gaps = sorted((b - a).days for a, b in pairwise(starts) if b > a)
    if not gaps:
        return "recurring"
    gap = median(gaps)
    return ("daily" if gap <= 1.5 else "weekly" if gap == 7 else "fortnightly" if gap == 14
            else "monthly" if 28 <= gap <= 35 else "recurring")


def _shorter(minutes: int) -> int:
    """The shorter length a recurring meeting can usually take: 30 -> 25 (the "speedy"
    half hour), up to an hour by a quarter (60 -> 45), longer by a third (90 -> 60), in
    whole 5 minutes; under 30 minutes there is nothing left worth cutting."""
    if minutes < 30:
        return minutes
    if minutes == 30:
        return 25
    return (minutes * 3 // 4 if minutes <= 60 else minutes * 2 // 3) // 5 * 5


@dataclass
class _Candidate:
    action: Literal["skip", "shorten", "block"]
    subject: str
    uid: str
    per_week: dict[date, float]  # hours it removes from each week, before clipping
    describe: str  # "the weekly 'Team sync' (1.5 h)"
    changes: list[Change]
    cites: dict[date, list[Ref]]  # per week it touches (a series' occurrences)
    grounds: list[Ref] = field(default_factory=list)  # cited whichever weeks (a block's history)


def _series_candidates(weeks: list[Week], booked: dict[date, list[Meeting]],
                       meetings: list[Meeting], values: Values) -> list[_Candidate]:
    protected, contacts = _protected(values), _contacts(values)
    every: dict[str, list[Meeting]] = defaultdict(list)
    for m in meetings:
        if m.recurring:
            every[m.uid].append(m)
    found = []
    for uid, occurrences in sorted(every.items()):
        summary = max({m.summary for m in occurrences},
                      key=lambda s: sum(m.summary == s for m in occurrences))
        if summary.strip().lower() in protected:
            continue  # the person protects it: never proposed
        ahead = {w.start: [m for m in booked.get(w.start, []) if m.uid == uid] for w in weeks}
        ahead = {w: ms for w, ms in ahead.items() if ms}
        if not ahead:
            continue
        cadence = _cadence(sorted(m.start.date() for m in occurrences))
        minutes = round(median(m.hours for ms in ahead.values() for m in ms) * 60)
        people = sorted({p for ms in ahead.values() for m in ms for p in m.attendees} & contacts)
        cites = {w: [m.ref for m in ms] for w, ms in ahead.items()}
        base = f"the {cadence} '{summary}'"
        changes = [Change(aspect="contact", direction="less", subject=p,
                          why=f"{p} is in '{summary}'") for p in people]
        found.append(_Candidate(
            "skip", summary, uid, {w: sum(m.hours for m in ms) for w, ms in ahead.items()},
            f"{base} ({minutes / 60:g} h)",
            [Change(aspect="meeting_hours", direction="less", why=f"skipping '{summary}'"),
             *changes], cites))
        short = _shorter(minutes)
        if short < minutes:
            found.append(_Candidate(
                "shorten", summary, uid,
                {w: sum(m.hours - m.hours * short / minutes for m in ms)
                 for w, ms in ahead.items()},
                f"{base} from {minutes} to {short} min",
                [Change(aspect="meeting_hours", direction="less",
                        why=f"shortening '{summary}'")], cites))
    return found


def _block_candidates(weeks: list[Week], hist: _History, history: list[date],
                      ) -> list[_Candidate]:
    """Keeping a weekday afternoon free saves the share of one-off hours that landed there."""
    total = sum(hist.one_off.get(w, 0.0) for w in history)
    if total <= 0:
        return []
    found = []
    for weekday in range(5):
        there = [m for w in history for m in hist.one_off_refs.get(w, [])
                 if m.start.weekday() == weekday and AFTERNOON[0] <= m.start.time() < AFTERNOON[1]]
        share = sum(m.hours for m in there) / total
        if not there:
            continue
        name = f"{DAY_NAMES[weekday]} afternoons ({AFTERNOON[0]:%H:%M}-{AFTERNOON[1]:%H:%M})"
        found.append(_Candidate(
            "block", name, "", {w.start: w.expected * share for w in weeks if w.expected > 0},
            f"{name} free of new meetings ({share:.0%} of your one-off meeting hours landed "
            f"there in the last {len(history)} weeks)",
            [Change(aspect="meeting_hours", direction="less",
                    why=f"keeping {DAY_NAMES[weekday]} afternoons free")],
            {}, [m.ref for m in there]))
    return found


def _weeks_text(mondays: list[date]) -> str:
    """The weeks a change touches: "2026-W11", "2026-W11..W13" when they follow each other,
    else each one ("2026-W11, 2026-W13")."""
    labels = [iso_week(m) for m in mondays]
    if len(labels) > 1 and all((b - a).days == 7 for a, b in pairwise(mondays)):
        return f"{labels[0]}..{labels[-1].split('-')[-1]}"
    return ", ".join(labels)


def _h(hours: float) -> str:
    """Hours with one decimal, or two when one would hide a change of minutes."""
    return f"{hours:.1f}" if abs(hours * 10 - round(hours * 10)) < 1e-6 else f"{hours:.2f}"


def _propose(weeks: list[Week], candidates: list[_Candidate], values: Values) -> list[Proposal]:
    """The greedy choice of protective changes (see the module's rules)."""
    now = {w.start: w.hours for w in weeks}
    limit = {w.start: w.limit for w in weeks if w.limit is not None}
    labels = {w.start: w.label for w in weeks}
    left = list(candidates)
    chosen: list[Proposal] = []
    while left and len(chosen) < MAX_PROPOSALS:
        over = {w: now[w] - limit[w] for w in limit if now[w] > limit[w] + 1e-9}
        if not over:
            break
        excess = sum(over.values())
        scored = []
        for c in left:
            saves = {w: c.per_week[w] for w in over if c.per_week.get(w, 0.0) >= MIN_SAVING}
            useful = sum(min(s, over[w]) for w, s in saves.items())
            if useful < MIN_SAVING:
                continue
            clears = useful >= excess - 1e-9
            advice = weigh("", c.changes, values)
            cut = sum(saves.values())
            scored.append(((len(advice.conflicts), not clears, cut if clears else -useful,
                            c.action != "shorten", c.subject), c, saves, advice))
        if not scored:
            break
        _, pick, saves, _ = min(scored, key=lambda s: s[0])
        effects = []
        for w in sorted(saves):
            before = now[w]
            now[w] = before - saves[w]
            effects.append(Effect(labels[w], round(before, 2), round(now[w], 2), limit[w]))
        verb = {"skip": "Skip", "shorten": "Shorten", "block": "Keep"}[pick.action]
        span = _weeks_text(sorted(saves))
        text = (f"{verb} {pick.describe} in {span}: "
                + "; ".join(f"brings {e.week} from {_h(e.before)} h to {_h(e.after)} h "
                            f"(limit {e.limit:g})" for e in effects))
        chosen.append(Proposal(pick.action, text, pick.subject, pick.uid,
                               [labels[w] for w in sorted(saves)],
                               round(sum(saves.values()), 2), effects,
                               weigh(text, pick.changes, values),
                               [r for w in sorted(saves) for r in pick.cites.get(w, [])]
                               + pick.grounds))
        left = [c for c in left if c is not pick and not (pick.uid and c.uid == pick.uid)]
    return chosen


def forecast(records: Records, values: Values, as_of: date,
             weeks: int = FORECAST_WEEKS) -> Forecast:
    """The next ``weeks`` whole weeks after ``as_of``, and protective proposals (pure)."""
    meetings = _meetings(records.events, values)
    tz = zone(values.person)
    first = as_of + timedelta(days=7 - as_of.weekday())
    mondays = [first + timedelta(weeks=k) for k in range(weeks)]
    this_monday = _monday(as_of)
    calendar_start = min((m.start.date() for m in meetings), default=as_of)
    # a year and a quarter back: the history weeks, and last year's weeks for the season
    reach = this_monday - timedelta(weeks=HISTORY_WEEKS + 55)
    hist = _history(meetings, records, values,
                    min(max(reach, _monday(calendar_start)), this_monday),
                    mondays[-1] + timedelta(days=6))
    history = hist.weeks(max(this_monday - timedelta(weeks=HISTORY_WEEKS),
                             _monday(calendar_start)), this_monday - timedelta(weeks=1))
    notes: list[str] = []
    per_workday: float | None = None
    if len(history) >= MIN_HISTORY:
        per_workday = median(hist.one_off.get(w, 0.0) / hist.workdays[w] for w in history)
    else:
        notes.append(f"only {len(history)} whole week(s) of meetings before {as_of}: no "
                     f"typical one-off load yet (it takes {MIN_HISTORY}); the forecast is "
                     "what is booked")
    stated = values.target("meeting_hours_per_week_max")
    limit: float | None = None
    limit_from = ""
    if stated is not None:
        limit = float(stated[1])
        limit_from = f"meeting_hours_per_week_max {stated[1]:g} ({stated[0].id})"
    elif len(history) >= MIN_HISTORY:
        limit = round(percentile([hist.total.get(w, 0.0) for w in history],
                                 USUAL_PERCENTILE), 1)
        limit_from = (f"your usual: the {USUAL_PERCENTILE}th percentile of your weekly "
                      f"meeting hours over the last {len(history)} weeks (no "
                      "meeting_hours_per_week_max stated)")
    else:
        notes.append("no limit: no meeting_hours_per_week_max stated and too little "
                     "history for your usual load")
    booked: dict[date, list[Meeting]] = defaultdict(list)
    for m in meetings:
        if mondays[0] <= m.start.date() <= mondays[-1] + timedelta(days=6):
            booked[_monday(m.start.date())].append(m)
    rows = []
    for monday in mondays:
        these = sorted(booked.get(monday, []), key=lambda m: m.start)
        recurring = sum(m.hours for m in these if m.recurring)
        one_off = sum(m.hours for m in these if not m.recurring)
        season = _seasonal(monday, hist, calendar_start)
        workdays = hist.workdays.get(monday, 0)
        typical = (per_workday or 0.0) * workdays * (season.ratio if season else 1.0)
        expected = max(0.0, typical - one_off)
        total = recurring + one_off + expected
        series: dict[str, float] = defaultdict(float)
        for m in these:
            if m.recurring:
                series[m.uid] += m.hours
        rows.append(Week(monday, iso_week(monday), workdays, round(recurring, 2),
                         round(one_off, 2), round(expected, 2), round(total, 2), limit,
                         limit is not None and total > limit + 1e-9,
                         {k: round(v, 2) for k, v in series.items()}, season,
                         [m.ref for m in these]))
    recurring_days = [local(e.start, tz).date() for e in records.events if e.recurring]
    known = max(recurring_days) if recurring_days else None
    end = mondays[-1] + timedelta(days=6)
    if known is not None and known < end:
        notes.append(f"recurring events are stored up to {known}; weeks after it miss their "
                     "series: ingest the calendar again for a fuller forecast")
    result = Forecast(as_of, rows, limit, limit_from,
                      round(per_workday, 3) if per_workday is not None else None,
                      [iso_week(w) for w in history], known, notes=notes,
                      history_cites=[m.ref for w in history for m in hist.one_off_refs.get(w, [])])
    if result.over:
        candidates = _series_candidates(result.over, booked, meetings, values)
        candidates += _block_candidates(result.over, hist, history)
        result.proposals = _propose(rows, candidates, values)
        after = {e.week: e.after for p in result.proposals for e in p.effects}
        still = [w.label for w in result.over
                 if after.get(w.label, w.hours) > (w.limit or 0.0) + 1e-9]
        if not result.proposals:
            notes.append("no recurring series or afternoon with new meetings to cut in the "
                         "over-committed weeks: what is over is one-off meetings")
        elif still:
            notes.append(f"{', '.join(still)} stay over the limit after these changes: the "
                         "rest is one-off meetings, protected events, or series already "
                         "shortened")
    return result


def _refs(refs: list[Ref]) -> list[dict[str, str]]:
    return [{"kind": r.kind, "key": r.key, "at": r.at} for r in refs]


def forecast_json(found: Forecast) -> dict[str, Any]:
    """The forecast as plain JSON (dates as ISO strings, cited records as dicts)."""
    weeks = []
    for w in found.weeks:
        season = None
        if w.seasonal is not None:
            s = w.seasonal
            season = {"weeks": s.weeks, "hours": s.hours, "usual": s.usual,
                      "ratio": s.ratio, "cites": _refs(s.cites)}
        weeks.append({"week": w.label, "start": str(w.start), "workdays": w.workdays,
                      "recurring": w.recurring, "one_off": w.one_off,
                      "expected": w.expected, "hours": w.hours, "limit": w.limit,
                      "over": w.over, "series": w.series, "seasonal": season,
                      "cites": _refs(w.cites)})
    proposals = [{"action": p.action, "text": p.text, "subject": p.subject, "uid": p.uid,
                  "weeks": p.weeks, "saves": p.saves,
                  "effects": [vars(e) for e in p.effects],
                  "supports": [n.model_dump() for n in p.advice.supports],
                  "conflicts": [n.model_dump() for n in p.advice.conflicts],
                  "cites": _refs(p.cites)} for p in found.proposals]
    return {"as_of": str(found.as_of), "limit": found.limit, "limit_from": found.limit_from,
            "one_off_per_workday": found.one_off_per_workday, "history": found.history,
            "known_until": str(found.known_until) if found.known_until else None,
            "history_cites": _refs(found.history_cites), "weeks": weeks,
            "proposals": proposals, "notes": found.notes}


__all__ = ["FORECAST_WEEKS", "Effect", "Forecast", "Proposal", "Seasonal", "Week", "forecast",
           "forecast_json", "iso_week", "percentile"]
