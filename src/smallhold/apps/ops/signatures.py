"""Is this delivery really from the sender it claims? One check per webhook source.

The receiver calls :func:`verify` on the raw body before parsing anything: a MAC is computed
over bytes, and a body that was parsed and re-serialised no longer matches. Every refusal is a
:class:`SignatureError` whose message names the header and says what to fix; it never holds a
secret or a computed MAC, because these messages are logged and answered to whoever sent the
request.

Each source's scheme is the one its sender documents (HMAC-SHA256 unless said otherwise):

- slack: ``X-Slack-Signature: v0=<hex>`` over ``v0:{ts}:{body}``, with
  ``X-Slack-Request-Timestamp`` within 300 s of ``now``.
- github: ``X-Hub-Signature-256: sha256=<hex>`` over the body; the legacy
  ``X-Hub-Signature: sha1=<hex>`` (HMAC-SHA1) only when the SHA-256 header is absent.
- jira: ``X-Hub-Signature: sha256=<hex>`` over the body (admin webhooks with a secret).
- pagerduty: ``X-PagerDuty-Signature: v1=<hex>[,v1=<hex>...]`` over the body; any ``v1``
  matching any secret is enough.
- grafana: ``X-Grafana-Alerting-Signature: <hex>`` over the body, or over ``{ts}:{body}``
  when the contact point also sends a timestamp header (then within 300 s too).
- alertmanager: no signing exists; ``Authorization: Bearer <token>`` or
  ``Basic base64(user:password)`` from its ``http_config``, the token or ``user:password``
  being the secret.

``secrets`` is a sequence so a secret can be rotated without refusing deliveries: during the
change both the old and the new one are configured, and either is accepted. Empty strings in
it are ignored (a MAC keyed with the empty string proves nothing), and a source with no secret
at all refuses everything rather than running unsigned requests.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping, Sequence

from smallhold.apps.ops.errors import SignatureError, UnknownEventError

WINDOW_SECONDS = 300
"""How far a signed timestamp may be from the receiver's clock (Slack's documented 5 minutes;
Grafana documents none, so the same window is used): a captured request replayed later than
this is refused even though its MAC is valid."""

SIGNED_SOURCES: tuple[str, ...] = ("slack", "github", "jira", "pagerduty", "grafana",
                                   "alertmanager")

GRAFANA_HEADERS: tuple[str, ...] = ("X-Grafana-Alerting-Signature", "X-Grafana-Alert-Signature")
"""Signature header names Grafana uses when none is configured: the UI's placeholder is the
first, ``grafana/alerting``'s ``http/hmac.go`` has defaulted to the second."""

GRAFANA_TIMESTAMP_HEADERS: tuple[str, ...] = ("X-Grafana-Alerting-Signature-Timestamp",
                                              "X-Grafana-Alerting-Timestamp")
"""Timestamp header names looked for when the receiver names none. Grafana has no default (the
operator types one in the contact point), so these are the names its docs and examples use."""

_TIMESTAMP = re.compile(r"[0-9]{1,15}")
_Check = Callable[[dict[str, str], bytes, list[str], float], None]


def verify(source: str, headers: Mapping[str, str], body: bytes, secrets: Sequence[str], *,
           now: float, grafana_header: str | None = None,
           grafana_timestamp_header: str | None = None) -> None:
    """Return when ``body`` was signed by ``source`` with one of ``secrets``; raise otherwise.

    ``headers`` may be any mapping (a plain dict, Starlette's ``Headers``); names are compared
    case-insensitively, as HTTP says. ``now`` is the receiver's clock in Unix seconds, passed in
    so the timestamp window can be tested without sleeping. ``grafana_header`` and
    ``grafana_timestamp_header`` are for a Grafana contact point configured with other header
    names; naming a timestamp header makes it required, so a captured request cannot be
    replayed with its timestamp stripped.

    Raises :class:`UnknownEventError` for a source with no scheme here and
    :class:`SignatureError` for a missing, malformed, forged, tampered or stale signature.
    """
    check = _CHECKS.get(source)
    if check is None:
        raise UnknownEventError(
            f"no signature scheme for source {source!r}: webhooks are accepted from "
            f"{', '.join(SIGNED_SOURCES)}")
    keys = [s for s in secrets if s]
    if not keys:
        raise SignatureError(
            f"no secret is configured for {source}: set its signing secret (or token) in the "
            "ops configuration; deliveries are refused until then")
    lowered = {name.lower(): value for name, value in headers.items()}
    if source == "grafana":
        _grafana(lowered, body, keys, now, grafana_header, grafana_timestamp_header)
        return
    check(lowered, body, keys, now)


