"""Burnout: weeks of many more meetings and much less sleep than the person's own normal.

Both halves must hold, over at least ``MIN_DAYS`` days, against the 28 days before
(``BASELINE_DAYS``): a busy week alone is work, a bad night alone is life; a long stretch
of both is the pattern people regret. Late-night mail, fewer steps and a higher resting
heart rate are cited as support, not required (not everyone wears a watch).
"""

from __future__ import annotations

from statistics import mean

from smallhold.apps.life.alerts import Alert, Evidence, RecordRef
from smallhold.apps.life.daily import Day
from smallhold.apps.life.values import Values

BASELINE_DAYS = 28  # four weeks: every weekday four times, long enough to be "normal"
MIN_DAYS = 10  # two working weeks: shorter is a deadline, not a pattern
TAIL_DAYS = 7  # the window grows while the last week still fires (one weekend inside)
MIN_BASELINE_WORKDAYS = 8  # fewer (a vacation) and the baseline says nothing about work
MEETING_RATIO = 2.0  # "well above": at least double the baseline meeting hours...
MEETING_RISE = 1.5  # ...and at least 1.5 h more a workday (double of 0.5 h is nothing)
SLEEP_DROP = 1.0  # or, without a target, an hour a night under the baseline
DEFAULT_SLEEP_MIN = 7.0  # adults' common recommendation, when Values set no target


def _workday_hours(days: list[Day]) -> float | None:
    work = [d.meeting_hours for d in days if d.workday]
    return mean(work) if work else None


def _sleep(days: list[Day]) -> float | None:
    nights = [d.sleep_hours for d in days if d.sleep_hours is not None]
    return mean(nights) if nights else None


def _fires(window: list[Day], base_meet: float, base_sleep: float, sleep_min: float) -> bool:
    meet, sleep = _workday_hours(window), _sleep(window)
    if meet is None or sleep is None:
        return False
    busy = meet >= max(base_meet * MEETING_RATIO, base_meet + MEETING_RISE)
    return busy and (sleep < sleep_min or sleep < base_sleep - SLEEP_DROP)


def _baseline(days: list[Day], i: int) -> tuple[float, float] | None:
    base = days[max(0, i - BASELINE_DAYS):i]
    meet, sleep = _workday_hours(base), _sleep(base)
    if (len(base) < BASELINE_DAYS or meet is None or sleep is None
            or sum(d.workday for d in base) < MIN_BASELINE_WORKDAYS):
        return None
    return meet, sleep


def find_windows(days: list[Day], sleep_min: float) -> list[tuple[int, int, float, float]]:
    """(first, last index, baseline meeting hours, baseline sleep) of each burnout window."""
    found: list[tuple[int, int, float, float]] = []
    i = BASELINE_DAYS
    while i + MIN_DAYS <= len(days):
        base = _baseline(days, i)
        if base is None or not _fires(days[i:i + MIN_DAYS], *base, sleep_min):
            i += 1
            continue
        end = i + MIN_DAYS - 1
        while end + 1 < len(days) and _fires(days[end + 2 - TAIL_DAYS:end + 2], *base,
                                              sleep_min):
            end += 1
        short = max(sleep_min, base[1] - SLEEP_DROP)  # the nights that fired the rule
        hot = [k for k in range(i, end + 1) if (days[k].sleep_hours or short) < short]
        first, last = (hot[0], hot[-1]) if hot else (i, end)
        if last - first + 1 >= MIN_DAYS:
            found.append((first, last, *base))
        i = end + 1
    return found


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(mean(present), 2) if present else None


def detect_burnout(days: list[Day], values: Values) -> list[Alert]:
    sleep_target = values.target("sleep_hours_min")
    sleep_min = float(sleep_target[1]) if sleep_target else DEFAULT_SLEEP_MIN
    alerts = []
    for first, last, base_meet, base_sleep in find_windows(days, sleep_min):
        window, base = days[first:last + 1], days[max(0, first - BASELINE_DAYS):first]
        meet, sleep = _workday_hours(window) or 0.0, _sleep(window) or 0.0
        weekly = sum(d.meeting_hours for d in window) / len(window) * 7
        late = [r for d in window for r in d.late_mail]
        evidence = [
            Evidence(what="meetings per workday, window vs the 28 days before",
                     records=[RecordRef(kind="event", key=r.key, at=r.at)
                              for d in window for r in d.meetings],
                     values={"baseline": round(base_meet, 2), "window": round(meet, 2),
                             "per_week": round(weekly, 1)}),
            Evidence(what="sleep per night", values={
                "baseline": round(base_sleep, 2), "window": round(sleep, 2), "target": sleep_min},
                records=[RecordRef(kind="day", key=str(d.date)) for d in window]),
            Evidence(what="mail sent between 22:00 and 05:00", values={"count": len(late)},
                     records=[RecordRef(kind="message", key=r.key, at=r.at) for r in late]),
            Evidence(what="steps per day", values={
                "baseline": _mean([float(d.steps) for d in base]),
                "window": _mean([float(d.steps) for d in window])}),
            Evidence(what="resting heart rate", values={
                "baseline": _mean([d.resting_hr for d in base]),
                "window": _mean([d.resting_hr for d in window])}),
        ]
        violates = [sleep_target[0].id] if sleep_target else []
        meet_max = values.target("meeting_hours_per_week_max")
        if meet_max and (weekly > float(meet_max[1]) or late) and meet_max[0].id not in violates:
            violates.append(meet_max[0].id)
        alerts.append(Alert(
            kind="burnout", title=f"Burnout risk: {meet:.1f} h of meetings a workday and "
            f"{sleep:.1f} h of sleep for {len(window)} days",
            start=window[0].date, end=window[-1].date, severity="high",
            rule=f">= {MIN_DAYS} days with meeting hours per workday at least "
            f"{MEETING_RATIO:g}x and {MEETING_RISE:g} h above the {BASELINE_DAYS} days before, "
            f"and sleep under {sleep_min:g} h or {SLEEP_DROP:g} h under that baseline",
            evidence=evidence, violates=violates))
    return alerts


__all__ = ["detect_burnout", "find_windows"]
