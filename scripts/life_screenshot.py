"""Screenshot of life's dashboard on a synthetic persona: docs/img/life-dashboard.png.

    .venv/bin/python scripts/life_screenshot.py [--seed 2] [--out PATH] [--dark] [--full-page]

It writes a fictional person's exports with the shared generator
(``../shared/data/life/make_persona.py DIR --seed 2``), ingests them into a throwaway
SMALLHOLD_HOME (no user data is touched), runs the checks as of the persona's last day,
serves the web shell with life's pages on a free loopback port and saves the page from
headless Chromium (Debian's /usr/bin/chromium, driven by Playwright): the first 1100x800
pixels, or with ``--full-page`` the whole page with the first alert opened.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAKE_PERSONA = ROOT.parent / "shared" / "data" / "life" / "make_persona.py"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "life-dashboard.png")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--dark", action="store_true", help="Shoot the dark colour scheme.")
    parser.add_argument("--full-page", action="store_true",
                        help="The whole page, with the first alert opened.")
    args = parser.parse_args()
    if not MAKE_PERSONA.is_file():
        print(f"the persona generator is not at {MAKE_PERSONA}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="smallhold-life-shot-") as tmp:
        os.environ["SMALLHOLD_HOME"] = str(Path(tmp) / "home")
        exports = Path(tmp) / "exports"
        subprocess.run([sys.executable, str(MAKE_PERSONA), str(exports), "--seed",
                        str(args.seed)], check=True, capture_output=True)
        truth = json.loads((exports / "ground_truth.json").read_text(encoding="utf-8"))
        (exports / "ground_truth.json").unlink()  # the answers are not an export
        as_of = date.fromisoformat(truth["period"]["as_of"])
        return shoot(exports, as_of, args.out, args.chromium, args.dark, args.full_page)


def shoot(exports: Path, as_of: date, out: Path, chromium: str, dark: bool,
          full_page: bool) -> int:
    import uvicorn
    from playwright.sync_api import sync_playwright

    from smallhold.apps.life import APP
    from smallhold.apps.life.checks import run_checks
    from smallhold.apps.life.ingest import ingest
    from smallhold.apps.life.store import LifeStore
    from smallhold.apps.life.values import load_values
    from smallhold.apps.life.web import pages
    from smallhold.kit import Home, Overrides, ScriptedIO
    from smallhold.web import build_web

    with Home.open(app=APP, overrides=Overrides(io=ScriptedIO())) as home:
        store = LifeStore(home.vault)
        ingest(store, [exports])
        values = load_values(home.vault)
        saved = store.save_alerts(run_checks(store, values, as_of))
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(build_web([pages(store, values)], port=port),
                                               log_level="warning"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.02)
        playwright = sync_playwright().start()
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100,
                                              "height": 2000 if full_page else 800},
                                    color_scheme="dark" if dark else "light")
            page.goto(f"http://127.0.0.1:{port}/life/")
            page.wait_for_selector("svg.chart.days")
            out.parent.mkdir(parents=True, exist_ok=True)
            if full_page:
                page.click(".alert summary")  # the page scrolls inside main: a tall window
            page.screenshot(path=str(out))
        finally:
            browser.close()
            playwright.stop()
            server.should_exit = True
            thread.join(timeout=15)
            sock.close()
    print(f"{out} ({out.stat().st_size:,} bytes); {saved} alert(s) as of {as_of}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
