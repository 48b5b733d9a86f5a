"""The orchestrator: rules first; free text routed by the model among the templates that
take requests; low confidence waits for a person; the analysis agent cites or is cut."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from smallhold.apps.ops.agents.analysis import cited, root_cause
from smallhold.apps.ops.engine import toolbox
from smallhold.apps.ops.models import Event
from smallhold.apps.ops.orchestrator import describe, plan
from smallhold.apps.ops.templates import parse
from smallhold.apps.ops.tools import Call
from smallhold.kit import Home, Overrides
from smallhold.runtime.backends.scripted import ScriptedBackend

TOOLS = toolbox()
STEP = [{"id": "look", "agent": "data", "action": "jira_search", "with": {"jql": "x"}}]
ACCESS = parse({"name": "access_request", "description": "someone asks for access to a "
                "system", "match": [{"source": "slack", "type": "request"}], "steps": STEP},
               "t", TOOLS.actions())
DEPLOY = parse({"name": "deploy", "description": "ship a service", "critical": True,
                "match": [{"source": "github", "type": "github.push"}],
                "steps": [{"id": "say", "agent": "communication", "action": "slack_post",
                           "with": {"text": "pushed"}},
                          {"id": "fix", "agent": "data", "action": "jira_comment",
                           "needs": ["say"], "risk": "high",
                           "with": {"key": "OPS-1", "text": "deployed"}}]},
               "t", TOOLS.actions())


def mention(text: str) -> Event:
    return Event(source="slack", type="slack.app_mention", key="slack-Ev1",
                 received_at=datetime.now(UTC), summary=text[:60], text=text)


def route(workflow: str, confidence: float) -> str:
    return json.dumps({"workflow": workflow, "confidence": confidence, "reason": "because"})


def planned(event: Event, reply: str) -> Any:
    with Home.open(overrides=Overrides(backend=ScriptedBackend([reply]))) as home:
        return plan(event, [ACCESS, DEPLOY], TOOLS, runtime=home.runtime, model=None,
                    min_confidence=0.6)


def test_rules_decide_without_the_model_and_critical_plans_wait() -> None:
    push = Event(source="github", type="github.push", key="g", summary="push",
                 received_at=datetime.now(UTC))
    chosen = plan(push, [ACCESS, DEPLOY], TOOLS, runtime=None, model=None,
                  min_confidence=0.6)
    assert chosen.template is DEPLOY and chosen.confidence == 1.0
    assert chosen.approval and chosen.high_risk == ["fix"]
    text = describe(chosen, TOOLS)
    assert "fix: data.jira_comment [high] after say  <- HIGH RISK" in text


def test_free_text_is_routed_by_the_model_and_low_confidence_waits() -> None:
    sure = planned(mention("please give me access to grafana"), route("access_request", 0.9))
    assert sure.template is ACCESS and not sure.approval
    assert sure.reason.startswith("the local model")
    unsure = planned(mention("grafana?"), route("access_request", 0.3))
    assert unsure.template is ACCESS and unsure.approval  # a person decides
    nothing = planned(mention("good morning"), route("none", 0.8))
    assert nothing.template is None and "no workflow fits" in nothing.reason


def test_events_no_rule_takes_and_no_template_accepts_are_unmatched() -> None:
    jira = Event(source="jira", type="jira.issue_updated", key="j", summary="x",
                 received_at=datetime.now(UTC), text="words")
    chosen = plan(jira, [ACCESS, DEPLOY], TOOLS, runtime=None, model=None,
                  min_confidence=0.6)
    assert chosen.template is None and chosen.reason == "no template matches this event"


class Services:
    def __init__(self, home: Home) -> None:
        self.runtime = home.runtime
        self.model = None


def test_a_root_cause_without_citations_is_marked_unsupported() -> None:
    call = Call(workflow="w", step="rc", event=mention("checkout is down"), params={},
                inputs={"errors": {"rows": [["disk full"]]}})
    cites = json.dumps({"summary": "checkout down", "likely_cause": "disk full [D2] [D9]",
                        "confidence": 0.8, "next_steps": ["free disk"]})
    bare = json.dumps({"summary": "checkout down", "likely_cause": "cosmic rays",
                       "confidence": 0.9, "next_steps": []})
    with Home.open(overrides=Overrides(backend=ScriptedBackend([cites, bare]))) as home:
        first = root_cause(call, Services(home))  # type: ignore[arg-type]
        second = root_cause(call, Services(home))  # type: ignore[arg-type]
    assert first["supported"] and first["citations"] == [{"label": "D2", "source": "errors"}]
    assert not second["supported"] and second["confidence"] == 0.3
    assert cited("see [D1] and [D7]", {"D1", "D2"}) == ["D1"]
