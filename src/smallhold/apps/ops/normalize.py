"""Turn one verified webhook delivery into an :class:`Inbound`: events, a decision or a reply.

Call :func:`normalize` only after :func:`smallhold.apps.ops.signatures.verify` accepted the
same bytes. Each source's body is read as its sender documents it, and nothing more is
assumed: a field a sender may leave out (a Jira issue without a priority, a GitHub event
without a repository) just leaves a label out, while a body that cannot be what the sender
sends (not JSON, not an object, an Alertmanager payload of another version) is a
:class:`PayloadError` saying where it went wrong.

Every event gets a one-line ``summary`` of at most 200 characters, string-valued ``labels``
for templates to match, and the parsed body as ``payload`` for the agents. Its ``key`` is the
sender's delivery id when there is one, else a digest of what makes two deliveries the same
(see :func:`_alert_key`), so a retried delivery maps to the workflow the first one started.
"""

from __future__ import annotations

import hashlib
import json
import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, Literal

from smallhold.apps.ops.errors import PayloadError, UnknownEventError
from smallhold.apps.ops.models import Decision, Event, Inbound, event_key

SUMMARY_CHARS = 200
NORMALIZED_SOURCES: tuple[str, ...] = ("slack", "github", "jira", "alertmanager", "pagerduty",
                                       "grafana")

# Alert severities, highest first. Senders use their own words: X.733-style "major"/"minor"
# (as in Alertmanager setups fed by network monitoring), PagerDuty-style P1-P5, "page"...
# Each known word maps onto these four so templates can match one vocabulary; the raw value
# stays in the event's labels.
SEVERITIES: tuple[str, ...] = ("critical", "error", "warning", "info")
_SEVERITY_WORDS: dict[str, str] = {
    "critical": "critical", "crit": "critical", "fatal": "critical", "emergency": "critical",
    "emerg": "critical", "alert": "critical", "page": "critical", "disaster": "critical",
    "p1": "critical", "sev1": "critical", "sev-1": "critical", "s1": "critical",
    "error": "error", "err": "error", "major": "error", "high": "error", "p2": "error",
    "sev2": "error", "sev-2": "error", "s2": "error",
    "warning": "warning", "warn": "warning", "minor": "warning", "medium": "warning",
    "average": "warning", "p3": "warning", "sev3": "warning", "sev-3": "warning", "s3": "warning",
    "info": "info", "informational": "info", "information": "info", "notice": "info",
    "low": "info", "none": "info", "ok": "info", "p4": "info", "p5": "info", "sev4": "info",
    "sev5": "info", "sev-4": "info", "sev-5": "info", "s4": "info", "s5": "info",
}
_MENTION = re.compile(r"<@([A-Z0-9]+)(?:\|[^>]*)?>")
_DECISIONS = {"ops.approve": True, "ops.deny": False}
_WHITESPACE = re.compile(r"\s+")
_JSON_TYPES = {list: "an array", str: "a string", int: "a number", float: "a number",
               bool: "a boolean", type(None): "null"}

_Normalizer = Callable[[dict[str, str], bytes, datetime], Inbound]


def normalize(source: str, headers: Mapping[str, str], body: bytes, *,
              now: datetime) -> Inbound:
    """What the delivery of ``body`` from ``source`` amounts to; ``now`` stamps its events.

    ``headers`` may be any mapping; names are compared case-insensitively. Raises
    :class:`PayloadError` for a body that is not what the source sends and
    :class:`UnknownEventError` for a source, or an event type, ops does not handle.
    """
    normalizer = _NORMALIZERS.get(source)
    if normalizer is None:
        raise UnknownEventError(
            f"no normaliser for source {source!r}: webhooks are accepted from "
            f"{', '.join(NORMALIZED_SOURCES)}")
    lowered = {name.lower(): value for name, value in headers.items()}
    return normalizer(lowered, body, now)


# --- Slack ------------------------------------------------------------------------------


