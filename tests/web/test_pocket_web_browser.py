"""pocket's chat page end to end in a real headless Chromium, on the scripted backend.

The page is served by uvicorn exactly as ``smallhold web`` serves it (the guard, the CSP,
the static files), so a script the CSP blocked or a guard that refused the page's own
requests would fail here, not only in a user's browser.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from web_harness import browser_missing, chromium, serving

from smallhold.apps.pocket.assistant import Pocket
from smallhold.apps.pocket.web import pages
from smallhold.runtime.device import simulated
from smallhold.web import build_web

pytestmark = pytest.mark.skipif(browser_missing() is not None,
                                reason=browser_missing() or "")
TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Any, web_pocket: Pocket) -> Iterator[tuple[Any, str, list[str]]]:
    """A fresh browser page and the served URL; console errors and CSP violations are
    collected, and the test fails if any appeared."""
    with serving(build_web([pages(web_pocket)])) as url:
        context = browser.new_context(viewport={"width": 1100, "height": 700})
        tab = context.new_page()
        tab.set_default_timeout(TIMEOUT_MS)
        problems: list[str] = []
        tab.on("console", lambda m: problems.append(f"{m.text} at {m.location.get('url')}")
               if m.type == "error" else None)
        tab.on("pageerror", lambda e: problems.append(str(e)))
        try:
            yield tab, url, problems
        finally:
            context.close()


def send(tab: Any, text: str) -> None:
    tab.fill("#message", text)
    tab.click("#send")


def test_ask_stream_persist_and_see_errors(page: tuple[Any, str, list[str]],
                                           web_pocket: Pocket, tmp_path: Path) -> None:
    tab, url, problems = page
    tab.goto(f"{url}/pocket/")
    # the device panel shows the simulated laptop: plugged in at 80 %
    tab.wait_for_function("() => document.getElementById('battery').textContent.includes('80 %')")
    assert tab.inner_text("#battery") == "80 % (charging)"
    assert tab.inner_text("#power-mode") == "full"
    assert "scripted" in tab.inner_text("#model")

    send(tab, "What is the capital of France?")
    answer = tab.locator(".msg.assistant").last
    expected = "You asked: What is the capital of France?. Here is a short answer."
    answer.wait_for()
    tab.wait_for_function(
        "(t) => [...document.querySelectorAll('.msg.assistant')].some(m => m.textContent === t)",
        arg=expected)
    assert tab.locator(".msg.user").last.inner_text() == "What is the capital of France?"
    assert tab.input_value("#message") == ""
    # the conversation list has the new conversation with its two turns
    tab.wait_for_function("() => document.querySelector('#conversations .conv-meta')"
                          "?.textContent.startsWith('2 turns')")
    assert tab.locator("#conversations .conv-name").all_inner_texts() == ["default"]
    assert [t.role for t in web_pocket.history("default")] == ["user", "assistant"]

    # what the user types is text, never markup
    send(tab, "<b>bold</b> & <img src=x>")
    tab.wait_for_function("() => document.querySelectorAll('.msg.assistant').length === 2"
                          " && !document.querySelector('.msg.pending')")
    assert tab.locator(".msg.user").last.inner_text() == "<b>bold</b> & <img src=x>"
    assert tab.locator(".messages b, .messages img").count() == 0

    # a new conversation, then a reload: both survive, and the chosen one is shown
    tab.fill("#new-name", "trip")
    tab.press("#new-name", "Enter")
    assert tab.inner_text("#chat-title") == "trip"
    assert tab.locator(".msg").count() == 0
    tab.fill("#message", "Plan a weekend in Lisbon")
    tab.press("#message", "Enter")  # Enter sends too
    tab.wait_for_function("() => [...document.querySelectorAll('#conversations .conv-name')]"
                          ".map(n => n.textContent).join() === 'default,trip'")
    tab.wait_for_function("() => !document.querySelector('.msg.pending')")
    tab.reload()
    tab.wait_for_function("() => document.querySelectorAll('.msg.assistant').length === 1")
    assert tab.inner_text("#chat-title") == "trip"
    assert "Plan a weekend in Lisbon" in tab.locator(".msg.assistant").inner_text()
    tab.click("#conversations button[data-name='default']")
    tab.wait_for_function("() => document.querySelectorAll('.msg.assistant').length === 2")
    assert tab.locator(".msg.user").first.inner_text() == "What is the capital of France?"

    # the phone at 3 %: the turn is refused and the page says why, as a message
    web_pocket.runtime.probe = simulated(3, battery=3, charging=False)
    send(tab, "Are you there?")
    error = tab.locator(".msg.error")
    error.wait_for()
    assert "battery at 3 %" in error.inner_text() and "plug in" in error.inner_text()
    assert tab.input_value("#message") == "Are you there?"  # kept, to send again later
    assert tab.locator(".msg.user").count() == 2  # and not shown as sent
    tab.wait_for_function("() => document.getElementById('power-mode').textContent"
                          " === 'paused'")
    assert tab.inner_text("#battery") == "3 % (on battery)"
    assert len(web_pocket.history("default")) == 4  # nothing was added
    assert tab.is_enabled("#send")

    shot = tmp_path / "pocket-web.png"
    tab.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    # no script error, no CSP violation: only the refused turn's 503, which the page showed
    assert [p for p in problems if "503" not in p] == [], problems


def test_delete_a_conversation(page: tuple[Any, str, list[str]], web_pocket: Pocket) -> None:
    tab, url, problems = page
    tab.goto(f"{url}/pocket/#old")
    send(tab, "remember this")
    tab.wait_for_function("() => document.querySelector('#conversations .conv-meta')"
                          "?.textContent.startsWith('2 turns')")
    tab.once("dialog", lambda dialog: dialog.accept())
    tab.click("#delete")
    tab.wait_for_function("() => document.querySelector('#chat-title').textContent"
                          " === 'default'")
    assert web_pocket.store.all() == []
    assert tab.locator(".msg").count() == 0
    assert problems == []
