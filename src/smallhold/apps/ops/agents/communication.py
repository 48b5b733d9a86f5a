"""The communication agent: messages to people, through Slack (slack_sdk) and mail (SMTP).

Sending a message is the side effect a crash is most likely to double: the post succeeds,
the worker dies before the step's checkpoint, another worker re-runs the step. So every
tool here first asks the ledger whether its idempotency key was done (and returns what was
recorded then), and also hands the key to the service itself (Slack's ``client_msg_id``
and message metadata, the mail's ``Message-ID``) so a duplicate that slips past the ledger
can still be recognised downstream.
"""

from __future__ import annotations

import hashlib
import logging
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from slack_sdk import WebClient

from smallhold.apps.ops.errors import PermanentError
from smallhold.apps.ops.resilience import integration_errors, once
from smallhold.apps.ops.tools import Call, Services, Tool

log = logging.getLogger(__name__)

AGENT = "communication"
APPROVE_ACTION = "ops.approve"  # the receiver turns presses of these into a Decision
DENY_ACTION = "ops.deny"
APPROVAL_BLOCK = "ops.approval"
SLACK_TIMEOUT = 15  # seconds; slack_sdk's own default is 30
SMTP_TIMEOUT = 15.0
METADATA_EVENT = "smallhold_ops_step"
_SECTION_MAX = 3000  # Slack refuses a section text longer than this
_TEXT_MAX = 40_000  # Slack truncates a message text longer than this


# Slack ---------------------------------------------------------------------------------

class SlackPostParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: str | None = Field(None, min_length=1, description="default: the configured one")
    text: str = Field(min_length=1, max_length=_TEXT_MAX)
    blocks: list[dict[str, Any]] | None = None
    thread_ts: str | None = None


class SlackApprovalParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: str | None = Field(None, min_length=1)
    text: str = Field(min_length=1, max_length=_TEXT_MAX)
    workflow: str | None = Field(None, min_length=1, max_length=2000,
                                 description="the workflow to decide; default: this call's")


def slack_client(services: Services) -> WebClient:
    """slack_sdk's own client on the configured base URL, with its built-in retries off:
    retrying is :func:`resilience.guarded_call`'s job, with the shared breaker."""
    cfg = services.config.integrations.slack
    token = services.secret(cfg.token)
    if not token:
        raise PermanentError("slack: no bot token configured (integrations.slack.token = "
                             "\"env:NAME\" or \"vault:NAME\")", integration="slack")
    base = cfg.base_url if cfg.base_url.endswith("/") else cfg.base_url + "/"
    return WebClient(token=token, base_url=base, timeout=SLACK_TIMEOUT, retry_handlers=[])


def _metadata(call: Call) -> dict[str, Any]:
    return {"event_type": METADATA_EVENT,
            "event_payload": {"idempotency_key": call.idempotency_key,
                              "workflow": call.workflow, "step": call.step}}


def _post(call: Call, services: Services, channel: str | None, text: str,
          blocks: list[dict[str, Any]] | None, thread_ts: str | None = None) -> dict[str, Any]:
    target = channel or services.config.integrations.slack.channel
    client = slack_client(services)
    extra: dict[str, Any] = {}
    if thread_ts:
        extra["thread_ts"] = thread_ts
    with integration_errors("slack"):
        response = client.chat_postMessage(
            channel=target, text=text, blocks=blocks, metadata=_metadata(call),
            client_msg_id=call.idempotency_key, unfurl_links=False, **extra)
    return {"channel": str(response.get("channel", target)), "ts": str(response.get("ts", ""))}


def slack_post(call: Call, services: Services) -> dict[str, Any]:
    params = SlackPostParams.model_validate(call.params)
    return once(call, services, lambda: _post(call, services, params.channel, params.text,
                                              params.blocks, params.thread_ts))


def approval_blocks(workflow: str, text: str) -> list[dict[str, Any]]:
    """A message with Approve and Deny buttons whose value is the workflow id: the
    receiver reads ``action_id`` and ``value`` from the interaction and nothing else."""
    shown = text if len(text) <= _SECTION_MAX else text[:_SECTION_MAX - 1] + "…"
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": shown}},
        {"type": "actions", "block_id": APPROVAL_BLOCK, "elements": [
            {"type": "button", "action_id": APPROVE_ACTION, "style": "primary",
             "text": {"type": "plain_text", "text": "Approve"}, "value": workflow},
            {"type": "button", "action_id": DENY_ACTION, "style": "danger",
             "text": {"type": "plain_text", "text": "Deny"}, "value": workflow},
        ]},
    ]


