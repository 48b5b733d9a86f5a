"""Self-healing for calls to the outside world: classify, retry, and stop calling a dead service.

Every failure of an external call becomes one of two errors (:mod:`ops.errors`):
:class:`TransientError` (a timeout, a dropped connection, a 5xx, a 429: worth trying
again after a wait) or :class:`PermanentError` (a 4xx, bad credentials, a refused write:
the same request will fail the same way, so a person is told instead). :func:`classify`
makes that call for every client ops uses (httpx, slack_sdk, smtplib, sqlite3, psycopg,
SQLAlchemy), so the engine only ever sees the two.

:func:`guarded_call` runs a tool through its integration's circuit breaker and retries
transient failures with exponential backoff and full jitter (tenacity). The breaker
(pybreaker) keeps its state in the ``ops_breakers`` table, not in memory: workers sharing
one database share one breaker per integration, so when worker A finds Slack down,
worker B stops hammering it too, and an open breaker is written to the audit log once,
by whichever worker opened it.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import smtplib
import sqlite3
import ssl
import time
import urllib.error
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import pybreaker
import tenacity
from pydantic import ValidationError
from slack_sdk.errors import SlackApiError, SlackClientError
from sqlalchemy import exc as sa_exc
from sqlalchemy import select, update

from smallhold.apps.ops.config import Resilience
from smallhold.apps.ops.errors import (
    CircuitOpenError,
    IntegrationError,
    OpsError,
    PermanentError,
    TransientError,
)
from smallhold.apps.ops.state import OpsState, breakers
from smallhold.apps.ops.tools import Call, Services, Tool

log = logging.getLogger(__name__)

MAX_RETRY_AFTER = 300.0  # seconds; a service asking for more is treated as asking for this
TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504, 507, 509, 520, 521, 522, 523,
                              524, 529})
SLACK_TRANSIENT = frozenset({"ratelimited", "rate_limited", "internal_error", "fatal_error",
                             "service_unavailable", "request_timeout"})
# PostgreSQL SQLSTATE classes worth retrying: connection exceptions, serialisation failures
# and deadlocks, insufficient resources, the server shutting down or starting up
_PG_TRANSIENT_CLASSES = ("08", "40", "53")
_PG_TRANSIENT_CODES = frozenset({"57P01", "57P02", "57P03", "55P03"})
_EXCERPT = 200


# classification ------------------------------------------------------------------------

def retry_after_seconds(value: str | None, *, now: datetime | None = None,
                        cap: float = MAX_RETRY_AFTER) -> float | None:
    """A ``Retry-After`` header as seconds to wait: delta-seconds or an HTTP date, clamped
    to ``[0, cap]``; None when absent or unreadable (a garbled header is not an order)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, min(seconds, cap))


def _header(headers: Mapping[str, Any] | None, name: str) -> str | None:
    if not headers:
        return None
    for key, value in headers.items():
        if key.lower() == name.lower():
            if isinstance(value, list | tuple):
                value = value[0] if value else None
            return None if value is None else str(value)
    return None


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _EXCERPT else flat[:_EXCERPT] + "…"


def status_error(status: int, headers: Mapping[str, Any] | None, detail: str,
                 integration: str) -> IntegrationError:
    """The error an HTTP status amounts to. A 403 that is really a rate limit (GitHub says so
    with ``X-RateLimit-Remaining: 0`` or a ``Retry-After``) is transient, not a refusal."""
    retry_after = retry_after_seconds(_header(headers, "retry-after"))
    message = f"{integration or 'service'}: HTTP {status}" + (f": {detail}" if detail else "")
    if status == 403 and _header(headers, "x-ratelimit-remaining") == "0":
        reset = _header(headers, "x-ratelimit-reset")
        if retry_after is None and reset and reset.strip().isdigit():
            retry_after = max(0.0, min(int(reset) - time.time(), MAX_RETRY_AFTER))
        return TransientError(message + " (rate limited)", integration=integration,
                              retry_after=retry_after)
    if status == 403 and retry_after is not None:
        return TransientError(message + " (rate limited)", integration=integration,
                              retry_after=retry_after)
    if status in TRANSIENT_STATUS or (status >= 500 and status not in (501, 505)):
        return TransientError(message, integration=integration, retry_after=retry_after)
    if status in (401, 403):
        return PermanentError(message + " (check the token and its scopes)",
                              integration=integration)
    return PermanentError(message, integration=integration)


