"""Free text end to end: a mail to the SMTP listener, routed by the model to the
mail_request template, related Jira issues gathered from the fake, an answer written and
mailed back to its sender through a real SMTP server; the same mail again starts nothing."""

from __future__ import annotations

import json
import smtplib
import time
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest

from smallhold.apps.ops import APP
from smallhold.apps.ops.config import OpsConfig
from smallhold.apps.ops.engine import Worker, running, submit, wait_done
from smallhold.apps.ops.fakes import FakeServices, LocalSmtp
from smallhold.apps.ops.mailin import MailListener
from smallhold.apps.ops.models import event_key
from smallhold.apps.ops.receiver import Receiver
from smallhold.apps.ops.state import OpsState
from smallhold.durable import system_database_url
from smallhold.kit import Home, Overrides
from smallhold.runtime.backends.scripted import ScriptedBackend
from smallhold.runtime.types import ChatRequest

ROUTE = json.dumps({"workflow": "mail_request", "confidence": 0.92,
                    "reason": "a colleague asks about a service"})
ANSWER = json.dumps({"summary": "The checkout timeouts are tracked already.",
                     "likely_cause": "the open issue [D2] about the payment gateway",
                     "confidence": 0.7, "next_steps": []})


def reply(request: ChatRequest) -> str:
    text = " ".join(m.content for m in request.messages if isinstance(m.content, str))
    return ROUTE if "route requests" in text else ANSWER


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeServices, LocalSmtp]]:
    with FakeServices.start() as fakes, LocalSmtp() as smtp:
        for name, value in fakes.env().items():
            monkeypatch.setenv(name, value)
        yield fakes, smtp


def test_a_mailed_question_is_answered_by_mail(world: tuple[FakeServices, LocalSmtp]) -> None:
    fakes, smtp = world
    config = OpsConfig.model_validate({"integrations": fakes.integrations(smtp)})
    with Home.open(app=APP, overrides=Overrides(backend=ScriptedBackend(reply=reply))) as home:
        state = OpsState(system_database_url(home.paths, home.settings))
        worker = Worker(home, config, state, executor="ops-mail-test")
        with running(worker, heartbeat=False) as engine:
            receiver = Receiver(config, state, {}, submit=lambda e: submit(engine, e),
                                decide=lambda d: None)
            with MailListener(receiver.accept, port=0) as listener:
                message = EmailMessage()
                message["From"] = "Dana <dana@example.test>"
                message["To"] = "ops@example.test"
                message["Subject"] = "Why does checkout time out?"
                message["Message-ID"] = "<q-1@example.test>"
                message.set_content("Checkout has been timing out since this morning.")
                for _ in range(2):  # the sending server retries: one run only
                    with smtplib.SMTP(listener.host, listener.port) as client:
                        client.send_message(message)
                key = event_key("mail", "q-1@example.test")
                deadline = time.monotonic() + 30
                while state.event(key) is None and time.monotonic() < deadline:
                    time.sleep(0.05)
                result: dict[str, Any] = wait_done(key, 60)
        state.close()
    assert result["status"] == "done" and result["template"] == "mail_request"
    answers = [m.message for m in smtp.messages]
    assert len(answers) == 1
    assert answers[0]["To"] == "dana@example.test"
    assert answers[0]["Subject"] == "Re: Why does checkout time out?"
    assert "tracked already" in answers[0].get_content()
    searched = [r["query"] for r in fakes.requests("jira")]
    assert searched and "checkout" in " ".join(searched).lower()