def _slack(headers: dict[str, str], body: bytes, now: datetime) -> Inbound:
    """The Events API (``url_verification``, ``event_callback``) and interactive buttons.

    Slack retries an event it got no timely 2xx for, with the same ``event_id`` and an
    ``X-Slack-Retry-Num`` header: the key is built from the ``event_id`` alone so the retry
    lands on the same workflow, and ``retry`` tells the receiver not to log it as new.
    """
    payload = _slack_body(headers, body)
    retry = "x-slack-retry-num" in headers
    kind = payload.get("type")
    if kind == "url_verification":
        challenge = payload.get("challenge")
        if not isinstance(challenge, str) or not challenge:
            raise PayloadError("slack url_verification has no 'challenge' string to answer")
        return Inbound(reply={"challenge": challenge}, retry=retry)
    if kind == "event_callback":
        return Inbound(events=[_slack_event(payload, now)], retry=retry)
    if kind == "block_actions":
        return Inbound(decision=_slack_decision(payload), retry=retry)
    if not isinstance(kind, str) or not kind:
        raise PayloadError("slack body has no 'type' string: not an Events API or interactive "
                           "payload")
    raise UnknownEventError(
        f"slack {kind[:60]!r} deliveries are not handled: ops takes url_verification, "
        "event_callback and block_actions (its ops.approve / ops.deny buttons)")