def check_response(response: httpx.Response, integration: str) -> None:
    """Raise the classified error for a non-2xx response (the body's start is kept: it is
    what a person needs to see when the failure is escalated)."""
    if response.is_success:
        return
    raise status_error(response.status_code, response.headers, _body(response), integration)


def _body(response: httpx.Response) -> str:
    try:
        return _excerpt(response.text)
    except (UnicodeDecodeError, LookupError, httpx.HTTPError, httpx.ResponseNotRead):
        return ""


def _slack(exc: SlackApiError, integration: str) -> IntegrationError:
    response = exc.response
    status = int(getattr(response, "status_code", 0) or 0)
    data = getattr(response, "data", None)
    error = str(data.get("error", "")) if isinstance(data, dict) else ""
    headers = getattr(response, "headers", None)
    retry_after = retry_after_seconds(_header(headers, "retry-after"))
    message = f"{integration}: Slack said {error or 'an error'} (HTTP {status})"
    if error in SLACK_TRANSIENT or status in TRANSIENT_STATUS or status >= 500:
        return TransientError(message, integration=integration, retry_after=retry_after)
    return PermanentError(message, integration=integration)


def _smtp(exc: smtplib.SMTPException, integration: str) -> IntegrationError:
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return TransientError(f"{integration}: the mail server hung up: {exc}",
                              integration=integration)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        detail = ", ".join(f"{rcpt} ({code})" for rcpt, (code, _) in exc.recipients.items())
        cls: type[IntegrationError] = (TransientError if codes and all(
            400 <= c < 500 for c in codes) else PermanentError)
        return cls(f"{integration}: recipients refused: {detail}", integration=integration)
    if isinstance(exc, smtplib.SMTPResponseException):
        raw = exc.smtp_error
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        message = f"{integration}: the mail server answered {exc.smtp_code} {_excerpt(text)}"
        if 400 <= exc.smtp_code < 500:
            return TransientError(message, integration=integration)
        return PermanentError(message, integration=integration)
    return PermanentError(f"{integration}: {type(exc).__name__}: {exc}",
                          integration=integration)


def _postgres(exc: BaseException, integration: str) -> IntegrationError:
    """psycopg's errors, told apart by SQLSTATE without importing psycopg (an extra)."""
    sqlstate = getattr(exc, "sqlstate", None)
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    message = f"{integration}: {first}"
    if sqlstate == "57014":  # query_canceled: the statement timeout; the same query is as slow
        return PermanentError(f"{message} (the query ran past its time limit)",
                              integration=integration)
    if sqlstate is None and type(exc).__name__ in ("OperationalError", "InterfaceError"):
        return TransientError(message, integration=integration)  # could not connect
    if sqlstate and (sqlstate[:2] in _PG_TRANSIENT_CLASSES or sqlstate in _PG_TRANSIENT_CODES):
        return TransientError(message, integration=integration)
    if sqlstate == "25006":
        return PermanentError(f"{message} (the connection is read-only: writes are refused)",
                              integration=integration)
    return PermanentError(message, integration=integration)


def _sqlite(exc: sqlite3.Error, integration: str) -> IntegrationError:
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and (
            "locked" in text or "busy" in text):
        return TransientError(f"{integration}: {text}", integration=integration)
    if "readonly" in text or "read-only" in text or "not authorized" in text:
        return PermanentError(f"{integration}: {text} (the connection is read-only: writes "
                              "are refused)", integration=integration)
    return PermanentError(f"{integration}: {text}", integration=integration)


