"""The one page layout of the suite's web shell: a header with the apps, then the app's page.

Every page is a full HTML document built here, so that the nav, the stylesheet and the
security posture are the same on every app's pages. Pages carry no inline script or style
(the Content-Security-Policy forbids them): behaviour comes from files under ``/static``,
and data reaches those scripts through the JSON API or ``data-*`` attributes, never through
HTML built from user text. Everything this module is given as text is escaped; only
``main``, the app's own markup, is inserted as it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

from starlette.requests import Request
from starlette.responses import HTMLResponse

STYLESHEET = "/static/smallhold.css"
SHARED_SCRIPT = "/static/smallhold.js"
ICON = "/static/favicon.svg"
NAV_STATE = "smallhold_web_nav"
"""Key in the shell's ``app.state``: the apps' nav links, set by :func:`build_web`."""


@dataclass(frozen=True)
class NavLink:
    """One app in the header: its mount name and title."""

    name: str
    title: str

    @property
    def href(self) -> str:
        return f"/{self.name}/"


def _attr(value: str) -> str:
    return escape(value, quote=True)


def render_page(title: str, main: str, *, nav: Sequence[NavLink] = (), active: str | None = None,
                scripts: Sequence[str] = (), data: Mapping[str, str] | None = None,
                body_class: str = "") -> str:
    """A whole HTML page.

    ``main`` is trusted markup written by the app (escape any text put in it); ``title``,
    ``nav``, ``scripts`` (URLs of same-origin script files, loaded after the shared one) and
    ``data`` (``data-*`` attributes on ``<body>``, for the page script) are escaped here.
    """
    current = ' aria-current="page"'
    links = "".join(
        f'<a href="{_attr(link.href)}"{current if link.name == active else ""}>'
        f"{escape(link.title)}</a>"
        for link in nav)
    attributes = "".join(f' data-{_attr(key)}="{_attr(value)}"'
                         for key, value in (data or {}).items())
    classes = f' class="{_attr(body_class)}"' if body_class else ""
    tags = "".join(f'<script src="{_attr(src)}" defer></script>'
                   for src in (SHARED_SCRIPT, *scripts))
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{escape(title)} · smallhold</title>"
        f'<link rel="icon" href="{ICON}" type="image/svg+xml">'
        f'<link rel="stylesheet" href="{STYLESHEET}">{tags}</head>'
        f"<body{classes}{attributes}>"
        '<header class="topbar"><a class="brand" href="/">smallhold</a>'
        f'<nav aria-label="apps">{links}</nav>'
        '<span class="local-badge" title="Served by smallhold on this machine">local</span>'
        "</header>"
        f'<main id="main">{main}</main>'
        "</body></html>\n"
    )


def nav_links(request: Request) -> list[NavLink]:
    """The shell's nav (empty outside the shell, e.g. an app's routes mounted alone)."""
    links = getattr(request.app.state, NAV_STATE, None)
    return list(links) if isinstance(links, list) else []


def page_response(request: Request, title: str, main: str, *, active: str | None = None,
                  scripts: Sequence[str] = (), data: Mapping[str, str] | None = None,
                  body_class: str = "", status_code: int = 200) -> HTMLResponse:
    """:func:`render_page` with the shell's nav, as a response (for an app's page route)."""
    return HTMLResponse(render_page(title, main, nav=nav_links(request), active=active,
                                    scripts=scripts, data=data, body_class=body_class),
                        status_code=status_code)


__all__ = ["NAV_STATE", "NavLink", "nav_links", "page_response", "render_page"]
