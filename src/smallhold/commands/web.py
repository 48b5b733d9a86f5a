"""``smallhold web``: every app's pages (pocket's chat today) in the browser, on 127.0.0.1.

The apps declare their pages (``AppSpec.web``, a function of the profile's home); this
command opens the home once and mounts each app's pages in the one web shell.

The pages hold the user's conversations, so the shell is loopback-only unless told
otherwise: another host needs ``--allow-remote``, and then every request needs the access
key (``--api-key``, or one made up at start); the printed link sets it as a cookie.
"""

from __future__ import annotations

import os
import secrets
import sys
import threading
import time
import webbrowser
from urllib.parse import quote

import click

from smallhold.commands.serve import LOG_LEVELS, is_loopback
from smallhold.console import err_console, handle_errors, profile_option

DEFAULT_PORT = 8739  # = smallhold.web.DEFAULT_PORT (kept here so --help imports no web)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _has_display() -> bool:
    """Whether opening a browser would reach a person (not a text browser over SSH)."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _open_when_started(server: object, url: str) -> None:
    def wait_and_open() -> None:
        deadline = time.monotonic() + 60
        while not getattr(server, "started", False):
            if time.monotonic() > deadline or getattr(server, "should_exit", False):
                return
            time.sleep(0.05)
        webbrowser.open(url)

    threading.Thread(target=wait_and_open, name="smallhold-web-open", daemon=True).start()


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True,
              help="Port to listen on.")
@profile_option
@click.option("-m", "--model", help="Chat model for pocket [default: the runtime's].")
@click.option("--open/--no-open", "open_browser", default=None,
              help="Open the page in the browser [default: when there is a display].")
@click.option("--allow-remote", is_flag=True,
              help="Allow a non-loopback --host: other machines could read your conversations "
                   "(every request then needs the access key).")
@click.option("--api-key", metavar="KEY", envvar="SMALLHOLD_WEB_API_KEY",
              help="Access key for --allow-remote [default: a random one, printed in the link; "
                   "env SMALLHOLD_WEB_API_KEY].")
@click.option("--log-level", type=click.Choice(LOG_LEVELS), default="warning",
              show_default=True)
@handle_errors
def web(host: str, port: int, profile: str, model: str | None, open_browser: bool | None,
        allow_remote: bool, api_key: str | None, log_level: str) -> None:
    """Serve pocket's chat page (and later every app's pages) to your browser."""
    if not is_loopback(host) and not allow_remote:
        raise click.UsageError(
            f"{host} is reachable from other machines; smallhold web listens on loopback only "
            "unless you pass --allow-remote (anyone who can reach it could read your "
            "conversations)."
        )
    import uvicorn

    from smallhold.kit import registry
    from smallhold.kit.cli import open_home
    from smallhold.web import build_web

    key = (api_key or secrets.token_urlsafe(24)) if allow_remote else api_key
    url = f"http://{_url_host(host)}:{port}/pocket/"
    if key:
        url = f"http://{_url_host(host)}:{port}/login?key={quote(key, safe='')}"
    settings = None
    if model:
        from smallhold.config import load_settings

        settings = load_settings()
        settings.runtime.default_model = model
    with open_home(profile, settings=settings) as home:
        pages = [spec.web.load()(home) for spec in registry.installed() if spec.web is not None]
        app = build_web(pages, host=host, port=port, api_key=key, allow_remote=allow_remote)
        # no access log: the /login link carries the key in its query string
        server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level,
                                               access_log=False))
        err_console.print(f"smallhold: your pages at {url} (profile {profile}, model "
                          f"{home.runtime.resolve_model(None)}); Ctrl+C stops it.",
                          soft_wrap=True, markup=False)
        if not is_loopback(host):
            err_console.print(f"smallhold: warning: {host} is reachable from other machines; "
                              "only the link above (with its key) lets a browser in.",
                              soft_wrap=True, markup=False)
        if open_browser if open_browser is not None else _has_display():
            _open_when_started(server, url)
        server.run()
