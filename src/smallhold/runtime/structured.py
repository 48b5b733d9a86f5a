"""Structured output: a pydantic model in, a validated instance out.

Decoding is constrained by a grammar built from the model's JSON schema (llama.cpp GBNF), so
even a 135M model emits parseable JSON. A grammar cannot express every pydantic constraint
(ranges, lengths, custom validators), so content that is still wrong is sent back once more
with the validation error, and after ``retries`` a typed error says what went wrong.

Schemas also come from outside (the server's ``response_format``): :func:`schema_grammar` is
the one place a schema becomes a grammar, and a schema that cannot (a ``$ref`` to nowhere, an
unknown type, bounds that would expand to a huge grammar) is an :class:`InvalidSchemaError`
that says why, never the converter's own assertion.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from smallhold.errors import InvalidSchemaError, StructuredOutputError
from smallhold.runtime.types import Completion, GenerationParams, Message

T = TypeVar("T", bound=BaseModel)
ChatFn = Callable[[list[Message], GenerationParams], Completion]


# The converter writes a bounded repetition out in full ("x{0,n}" becomes n nested optional
# groups, recursing once per item of an array), so the bounds are capped: a schema asking for
# maxItems 10**9 would otherwise take the memory, and one of a few thousand the stack.
MAX_SCHEMA_ITEMS = 256
MAX_SCHEMA_STRING_LENGTH = 4096
_ITEM_BOUNDS = ("minItems", "maxItems")
_LENGTH_BOUNDS = ("minLength", "maxLength")
# What llama-cpp-python's converter raises on a schema it cannot handle (it uses asserts).
_CONVERTER_ERRORS = (AssertionError, ValueError, KeyError, TypeError, AttributeError,
                     IndexError, RecursionError)


def _check_static(schema: Any) -> None:
    """What the converter would get wrong before it starts: remote refs, huge bounds."""
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            ref = node.get("$ref")
            if ref is not None and (not isinstance(ref, str) or not ref.startswith("#")):
                raise InvalidSchemaError(
                    f"invalid JSON schema: $ref {json.dumps(ref)[:80]} is not local; only "
                    "references into the schema itself ('#/$defs/Name') are followed.")
            for keys, cap in ((_ITEM_BOUNDS, MAX_SCHEMA_ITEMS),
                              (_LENGTH_BOUNDS, MAX_SCHEMA_STRING_LENGTH)):
                for key in keys:
                    value = node.get(key)
                    if value is None:
                        continue
                    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                        raise InvalidSchemaError(
                            f"invalid JSON schema: {key} must be a non-negative integer, "
                            f"not {json.dumps(value)[:40]}; fix the schema.")
                    if value > cap:
                        raise InvalidSchemaError(
                            f"invalid JSON schema: {key} {value} is more than constrained "
                            f"decoding can expand (at most {cap}); lower it or leave it out.")
            stack.extend(node.values())


def schema_grammar(schema: dict[str, Any]) -> str:
    """The llama.cpp grammar (GBNF) that constrains decoding to ``schema``.

    Raises :class:`InvalidSchemaError` for a schema the converter cannot turn into a grammar:
    a ``$ref`` that is not local (``#/...``) or points nowhere, an unknown ``type``, a node
    that is not an object, repetition bounds past the caps above. No ``$ref`` is ever fetched.
    """
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    if not isinstance(schema, dict):
        raise InvalidSchemaError("invalid JSON schema: it must be a JSON object; fix the schema.")
    _check_static(schema)
    try:
        return str(json_schema_to_gbnf(json.dumps(schema)))
    except _CONVERTER_ERRORS as exc:
        detail = " ".join(str(exc).split())[:200] or type(exc).__name__
        if isinstance(exc, RecursionError):
            detail = "it nests too deeply"
        raise InvalidSchemaError(
            f"invalid JSON schema for constrained decoding ({detail}); use standard types and "
            "local $refs such as '#/$defs/Name'."
        ) from None


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
