"""life's charts as inline SVG, drawn on the server: pure functions from numbers to markup.

No script and no ``style`` attribute (the shell's Content-Security-Policy forbids inline
styles): shapes carry classes that ``/static/life.css`` colours for light and dark mode, and
geometry as presentation attributes. Every text is escaped. Each day of the day chart is a
``<g class="day">`` with a ``<title>`` (the browser's tooltip), so it can be counted and read.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from html import escape

from smallhold.apps.life.alerts import Alert
from smallhold.apps.life.daily import Day
from smallhold.apps.life.forecast import Week

SHORT = {"burnout": "burnout", "overspending": "overspending",
         "subscription_increase": "price rise", "neglected_relationship": "unanswered",
         "priority_conflict": "conflict", "over_commitment": "over-committed"}
CHAR_W = 6.6  # rough width of a 11-12px label character, for laying labels out
LANE_H = 20
DAILY_KINDS = {"burnout", "over_commitment"}  # about sleep and meetings: shaded darker


@dataclass(frozen=True)
class MonthRow:
    """One full calendar month of money: income and spending (positive numbers)."""

    month: str  # YYYY-MM
    income: float
    spending: float

    @property
    def savings_rate(self) -> float | None:
        return (self.income - self.spending) / self.income if self.income > 0 else None


@dataclass(frozen=True)
class Contact:
    """Someone the person deals with: mail exchanged and meetings shared."""

    name: str
    email: str
    mail: int
    meetings: int


def _n(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _text(x: float, y: float, text: str, cls: str, anchor: str = "start") -> str:
    return (f'<text x="{_n(x)}" y="{_n(y)}" class="{cls}" text-anchor="{anchor}">'
            f"{escape(text)}</text>")


def _svg(width: int, height: int, label: str, body: str, cls: str, extra: str = "") -> str:
    return (f'<svg class="chart {cls}" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="{escape(label, quote=True)}"{extra}>'
            f"<title>{escape(label)}</title>{body}</svg>")


def nice_step(top: float, ticks: int = 4) -> float:
    """A round tick step (1, 2 or 5 times a power of ten) giving about ``ticks`` ticks."""
    if top <= 0:
        return 1.0
    raw = top / ticks
    power = 10.0 ** math.floor(math.log10(raw))
    return next(float(m * power) for m in (1, 2, 5, 10) if m * power >= raw)


def _lanes(spans: Sequence[tuple[float, float]]) -> list[int]:
    """A label row for each (left, right) so that labels in one row do not overlap."""
    ends: list[float] = []
    lanes = []
    for left, right in spans:
        lane = next((i for i, end in enumerate(ends) if end + 6 <= left), len(ends))
        if lane == len(ends):
            ends.append(right)
        else:
            ends[lane] = right
        lanes.append(lane)
    return lanes


def day_chart(days: Sequence[Day], alerts: Sequence[Alert], sleep_target: float | None,
              width: int = 1000, height: int = 300) -> str:
    """Sleep (line and points) and meeting hours (bars) per day, the sleep target as a dashed
    line, and each alert's window shaded and labelled with its number (1-based position in
    ``alerts``, as the alert list shows them). Alerts outside the days are left out."""
    if not days:
        return '<p class="muted">No daily data yet (health or mail exports).</p>'
    first, n = days[0].date, len(days)
    shown = [(i + 1, a) for i, a in enumerate(alerts)
             if a.start <= days[-1].date and a.end >= first]
    left, right, bottom = 40.0, 16.0, 26.0
    step = (width - left - right) / n
    spans, bands = [], []
    for number, alert in shown:
        i0, i1 = max(0, (alert.start - first).days), min(n - 1, (alert.end - first).days)
        x0, x1 = left + i0 * step, left + (i1 + 1) * step
        bands.append((x0, x1))
        spans.append((x0, max(x1, x0 + CHAR_W * len(f"{number} {SHORT[alert.kind]}") + 10)))
    lanes = _lanes(spans)
    top = 8.0 + LANE_H * (max(lanes) + 1 if lanes else 0)
    plot_h = height - top - bottom
    peak = max([d.sleep_hours or 0.0 for d in days] + [d.meeting_hours for d in days]
               + [sleep_target or 0.0, 8.0])
    ymax = 2 * math.ceil(peak / 2 + 0.01)

    def x(i: int) -> float:
        return left + (i + 0.5) * step

    def y(h: float) -> float:
        return top + plot_h * (1 - h / ymax)

    parts = []
    for (number, alert), lane, (x0, x1) in zip(shown, lanes, bands, strict=True):
        ly = 8.0 + lane * LANE_H
        label = f"{number} {SHORT[alert.kind]}"
        tag_w = CHAR_W * len(label) + 10
        kind = " daily" if alert.kind in DAILY_KINDS else ""
        parts.append(f'<g class="window sev-{escape(alert.severity)}{kind}" data-alert="{number}">'
                     f"<title>{escape(f'{number}. {alert.title} ({alert.start} to {alert.end})')}"
                     f'</title><rect class="band" x="{_n(x0)}" width="{_n(x1 - x0)}" '
                     f'y="{_n(top)}" height="{_n(plot_h)}"/>'
                     f'<line class="reach" x1="{_n(x0)}" x2="{_n(x1)}" y1="{_n(ly + LANE_H - 4)}" '
                     f'y2="{_n(ly + LANE_H - 4)}"/>'
                     f'<rect class="tag" x="{_n(x0)}" y="{_n(ly)}" width="{_n(tag_w)}" '
                     f'height="{LANE_H - 5}" rx="4"/>'
                     + _text(x0 + 5, ly + 10.5, label, "tag-text") + "</g>")
    for h in range(0, ymax + 1, 2):
        parts.append(f'<line class="grid" x1="{_n(left)}" x2="{width - right}" '
                     f'y1="{_n(y(h))}" y2="{_n(y(h))}"/>')
        parts.append(_text(left - 6, y(h) + 4, f"{h} h", "axis", "end"))
    for i, day in enumerate(days):
        if day.date.day == 1 or i == 0:
            label = f"{day.date:%b %Y}" if i == 0 or day.date.month == 1 else f"{day.date:%b}"
            parts.append(f'<line class="tick" x1="{_n(x(i))}" x2="{_n(x(i))}" '
                         f'y1="{_n(top + plot_h)}" y2="{_n(top + plot_h + 4)}"/>')
            parts.append(_text(x(i), height - 8, label, "axis", "start" if i == 0 else "middle"))
    if sleep_target is not None:
        parts.append(f'<line class="target" x1="{_n(left)}" x2="{width - right}" '
                     f'y1="{_n(y(sleep_target))}" y2="{_n(y(sleep_target))}">'
                     f"<title>sleep target {_n(sleep_target)} h</title></line>")
    segment: list[str] = []
    lines = []
    for i, day in enumerate(days):
        if day.sleep_hours is None:
            if len(segment) > 1:
                lines.append(" ".join(segment))
            segment = []
            continue
        segment.append(f"{_n(x(i))},{_n(y(day.sleep_hours))}")
    if len(segment) > 1:
        lines.append(" ".join(segment))
    bar = max(1.0, step * 0.62)
    for i, day in enumerate(days):
        sleep = "no sleep recorded" if day.sleep_hours is None else \
            f"sleep {day.sleep_hours:.1f} h"
        tip = f"{day.date:%a %d %b %Y}: {sleep}, meetings {day.meeting_hours:.1f} h"
        shapes = ""
        if day.meeting_hours > 0:
            shapes += (f'<rect class="meet" x="{_n(x(i) - bar / 2)}" y="{_n(y(day.meeting_hours))}"'
                       f' width="{_n(bar)}" height="{_n(plot_h * day.meeting_hours / ymax)}"/>')
        if day.sleep_hours is not None:
            shapes += (f'<circle class="sleep" cx="{_n(x(i))}" '
                       f'cy="{_n(y(day.sleep_hours))}" r="2.4"/>')
        parts.append(f'<g class="day" data-date="{day.date}"><title>{escape(tip)}</title>'
                     f'<rect class="hit" x="{_n(x(i) - step / 2)}" y="{_n(top)}" '
                     f'width="{_n(step)}" height="{_n(plot_h)}"/>{shapes}</g>')
    parts += [f'<polyline class="sleep-line" points="{p}"/>' for p in lines]
    label = f"Sleep and meeting hours per day, {first} to {days[-1].date}"
    return _svg(width, height, label, "".join(parts), "days", f' data-days="{n}"')


def _money(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value / 1000:.1f}k".replace(".0k", "k")
    return f"{value:.0f}"


def month_chart(months: Sequence[MonthRow], goal: float | None, currency: str = "",
                width: int = 520, height: int = 260) -> str:
    """Income and spending bars per month; with a savings goal, a marker at the most the
    month could spend and still meet it, and spending bars over it marked ``over``."""
    if not months:
        return '<p class="muted">No full month of bank or card data yet.</p>'
    left, right, top, bottom = 46.0, 10.0, 22.0, 26.0
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max(max(m.income, m.spending) for m in months) or 1.0
    tick = nice_step(peak)
    ymax = tick * math.ceil(peak * 1.08 / tick)

    def y(v: float) -> float:
        return top + plot_h * (1 - max(v, 0.0) / ymax)

    parts = []
    for k in range(round(ymax / tick) + 1):
        v = k * tick
        parts.append(f'<line class="grid" x1="{_n(left)}" x2="{_n(width - right)}" '
                     f'y1="{_n(y(v))}" y2="{_n(y(v))}"/>')
        parts.append(_text(left - 6, y(v) + 4, _money(v), "axis", "end"))
    group = plot_w / len(months)
    bar = min(34.0, group * 0.34)
    for i, m in enumerate(months):
        cx = left + (i + 0.5) * group
        rate = m.savings_rate
        over = goal is not None and rate is not None and rate < goal
        tip = (f"{m.month}: income {m.income:,.2f} {currency}, spending {m.spending:,.2f} "
               f"{currency}" + (f", saved {rate:.0%}" if rate is not None else "")
               + (f" (goal {goal:.0%})" if goal is not None else ""))
        shapes = (f'<rect class="income" x="{_n(cx - bar - 1)}" y="{_n(y(m.income))}" '
                  f'width="{_n(bar)}" height="{_n(top + plot_h - y(m.income))}"/>'
                  f'<rect class="spend{" over" if over else ""}" x="{_n(cx + 1)}" '
                  f'y="{_n(y(m.spending))}" width="{_n(bar)}" '
                  f'height="{_n(top + plot_h - y(m.spending))}"/>')
        if goal is not None and m.income > 0:
            limit = y(m.income * (1 - goal))
            shapes += (f'<line class="goal" x1="{_n(cx - bar - 5)}" x2="{_n(cx + bar + 5)}" '
                       f'y1="{_n(limit)}" y2="{_n(limit)}"/>')
        if rate is not None:
            shapes += _text(cx, y(max(m.income, m.spending)) - 5, f"{rate:.0%}",
                            "rate over" if over else "rate", "middle")
        parts.append(f'<g class="month{" over" if over else ""}" data-month="{escape(m.month)}">'
                     f"<title>{escape(tip)}</title>{shapes}"
                     + _text(cx, height - 8, date.fromisoformat(f"{m.month}-01").strftime("%b"),
                             "axis", "middle") + "</g>")
    return _svg(width, height, "Income and spending per month", "".join(parts), "months")


def people_chart(people: Sequence[Contact], width: int = 520) -> str:
    """The people, most dealt with first: a bar for mail exchanged, one for meetings."""
    if not people:
        return '<p class="muted">No mail or meetings with anyone yet.</p>'
    row, left, top = 34.0, 170.0, 6.0
    height = int(top + row * len(people) + 4)
    peak = max(max(p.mail, p.meetings) for p in people) or 1
    span = width - left - 44
    parts = []
    for i, p in enumerate(people):
        y0 = top + i * row
        name = p.name if len(p.name) <= 24 else p.name[:23] + "…"
        tip = f"{p.name} <{p.email}>: {p.mail} messages, {p.meetings} meetings"
        bars = ""
        for j, (cls, count) in enumerate((("mail", p.mail), ("meet", p.meetings))):
            by = y0 + 4 + j * 12
            w = max(span * count / peak, 1.5 if count else 0)
            bars += (f'<rect class="{cls}" x="{_n(left)}" y="{_n(by)}" width="{_n(w)}" '
                     f'height="10" rx="2"/>' + _text(left + w + 5, by + 9, str(count), "count"))
        parts.append(f'<g class="person" data-email="{escape(p.email, quote=True)}">'
                     f"<title>{escape(tip)}</title>"
                     + _text(left - 10, y0 + 19, name, "name", "end") + bars + "</g>")
    return _svg(width, height, "People by mail and meetings", "".join(parts), "people")


def forecast_chart(weeks: Sequence[Week], limit: float | None, width: int = 560,
                   height: int = 250) -> str:
    """The coming weeks' meeting hours: booked (solid) and expected (light) stacked per week,
    the limit as a dashed line, a week over it marked ``over``. Each week is a
    ``<g class="week">`` with a ``<title>`` giving its numbers."""
    if not weeks:
        return '<p class="muted">No weeks to forecast.</p>'
    left, right, top, bottom = 40.0, 12.0, 20.0, 34.0
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max([w.hours for w in weeks] + [limit or 0.0, 4.0])
    tick = nice_step(peak)
    ymax = tick * math.ceil(peak * 1.1 / tick)

    def y(h: float) -> float:
        return top + plot_h * (1 - max(h, 0.0) / ymax)

    parts = []
    for k in range(round(ymax / tick) + 1):
        parts.append(f'<line class="grid" x1="{_n(left)}" x2="{_n(width - right)}" '
                     f'y1="{_n(y(k * tick))}" y2="{_n(y(k * tick))}"/>')
        parts.append(_text(left - 6, y(k * tick) + 4, f"{_n(k * tick)} h", "axis", "end"))
    group = plot_w / len(weeks)
    bar = min(46.0, group * 0.56)
    for i, w in enumerate(weeks):
        cx = left + (i + 0.5) * group
        booked = w.recurring + w.one_off
        season = (f"; a year ago these weeks ran {w.seasonal.ratio:g}x your usual"
                  if w.seasonal else "")
        tip = (f"{w.label} (from {w.start:%d %b}): {booked:.1f} h booked + {w.expected:.1f} h "
               f"expected = {w.hours:.1f} h" + (f", limit {limit:g} h" if limit is not None
                                                  else "") + season)
        shapes = (f'<rect class="booked" x="{_n(cx - bar / 2)}" y="{_n(y(booked))}" '
                  f'width="{_n(bar)}" height="{_n(top + plot_h - y(booked))}"/>')
        if w.expected > 0:
            shapes += (f'<rect class="expected" x="{_n(cx - bar / 2)}" y="{_n(y(w.hours))}" '
                       f'width="{_n(bar)}" height="{_n(y(booked) - y(w.hours))}"/>')
        shapes += _text(cx, y(w.hours) - 5, f"{w.hours:.1f}", "total over" if w.over
                        else "total", "middle")
        label = w.label.split("-")[-1] + ("*" if w.seasonal else "")
        parts.append(f'<g class="week{" over" if w.over else ""}" data-week="{escape(w.label)}">'
                     f"<title>{escape(tip)}</title>{shapes}"
                     + _text(cx, height - 19, label, "axis", "middle")
                     + _text(cx, height - 6, f"{w.start:%d %b}", "axis", "middle") + "</g>")
    if limit is not None:
        parts.append(f'<line class="limit" x1="{_n(left)}" x2="{_n(width - right)}" '
                     f'y1="{_n(y(limit))}" y2="{_n(y(limit))}"><title>limit {_n(limit)} h a '
                     "week</title></line>"
                     + _text(width - right, y(limit) - 5, f"limit {_n(limit)} h", "limit-text",
                             "end"))
    label = f"Meeting hours per coming week, {weeks[0].label} to {weeks[-1].label}"
    return _svg(width, height, label, "".join(parts), "forecast", f' data-weeks="{len(weeks)}"')


__all__ = ["Contact", "MonthRow", "day_chart", "forecast_chart", "month_chart", "nice_step",
           "people_chart"]
