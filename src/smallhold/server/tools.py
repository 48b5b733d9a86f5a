"""Tool calling: what the model is constrained to, and reading its calls back.

The tools reach the model through its own chat template (Qwen2.5's writes them into the
system turn and asks for ``<tool_call>{"name": ..., "arguments": ...}</tool_call>``). With
``tool_choice`` ``"required"`` or a named function, decoding is constrained by a grammar to
``{"name": <one of them>, "arguments": <that function's parameters schema>}``, so the
arguments always parse and match. With ``"auto"`` the model decides: its reply is read as
calls when it holds ``<tool_call>`` blocks (or is nothing but such a JSON object) naming a
known function with an object of arguments, and as text otherwise.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import TYPE_CHECKING, Any

from smallhold.runtime.types import ToolCall

if TYPE_CHECKING:
    from smallhold.server.schemas import ChatCompletionRequest

_BLOCK = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S)


def _call_schema(name: str, parameters: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": {"name": {"const": name},
                                             "arguments": parameters},
            "required": ["name", "arguments"], "additionalProperties": False}


def forced_schema(body: ChatCompletionRequest) -> dict[str, Any] | None:
    """The JSON schema decoding is held to, when a call is required; else None."""
    from smallhold.server.schemas import NamedToolChoice

    tools = body.tools or []
    choice = body.tool_choice
    if isinstance(choice, NamedToolChoice):
        tools = [t for t in tools if t.function.name == choice.function.name]
    elif choice != "required":
        return None
    options = [_call_schema(t.function.name, t.function.parameters) for t in tools]
    return options[0] if len(options) == 1 else {"anyOf": options}


def call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def _as_call(data: Any, names: set[str]) -> ToolCall | None:
    if not isinstance(data, dict) or data.get("name") not in names:
        return None
    arguments = data.get("arguments", data.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return None
    if not isinstance(arguments, dict):
        return None
    return ToolCall(id=call_id(), name=str(data["name"]), arguments=json.dumps(arguments))


def read_calls(text: str, body: ChatCompletionRequest) -> list[ToolCall]:
    """The tool calls in the model's reply (empty: it answered in text)."""
    names = {t.function.name for t in body.tools or ()}
    blocks = _BLOCK.findall(text)
    candidates = blocks or [text.strip()]
    calls = []
    for raw in candidates:
        fenced = _FENCE.match(raw.strip())
        try:
            data = json.loads(fenced.group(1) if fenced else raw)
        except ValueError:
            continue
        found = _as_call(data, names)
        if found is not None:
            calls.append(found)
    if calls and body.parallel_tool_calls is False:
        return calls[:1]
    return calls
