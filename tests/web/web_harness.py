"""A real uvicorn server on 127.0.0.1 (a free port, its own thread) and headless Chromium.

Playwright drives Debian's ``/usr/bin/chromium``: its own browser download needs the network
and does not run on every distribution, so it is never used (no ``playwright install``).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp

from asgi_serving import serving_asgi

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def browser_missing() -> str | None:
    """Why no browser test can run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing (pip install -e '.[dev]')"
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        return f"{CHROMIUM} is missing (apt-get install chromium; scripts/setup.sh --dev)"
    return None


@contextmanager
def serving(app: ASGIApp) -> Iterator[str]:
    """Serve ``app`` until the block exits; yields the base URL."""
    with serving_asgi(app) as url:
        yield url


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (a Playwright ``Browser``), closed afterwards."""
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    try:
        executable = CHROMIUM if CHROMIUM.exists() else Path(shutil.which("chromium") or "")
        browser = playwright.chromium.launch(executable_path=str(executable),
                                             args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
    finally:
        playwright.stop()