def _slack_body(headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """The JSON object of an Events API body, or of an interactive form's ``payload`` field.

    Interactive requests are ``application/x-www-form-urlencoded`` with the JSON in one
    ``payload`` field. Without a Content-Type, a body that does not start with ``{`` is read
    as a form.
    """
    ctype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    is_form = ctype == "application/x-www-form-urlencoded" or (
        not ctype and not body.lstrip().startswith(b"{"))
    if not is_form:
        return _parse_json(body)
    text = _utf8(body, "body")
    try:
        fields = urllib.parse.parse_qs(text, keep_blank_values=True, strict_parsing=bool(text),
                                       max_num_fields=200)
    except ValueError as err:
        raise PayloadError(f"body is not a form (application/x-www-form-urlencoded): {err}") \
            from err
    values = fields.get("payload")
    if not values:
        if "command" in fields:
            raise UnknownEventError(
                "slack slash commands are not handled: ops takes Events API deliveries and "
                "interactive ops.approve / ops.deny buttons")
        raise PayloadError(
            "form body has no 'payload' field: Slack interactive requests send "
            "payload=<json>")
    if len(values) > 1:
        raise PayloadError(f"form body has {len(values)} 'payload' fields; Slack sends one")
    return _parse_json(values[0].encode("utf-8"), "the form's payload field")


def _slack_event(payload: dict[str, Any], now: datetime) -> Event:
    """One ``event_callback``: the inner event's text without the bot's own mention."""
    event = payload.get("event")
    if not isinstance(event, dict):
        raise PayloadError("slack event_callback has no 'event' object")
    etype = _str(event, "type")
    if not etype:
        raise PayloadError("slack event_callback's event has no 'type'")
    event_id = _str(payload, "event_id")
    if not event_id:
        raise PayloadError("slack event_callback has no 'event_id' (Slack sends one with every "
                           "event; it is what deduplicates retries)")
    text = _strip_bot_mentions(_str(event, "text"), _slack_bot_ids(payload), etype)
    channel = _str(event, "channel") or _str(_obj(event, "item"), "channel") or _str(
        _obj(event, "channel"), "id")
    user = _str(event, "user") or _str(_obj(event, "user"), "id")
    labels = _labels(channel=channel, user=user,
                     team=_str(payload, "team_id") or _str(event, "team"),
                     event_type=etype, channel_type=_str(event, "channel_type"),
                     subtype=_str(event, "subtype"), bot_id=_str(event, "bot_id"),
                     thread_ts=_str(event, "thread_ts"))
    where = f" in {channel}" if channel else ""
    who = f" from {user}" if user else ""
    return Event(source="slack", type=f"slack.{etype}", key=event_key("slack", event_id),
                 received_at=now, summary=_one_line(text) or f"slack {etype}{who}{where}",
                 text=text, labels=labels, payload=payload)


def _slack_bot_ids(payload: dict[str, Any]) -> set[str]:
    """The app's own user ids: bot ``authorizations`` and the older ``authed_users`` list."""
    ids: set[str] = set()
    for auth in _list(payload, "authorizations"):
        if isinstance(auth, dict) and auth.get("is_bot") and _str(auth, "user_id"):
            ids.add(_str(auth, "user_id"))
    ids.update(u for u in _list(payload, "authed_users") if isinstance(u, str) and u)
    return ids


def _strip_bot_mentions(text: str, bots: set[str], etype: str) -> str:
    """``text`` without ``<@BOT>`` mentions, so templates and the model read the request itself.

    Mentions of the app's own ids are removed wherever they are; when the body names none,
    an ``app_mention``'s leading mention is taken to be the app's (that is what made Slack
    send it). Other people's mentions stay: they are part of the message.
    """
    if bots:
        text = _MENTION.sub(lambda m: "" if m.group(1) in bots else m.group(0), text)
    elif etype == "app_mention":
        stripped = text.lstrip()
        match = _MENTION.match(stripped)
        if match:
            text = stripped[match.end():]
    return re.sub(r"[ \t]{2,}", " ", text).strip()


def _slack_decision(payload: dict[str, Any]) -> Decision:
    """An approve/deny button press: the button's ``value`` is the waiting workflow's id."""
    chosen: dict[str, Any] | None = None
    for action in _list(payload, "actions"):
        if isinstance(action, dict) and action.get("action_id") in _DECISIONS:
            chosen = action
            break
    if chosen is None:
        raise UnknownEventError(
            "slack block_actions has no ops.approve or ops.deny action: other buttons and "
            "menus are not handled by ops")
    action_id = str(chosen["action_id"])
    workflow = _str(chosen, "value")
    if not workflow:
        raise PayloadError(f"slack {action_id} button has no 'value': it must carry the id of "
                           "the workflow waiting for approval")
    by = _str(_obj(payload, "user"), "id")
    if not by:
        raise PayloadError("slack block_actions has no user.id: who pressed the button is "
                           "unknown")
    return Decision(workflow=workflow, approve=_DECISIONS[action_id], by=by, via="slack")


# --- GitHub -----------------------------------------------------------------------------

# event name -> (payload field holding the subject, what to call it in a summary)
_GITHUB_SUBJECTS: dict[str, tuple[str, str]] = {
    "pull_request": ("pull_request", "pull request"),
    "pull_request_review": ("pull_request", "pull request review"),
    "pull_request_review_comment": ("pull_request", "pull request comment"),
    "pull_request_review_thread": ("pull_request", "pull request thread"),
    "issues": ("issue", "issue"),
    "issue_comment": ("issue", "issue comment"),
    "discussion": ("discussion", "discussion"),
    "discussion_comment": ("discussion", "discussion comment"),
    "release": ("release", "release"),
    "workflow_run": ("workflow_run", "workflow run"),
    "workflow_job": ("workflow_job", "workflow job"),
    "check_run": ("check_run", "check run"),
    "check_suite": ("check_suite", "check suite"),
    "deployment": ("deployment", "deployment"),
    "deployment_status": ("deployment_status", "deployment status"),
    "code_scanning_alert": ("alert", "code scanning alert"),
    "dependabot_alert": ("alert", "dependabot alert"),
    "secret_scanning_alert": ("alert", "secret scanning alert"),
}


def _github(headers: dict[str, str], body: bytes, now: datetime) -> Inbound:
    """Any repository or organisation webhook; ``ping`` (sent when a hook is created) replies.

    The event name is only in ``X-GitHub-Event``; the key is ``X-GitHub-Delivery``, which
    GitHub keeps when a delivery is redelivered. Without it (a proxy dropped it) the body's
    digest stands in: a redelivery carries the same bytes.
    """
    name = headers.get("x-github-event", "").strip()
    if not name:
        raise PayloadError("no X-GitHub-Event header: GitHub names the event only there; was "
                           "the request sent by a GitHub webhook?")
    payload = _parse_json(body)
    if name == "ping":
        return Inbound(reply={"ok": True})
    action = _str(payload, "action")
    delivery = headers.get("x-github-delivery", "").strip()
    key = (event_key("github", delivery) if delivery
           else _digest_key("github", name, hashlib.sha256(body).hexdigest()))
    repo = _str(_obj(payload, "repository"), "full_name")
    field, noun = _GITHUB_SUBJECTS.get(name, ("", name.replace("_", " ")))
    subject = _obj(payload, field) if field else {}
    issue_is_pr = name == "issue_comment" and "pull_request" in subject
    if issue_is_pr:
        noun = "pull request comment"
    number = _str(subject, "number") or _str(payload, "number")
    title = (_str(subject, "title") or _str(subject, "name")
             or _str(_obj(subject, "rule"), "description"))
    ref = _str(payload, "ref")
    comment = _obj(payload, "comment") or _obj(payload, "review")
    if name == "push":
        commits = [c for c in _list(payload, "commits") if isinstance(c, dict)]
        branch = ref.removeprefix("refs/heads/")
        summary = f"push to {branch or '?'}: {len(commits)} commit(s)"
        if repo:
            summary += f" ({repo})"
        text = "\n".join(_first_line(_str(c, "message")) for c in commits)
        links = [_str(payload, "compare")]
    else:
        where = f" ({repo}#{number})" if repo and number else f" ({repo})" if repo else ""
        head = f"{noun} {action}" if action else noun
        summary = f"{head}: {title}{where}" if title else f"{head}{where}"
        text = "\n\n".join(t for t in (title, _str(subject, "body"), _str(comment, "body")) if t)
        links = [_str(comment, "html_url"), _str(subject, "html_url")]
    links.append(_str(_obj(payload, "repository"), "html_url"))
    labels = _labels(repo=repo, event=name, action=action,
                     sender=_str(_obj(payload, "sender"), "login"), number=number, ref=ref,
                     org=_str(_obj(payload, "organization"), "login"))
    etype = f"github.{name}.{action}" if action else f"github.{name}"
    return Inbound(events=[Event(
        source="github", type=etype, key=key, received_at=now, summary=_one_line(summary),
        text=text, labels=labels, links=_links(links), payload=payload)])


# --- Jira -------------------------------------------------------------------------------


def _jira(headers: dict[str, str], body: bytes, now: datetime) -> Inbound:
    """Jira Cloud and Data Center webhooks (``webhookEvent`` ``jira:issue_created`` and others).

    ``X-Atlassian-Webhook-Identifier`` is kept across Jira's retries, so it is the key when
    present; a Jira that does not send it (older Server) gets a digest of the event name,
    issue key and the event's millisecond ``timestamp``, which a retry repeats too.
    """
    payload = _parse_json(body)
    webhook_event = _str(payload, "webhookEvent")
    if not webhook_event:
        raise PayloadError("jira body has no 'webhookEvent': not a Jira webhook payload")
    name = webhook_event.removeprefix("jira:")
    issue = _obj(payload, "issue")
    if name.startswith("issue_") and not issue:
        raise PayloadError(f"jira {webhook_event} has no 'issue' object")
    fields = _obj(issue, "fields")
    issue_key = _str(issue, "key")
    identifier = headers.get("x-atlassian-webhook-identifier", "").strip()
    key = (event_key("jira", identifier) if identifier
           else _digest_key("jira", webhook_event, issue_key, payload.get("timestamp")))
    title = _str(fields, "summary")
    comment = _obj(payload, "comment")
    text = "\n\n".join(t for t in (title, _jira_text(fields.get("description")),
                                   _jira_text(comment.get("body"))) if t)
    if not issue_key:
        summary = f"jira {name.replace('_', ' ')}"
    elif name.startswith("issue_"):
        summary = f"{issue_key}: {title}" if title else issue_key
    else:
        summary = f"{name.replace('_', ' ')} on {issue_key}" + (f": {title}" if title else "")
    labels = _labels(project=_str(_obj(fields, "project"), "key"), issue_key=issue_key,
                     issue_type=_str(_obj(fields, "issuetype"), "name"),
                     priority=_str(_obj(fields, "priority"), "name"),
                     status=_str(_obj(fields, "status"), "name"),
                     reporter=_jira_user(_obj(fields, "reporter")),
                     assignee=_jira_user(_obj(fields, "assignee")),
                     user=_jira_user(_obj(payload, "user")),
                     event=_str(payload, "issue_event_type_name") or name)
    return Inbound(events=[Event(
        source="jira", type=f"jira.{name}", key=key, received_at=now,
        summary=_one_line(summary), text=text, labels=labels,
        links=_links([_jira_browse_url(issue)]), payload=payload)],
        retry="x-atlassian-webhook-retry" in headers)


def _jira_user(user: dict[str, Any]) -> str:
    """A person as Jira sends them: Cloud has ``displayName``/``accountId``, Server ``name``."""
    return (_str(user, "displayName") or _str(user, "name") or _str(user, "emailAddress")
            or _str(user, "accountId"))


def _jira_text(value: Any) -> str:
    """Wiki-markup text as is; an Atlassian Document Format tree flattened to its text."""
    if isinstance(value, str):
        return value.strip()
    if not isinstance(value, dict):
        return ""
    parts: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("text"), str):
                parts.append(node["text"])
            for child in node.get("content") or []:
                walk(child)
            if node.get("type") in ("paragraph", "heading", "listItem", "codeBlock"):
                parts.append("\n")
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(value)
    return re.sub(r"\n{3,}", "\n\n", "".join(parts)).strip()


