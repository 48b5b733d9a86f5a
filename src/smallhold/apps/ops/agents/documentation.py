"""The documentation agent: incident reports and runbooks as Markdown, kept with the run.

The facts in a report (what fired, when, which steps ran, what each returned) are written
from the workflow's data; the model is asked only for the narrative paragraph, which is
printed under its own heading so a reader can tell data from prose.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from smallhold.apps.ops.tools import Call, Services, Tool
from smallhold.runtime import GenerationParams, Message

PARAMS = GenerationParams(max_tokens=300, temperature=0.2, seed=13)


class ReportParams(BaseModel):
    title: str = ""
    narrative: bool = True  # ask the model for a short narrative paragraph


def _facts(call: Call) -> list[str]:
    event = call.event
    lines = [f"- **Event**: {event.summary} ({event.source} `{event.type}`, key `{event.key}`)",
             f"- **Received**: {event.received_at.astimezone(UTC).isoformat(timespec='seconds')}"]
    if event.severity:
        lines.append(f"- **Severity**: {event.severity}")
    for name, value in sorted(event.labels.items()):
        lines.append(f"- `{name}`: {value}")
    lines.extend(f"- Link: {link}" for link in event.links)
    return lines


def _section(step: str, output: Any) -> list[str]:
    if isinstance(output, dict) and "likely_cause" in output:
        support = ("supported by the data" if output.get("supported")
                   else "NOT supported by cited data")
        lines = [f"### {step}", "", f"**Summary**: {output.get('summary', '')}", "",
                 f"**Likely cause** (confidence {output.get('confidence')}, {support}): "
                 f"{output.get('likely_cause', '')}"]
        steps = output.get("next_steps") or []
        if steps:
            lines += ["", "Next steps:", *[f"1. {s}" for s in steps]]
        return [*lines, ""]
    text = json.dumps(output, indent=2, default=str, ensure_ascii=False)
    if len(text) > 3000:
        text = text[:3000] + "\n… (cut)"
    return [f"### {step}", "", "```json", text, "```", ""]


def incident_report(call: Call, services: Services) -> dict[str, Any]:
    params = ReportParams.model_validate(call.params)
    title = params.title or f"Incident: {call.event.summary}"
    lines = [f"# {title}", "", f"Workflow `{call.workflow}`, written "
             f"{datetime.now(UTC).isoformat(timespec='seconds')}.", "", "## Facts", "",
             *_facts(call), "", "## What the workflow found", ""]
    for step, output in sorted(call.inputs.items()):
        lines += _section(step, output)
    if params.narrative:
        gathered = "\n".join(lines)[-4000:]
        reply = services.runtime.chat(
            [Message(role="system", content="Write one short paragraph for an incident "
                     "report from these notes. Do not add numbers or facts not in them."),
             Message(role="user", content=gathered)],
            model=services.model, params=PARAMS, app="ops")
        lines += ["## Narrative (written by the local model)", "", reply.text.strip(), ""]
    content = "\n".join(lines)
    services.keep(call.workflow, "incident-report.md", "report", content)
    return {"artifact": "incident-report.md", "chars": len(content)}


def runbook(call: Call, services: Services) -> dict[str, Any]:
    """A runbook draft: the steps the workflow took, in order, with what each needed."""
    params = ReportParams.model_validate(call.params)
    title = params.title or f"Runbook: {call.event.labels.get('alertname') or call.event.type}"
    lines = [f"# {title}", "", "Steps this workflow ran, in order:", ""]
    lines += [f"1. `{step}`" for step in sorted(call.inputs)]
    content = "\n".join(lines) + "\n"
    services.keep(call.workflow, "runbook.md", "runbook", content)
    return {"artifact": "runbook.md", "chars": len(content)}


TOOLS = [
    Tool(agent="documentation", name="incident_report", risk="low", scope="docs:write",
         summary="Write the incident report (facts from data, narrative by the model)",
         run=incident_report, params=ReportParams),
    Tool(agent="documentation", name="runbook", risk="low", scope="docs:write",
         summary="Write a runbook draft from the steps taken", run=runbook,
         params=ReportParams),
]

__all__ = ["TOOLS", "incident_report", "runbook"]
