"""What ops passes around: events as the receiver normalised them, and people's decisions.

An :class:`Event` is the one shape every source is turned into, so templates match on the
same fields whether an alert came from Alertmanager or PagerDuty. Its ``key`` is the
delivery's identity (the sender's delivery id, or a digest of what makes two deliveries the
same) and becomes the workflow id: a retried delivery finds the workflow it started
instead of starting a second one.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Source = Literal["slack", "github", "jira", "alertmanager", "pagerduty", "grafana", "mail",
                 "cli"]
SOURCES: tuple[str, ...] = ("slack", "github", "jira", "alertmanager", "pagerduty", "grafana",
                            "mail", "cli")
_UNSAFE = re.compile(r"[^A-Za-z0-9._:-]+")


def event_key(source: str, identity: str) -> str:
    """A workflow id for a delivery: readable when the sender's id is short and tame,
    a digest otherwise (ids are user-visible in ``ops workflows list``)."""
    clean = _UNSAFE.sub("-", identity).strip("-")
    if clean and clean == identity and len(clean) <= 64:
        return f"{source}-{clean}"
    return f"{source}-{hashlib.sha256(identity.encode()).hexdigest()[:24]}"


class Event(BaseModel):
    """One thing that happened, in the same shape from every source."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: Source
    type: str  # dotted: "alert.firing", "slack.app_mention", "github.pull_request.opened"
    key: str  # dedup key, the workflow id
    received_at: datetime
    summary: str  # one line a person reads in a list
    text: str = ""  # free text: the message, the description, the alert's annotations
    severity: str = ""  # critical, warning, info, or "" when the source has none
    labels: dict[str, str] = Field(default_factory=dict)  # flat attributes templates match
    links: list[str] = Field(default_factory=list)
    payload: dict[str, Any] = Field(default_factory=dict)  # the parsed body, for agents


class Decision(BaseModel):
    """A person's answer to a workflow waiting for approval (CLI, Slack button, console)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    workflow: str
    approve: bool
    by: str  # who decided: a Slack user id, a local user name
    via: Literal["cli", "slack", "web"]
    reason: str = ""


class Inbound(BaseModel):
    """What one HTTP delivery amounts to once verified and parsed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    events: list[Event] = Field(default_factory=list)
    decision: Decision | None = None  # an approve/deny button press
    reply: dict[str, Any] | None = None  # answered as is (Slack's url_verification challenge)
    retry: bool = False  # the sender says this is a retry of an earlier delivery


__all__ = ["SOURCES", "Decision", "Event", "Inbound", "Source", "event_key"]