def _slack(headers: dict[str, str], body: bytes, secrets: list[str], now: float) -> None:
    """Slack v0: HMAC-SHA256 over ``v0:{timestamp}:{body}``, the timestamp within the window.

    The timestamp is part of the MAC, so it cannot be moved forward without the secret; the
    window is what stops a captured request from being replayed later.
    """
    signature = _header(headers, "X-Slack-Signature", "slack")
    timestamp = _header(headers, "X-Slack-Request-Timestamp", "slack")
    version, _, digest = signature.strip().partition("=")
    if version != "v0" or not digest:
        raise SignatureError(
            "X-Slack-Signature is not a v0 signature ('v0=<hex>'): only Slack's v0 signing "
            "scheme is supported")
    ts = _timestamp(timestamp, "X-Slack-Request-Timestamp", "slack", now)
    message = b"v0:" + ts.encode("ascii") + b":" + body
    if not _any_hmac(secrets, message, "sha256", [digest]):
        raise SignatureError(
            "X-Slack-Signature does not match the body: check the signing secret configured "
            "for slack (Slack app > Basic Information > Signing Secret) and that the raw body "
            "reaches the receiver unchanged")


def _github(headers: dict[str, str], body: bytes, secrets: list[str], now: float) -> None:
    """GitHub: ``X-Hub-Signature-256``, or the legacy SHA-1 header only when it is absent.

    When the SHA-256 header is present and wrong, the SHA-1 one is not tried: otherwise an
    attacker could strip the stronger header and fall back to the weaker one.
    """
    del now  # GitHub signs no timestamp; redeliveries keep their X-GitHub-Delivery id
    if "x-hub-signature-256" in headers:
        digest = _prefixed(headers["x-hub-signature-256"], "sha256", "X-Hub-Signature-256")
        algorithm, name = "sha256", "X-Hub-Signature-256"
    elif "x-hub-signature" in headers:
        digest = _prefixed(headers["x-hub-signature"], "sha1", "X-Hub-Signature")
        algorithm, name = "sha1", "X-Hub-Signature"
    else:
        raise SignatureError(
            "unsigned github request: no X-Hub-Signature-256 header; set a secret on the "
            "repository's or organisation's webhook (Settings > Webhooks > Secret)")
    if not _any_hmac(secrets, body, algorithm, [digest]):
        raise SignatureError(
            f"{name} does not match the body: check the webhook secret configured for github "
            "and that the raw body reaches the receiver unchanged")


def _jira(headers: dict[str, str], body: bytes, secrets: list[str], now: float) -> None:
    """Jira admin webhooks with a secret: ``X-Hub-Signature: sha256=<hex>`` over the body.

    Atlassian documents the WebSub ``method=signature`` form with HMAC-SHA256 only, so a
    ``sha1=`` value is refused rather than accepted as a weaker alternative: no Jira sends it,
    and accepting it would only widen what a forger can try.
    """
    del now  # Jira signs no timestamp; X-Atlassian-Webhook-Identifier is kept on retries
    value = _header(headers, "X-Hub-Signature", "jira")
    digest = _prefixed(value, "sha256", "X-Hub-Signature")
    if not _any_hmac(secrets, body, "sha256", [digest]):
        raise SignatureError(
            "X-Hub-Signature does not match the body: check the secret configured for jira "
            "(Jira settings > System > WebHooks > Secret) and that the raw body reaches the "
            "receiver unchanged")