def slack_ask_approval(call: Call, services: Services) -> dict[str, Any]:
    params = SlackApprovalParams.model_validate(call.params)

    def act() -> dict[str, Any]:
        workflow = params.workflow or call.workflow
        posted = _post(call, services, params.channel, params.text,
                       approval_blocks(workflow, params.text))
        return {**posted, "workflow": workflow}

    return once(call, services, act)


# mail ----------------------------------------------------------------------------------

class MailParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: list[str] | None = Field(None, description="default: the configured recipients")
    cc: list[str] = Field(default_factory=list)
    subject: str = Field(min_length=1, max_length=998)
    text: str = Field(min_length=1, max_length=1_000_000)

    @field_validator("to", "cc")
    @classmethod
    def _addresses(cls, value: list[str] | None) -> list[str] | None:
        for address in value or []:
            if "@" not in parseaddr(address)[1] or any(c in address for c in "\r\n"):
                raise ValueError(f"{address!r} is not a mail address")
        return value


def message_id(key: str, sender: str) -> str:
    """The same idempotency key always gives the same Message-ID, so a duplicate delivery
    is recognisable by the receiving side (and by people reading headers)."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    return f"<ops.{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"


def _one_line(text: str) -> str:
    """Header text from event data: a CR or LF in it would be header injection."""
    return " ".join(text.split())


def build_mail(call: Call, services: Services, params: MailParams) -> EmailMessage:
    cfg = services.config.integrations.smtp
    recipients = params.to if params.to is not None else cfg.to
    if not recipients:
        raise PermanentError("smtp: no recipient: give `to` or set integrations.smtp.to",
                             integration="smtp")
    mail = EmailMessage()
    mail["From"] = cfg.sender
    mail["To"] = ", ".join(recipients)
    if params.cc:
        mail["Cc"] = ", ".join(params.cc)
    mail["Subject"] = _one_line(params.subject)
    mail["Date"] = formatdate(localtime=False, usegmt=True)
    mail["Message-ID"] = message_id(call.idempotency_key, cfg.sender)
    mail["X-Ops-Idempotency-Key"] = call.idempotency_key
    mail["Auto-Submitted"] = "auto-generated"  # RFC 3834: auto-responders stay quiet
    mail.set_content(params.text)
    return mail


def mail_send(call: Call, services: Services) -> dict[str, Any]:
    params = MailParams.model_validate(call.params)

    def act() -> dict[str, Any]:
        cfg = services.config.integrations.smtp
        mail = build_mail(call, services, params)
        password = services.secret(cfg.password) if cfg.username else ""
        with integration_errors("smtp"), smtplib.SMTP(cfg.host, cfg.port,
                                                      timeout=SMTP_TIMEOUT) as smtp:
            if cfg.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if cfg.username:
                smtp.login(cfg.username, password)
            refused = smtp.send_message(mail)
        return {"message_id": str(mail["Message-ID"]),
                "to": [a.strip() for a in str(mail["To"]).split(",")],
                "refused": sorted(refused)}

    return once(call, services, act)


TOOLS: list[Tool] = [
    Tool(agent=AGENT, name="slack_post", summary="Post a message to a Slack channel",
         risk="low", scope="slack:write", run=slack_post, params=SlackPostParams,
         integration="slack"),
    Tool(agent=AGENT, name="slack_ask_approval",
         summary="Post a message with Approve and Deny buttons for this workflow",
         risk="low", scope="slack:write", run=slack_ask_approval, params=SlackApprovalParams,
         integration="slack"),
    Tool(agent=AGENT, name="mail_send", summary="Send a plain-text mail through SMTP",
         risk="low", scope="mail:write", run=mail_send, params=MailParams, integration="smtp"),
]

__all__ = ["AGENT", "APPROVAL_BLOCK", "APPROVE_ACTION", "DENY_ACTION", "TOOLS", "MailParams",
           "SlackApprovalParams", "SlackPostParams", "approval_blocks", "build_mail",
           "mail_send", "message_id", "slack_ask_approval", "slack_client",
           "slack_post"]