def classify(exc: BaseException, integration: str = "") -> IntegrationError:
    """The :class:`TransientError` or :class:`PermanentError` that ``exc`` amounts to.

    An :class:`IntegrationError` is returned as is. What is not recognised is permanent:
    retrying a failure nobody understands only delays the person who has to look at it.
    """
    name = integration or "service"
    if isinstance(exc, IntegrationError):
        return exc
    if isinstance(exc, SlackApiError):
        return _slack(exc, name)
    if isinstance(exc, SlackClientError):
        return PermanentError(f"{name}: {type(exc).__name__}: {exc}", integration=integration)
    if isinstance(exc, httpx.HTTPStatusError):
        return status_error(exc.response.status_code, exc.response.headers,
                            _body(exc.response), name)
    if isinstance(exc, httpx.TimeoutException):
        return TransientError(f"{name}: timed out ({type(exc).__name__})",
                              integration=integration)
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError | httpx.InvalidURL):
        return PermanentError(f"{name}: {exc}", integration=integration)
    if isinstance(exc, httpx.TransportError):
        if "CERTIFICATE_VERIFY_FAILED" in str(exc):
            return PermanentError(f"{name}: the server's TLS certificate is not trusted: "
                                  f"{exc}", integration=integration)
        return TransientError(f"{name}: {type(exc).__name__}: {exc}", integration=integration)
    if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None:
        return classify(exc.orig, integration)
    if isinstance(exc, sa_exc.TimeoutError | sa_exc.DisconnectionError):
        return TransientError(f"{name}: {exc}", integration=integration)
    if type(exc).__module__.startswith("psycopg"):
        return _postgres(exc, name)
    if isinstance(exc, sqlite3.Error):
        return _sqlite(exc, name)
    if isinstance(exc, smtplib.SMTPException):  # before OSError: it is one
        return _smtp(exc, name)
    if isinstance(exc, urllib.error.HTTPError):
        return status_error(exc.code, dict(exc.headers.items()) if exc.headers else None,
                            str(exc.reason), name)
    if isinstance(exc, ssl.SSLCertVerificationError) or (
            isinstance(exc, urllib.error.URLError)
            and isinstance(exc.reason, ssl.SSLCertVerificationError)):
        return PermanentError(f"{name}: the server's TLS certificate is not trusted: {exc}",
                              integration=integration)
    if isinstance(exc, TimeoutError | ConnectionError | urllib.error.URLError | OSError):
        return TransientError(f"{name}: {type(exc).__name__}: {exc}", integration=integration)
    if isinstance(exc, ValidationError):
        return PermanentError(f"{name}: the reply or request had the wrong shape: "
                              f"{exc.errors()[0]['msg'] if exc.errors() else exc}",
                              integration=integration)
    return PermanentError(f"{name}: {type(exc).__name__}: {exc}", integration=integration)


@contextmanager
def integration_errors(integration: str) -> Iterator[None]:
    """Inside the block, any failure leaves as a classified :class:`IntegrationError`;
    ops's own errors (a missing secret, a scope refused) pass unchanged."""
    try:
        yield
    except OpsError:
        raise
    except Exception as exc:
        raise classify(exc, integration) from exc


