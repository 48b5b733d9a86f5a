"""Screenshot of pocket's web page answering with a real bundled model: docs/img/pocket-web.png.

    .venv/bin/python scripts/web_screenshot.py [--model smollm2-135m-instruct] [--out PATH]

It serves ``smallhold web``'s app (the shell with pocket's pages) on a free loopback port,
in a throwaway SMALLHOLD_HOME (the installed models are reused, no user data is touched),
asks one question through headless Chromium (Debian's /usr/bin/chromium, driven by
Playwright) and saves the page once the streamed answer has ended.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUESTION = "How do I reverse a list in Python?"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "pocket-web.png")
    parser.add_argument("--question", default=QUESTION)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()

    from smallhold.paths import resolve_paths

    models_dir = resolve_paths().models_dir  # before SMALLHOLD_HOME moves
    with tempfile.TemporaryDirectory(prefix="smallhold-shot-") as home:
        os.environ["SMALLHOLD_HOME"] = home
        os.environ["SMALLHOLD_MODELS_DIR"] = str(models_dir)
        return shoot(args.model, args.question, args.out, args.chromium)


def shoot(model: str, question: str, out: Path, chromium: str) -> int:
    import uvicorn
    from playwright.sync_api import sync_playwright

    from smallhold.apps.pocket.assistant import open_pocket
    from smallhold.apps.pocket.web import pages
    from smallhold.web import build_web

    with open_pocket("default", model) as pocket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(build_web([pages(pocket)], port=port),
                                               log_level="warning"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.02)
        playwright = sync_playwright().start()
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 700})
            page.set_default_timeout(300_000)  # the first answer loads the model
            page.goto(f"http://127.0.0.1:{port}/pocket/#python")
            page.wait_for_function("() => document.getElementById('model')"
                                   ".textContent !== '…'")
            page.fill("#max-tokens", "200")
            page.fill("#temperature", "0.2")
            page.fill("#message", question)
            page.click("#send")
            page.wait_for_selector(".msg.assistant")
            page.wait_for_function("() => !document.querySelector('.msg.pending')"
                                   " && !document.getElementById('send').disabled")
            page.wait_for_timeout(300)  # the list and device panel refresh after the answer
            page.locator("#message").blur()
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out))
            answer = page.locator(".msg.assistant").last.inner_text()
        finally:
            browser.close()
            playwright.stop()
            server.should_exit = True
            thread.join(timeout=15)
            sock.close()
    print(f"{out} ({out.stat().st_size:,} bytes); the answer began: {answer[:80]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