def _jira_browse_url(issue: dict[str, Any]) -> str:
    """``https://site/browse/KEY`` from the issue's REST ``self`` URL, the page people open."""
    self_url, issue_key = _str(issue, "self"), _str(issue, "key")
    base, sep, _ = self_url.partition("/rest/api/")
    return f"{base}/browse/{issue_key}" if sep and issue_key else self_url


# --- Alertmanager and Grafana -----------------------------------------------------------


def _alertmanager(headers: dict[str, str], body: bytes, now: datetime) -> Inbound:
    """Prometheus Alertmanager's webhook, version 4: one event for the notified group.

    Alertmanager notifies per group, so one delivery is one event, whatever the number of
    alerts in it; its ``status`` says whether anything in the group still fires.
    """
    del headers
    payload = _parse_json(body)
    version = payload.get("version")
    if version is None:
        raise PayloadError("alertmanager body has no 'version': ops reads Alertmanager's "
                           "webhook format version 4")
    if str(version) != "4":
        raise PayloadError(f"alertmanager webhook version {str(version)[:20]!r} is not "
                           "supported: ops reads version 4 (Alertmanager 0.x's current one)")
    return Inbound(events=[_alert_group("alertmanager", payload, now)])


def _grafana(headers: dict[str, str], body: bytes, now: datetime) -> Inbound:
    """Grafana unified alerting's webhook contact point: Alertmanager's shape plus ``orgId``,
    ``state``, ``title`` and ``message``. One event per notification, like Alertmanager's."""
    del headers
    payload = _parse_json(body)
    if "alerts" not in payload and ("ruleName" in payload or "evalMatches" in payload):
        raise PayloadError(
            "grafana body is a legacy-alerting notification (ruleName/evalMatches, no "
            "'alerts'): ops reads Grafana unified alerting's webhook contact point")
    return Inbound(events=[_alert_group("grafana", payload, now)])


