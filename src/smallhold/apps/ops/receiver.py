"""The webhook receiver: verify, normalise, deduplicate, hand over; nothing else.

Every request is checked by the suite's request guard first (Host, content type, body
size counted as it arrives), then its signature is verified over the raw bytes before a
single byte is parsed, with the secrets configured for its source; a source with no
secret configured refuses everything (an unsigned endpoint would run whatever anyone
posts). A refused delivery is answered with a clear 4xx and written to the audit log,
without the body. An accepted event is recorded under its dedup key and queued as the
workflow of that key, so a retry or a redelivery is answered 200 without a second run.

The receiver does not run workflows itself: ``submit`` and ``decide`` are handed in, so the
HTTP side is tested without DBOS and a receiver-only process can queue for other workers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from smallhold.apps.ops.config import OpsConfig
from smallhold.apps.ops.errors import OpsError, SignatureError, WebhookError
from smallhold.apps.ops.models import Decision, Event
from smallhold.apps.ops.normalize import normalize
from smallhold.apps.ops.signatures import verify
from smallhold.apps.ops.state import OpsState
from smallhold.httpguard import GuardPolicy, RequestGuard

log = logging.getLogger(__name__)
HOOK_SOURCES = ("github", "jira", "alertmanager", "pagerduty", "grafana")
CONTENT_TYPES = ("application/json", "application/x-www-form-urlencoded")


@dataclass
class Receiver:
    config: OpsConfig
    state: OpsState
    secrets: Mapping[str, list[str]]  # source -> resolved secrets
    submit: Callable[[Event], str]
    decide: Callable[[Decision], None]
    clock: Callable[[], float] = time.time
    counts: dict[str, int] = field(default_factory=dict)

    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def _refuse(self, source: str, request: Request, exc: OpsError) -> JSONResponse:
        self._count("refused")
        client = request.client.host if request.client else "?"
        self.state.audit("receiver", "delivery.refused", None, source=source,
                         error=type(exc).__name__, message=str(exc), client=client,
                         path=request.url.path)
        log.warning("refused a %s delivery from %s: %s", source, client, exc)
        status = exc.http_status if isinstance(exc, WebhookError) else 400
        return JSONResponse({"ok": False, "error": exc.code, "message": str(exc)}, status)

    async def receive(self, source: str, request: Request) -> Response:
        """Read the body here; verify, record and queue in a worker thread (database and
        DBOS calls block, and must not stall the other deliveries)."""
        body = await request.body()
        return await run_in_threadpool(self.handle, source, request, body)

    def handle(self, source: str, request: Request, body: bytes) -> Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            secrets = self.secrets.get(source) or []
            if not secrets:
                raise SignatureError(f"no secret is configured for {source}, so its "
                                     f"deliveries are refused: add [sources.{source}] "
                                     "secrets = [\"env:NAME\"] to ops.toml")
            verify(source, headers, body, secrets, now=self.clock())
            inbound = normalize(source, headers, body,
                                now=datetime.fromtimestamp(self.clock(), UTC))
        except OpsError as exc:
            return self._refuse(source, request, exc)
        if inbound.reply is not None:
            return JSONResponse(inbound.reply)
        if inbound.decision is not None:
            return self._decision(source, request, inbound.decision)
        accepted = [{"workflow": event.key, "duplicate": not self.accept(event)}
                    for event in inbound.events]
        return JSONResponse({"ok": True, "events": accepted})

    def accept(self, event: Event) -> bool:
        """Record a verified event and queue its workflow; False when its key was seen
        before (a retry or a redelivery: counted, not run again). The mail listener hands
        its messages here too."""
        new = self.state.remember_event(event.key, event.source, event.type, event.summary,
                                        event.model_dump(mode="json"))
        if new:
            self.submit(event)
        self._count("accepted" if new else "duplicate")
        return new

    def _decision(self, source: str, request: Request, decision: Decision) -> Response:
        approvers = self.config.workflows.approvers
        if decision.by not in approvers:
            self.state.audit("receiver", "approval.refused", decision.workflow,
                             by=decision.by, via=decision.via)
            return JSONResponse({"response_type": "ephemeral", "replace_original": False,
                                 "text": "You are not one of this workflow's approvers "
                                         "(workflows.approvers in ops.toml)."})
        try:
            self.decide(decision)
        except OpsError as exc:
            return JSONResponse({"response_type": "ephemeral", "replace_original": False,
                                 "text": str(exc)})
        verdict = "approved" if decision.approve else "denied"
        return JSONResponse({"response_type": "in_channel", "replace_original": False,
                             "text": f"{decision.workflow} {verdict} by <@{decision.by}>"})

    def app(self) -> RequestGuard:
        def hook(source: str) -> Callable[[Request], Any]:
            async def endpoint(request: Request) -> Response:
                return await self.receive(source, request)
            return endpoint

        async def health(request: Request) -> Response:
            return JSONResponse({"ok": True, "counts": self.counts})

        routes = [Route("/hooks/slack/events", hook("slack"), methods=["POST"]),
                  Route("/hooks/slack/actions", hook("slack"), methods=["POST"]),
                  *[Route(f"/hooks/{s}", hook(s), methods=["POST"]) for s in HOOK_SOURCES],
                  Route("/health", health, methods=["GET"])]
        receiver = self.config.receiver
        policy = GuardPolicy.for_bind(receiver.host, receiver.port,
                                      max_body_bytes=receiver.max_body,
                                      extra_hosts=receiver.allowed_hosts,
                                      content_types=CONTENT_TYPES)
        return RequestGuard(Starlette(routes=routes), policy, _error)


def _error(status: int, code: str, message: str) -> Response:
    return JSONResponse({"ok": False, "error": code, "message": message}, status)


__all__ = ["CONTENT_TYPES", "HOOK_SOURCES", "Receiver"]