def _pagerduty(headers: dict[str, str], body: bytes, secrets: list[str], now: float) -> None:
    """PagerDuty v3: ``v1=<hex>`` values, comma-separated, one per active signing secret.

    During PagerDuty's own rotation the header carries two ``v1`` values; during ours,
    ``secrets`` holds two keys. Either way one match of any value with any key is enough.
    Values of other versions are skipped, as PagerDuty's docs say, so a future ``v2`` does
    not break verification.
    """
    del now  # PagerDuty signs no timestamp
    value = _header(headers, "X-PagerDuty-Signature", "pagerduty")
    digests = []
    for part in value.split(","):
        version, _, digest = part.strip().partition("=")
        if version == "v1" and digest:
            digests.append(digest)
    if not digests:
        raise SignatureError(
            "X-PagerDuty-Signature holds no v1 signature ('v1=<hex>'): only PagerDuty's v1 "
            "webhook signatures are supported")
    if not _any_hmac(secrets, body, "sha256", digests):
        raise SignatureError(
            "X-PagerDuty-Signature does not match the body: check the signing secret "
            "configured for pagerduty (given once, when the webhook subscription was created) "
            "and that the raw body reaches the receiver unchanged")


def _grafana(headers: dict[str, str], body: bytes, secrets: list[str], now: float,
             header: str | None, timestamp_header: str | None) -> None:
    """Grafana alerting: hex HMAC-SHA256 over the body, or over ``{ts}:{body}`` with a timestamp.

    Grafana puts the timestamp in the MAC only when the contact point names a timestamp
    header, and sends the header then; so the header's presence says which message was
    signed. Stripping it from a captured request leaves a MAC over ``{ts}:{body}`` that no
    longer matches the body alone, so the window cannot be dodged that way. (Moving the
    timestamp into the body instead, ``{ts}:{body}`` sent unsigned-by-time, does match, but
    that body is no longer JSON and :func:`~smallhold.apps.ops.normalize.normalize` refuses
    it.)
    """
    names = (header,) if header else GRAFANA_HEADERS
    name = next((n for n in names if n.lower() in headers), None)
    if name is None:
        raise SignatureError(
            f"unsigned grafana request: no {names[0]} header; set an HMAC secret in the "
            "Grafana contact point (webhook > Optional settings > HMAC Signature)")
    ts_names = (timestamp_header,) if timestamp_header else GRAFANA_TIMESTAMP_HEADERS
    ts_name = next((n for n in ts_names if n.lower() in headers), None)
    if ts_name is None and timestamp_header:
        raise SignatureError(
            f"unsigned grafana request: no {timestamp_header} header, which the receiver "
            "is configured to require; set the same timestamp header in the Grafana contact "
            "point's HMAC settings")
    message = body
    if ts_name is not None:
        ts = _timestamp(headers[ts_name.lower()], ts_name, "grafana", now)
        message = ts.encode("ascii") + b":" + body
    if not _any_hmac(secrets, message, "sha256", [headers[name.lower()]]):
        raise SignatureError(
            f"{name} does not match the body: check the HMAC secret configured for grafana, "
            "that a timestamp header set in the contact point is also named to the receiver, "
            "and that the raw body reaches the receiver unchanged")


