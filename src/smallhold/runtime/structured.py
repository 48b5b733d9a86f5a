"""Structured output: a pydantic model in, a validated instance out.

Decoding is constrained by a grammar built from the model's JSON schema (llama.cpp GBNF), so
even a 135M model emits parseable JSON. A grammar cannot express every pydantic constraint
(ranges, lengths, custom validators), so content that is still wrong is sent back once more
with the validation error, and after ``retries`` a typed error says what went wrong.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from smallhold.errors import StructuredOutputError
from smallhold.runtime.types import Completion, GenerationParams, Message

T = TypeVar("T", bound=BaseModel)
ChatFn = Callable[[list[Message], GenerationParams], Completion]


def schema_instruction(output_type: type[BaseModel]) -> str:
    schema = json.dumps(output_type.model_json_schema(), separators=(",", ":"))
    return f"Reply with one JSON object only, matching this JSON schema: {schema}"


def generate_structured(chat: ChatFn, messages: Sequence[Message], output_type: type[T], *,
                        params: GenerationParams | None = None, retries: int = 2) -> T:
    base = params or GenerationParams(temperature=0.0)
    constrained = base.model_copy(update={"json_schema": output_type.model_json_schema()})
    history = [*messages, Message(role="system", content=schema_instruction(output_type))]
    problems: list[str] = []
    for _attempt in range(retries + 1):
        completion = chat(history, constrained)
        try:
            return output_type.model_validate_json(completion.text)
        except ValidationError as exc:
            summary = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}"
                for e in exc.errors()
            )
            problems.append(summary)
            history = [
                *history,
                Message(role="assistant", content=completion.text),
                Message(role="user", content=f"That JSON was invalid ({summary}). "
                                             "Reply with the corrected JSON object only."),
            ]
    raise StructuredOutputError(
        f"no valid {output_type.__name__} after {retries + 1} tries; last problems: "
        f"{problems[-1] if problems else 'none'}. Try a larger model or a simpler schema."
    )
