"""The suite's web shell: one Starlette app for every app's pages, on loopback by default.

It imports only Starlette, the standard library, :mod:`smallhold.httpguard` and
:mod:`smallhold.errors`, so any app can hand it pages without pulling in another layer.
An app builds an :class:`AppPages`; the ``smallhold web`` command passes them all to
:func:`build_web`. Pages render through :func:`page_response` for the shared layout.
"""

from smallhold.web.errors import error_body, error_response, json_error
from smallhold.web.layout import NavLink, page_response, render_page
from smallhold.web.shell import CSP, DEFAULT_PORT, AppPages, build_web, web_policy

__all__ = ["CSP", "DEFAULT_PORT", "AppPages", "NavLink", "build_web", "error_body",
           "error_response", "json_error", "page_response", "render_page", "web_policy"]