def _alert_group(source: Literal["alertmanager", "grafana"], payload: dict[str, Any],
                 now: datetime) -> Event:
    """The event for one notified alert group, shared by Alertmanager and Grafana."""
    status = _str(payload, "status")
    if status not in ("firing", "resolved"):
        raise PayloadError(f"{source} body's 'status' is {status[:20]!r}, not 'firing' or "
                           "'resolved'")
    raw_alerts = payload.get("alerts")
    if not isinstance(raw_alerts, list):
        raise PayloadError(f"{source} body has no 'alerts' array")
    alerts: list[dict[str, Any]] = []
    for i, alert in enumerate(raw_alerts):
        if not isinstance(alert, dict):
            raise PayloadError(f"{source} body's alerts[{i}] is not an object")
        alerts.append(alert)
    left_out = payload.get("truncatedAlerts")  # Alertmanager >= 0.24 with max_alerts set
    truncated = (left_out if isinstance(left_out, int) and not isinstance(left_out, bool)
                 and left_out > 0 else 0)
    common = _str_map(payload.get("commonLabels"))
    names = sorted({_str_map(a.get("labels")).get("alertname", "") for a in alerts} - {""})
    labels = dict(common)
    labels.setdefault("alertname", ",".join(names))
    labels["alerts"] = str(len(alerts) + truncated)
    if truncated:
        labels["truncated_alerts"] = str(truncated)
    if source == "grafana":
        labels.update(_labels(org_id=_str(payload, "orgId"), state=_str(payload, "state")))
    labels = {k: v for k, v in labels.items() if v}
    summary = _alert_summary(source, payload, status, alerts, truncated, labels)
    lines = [_alert_line(a) for a in alerts]
    if truncated:
        lines.append(f"... and {truncated} more alert(s) the sender left out (max_alerts)")
    message = _str(payload, "message") if source == "grafana" else ""
    text = "\n".join(lines) + (f"\n\n{message}" if message else "")
    links: list[str] = []
    for alert in alerts:
        links += [_str(alert, "generatorURL"), _str(alert, "dashboardURL"),
                  _str(alert, "panelURL")]
    links.append(_str(payload, "externalURL"))
    return Event(source=source, type=f"alert.{status}",
                 key=_alert_key(source, payload, alerts, truncated), received_at=now,
                 summary=summary, text=text.strip(), severity=_alert_severity(alerts),
                 labels=labels, links=_links(links), payload=payload)


