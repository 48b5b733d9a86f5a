"""life in the browser: one dashboard page and its JSON API, mounted by the web shell at ``/life``.

    GET /life/              the dashboard: sleep vs meetings per day with the alerts' windows,
                            income vs spending per month, the people, the alerts with evidence
    GET /life/api/days      the daily rows the day chart draws (the last WINDOW_DAYS days)
    GET /life/api/months    income and spending per full month, and the savings goal
    GET /life/api/alerts    the alerts kept, newest first, with their evidence
    GET /life/api/forecast  the coming weeks' meeting hours against the limit, and proposals

Everything is drawn on the server (:mod:`smallhold.apps.life.charts`, inline SVG): the page
has no script, and its colours come from ``/static/life.css``. The numbers are computed on
each request from the vault, so a new ingest or check shows on the next reload.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from html import escape
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from smallhold.apps.life.advice import Advice
from smallhold.apps.life.alerts import Alert, Evidence
from smallhold.apps.life.charts import (
    Contact,
    MonthRow,
    day_chart,
    forecast_chart,
    month_chart,
    people_chart,
)
from smallhold.apps.life.checks.money import month_totals
from smallhold.apps.life.daily import Day, Records, build_days, data_span, load_records, local, zone
from smallhold.apps.life.forecast import Forecast, forecast, forecast_json
from smallhold.apps.life.models import Person
from smallhold.apps.life.store import LifeStore
from smallhold.apps.life.values import Profile, Values
from smallhold.kit.home import Home
from smallhold.web import AppPages, page_response

STYLESHEET = "/static/life.css"
WINDOW_DAYS = 180  # the day chart's span: half a year of days stays readable at page width
TOP_PEOPLE = 8
SHOWN_RECORDS = 25  # cited records listed per evidence item before "and N more"
EMPTY = "No data yet: smallhold life ingest PATH"


@dataclass
class Dashboard:
    """What the page shows, computed from the store and the person's Values."""

    days: list[Day] = field(default_factory=list)
    months: list[MonthRow] = field(default_factory=list)
    people: list[Contact] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    records: int = 0
    sleep_target: float | None = None
    savings_goal: float | None = None
    currency: str = ""
    forecast: Forecast | None = None


def _target(values: Values, key: str) -> float | None:
    found = values.target(key)
    try:
        return float(found[1]) if found else None
    except (TypeError, ValueError):
        return None


def people(records: Records, profile: Profile, until: date | None = None,
           top: int = TOP_PEOPLE) -> list[Contact]:
    """Who the person deals with most: messages exchanged (only with people the person has
    written to or met, so newsletters stay out) and timed events shared, up to ``until``."""
    tz = zone(profile)
    names: dict[str, str] = {}
    mail: Counter[str] = Counter()
    meetings: Counter[str] = Counter()
    written: set[str] = set()

    def seen(person: Person) -> str:
        email = person.email.lower()
        if person.name and email not in names:
            names[email] = person.name
        return email

    for message in records.messages:
        if profile.owns(message.sender.email):
            for person in {seen(p) for p in [*message.to, *message.cc]}:
                if person and not profile.owns(person):
                    mail[person] += 1
                    written.add(person)
        elif message.sender.email:
            mail[seen(message.sender)] += 1
    for event in records.events:
        if event.all_day or event.status == "cancelled" or not event.attendees:
            continue
        if until is not None and local(event.start, tz).date() > until:
            continue
        people_at = [*event.attendees, *([event.organizer] if event.organizer else [])]
        for person in {seen(p) for p in people_at if p.email}:
            if not profile.owns(person):
                meetings[person] += 1
                written.add(person)
    ranked = sorted(written, key=lambda e: (-(mail[e] + meetings[e]), e))[:top]
    return [Contact(names.get(e, e), e, mail[e], meetings[e]) for e in ranked]


