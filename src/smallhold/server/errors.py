"""Every failure as an OpenAI-style error body: ``{"error": {message, type, param, code}}``.

A :class:`~smallhold.errors.SmallholdError` keeps its own status, type, code and message (they
are written for users). Anything else is a bug: the client gets a generic 500 and the details
go to the server log only, never the request body.
"""

from __future__ import annotations

import json
import logging
import traceback
from typing import Any

from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from smallhold.errors import SmallholdError

log = logging.getLogger("smallhold.server")

INTERNAL_MESSAGE = (
    "the server hit an unexpected error; the details are in the smallhold server log."
)


class ApiError(Exception):
    """An error the API reports as it is (bad request, unknown model...)."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param,
                          "code": self.code}}

    def response(self, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


def _loc(parts: tuple[int | str, ...]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


_TYPE_LABELS = {"str", "int", "float", "bool", "none", "dict", "list"}


def _is_type_label(part: str) -> bool:
    """Pydantic names union branches in the location ("str", "list[TextPart]"); fields are
    snake_case, so anything else is a label."""
    return part in _TYPE_LABELS or "[" in part or part[:1].isupper()


def from_validation(exc: ValidationError) -> ApiError:
    found: list[tuple[str, int, Any]] = []
    for error in exc.errors(include_url=False):
        loc = tuple(p for p in error["loc"] if isinstance(p, int) or not _is_type_label(p))
        found.append((_loc(loc), len(loc), error))
    # Of a union's failed branches, the one that got deepest says most ("content[0].type").
    found.sort(key=lambda item: -item[1])
    params = list(dict.fromkeys(param for param, _, _ in found))
    first = found[0][2]
    param = params[0] or None
    code = "invalid_value" if param else None
    if first["type"] == "missing":
        message = f"missing required parameter: {param!r}."
        code = "missing_required_parameter"
    else:
        text = first["msg"].removeprefix("Value error, ")
        message = f"invalid value for {param!r}: {text}." if param else f"{text}."
    if len(params) > 1:
        message += f" (also invalid: {', '.join(repr(p or 'body') for p in params[1:4])})"
    return ApiError(400, message, param=param, code=code)


MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays and objects a request body may have. The API's own bodies need
about 8 (a response_format schema a few more); deeper input only serves to exhaust the stack
of whatever walks it next (the JSON parser, pydantic, the schema converter)."""


def _too_deep(data: Any, limit: int) -> bool:
    """Whether ``data`` nests more than ``limit`` levels; iterative, so it cannot recurse."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def parse_json(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 that says what is wrong with it."""
    too_deep = ApiError(400, f"the request body nests arrays or objects more than "
                             f"{MAX_JSON_DEPTH} levels deep; flatten it.", code="invalid_json")
    try:
        data = json.loads(raw)
    except RecursionError:  # deeper than the interpreter's recursion limit
        raise too_deep from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the request body is not valid JSON ({exc}); send a JSON object.",
                       code="invalid_json") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the request body must be a JSON object.", code="invalid_json")
    if _too_deep(data, MAX_JSON_DEPTH):
        raise too_deep
    return data


def from_exception(exc: BaseException) -> ApiError:
    """Map any exception raised while serving a request to what the client is told."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, ValidationError):
        return from_validation(exc)
    if isinstance(exc, SmallholdError):
        return ApiError(exc.http_status, str(exc), type=exc.openai_type, code=exc.code)
    # The message of an unknown exception could quote the prompt: the log gets the type and
    # where it was raised; the message only at debug level, which the user turns on.
    where = "".join(traceback.format_tb(exc.__traceback__)).rstrip()
    log.error("unexpected %s while serving a request:\n%s", type(exc).__name__, where)
    log.debug("the %s said: %s", type(exc).__name__, exc)
    return ApiError(500, INTERNAL_MESSAGE, type="server_error", code="internal_error")


async def http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        error = ApiError(404, f"no route for {request.method} {request.url.path}; the API lives "
                              "under /v1 (chat/completions, embeddings, models) and /health.",
                         code="not_found")
    elif exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        error = ApiError(405, f"{request.method} is not allowed on {request.url.path}; "
                              f"use {allowed or 'another method'}.", code="method_not_allowed")
    else:
        error = ApiError(exc.status_code, exc.detail, code=None)
    return error.response(headers=dict(exc.headers) if exc.headers else None)


async def unexpected(request: Request, exc: Exception) -> Response:
    return from_exception(exc).response()