def _alert_key(source: str, payload: dict[str, Any], alerts: list[dict[str, Any]],
               truncated: int) -> str:
    """The dedup key of an alert notification: ``groupKey`` plus each alert's state.

    Alertmanager and Grafana send no delivery id. A retry after a failed delivery is
    byte-identical, and so is the ``repeat_interval`` reminder for a group where nothing
    changed; both must find the workflow already started, not start another. Whereas a
    new alert joining the group, or one resolving, is news and must start a workflow.
    So the key is a digest of what defines that: the group (``groupKey``) and, for each
    alert, its ``fingerprint`` (its label set; computed from the labels when an older
    sender leaves it out), ``status``, ``startsAt`` and ``endsAt`` (Alertmanager zeroes
    ``endsAt`` while an alert fires, so it does not move between reminders). The alerts
    are sorted so their order, like the JSON's key order or spacing, does not matter;
    annotations and URLs are left out because templating them can differ between
    otherwise equal deliveries.
    """
    states = sorted(
        (_alert_fingerprint(a), _str(a, "status"), _str(a, "startsAt"), _str(a, "endsAt"))
        for a in alerts)
    return _digest_key(source, _str(payload, "groupKey"), truncated, states)


def _alert_fingerprint(alert: dict[str, Any]) -> str:
    """The sender's fingerprint, else a digest of the sorted label set (what it hashes too)."""
    fingerprint = _str(alert, "fingerprint")
    if fingerprint:
        return fingerprint
    labels = sorted(_str_map(alert.get("labels")).items())
    return hashlib.sha256(json.dumps(labels).encode()).hexdigest()[:16]


def _alert_severity(alerts: list[dict[str, Any]]) -> str:
    """The highest ``labels.severity`` of the alerts, in the four-word vocabulary.

    A word not in the table is kept lower-cased and ranks below ``info``, so it is still
    visible (and matchable) when it is all there is.
    """
    known: list[str] = []
    unknown: list[str] = []
    for alert in alerts:
        raw = _str_map(alert.get("labels")).get("severity", "").strip().lower()
        if raw in _SEVERITY_WORDS:
            known.append(_SEVERITY_WORDS[raw])
        elif raw:
            unknown.append(raw)
    if known:
        return min(known, key=SEVERITIES.index)
    return sorted(unknown)[0] if unknown else ""