def dashboard(store: LifeStore, values: Values, today: date | None = None) -> Dashboard:
    records = load_records(store)
    alerts = sorted(store.alerts(), key=lambda a: (a.start, a.end), reverse=True)
    board = Dashboard(alerts=alerts, records=sum(store.counts().values()),
                      sleep_target=_target(values, "sleep_hours_min"),
                      savings_goal=_target(values, "savings_rate_min"),
                      currency=values.person.currency)
    span = data_span(records, values.person)
    if span is not None:
        start = max(span[0], span[1] - timedelta(WINDOW_DAYS - 1))
        board.days = build_days(records, values.person, start, span[1])
    board.months = [MonthRow(key, float(income), float(spending)) for key, (income, spending, _)
                    in sorted(month_totals(records.transactions, today or date.today()).items())]
    board.people = people(records, values.person, span[1] if span else None)
    if any(not e.all_day for e in records.events):
        # from the last day the data knows (an old export is not "today"), else today
        as_of = min(span[1], today or date.today()) if span else today or date.today()
        board.forecast = forecast(Records(records.events, [], records.messages), values, as_of)
    return board


def day_json(day: Day) -> dict[str, Any]:
    row = asdict(day)
    return {"date": str(day.date), **{k: row[k] for k in (
        "workday", "meeting_hours", "sleep_hours", "steps", "resting_hr", "late_sent_emails")}}


def _at(at: str) -> str:
    return f' <span class="muted">{escape(at)}</span>' if at else ""


def _evidence(item: Evidence) -> str:
    values = "".join(f"<li><span class=\"k\">{escape(str(k))}</span> {escape(str(v))}</li>"
                     for k, v in item.values.items())
    cited = "".join(f'<li><span class="kind">{escape(r.kind)}</span> <code>{escape(r.key)}'
                    f"</code>{_at(r.at)}</li>" for r in item.records[:SHOWN_RECORDS])
    more = len(item.records) - SHOWN_RECORDS
    if more > 0:
        cited += f'<li class="muted">and {more} more (smallhold life alerts ID)</li>'
    return (f'<li class="evidence"><strong>{escape(item.what)}</strong>'
            + (f'<ul class="values">{values}</ul>' if values else "")
            + (f'<ol class="records">{cited}</ol>' if cited else "") + "</li>")


def advice_html(advice: Advice, cls: str = "advice") -> str:
    """A recommendation with the priorities it conflicts with (first) and supports."""
    notes = "".join(
        f'<li class="{kind}"><span class="k">{label}</span> {escape(n.priority)} '
        f'<span class="muted">(priority {n.rank})</span>: {escape(n.reason)}</li>'
        for kind, label, found in (("conflict", "conflicts with", advice.conflicts),
                                   ("support", "supports", advice.supports)) for n in found)
    return (f'<div class="{cls}"><p>{escape(advice.text)}</p>'
            + (f'<ul class="priorities">{notes}</ul>' if notes else "") + "</div>")


def forecast_html(found: Forecast | None) -> str:
    """The coming weeks' chart, what the limit is, and the proposals with their effects."""
    if found is None:
        return '<p class="muted">No calendar yet: smallhold life ingest calendar.ics</p>'
    seasons = [w for w in found.weeks if w.seasonal is not None]
    facts = []
    if found.limit_from:
        facts.append(f"Limit: {escape(found.limit_from)}.")
    if found.one_off_per_workday is not None:
        facts.append(f"Expected one-off meetings: {found.one_off_per_workday:.2f} h a workday "
                     f"(median of the last {len(found.history)} weeks).")
    for w in seasons[:3]:
        if w.seasonal is not None:
            facts.append(f"{escape(w.label)}*: a year ago these weeks ran "
                         f"{w.seasonal.hours:g} h of one-off meetings against "
                         f"{w.seasonal.usual:g} usual.")
    facts += [escape(n) for n in found.notes]
    items = []
    for proposal in found.proposals:
        effects = "".join(f'<li><span class="k">{escape(e.week)}</span> {e.before:g} h '
                          f"&rarr; {e.after:g} h (limit {e.limit:g})</li>"
                          for e in proposal.effects)
        items.append(f'<li class="proposal" data-action="{escape(proposal.action)}">'
                     f"{advice_html(proposal.advice, 'advice')}"
                     f'<ul class="effects">{effects}</ul></li>')
    if items:
        listing = f'<ol class="proposals">{"".join(items)}</ol>'
    elif found.over:
        listing = '<p class="muted">No change to propose for the weeks over the limit.</p>'
    else:
        listing = '<p class="muted">No week over the limit: nothing to protect.</p>'
    return (f'<div class="forecast-body"><div>{forecast_chart(found.weeks, found.limit)}'
            f'<p class="muted facts">{" ".join(facts)}</p></div>'
            f'<div><h3>Protective changes</h3>{listing}</div></div>')


