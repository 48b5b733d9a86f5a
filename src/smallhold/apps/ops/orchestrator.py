"""The orchestrator: which template an event becomes, and the plan a person approves.

Rules first: an event that fits a template's patterns is that template, with certainty.
Free text that fits none (a Slack mention, a mail, a Jira request) is classified by the
local model among the templates that accept free text (their ``match`` includes the event's
source), with structured output restricted to those names or ``none``. The model's
confidence decides who acts: below ``min_confidence`` the plan waits for a person, who
sees the model's reason. A critical template always waits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from pydantic import BaseModel, Field, create_model

from smallhold.apps.ops.models import Event
from smallhold.apps.ops.templates import Template, choose
from smallhold.apps.ops.tools import RISK_ORDER, Toolbox
from smallhold.runtime import GenerationParams, Message, Runtime

PARAMS = GenerationParams(max_tokens=160, temperature=0.0, seed=3)
SYSTEM = ("You route requests sent to an operations team to the workflow that handles "
          "them. Pick exactly one workflow by name, or none when no workflow fits, and "
          "say how sure you are from 0 to 1.")


@dataclass(frozen=True)
class Plan:
    template: Template | None
    confidence: float
    reason: str
    approval: bool  # wait for a person before any step runs
    high_risk: list[str]  # steps flagged for review

    def as_dict(self) -> dict[str, Any]:
        return {"template": self.template.model_dump(mode="json", by_alias=True)
                if self.template else None, "confidence": self.confidence,
                "reason": self.reason, "approval": self.approval, "high_risk": self.high_risk}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        template = Template.model_validate(data["template"]) if data["template"] else None
        return cls(template, float(data["confidence"]), str(data["reason"]),
                   bool(data["approval"]), list(data["high_risk"]))


def risk_of(template: Template, toolbox: Toolbox, step_id: str) -> str:
    step = template.step(step_id)
    return step.risk or toolbox.get(step.agent, step.action).risk


def describe(plan: Plan, toolbox: Toolbox) -> str:
    """The plan as a person reads it before approving."""
    if plan.template is None:
        return f"No workflow: {plan.reason}"
    t = plan.template
    lines = [f"Workflow '{t.name}' ({plan.reason}; confidence {plan.confidence:.2f})"]
    for number, wave in enumerate(t.order(), start=1):
        for step_id in wave:
            step = t.step(step_id)
            risk = risk_of(t, toolbox, step_id)
            flag = "  <- HIGH RISK, review" if risk == "high" else ""
            needs = f" after {', '.join(step.needs)}" if step.needs else ""
            lines.append(f"  {number}. {step.id}: {step.agent}.{step.action} "
                         f"[{risk}]{needs}{flag}")
    return "\n".join(lines)


def _classifier(names: Sequence[str]) -> type[BaseModel]:
    choice = Enum("Choice", {n: n for n in [*names, "none"]}, type=str)  # type: ignore[misc]
    return create_model("Route", workflow=(choice, ...),
                        confidence=(float, Field(ge=0, le=1)), reason=(str, ...))


def classify(event: Event, candidates: Sequence[Template], runtime: Runtime,
             model: str | None) -> tuple[Template | None, float, str]:
    menu = "\n".join(f"- {t.name}: {t.description or t.name}" for t in candidates)
    route = _classifier([t.name for t in candidates])
    answer: Any = runtime.structured(
        [Message(role="system", content=SYSTEM),
         Message(role="user", content=f"Workflows:\n{menu}\n\nRequest from {event.source}: "
                 f"{event.summary}\n{event.text[:2000]}")],
        route, model=model, params=PARAMS, app="ops")
    name = answer.workflow.value
    chosen = next((t for t in candidates if t.name == name), None)
    return chosen, float(answer.confidence), f"the local model: {answer.reason.strip()}"


def plan(event: Event, templates: Sequence[Template], toolbox: Toolbox, *,
         runtime: Runtime | None, model: str | None, min_confidence: float) -> Plan:
    template = choose(templates, event)
    if template is not None:
        confidence, reason = 1.0, f"matched the rules of template {template.name}"
    else:
        free_text = [t for t in templates if any(m.source in (event.source, "*")
                                                 and m.type == "request" for m in t.match)]
        if not free_text or runtime is None or not (event.text or event.summary).strip():
            return Plan(None, 1.0, "no template matches this event", False, [])
        template, confidence, reason = classify(event, free_text, runtime, model)
        if template is None:
            return Plan(None, confidence, reason + " (no workflow fits)", False, [])
    high = [s.id for s in template.steps if RISK_ORDER[risk_of(template, toolbox, s.id)] >= 2]
    approval = template.critical or confidence < min_confidence
    return Plan(template, confidence, reason, approval, high)


__all__ = ["Plan", "classify", "describe", "plan", "risk_of"]