def _alert_summary(source: str, payload: dict[str, Any], status: str,
                   alerts: list[dict[str, Any]], truncated: int, labels: dict[str, str]) -> str:
    """Grafana's own ``title``, else Alertmanager's default title shape:
    ``[FIRING:3] <group label values>``, plus the common summary annotation when there is one.
    """
    title = _str(payload, "title") if source == "grafana" else ""
    if title:
        return _one_line(title)
    firing = sum(1 for a in alerts if _str(a, "status") == "firing")
    head = f"[FIRING:{firing + truncated}]" if status == "firing" else "[RESOLVED]"
    group = _str_map(payload.get("groupLabels"))
    what = " ".join(v for _, v in sorted(group.items())) or labels.get("alertname", "") or source
    common_summary = _str_map(payload.get("commonAnnotations")).get("summary", "")
    return _one_line(f"{head} {what}" + (f": {common_summary}" if common_summary else ""))


def _alert_line(alert: dict[str, Any]) -> str:
    """One alert as one line: status, its summary/description annotations, its labels."""
    annotations = _str_map(alert.get("annotations"))
    labels = _str_map(alert.get("labels"))
    summary = annotations.get("summary", "")
    description = annotations.get("description", "")
    words = ": ".join(t for t in (summary, description if description != summary else "") if t)
    words = words or labels.get("alertname", "") or "alert"
    pairs = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return _one_line(f"[{_str(alert, 'status') or '?'}] {words} {{{pairs}}}", limit=2000)


# --- PagerDuty --------------------------------------------------------------------------


def _pagerduty(headers: dict[str, str], body: bytes, now: datetime) -> Inbound:
    """PagerDuty v3 webhook subscriptions: one ``event`` per delivery; ``pagey.ping`` replies.

    ``event.id`` identifies the event, and ``X-Webhook-Id`` (kept on every attempt) stands in
    when a body lacks it.
    """
    payload = _parse_json(body)
    event = payload.get("event")
    if not isinstance(event, dict):
        if "messages" in payload:
            raise PayloadError("pagerduty body is a v2 webhook (messages[]): ops reads v3 "
                               "webhook subscriptions; create one for this service")
        raise PayloadError("pagerduty body has no 'event' object: not a v3 webhook")
    etype = _str(event, "event_type")
    if not etype:
        raise PayloadError("pagerduty event has no 'event_type'")
    if etype == "pagey.ping":
        return Inbound(reply={"ok": True})
    identity = _str(event, "id") or headers.get("x-webhook-id", "").strip()
    key = (event_key("pagerduty", identity) if identity
           else _digest_key("pagerduty", hashlib.sha256(body).hexdigest()))
    data = _obj(event, "data")
    incident = data if _str(data, "type") == "incident" else _obj(data, "incident")
    title = _str(incident, "title") or _str(incident, "summary")
    if title:
        summary = title
    else:
        thing = _str(data, "summary") or _str(data, "name")
        summary = f"{etype}: {thing}" if thing else etype
    text = "\n\n".join(t for t in (_str(data, "content"), _str(data, "message")) if t)
    teams = [_str(t, "summary") for t in _list(incident, "teams") if isinstance(t, dict)]
    labels = _labels(event_type=etype, resource_type=_str(event, "resource_type"),
                     incident=_str(incident, "id"), number=_str(incident, "number"),
                     status=_str(incident, "status"), urgency=_str(incident, "urgency"),
                     priority=_str(_obj(incident, "priority"), "summary"),
                     service=_str(_obj(incident, "service"), "summary"),
                     escalation_policy=_str(_obj(incident, "escalation_policy"), "summary"),
                     teams=",".join(t for t in teams if t),
                     agent=_str(_obj(event, "agent"), "summary"))
    return Inbound(events=[Event(
        source="pagerduty", type=f"pagerduty.{etype}", key=key, received_at=now,
        summary=_one_line(summary), text=text, severity=_pagerduty_severity(incident),
        labels=labels, links=_links([_str(incident, "html_url"), _str(data, "html_url")]),
        payload=payload)])