def _alertmanager(headers: dict[str, str], body: bytes, secrets: list[str], now: float) -> None:
    """Alertmanager signs nothing: check the ``Authorization`` its ``http_config`` sends.

    ``Bearer <token>`` (``authorization.credentials``) is compared with each secret, and
    ``Basic`` (``basic_auth``) decodes to ``user:password``, compared with secrets written
    that way. This proves the sender knows the token, not that the body is intact; keep
    the receiver behind TLS. Both sides are hashed before the constant-time comparison so
    the time taken does not depend on the token's length either.
    """
    del body, now
    value = headers.get("authorization")
    if not value or not value.strip():
        raise SignatureError(
            "unsigned alertmanager request: no Authorization header; set "
            "http_config.authorization.credentials (Bearer) or http_config.basic_auth in "
            "Alertmanager's webhook_config")
    scheme, _, credentials = value.strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "bearer":
        presented, what = credentials, "bearer token"
    elif scheme.lower() == "basic":
        try:
            presented = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError) as err:
            raise SignatureError(
                "Authorization: Basic is not base64 of 'user:password': check "
                "http_config.basic_auth in Alertmanager's webhook_config") from err
        what = "basic auth user:password"
    else:
        raise SignatureError(
            f"Authorization scheme {_word(scheme)} is not supported for alertmanager: use "
            "Bearer (http_config.authorization) or Basic (http_config.basic_auth)")
    if not presented:
        raise SignatureError(
            f"unsigned alertmanager request: the Authorization header has an empty {what}")
    wanted = hashlib.sha256(presented.encode("utf-8")).digest()
    matches = [hmac.compare_digest(wanted, hashlib.sha256(s.encode("utf-8")).digest())
               for s in secrets]
    if not any(matches):
        raise SignatureError(
            f"the Authorization {what} is not one configured for alertmanager: check the "
            "token in Alertmanager's webhook_config http_config and the ops configuration")


def _header(headers: dict[str, str], name: str, source: str) -> str:
    """The header's value, or an 'unsigned' refusal saying which header was expected."""
    value = headers.get(name.lower())
    if value is None or not value.strip():
        raise SignatureError(
            f"unsigned {source} request: no {name} header; set the signing secret on the "
            f"{source} side so it signs its deliveries")
    return value


def _prefixed(value: str, method: str, name: str) -> str:
    """The hex digest of a ``method=<hex>`` header value (WebSub's form, used by GitHub, Jira)."""
    got, _, digest = value.strip().partition("=")
    if got.lower() != method or not digest:
        raise SignatureError(
            f"{name} is not '{method}=<hex>' (got method {_word(got)}): only HMAC-"
            f"{method.upper()} signatures are accepted in this header")
    return digest


def _word(value: str) -> str:
    """A scheme or method name to quote in a message, or a stand-in when it does not look
    like one: a sender that puts a bare token or digest there must not see it logged."""
    return repr(value) if value.isalnum() and len(value) <= 12 else "(not a scheme name)"


def _timestamp(value: str, name: str, source: str, now: float) -> str:
    """The header's Unix-seconds timestamp, refused when non-numeric or outside the window."""
    ts = value.strip()
    if not _TIMESTAMP.fullmatch(ts):
        raise SignatureError(
            f"{name} is not a Unix timestamp in seconds: the request was not signed by "
            f"{source}")
    skew = now - int(ts)
    if abs(skew) > WINDOW_SECONDS:
        when = "old" if skew > 0 else "in the future"
        raise SignatureError(
            f"stale {source} request: {name} is {abs(int(skew))} s {when}, more than "
            f"{WINDOW_SECONDS} s from this server's clock; a replayed request, or a clock to "
            "fix (run NTP on the receiver)")
    return ts


def _any_hmac(secrets: list[str], message: bytes, algorithm: str,
              digests: list[str]) -> bool:
    """Whether any secret's hex HMAC of ``message`` equals any presented digest.

    Every pair is compared (no early exit), each with :func:`hmac.compare_digest`, so the
    time taken does not tell which secret, or how much of a digest, matched. Presented
    digests are lower-cased (hex is case-insensitive) and non-ASCII in them simply fails.
    """
    presented = [d.strip().lower().encode("ascii", "replace") for d in digests]
    found = False
    for secret in secrets:
        expected = hmac.new(secret.encode("utf-8"), message, algorithm).hexdigest().encode()
        for digest in presented:
            found |= hmac.compare_digest(expected, digest)
    return found


_CHECKS: dict[str, _Check] = {
    "slack": _slack,
    "github": _github,
    "jira": _jira,
    "pagerduty": _pagerduty,
    "grafana": lambda h, b, s, n: _grafana(h, b, s, n, None, None),
    "alertmanager": _alertmanager,
}

__all__ = ["GRAFANA_HEADERS", "GRAFANA_TIMESTAMP_HEADERS", "SIGNED_SOURCES", "WINDOW_SECONDS",
           "verify"]