def once(call: Call, services: Services, act: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Do ``act`` unless the ledger says this call's side effect is already done; record
    what it returned. The ledger's first record wins, so two racing workers agree on one
    result even if both acted (the services' own dedup covers that window)."""
    key = call.idempotency_key
    done = services.ledger.done(key)
    if done is not None:
        log.info("ops: %s already done, not repeated", key)
        return done
    result = act()
    services.ledger.record(key, result)
    return services.ledger.done(key) or result


# the shared circuit breaker --------------------------------------------------------------

class SharedBreakerStorage(pybreaker.CircuitBreakerStorage):
    """A breaker's state in the ``ops_breakers`` row of one integration.

    Every property reads the row afresh, so a breaker opened by another worker is open
    here on the next call. Counters go up with ``bump_breaker`` (one atomic UPDATE, no lost
    increments between workers). State changes are conditional updates (``... WHERE state
    <> new``), so when two workers trip the breaker at once exactly one of them wins the
    transition and writes the audit entry.

    Times are kept in ``clock``'s frame (seconds, ``time.time`` by default) and handed to
    pybreaker translated into its own (``datetime.now``), so tests can move a fake clock
    past the reset timeout instead of sleeping through it.
    """

    def __init__(self, state: OpsState, name: str, *, clock: Callable[[], float] = time.time,
                 context: Mapping[str, Any] | None = None) -> None:
        super().__init__(name)
        self._db = state
        self._clock = clock
        self._context = dict(context or {})

    def _row(self) -> dict[str, Any]:
        return self._db.breaker(self._name)

    @property
    def state(self) -> str:
        return str(self._row()["state"])

    @state.setter
    def state(self, state: str) -> None:
        values: dict[str, Any] = {"state": state}
        if state == pybreaker.STATE_OPEN:
            values["opened_at"] = self._clock()
        with self._db.engine.begin() as conn:
            changed = conn.execute(update(breakers).where(
                breakers.c.name == self._name, breakers.c.state != state).values(values)
            ).rowcount
            exists = changed or conn.execute(select(breakers.c.name).where(
                breakers.c.name == self._name)).first() is not None
        if not exists:  # no failure was ever counted for it: nothing raced us to the row
            self._db.update_breaker(self._name, **values)
            changed = 1
        if not changed:
            return
        row = self._row()
        if state == pybreaker.STATE_OPEN:
            log.warning("ops: circuit breaker %s opened after %s failures", self._name,
                        row["failures"])
            self._db.audit("ops", "breaker.open", integration=self._name,
                           failures=int(row["failures"]), **self._context)
        elif state == pybreaker.STATE_CLOSED:
            log.info("ops: circuit breaker %s closed again", self._name)
            self._db.audit("ops", "breaker.close", integration=self._name, **self._context)
        else:
            log.info("ops: circuit breaker %s half-open: one trial call", self._name)

    def increment_counter(self) -> None:
        self._db.bump_breaker(self._name, "failures")

    def reset_counter(self) -> None:
        # conditional: a success on a healthy service (the common case) writes nothing
        with self._db.engine.begin() as conn:
            conn.execute(update(breakers).where(breakers.c.name == self._name,
                                                breakers.c.failures != 0).values(failures=0))

    def increment_success_counter(self) -> None:
        self._db.bump_breaker(self._name, "successes")

    def reset_success_counter(self) -> None:
        with self._db.engine.begin() as conn:
            conn.execute(update(breakers).where(breakers.c.name == self._name,
                                                breakers.c.successes != 0).values(successes=0))

    @property
    def counter(self) -> int:
        return int(self._row()["failures"])

    @property
    def success_counter(self) -> int:
        return int(self._row()["successes"])

    @property
    def opened_at(self) -> datetime | None:
        stored = self._row()["opened_at"]
        if stored is None:
            return None
        return datetime.now(UTC) - timedelta(seconds=self._clock() - float(stored))

    @opened_at.setter
    def opened_at(self, datetime: datetime) -> None:
        """Ignored: pybreaker sets it just before the state, and the state setter stores our
        clock's time with the transition, only when it really happens (a worker that lost
        the race to open must not push the reset time back)."""


def _not_transient(exc: BaseException) -> bool:
    """pybreaker's exclusion: only a transient failure says the service is unwell. A 4xx
    is the request's fault, so it must not open the breaker for everyone."""
    return not isinstance(exc, TransientError)


def circuit_breaker(state: OpsState, integration: str, settings: Resilience, *,
                    clock: Callable[[], float] = time.time,
                    context: Mapping[str, Any] | None = None) -> pybreaker.CircuitBreaker:
    """A breaker over the integration's shared row. Cheap: built per call, since the state
    lives in the database (and a per-process instance would serialise calls on its lock)."""
    return pybreaker.CircuitBreaker(
        fail_max=settings.breaker_failures, reset_timeout=settings.breaker_reset,
        exclude=[_not_transient], name=integration, throw_new_error_on_trip=False,
        state_storage=SharedBreakerStorage(state, integration, clock=clock, context=context))


def breaker_state(state: OpsState, integration: str) -> str:
    """closed, open or half-open, as every worker sees it."""
    return str(state.breaker(integration)["state"])


# retries -------------------------------------------------------------------------------

def full_jitter(high: float) -> float:
    """AWS's "full jitter": anywhere between no wait and the exponential ceiling, so
    workers that failed together do not retry together."""
    return random.uniform(0.0, high)


@dataclasses.dataclass(frozen=True)
class _Backoff:
    backoff: float
    backoff_max: float
    jitter: Callable[[float], float]

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        ceiling = min(self.backoff_max, self.backoff * 2 ** (retry_state.attempt_number - 1))
        wait = self.jitter(ceiling)
        outcome = retry_state.outcome
        failure = outcome.exception() if outcome is not None else None
        if isinstance(failure, TransientError) and failure.retry_after is not None:
            wait = max(wait, min(failure.retry_after, self.backoff_max))
        return wait


def _validated(tool: Tool, call: Call, services: Services, granted: Sequence[str]) -> None:
    """The tool's scope and parameter checks, done before the breaker: a refused scope
    never reached the service, so it must count neither for nor against it."""
    dataclasses.replace(tool, run=lambda _call, _services: {}).invoke(call, services, granted)


def guarded_call(tool: Tool, call: Call, services: Services, state: OpsState,
                 settings: Resilience, *, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.time,
                 jitter: Callable[[float], float] = full_jitter,
                 granted: Sequence[str] | None = None) -> dict[str, Any]:
    """Run ``tool`` for ``call``: through its integration's shared breaker, with transient
    failures retried (``settings.attempts`` tries in all, exponential backoff with full
    jitter, a ``Retry-After`` honoured up to ``backoff_max``).

    An open breaker raises :class:`CircuitOpenError` at once: the service is known to be
    down and waiting here would only hold a worker. A permanent failure is raised at once.
    When every attempt failed, the last :class:`TransientError` is raised, saying how many
    attempts were made. A tool with no integration has no breaker, and only the
    :class:`TransientError` it raises itself is retried. ``granted``, when given, checks
    the step's scopes and parameters first (as :meth:`Tool.invoke` does).
    """
    if granted is not None:
        _validated(tool, call, services, granted)
    integration = tool.integration
    breaker = None if integration is None else circuit_breaker(
        state, integration, settings, clock=clock,
        context={"tool": f"{tool.agent}.{tool.name}", "call": call.idempotency_key})

    def run() -> dict[str, Any]:
        with integration_errors(integration or ""):
            return tool.run(call, services)

    def attempt() -> dict[str, Any]:
        if breaker is None or integration is None:
            # no service of its own (the local model, a template): no breaker to consult,
            # and a failure that is not an IntegrationError (a bug) leaves unchanged
            return tool.run(call, services)
        try:
            result: dict[str, Any] = breaker.call(run)
        except pybreaker.CircuitBreakerError:
            row = state.breaker(integration)
            opened = row["opened_at"]
            left = (max(0.0, float(opened) + settings.breaker_reset - clock())
                    if opened is not None else settings.breaker_reset)
            raise CircuitOpenError(
                f"{integration} is not called: its circuit breaker opened after "
                f"{row['failures']} failures in a row; the next trial call is in "
                f"{left:.0f}s", integration=integration) from None
        return result

    def before_sleep(retry_state: tenacity.RetryCallState) -> None:
        outcome = retry_state.outcome
        failure = outcome.exception() if outcome is not None else None
        wait = retry_state.next_action.sleep if retry_state.next_action else 0.0
        log.warning("ops: %s.%s for %s failed (attempt %d of %d), retrying in %.2fs: %s",
                    tool.agent, tool.name, call.idempotency_key, retry_state.attempt_number,
                    settings.attempts, wait, failure)

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(settings.attempts),
        wait=_Backoff(settings.backoff, settings.backoff_max, jitter),
        retry=tenacity.retry_if_exception_type(TransientError),
        sleep=sleep, before_sleep=before_sleep, reraise=False)
    try:
        result: dict[str, Any] = retrying(attempt)
    except tenacity.RetryError as gave_up:
        last = gave_up.last_attempt.exception()
        attempts = gave_up.last_attempt.attempt_number
        if isinstance(last, TransientError):
            raise TransientError(f"{last} (gave up after {attempts} attempt"
                                 f"{'s' if attempts != 1 else ''})",
                                 integration=integration or last.integration,
                                 retry_after=last.retry_after) from last
        raise  # pragma: no cover - only transient failures are retried
    return result


__all__ = ["MAX_RETRY_AFTER", "SharedBreakerStorage", "breaker_state", "check_response",
           "circuit_breaker", "classify", "full_jitter", "guarded_call", "integration_errors",
           "once", "retry_after_seconds", "status_error"]