def _pagerduty_severity(incident: dict[str, Any]) -> str:
    """From the incident's priority when it is a P-level (P1 critical ... P4/P5 info), else
    from its urgency: high pages someone now (critical), low waits (warning)."""
    priority = _str(_obj(incident, "priority"), "summary").strip().lower()
    if priority in _SEVERITY_WORDS:
        return _SEVERITY_WORDS[priority]
    return {"high": "critical", "low": "warning"}.get(_str(incident, "urgency").lower(), "")


# --- shared helpers ---------------------------------------------------------------------


def _utf8(body: bytes, where: str) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise PayloadError(f"{where} is not UTF-8 text: invalid byte at offset {err.start}") \
            from err


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _parse_json(body: bytes, where: str = "body") -> dict[str, Any]:
    """The JSON object in ``body``, or a :class:`PayloadError` with the line and column.

    ``NaN`` and ``Infinity``, which Python's parser would accept, are refused: they are not
    JSON, and the payload is stored and handed on as JSON later.
    """
    text = _utf8(body, where)
    if not text.strip():
        raise PayloadError(f"{where} is empty: a JSON object was expected")
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as err:
        raise PayloadError(f"{where} is not JSON: line {err.lineno} column {err.colno}: "
                           f"{err.msg}") from err
    except ValueError as err:  # NaN / Infinity
        raise PayloadError(f"{where} is not JSON: {err}") from err
    except RecursionError as err:
        raise PayloadError(f"{where} is JSON nested too deeply to read") from err
    if not isinstance(value, dict):
        kind = _JSON_TYPES.get(type(value), type(value).__name__)
        raise PayloadError(f"{where} is JSON but {kind}, not an object: webhook bodies are "
                           "JSON objects")
    return value


def _obj(container: dict[str, Any], name: str) -> dict[str, Any]:
    """``container[name]`` when it is an object, else an empty one (absent or null fields)."""
    value = container.get(name)
    return value if isinstance(value, dict) else {}


def _list(container: dict[str, Any], name: str) -> list[Any]:
    value = container.get(name)
    return value if isinstance(value, list) else []


def _str(container: dict[str, Any], name: str) -> str:
    """``container[name]`` as text: strings as they are, numbers written out, else ``""``."""
    value = container.get(name)
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return ""


def _str_map(value: Any) -> dict[str, str]:
    """A label or annotation map with string values (others written out, nulls dropped)."""
    if not isinstance(value, dict):
        return {}
    return {str(k): text for k in value if (text := _str(value, k))}


def _labels(**values: str) -> dict[str, str]:
    """Labels without the empty ones: a missing field leaves no label rather than ``""``."""
    return {name: value for name, value in values.items() if value}


def _links(urls: Iterable[str]) -> list[str]:
    """The http(s) URLs, first occurrence of each, in order."""
    seen: list[str] = []
    for url in urls:
        if url.startswith(("http://", "https://")) and url not in seen:
            seen.append(url)
    return seen


def _one_line(text: str, limit: int = SUMMARY_CHARS) -> str:
    """Whitespace collapsed to single spaces, cut at ``limit`` characters with an ellipsis."""
    line = _WHITESPACE.sub(" ", text).strip()
    return line if len(line) <= limit else line[:limit - 1].rstrip() + "…"


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _digest_key(source: str, *parts: Any) -> str:
    """A key from a canonical JSON of ``parts``: always a digest (the JSON is never 'tame')."""
    return event_key(source, json.dumps(list(parts), sort_keys=True, separators=(",", ":")))


_NORMALIZERS: dict[str, _Normalizer] = {
    "slack": _slack,
    "github": _github,
    "jira": _jira,
    "alertmanager": _alertmanager,
    "pagerduty": _pagerduty,
    "grafana": _grafana,
}

__all__ = ["NORMALIZED_SOURCES", "SEVERITIES", "SUMMARY_CHARS", "normalize"]
