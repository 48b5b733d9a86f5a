"""The analysis agent: a root cause proposed by the local model over the data gathered.

The model reads only what earlier steps gathered (each piece labelled ``[D1]``, ``[D2]``)
and must cite those labels; a citation of a label that does not exist is dropped, and a
proposal that cites nothing is marked unsupported with its confidence cut, since an
incident channel acts on what it is told. The confidence is the model's own estimate and
is shown as such; the workflow escalates to a person when it is below the configured
minimum.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, Field

from smallhold.apps.ops.tools import Call, Services, Tool
from smallhold.runtime import GenerationParams, Message

PARAMS = GenerationParams(max_tokens=400, temperature=0.1, seed=11)
MAX_PIECE = 1500  # characters of one gathered output shown to the model
SYSTEM = ("You are an on-call engineer finding the root cause of an incident. Use only the "
          "numbered data you are given. Answer with: summary, one sentence saying what is "
          "happening; likely_cause, the most likely cause, citing the data like [D2]; "
          "confidence, how sure you are from 0 to 1; next_steps, up to five short actions. "
          "If the data does not show the cause, say so and give a low confidence.")


class RootCause(BaseModel):
    # no field descriptions: they go into the schema shown to the model, and small models
    # copy them back as the answer ("one sentence: what is happening"); the system prompt
    # says what each field is instead
    summary: str
    likely_cause: str
    confidence: float = Field(ge=0, le=1)
    next_steps: list[str] = Field(default_factory=list, max_length=5)


class RootCauseParams(BaseModel):
    question: str = ""  # what to explain; default: the event's summary


def data_pieces(call: Call) -> list[tuple[str, str, str]]:
    """(label, where from, text) for the event and each needed step's output."""
    pieces = [("D1", "event", f"{call.event.summary}\n{call.event.text}".strip())]
    for number, (step, output) in enumerate(sorted(call.inputs.items()), start=2):
        text = json.dumps(output, default=str, ensure_ascii=False)
        pieces.append((f"D{number}", step, text[:MAX_PIECE]))
    return pieces


def cited(text: str, labels: set[str]) -> list[str]:
    return sorted({m for m in re.findall(r"\[(D\d+)\]", text) if m in labels},
                  key=lambda x: int(x[1:]))


def root_cause(call: Call, services: Services) -> dict[str, Any]:
    params = RootCauseParams.model_validate(call.params)
    pieces = data_pieces(call)
    data = "\n".join(f"[{label}] ({source}) {text}" for label, source, text in pieces)
    question = params.question or call.event.summary
    answer = services.runtime.structured(
        [Message(role="system", content=SYSTEM),
         Message(role="user", content=f"Incident: {question}\n\nData:\n{data}")],
        RootCause, model=services.model, params=PARAMS, app="ops")
    labels = {label for label, _, _ in pieces}
    citations = cited(f"{answer.summary} {answer.likely_cause}", labels)
    confidence = answer.confidence if citations else min(answer.confidence, 0.3)
    return {"summary": answer.summary, "likely_cause": answer.likely_cause,
            "confidence": round(confidence, 2), "supported": bool(citations),
            "citations": [{"label": label, "source": source}
                          for label, source, _ in pieces if label in citations],
            "next_steps": answer.next_steps}


TOOLS = [Tool(agent="analysis", name="root_cause", risk="read", scope="model:use",
              summary="Propose a root cause over the gathered data, citing it",
              run=root_cause, params=RootCauseParams)]

__all__ = ["TOOLS", "RootCause", "cited", "data_pieces", "root_cause"]
