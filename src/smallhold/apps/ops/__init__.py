"""ops: events from Slack, Jira, GitHub, mail and monitoring become durable workflows.

Layout: ``models`` (events, decisions), ``signatures`` and ``normalize`` (what a delivery
is, verified before parsed), ``receiver`` (the HTTP side), ``templates`` and ``render``
(which events start which DAG, checked at load), ``orchestrator`` (the plan), ``tools`` and
``agents/`` (communication, data, analysis, documentation), ``resilience`` (retries and
breakers), ``state`` (ops's tables beside the workflows), ``engine`` (the DBOS workflows
and workers), ``cli`` (``smallhold ops``). This module only declares the app.
"""

from smallhold.apps.ops.errors import OpsError
from smallhold.kit.spec import AppSpec, Command, Ref

APP = AppSpec(
    name="ops",
    summary="Events from Slack, Jira, GitHub and monitoring run as durable workflows.",
    errors=OpsError,
    commands=[Command("ops", Ref("smallhold.apps.ops.cli:ops", extra="ops"),
                      "Webhooks to durable workflows with agents, approvals and an audit log.")],
    extra="ops",
)

__all__ = ["APP"]