def alerts_html(alerts: Iterable[Alert]) -> str:
    items = []
    for number, alert in enumerate(alerts, 1):
        when = f"{alert.start}" if alert.start == alert.end else f"{alert.start} to {alert.end}"
        violates = (f'<p class="violates">Goes against: {escape(", ".join(alert.violates))}</p>'
                    if alert.violates else "")
        if alert.advice is not None:
            violates += advice_html(alert.advice, "advice suggested")
        items.append(
            f'<li class="alert sev-{escape(alert.severity)}" id="alert-{escape(alert.id)}">'
            f'<details><summary><span class="num">{number}</span>'
            f'<span class="title">{escape(alert.title)}</span>'
            f'<span class="when">{escape(when)}</span></summary>'
            f'<p class="rule"><span class="k">Rule</span> {escape(alert.rule)}</p>{violates}'
            f'<ul class="evidence-list">{"".join(_evidence(e) for e in alert.evidence)}</ul>'
            "</details></li>")
    if not items:
        return '<p class="muted">No alerts: run <code>smallhold life check</code>.</p>'
    return f'<ol class="alerts">{"".join(items)}</ol>'


def _tiles(board: Dashboard) -> str:
    recent = [d for d in board.days[-14:] if d.sleep_hours is not None]
    sleep = sum(d.sleep_hours or 0.0 for d in recent) / len(recent) if recent else None
    meet = sum(d.meeting_hours for d in board.days[-14:]) / 2 if board.days else None
    month = board.months[-1] if board.months else None
    rate = month.savings_rate if month else None
    tiles = [("Sleep, last 2 weeks", f"{sleep:.1f} h a night" if sleep is not None else "-",
              board.sleep_target is not None and sleep is not None and sleep < board.sleep_target),
             ("Meetings, last 2 weeks", f"{meet:.1f} h a week" if meet is not None else "-",
              False),
             (f"Saved in {month.month}" if month else "Saved", f"{rate:.0%}" if rate is not None
              else "-", board.savings_goal is not None and rate is not None
              and rate < board.savings_goal),
             ("Alerts", str(len(board.alerts)), bool(board.alerts))]
    return '<ul class="tiles">' + "".join(
        f'<li class="tile{" low" if low else ""}"><span class="label">{escape(label)}</span>'
        f'<span class="value">{escape(value)}</span></li>' for label, value, low in tiles) + "</ul>"


