"""life's dashboard: the JSON API and the page on an ingested, checked persona (TestClient),
the SVG charts as pure functions, and the page in a real headless Chromium under the CSP."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from html import escape
from pathlib import Path
from typing import Any

import pytest
from life_data import Personas
from starlette.testclient import TestClient

from asgi_serving import serving_asgi
from smallhold.apps.life.alerts import Alert, Evidence, RecordRef
from smallhold.apps.life.charts import (
    Contact,
    MonthRow,
    day_chart,
    forecast_chart,
    month_chart,
    nice_step,
    people_chart,
)
from smallhold.apps.life.checks import run_checks
from smallhold.apps.life.daily import Day, build_days, data_span, load_records
from smallhold.apps.life.ingest import ingest
from smallhold.apps.life.store import LifeStore
from smallhold.apps.life.values import Values, load_values
from smallhold.apps.life.web import EMPTY, WINDOW_DAYS, pages
from smallhold.store.handle import VaultHandle
from smallhold.web import CSP, build_web

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


@dataclass
class Checked:
    store: LifeStore
    values: Values
    alerts: list[Alert]
    days: list[Day]


@pytest.fixture
def checked(life_personas: Personas, vault: VaultHandle, tmp_path: Path) -> Checked:
    """Persona 2 (New York, every planted pattern) ingested into a vault and checked."""
    persona = life_personas.get(2)
    folder = tmp_path / "exports"
    shutil.copytree(persona.folder, folder)
    (folder / "ground_truth.json").unlink()
    store = LifeStore(vault)
    ingest(store, [folder])
    values = load_values(vault)
    alerts = run_checks(store, values, date.fromisoformat(persona.truth["period"]["as_of"]))
    store.save_alerts(alerts)
    records = load_records(store)
    span = data_span(records, values.person)
    assert span is not None and (span[1] - span[0]).days < WINDOW_DAYS
    return Checked(store, values, alerts, build_days(records, values.person, *span))


def client_for(store: LifeStore, values: Values) -> TestClient:
    return TestClient(build_web([pages(store, values)], extra_hosts=["testserver"]),
                      base_url="http://testserver")


def test_the_api_gives_the_days_months_and_alerts(checked: Checked) -> None:
    with client_for(checked.store, checked.values) as client:
        days = client.get("/life/api/days").json()
        months = client.get("/life/api/months").json()
        alerts = client.get("/life/api/alerts").json()["alerts"]
        assert client.post("/life/api/days", json={}).status_code in (403, 405)
        assert client.delete("/life/api/alerts").status_code in (403, 405)
    assert days["sleep_target"] == 7.0 and days["timezone"] == "America/New_York"
    assert [d["date"] for d in days["days"]] == [str(d.date) for d in checked.days]
    row = next(d for d in checked.days if d.meeting_hours and d.sleep_hours)
    shown = next(d for d in days["days"] if d["date"] == str(row.date))
    assert (shown["meeting_hours"], shown["sleep_hours"]) == (row.meeting_hours, row.sleep_hours)
    assert set(shown) == {"date", "workday", "meeting_hours", "sleep_hours", "steps",
                          "resting_hr", "late_sent_emails"}
    assert months["savings_goal"] == 0.2 and months["currency"] == "USD"
    assert len(months["months"]) >= 2
    over = {f"{a.start:%Y-%m}" for a in checked.alerts if a.kind == "overspending"}
    assert over and {m["month"] for m in months["months"]
                     if m["savings_rate"] < 0.2} == over
    assert sorted(a["id"] for a in alerts) == sorted(a.id for a in checked.alerts)
    assert all(a["evidence"] and a["rule"] for a in alerts)


def test_the_page_draws_the_charts_and_lists_the_alerts(checked: Checked) -> None:
    with client_for(checked.store, checked.values) as client:
        answer = client.get("/life/")
    assert answer.status_code == 200 and answer.headers["content-security-policy"] == CSP
    html = answer.text
    assert '<link rel="stylesheet" href="/static/life.css">' in html
    assert " style=" not in html and "<script>" not in html  # the CSP would block both
    n = len(checked.days)
    assert f'data-days="{n}"' in html and html.count('<g class="day"') == n
    in_range = [a for a in checked.alerts
                if a.start <= checked.days[-1].date and a.end >= checked.days[0].date]
    assert html.count('<g class="window') == len(in_range) >= 3
    assert html.count("<details>") == len(checked.alerts)
    for alert in checked.alerts:
        assert escape(alert.title) in html and escape(alert.rule) in html
    assert html.count('<g class="month') >= 2 and 'class="spend over"' in html
    assert 0 < html.count('<g class="person"') <= 8
    assert "No data yet" not in html
    # the coming weeks: six bars against the stated 20 h, nothing over for this persona
    assert 'data-weeks="6"' in html and html.count('<g class="week') == 6
    assert 'class="limit"' in html and "meeting_hours_per_week_max 20" in html
    assert "No week over the limit" in html
    # every alert's suggested action, weighed against the priorities
    assert html.count('class="advice suggested"') == len(checked.alerts)
    with client_for(checked.store, checked.values) as client:
        planned = client.get("/life/api/forecast").json()
    assert len(planned["weeks"]) == 6 and planned["limit"] == 20
    assert all(w["cites"] for w in planned["weeks"][:3])  # the series booked ahead


def test_an_empty_vault_says_how_to_begin(vault: VaultHandle) -> None:
    with client_for(LifeStore(vault), Values()) as client:
        page = client.get("/life/").text
        assert escape(EMPTY) in page and "<svg" not in page
        assert client.get("/life/api/days").json()["days"] == []
        assert client.get("/life/api/months").json()["months"] == []
        assert client.get("/life/api/alerts").json() == {"alerts": []}


def test_the_charts_are_pure_escaped_svg() -> None:
    days = [Day(date(2024, 3, d), meeting_hours=float(d % 5), sleep_hours=None if d == 4
                else 6.5 + d % 3) for d in range(1, 11)]
    alert = Alert(kind="burnout", title="<b>tired</b> & busy", start=date(2024, 3, 3),
                  end=date(2024, 3, 6), rule="r", evidence=[Evidence(
                      what="w", records=[RecordRef(kind="day", key="2024-03-03")])])
    later = alert.model_copy(update={"start": date(2025, 1, 1), "end": date(2025, 1, 2)})
    svg = day_chart(days, [alert, later], 7.0)
    assert svg.startswith("<svg") and 'data-days="10"' in svg
    assert svg.count('<g class="day"') == 10 and svg.count('<circle class="sleep"') == 9
    assert svg.count('<polyline class="sleep-line"') == 2  # the missing night breaks the line
    assert svg.count('<g class="window') == 1 and "&lt;b&gt;tired&lt;/b&gt; &amp; busy" in svg
    assert "<b>" not in svg and 'class="target"' in svg and " style=" not in svg
    band = re.search(r'<rect class="band" x="([\d.]+)" width="([\d.]+)"', svg)
    assert band and float(band[2]) == pytest.approx(4 * (1000 - 56) / 10, abs=0.1)
    months = month_chart([MonthRow("2024-03", 5000, 4500), MonthRow("2024-04", 5000, 3000)],
                         0.2, "USD")
    assert months.count('class="spend over"') == 1 and months.count('class="goal"') == 2
    assert ">10%<" in months and ">40%<" in months
    people = people_chart([Contact("<Ann>", "ann@x.example", 3, 1)])
    assert "&lt;Ann&gt;" in people and "<Ann>" not in people
    assert nice_step(7300) == 2000 and nice_step(9) == 5
    assert "No daily data" in day_chart([], [], None) and "No full month" in month_chart([], None)


def browser_missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing (pip install -e '.[dev]')"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install chromium; scripts/setup.sh --dev)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = browser_missing()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


WATCH_CSP = ("window.__csp = []; document.addEventListener('securitypolicyviolation', "
             "e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));")


def _tight(values: Values, limit: float) -> Values:
    """The same person with a weekly meeting limit their coming weeks break."""
    tight = values.model_copy(deep=True)
    for priority in tight.priorities:
        if "meeting_hours_per_week_max" in priority.targets:
            priority.targets["meeting_hours_per_week_max"] = limit
    return tight


def test_the_forecast_chart_and_proposals_are_pure_escaped_html(checked: Checked) -> None:
    from smallhold.apps.life.web import dashboard, forecast_html

    board = dashboard(checked.store, _tight(checked.values, 7.0))
    assert board.forecast is not None and board.forecast.over and board.forecast.proposals
    html = forecast_html(board.forecast)
    assert html.count('<g class="week over"') == len(board.forecast.over)
    assert html.count('<li class="proposal"') == len(board.forecast.proposals)
    assert "Family dinner" not in html.split("Protective changes")[1]  # protected
    assert "&rarr;" in html and "supports" in html and " style=" not in html
    assert forecast_chart([], None).startswith("<p")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_dashboard_in_chromium(browser: Any, checked: Checked, tmp_path: Path,
                                   scheme: str) -> None:
    with serving_asgi(build_web([pages(checked.store, checked.values)])) as url:
        context = browser.new_context(viewport={"width": 1100, "height": 800},
                                      color_scheme=scheme)
        context.add_init_script(WATCH_CSP)
        tab = context.new_page()
        tab.set_default_timeout(15_000)
        problems: list[str] = []
        tab.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        tab.on("pageerror", lambda e: problems.append(str(e)))
        try:
            tab.goto(f"{url}/life/")
            chart = tab.locator("svg.chart.days")
            chart.wait_for()
            assert chart.locator("g.day").count() == len(checked.days)
            assert chart.bounding_box()["width"] > 900  # the whole width, not a thumbnail
            bands = chart.locator("g.window rect.band")
            assert bands.count() >= 3
            assert all(b.bounding_box()["width"] > 5 for b in bands.all())
            # the stylesheet applied: the bars and the sleep line are coloured, not black
            fill = tab.eval_on_selector("svg.chart.days rect.meet",
                                        "e => getComputedStyle(e).fill")
            stroke = tab.eval_on_selector("svg.chart.days .sleep-line",
                                          "e => getComputedStyle(e).stroke")
            assert fill not in ("rgb(0, 0, 0)", "none") and stroke != "none"
            weeks = tab.locator("svg.chart.forecast g.week")
            assert weeks.count() == 6 and tab.locator("svg.chart.forecast .limit").count() == 1
            assert all(w.bounding_box()["height"] > 0 for w in weeks.all())
            titles = tab.locator(".alerts .alert .title").all_inner_texts()
            assert sorted(titles) == sorted(a.title for a in checked.alerts)
            first = tab.locator(".alerts .alert").first
            assert not first.locator(".evidence").first.is_visible()
            first.locator("summary").click()
            assert first.locator(".rule").is_visible()
            assert first.locator(".evidence .records li").first.is_visible()
            tab.screenshot(path=str(tmp_path / f"life-{scheme}.png"))
            assert (tmp_path / f"life-{scheme}.png").stat().st_size > 10_000
            assert tab.evaluate("window.__csp") == []
            assert problems == []
        finally:
            context.close()


def test_the_forecast_panel_in_chromium(browser: Any, checked: Checked) -> None:
    """The coming weeks against a tight limit: bars, the limit line, proposals with their
    effects; a screenshot of the panel at /tmp/life-forecast.png to look at."""
    tight = _tight(checked.values, 7.0)
    with serving_asgi(build_web([pages(checked.store, tight)])) as url:
        context = browser.new_context(viewport={"width": 1100, "height": 900})
        context.add_init_script(WATCH_CSP)
        tab = context.new_page()
        tab.set_default_timeout(15_000)
        try:
            tab.goto(f"{url}/life/")
            panel = tab.locator("section[aria-labelledby=h-forecast]")
            panel.wait_for()
            chart = panel.locator("svg.chart.forecast")
            assert chart.locator("g.week").count() == 6
            over = chart.locator("g.week.over rect.booked")
            assert over.count() >= 1
            fill = tab.eval_on_selector("svg.chart.forecast g.week.over rect.booked",
                                        "e => getComputedStyle(e).fill")
            calm = tab.eval_on_selector("svg.chart.forecast g.week:not(.over) rect.booked",
                                        "e => getComputedStyle(e).fill")
            assert fill != calm and fill not in ("rgb(0, 0, 0)", "none")
            line = chart.locator("line.limit").bounding_box()
            assert line["width"] > 400
            proposals = panel.locator(".proposals .proposal")
            assert proposals.count() >= 1 and proposals.first.is_visible()
            assert "brings" in proposals.first.inner_text()
            assert panel.locator(".proposals .effects li").count() >= 1
            panel.screenshot(path="/tmp/life-forecast.png")
            assert Path("/tmp/life-forecast.png").stat().st_size > 10_000
            assert tab.evaluate("window.__csp") == []
        finally:
            context.close()
