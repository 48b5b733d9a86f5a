"""Errors as the shell's pages and scripts read them: ``{"error": {"code", "message"}}``.

A :class:`~smallhold.errors.SmallholdError` is shown as it is: its message is written for
users and its ``http_status`` is the one the API server uses too. Anything else is a bug, so
the browser gets a generic message and the traceback goes to the log, never to the page.
"""

from __future__ import annotations

import logging
from html import escape

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from smallhold.errors import SmallholdError
from smallhold.web.layout import page_response

log = logging.getLogger("smallhold.web")

INTERNAL_MESSAGE = "something went wrong inside smallhold; the details are in its log."


def json_error(status: int, code: str, message: str) -> JSONResponse:
    """The error body every API route and the request guard answer with."""
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def error_body(exc: BaseException) -> tuple[int, dict[str, dict[str, str]]]:
    """Status and body for ``exc``; unexpected errors are logged here with their traceback."""
    if isinstance(exc, SmallholdError):
        return exc.http_status, {"error": {"code": exc.code, "message": str(exc)}}
    log.error("unexpected error in a web request", exc_info=exc)
    return 500, {"error": {"code": "internal_error", "message": INTERNAL_MESSAGE}}


def error_response(exc: BaseException) -> JSONResponse:
    status, body = error_body(exc)
    return JSONResponse(body, status_code=status)


def _wants_json(request: Request) -> bool:
    """API routes (``/<app>/api/...``) and scripts get JSON; a person's browser, a page."""
    return "/api/" in request.url.path or "text/html" not in request.headers.get("accept", "")


async def http_exception(request: Request, exc: Exception) -> Response:
    """404, 405 and the like: JSON for scripts, a small page for people."""
    assert isinstance(exc, HTTPException)
    message = {404: "there is no page here.",
               405: "this address does not take that method."}.get(exc.status_code,
                                                                    str(exc.detail))
    if _wants_json(request):
        return json_error(exc.status_code, "not_found" if exc.status_code == 404 else
                          "http_error", message)
    return page_response(request, "Not found" if exc.status_code == 404 else "Error",
                         f'<section class="notice"><h1>{exc.status_code}</h1>'
                         f'<p>{escape(message)}</p><p><a href="/">All apps</a></p></section>',
                         status_code=exc.status_code)


async def smallhold_exception(request: Request, exc: Exception) -> Response:
    return error_response(exc)


async def unexpected(request: Request, exc: Exception) -> Response:
    return error_response(exc)


__all__ = ["INTERNAL_MESSAGE", "error_body", "error_response", "http_exception",
           "json_error", "smallhold_exception", "unexpected"]