def page_html(board: Dashboard) -> str:
    link = f'<link rel="stylesheet" href="{STYLESHEET}">'
    if not board.records and not board.alerts:
        return (f'{link}<div class="life"><section class="notice life-empty"><h1>Life</h1>'
                f'<p>{escape(EMPTY)}</p></section></div>')
    span = (f"{board.days[0].date:%d %b %Y} to {board.days[-1].date:%d %b %Y}"
            if board.days else "")
    goal = (f'<span class="key goal">saving {board.savings_goal:.0%}</span>'
            if board.savings_goal is not None else "")
    target = (f'<span class="key target">target {board.sleep_target:g} h</span>'
              if board.sleep_target is not None else "")
    currency = f" ({escape(board.currency)})" if board.currency else ""
    return (
        f'{link}<div class="life"><header class="life-head"><h1>Life</h1>'
        f'<span class="muted">{escape(span)} · {board.records:,} records</span></header>'
        f"{_tiles(board)}"
        '<section class="panel wide" aria-labelledby="h-days"><div class="panel-head">'
        '<h2 id="h-days">Sleep and meetings per day</h2><span class="legend">'
        '<span class="key sleep">sleep</span><span class="key meet">meetings</span>'
        f'{target}<span class="key window">alert window</span></span></div>'
        f"{day_chart(board.days, board.alerts, board.sleep_target)}</section>"
        '<section class="panel" aria-labelledby="h-money"><div class="panel-head">'
        f'<h2 id="h-money">Money per month{currency}</h2><span class="legend">'
        '<span class="key income">income</span><span class="key spend">spending</span>'
        f"{goal}</span></div>"
        f"{month_chart(board.months, board.savings_goal, board.currency)}</section>"
        '<section class="panel" aria-labelledby="h-people"><div class="panel-head">'
        '<h2 id="h-people">People</h2><span class="legend"><span class="key mail">messages'
        '</span><span class="key meet">meetings</span></span></div>'
        f"{people_chart(board.people)}</section>"
        '<section class="panel wide" aria-labelledby="h-forecast"><div class="panel-head">'
        '<h2 id="h-forecast">Coming weeks</h2><span class="legend">'
        '<span class="key booked">booked</span><span class="key expected">expected</span>'
        '<span class="key target">limit</span></span></div>'
        f"{forecast_html(board.forecast)}</section>"
        '<section class="panel wide" aria-labelledby="h-alerts"><div class="panel-head">'
        '<h2 id="h-alerts">Alerts</h2><span class="muted">open one for its rule and the '
        "records it cites</span></div>"
        f"{alerts_html(board.alerts)}</section></div>")


def pages(store: LifeStore, values: Values) -> AppPages:
    """life's pages for :func:`smallhold.web.build_web`, over ``store`` and ``values``."""

    async def board() -> Dashboard:
        return await anyio.to_thread.run_sync(dashboard, store, values)

    async def page(request: Request) -> Response:
        return page_response(request, "Life", page_html(await board()), active="life",
                             body_class="app-life")

    async def api_days(request: Request) -> Response:
        found = await board()
        return JSONResponse({"timezone": values.person.timezone,
                             "sleep_target": found.sleep_target,
                             "days": [day_json(d) for d in found.days]})

    async def api_months(request: Request) -> Response:
        found = await board()
        return JSONResponse({"currency": found.currency, "savings_goal": found.savings_goal,
                             "months": [{**asdict(m), "savings_rate": m.savings_rate}
                                        for m in found.months]})

    async def api_forecast(request: Request) -> Response:
        found = (await board()).forecast
        return JSONResponse(forecast_json(found) if found else {"weeks": [], "proposals": []})

    async def api_alerts(request: Request) -> Response:
        alerts = await anyio.to_thread.run_sync(store.alerts)
        return JSONResponse({"alerts": [a.model_dump(mode="json") for a in alerts]})

    return AppPages(name="life", title="Life", routes=[
        Route("/", page, methods=["GET"]),
        Route("/api/days", api_days, methods=["GET"]),
        Route("/api/months", api_months, methods=["GET"]),
        Route("/api/alerts", api_alerts, methods=["GET"]),
        Route("/api/forecast", api_forecast, methods=["GET"]),
    ])


def pages_for(home: Home) -> AppPages:
    """life's pages on ``home`` (what its declaration names for the web shell)."""
    from smallhold.apps.life.values import load_values

    return pages(LifeStore(home.vault), load_values(home.vault))


__all__ = ["Dashboard", "advice_html", "alerts_html", "dashboard", "forecast_html", "page_html",
           "pages", "pages_for", "people"]
