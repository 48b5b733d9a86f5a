"""Request bodies of the OpenAI-compatible API, validated by pydantic.

Unknown fields are ignored (clients send many that a local model has no use for); fields that
would change the answer and that smallhold cannot honour (``n > 1``) are refused, so a client
never gets a silently different result.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from smallhold.errors import InvalidSchemaError
from smallhold.runtime.structured import schema_grammar
from smallhold.runtime.types import GenerationParams, Message, ToolCall

MAX_SESSION_CHARS = 200


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TextPart(_Body):
    type: Literal["text"]
    text: str


class CalledFunction(_Body):
    name: str
    arguments: str


class ToolCallIn(_Body):
    id: str
    type: Literal["function"] = "function"
    function: CalledFunction


class ChatMessage(_Body):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = None

    @model_validator(mode="after")
    def _content_required(self) -> ChatMessage:
        if self.content is None and self.role != "assistant":
            raise ValueError(f"a {self.role} message needs content")
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs the tool_call_id it answers")
        return self

    def to_message(self) -> Message:
        if isinstance(self.content, list):
            text = "".join(part.text for part in self.content)
        else:
            text = self.content or ""
        role = "system" if self.role == "developer" else self.role
        calls = tuple(ToolCall(id=c.id, name=c.function.name, arguments=c.function.arguments)
                      for c in self.tool_calls or ())
        return Message(role=role, content=text, tool_calls=calls,
                       tool_call_id=self.tool_call_id)


class FunctionDef(_Body):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object",
                                                                "properties": {}})

    @field_validator("parameters")
    @classmethod
    def _decodable(cls, schema: dict[str, Any]) -> dict[str, Any]:
        try:
            schema_grammar(schema)
        except InvalidSchemaError as exc:
            raise ValueError(str(exc).rstrip(".")) from None
        return schema


class ToolDef(_Body):
    type: Literal["function"]
    function: FunctionDef


class NamedFunction(_Body):
    name: str


class NamedToolChoice(_Body):
    type: Literal["function"]
    function: NamedFunction


class JsonSchemaFormat(_Body):
    name: str = "output"
    description: str | None = None
    schema_: dict[str, Any] = Field(alias="schema")
    strict: bool | None = None

    @field_validator("schema_")
    @classmethod
    def _decodable(cls, schema: dict[str, Any]) -> dict[str, Any]:
        """A schema that cannot become a decoding grammar is the client's mistake: say so
        now, as a 400, not when the model is about to decode."""
        try:
            schema_grammar(schema)
        except InvalidSchemaError as exc:
            raise ValueError(str(exc).rstrip(".")) from None  # the 400 adds one
        return schema


class ResponseFormat(_Body):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_given(self) -> ResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("type 'json_schema' needs a json_schema object with a schema")
        return self

    def schema_for_decoding(self) -> dict[str, Any] | None:
        if self.type == "json_object":
            return {"type": "object"}
        if self.type == "json_schema" and self.json_schema is not None:
            return self.json_schema.schema_
        return None


class StreamOptions(_Body):
    include_usage: bool = False


class _Sampled(_Body):
    """What chat and text completions share: sampling, stop strings, streaming."""

    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = Field(None, max_length=MAX_SESSION_CHARS)

    def _given(self, max_tokens: int | None) -> dict[str, Any]:
        """The generation parameters the request set (the rest keep their defaults)."""
        given: dict[str, Any] = {}
        if max_tokens is not None:
            given["max_tokens"] = max_tokens
        if self.temperature is not None:
            given["temperature"] = self.temperature
        if self.top_p is not None:
            given["top_p"] = self.top_p
        if self.seed is not None:
            given["seed"] = self.seed
        if self.stop:
            given["stop"] = [self.stop] if isinstance(self.stop, str) else list(self.stop)
        return given

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage


class ChatCompletionRequest(_Sampled):
    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    response_format: ResponseFormat | None = None
    n: int = 1
    tools: list[ToolDef] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None

    @field_validator("n")
    @classmethod
    def _one_choice(cls, n: int) -> int:
        if n != 1:
            raise ValueError("smallhold returns one choice per request; leave out 'n' or set 1")
        return n

    @model_validator(mode="after")
    def _choice_names_a_tool(self) -> ChatCompletionRequest:
        if isinstance(self.tool_choice, NamedToolChoice):
            names = [t.function.name for t in self.tools or ()]
            if self.tool_choice.function.name not in names:
                raise ValueError(f"tool_choice names {self.tool_choice.function.name!r}, "
                                 "which is not one of the tools")
        elif self.tool_choice == "required" and not self.tools:
            raise ValueError("tool_choice 'required' needs tools")
        if self.tools and self.response_format is not None and \
                self.response_format.type != "text":
            raise ValueError("use either tools or a response_format, not both")
        return self

    @property
    def calling(self) -> bool:
        """Whether the model is shown tools for this request."""
        return bool(self.tools) and self.tool_choice != "none"

    def to_messages(self) -> list[Message]:
        return [m.to_message() for m in self.messages]

    def to_params(self) -> GenerationParams:
        given = self._given(self.max_completion_tokens or self.max_tokens)
        if self.response_format is not None:
            given["json_schema"] = self.response_format.schema_for_decoding()
        if self.calling:
            from smallhold.server.tools import forced_schema

            given["tools"] = [t.model_dump(exclude_none=True) for t in self.tools or ()]
            given["json_schema"] = forced_schema(self)
        return GenerationParams(**given)


class CompletionRequest(_Sampled):
    """``POST /v1/completions``: text in, text out, no chat template (base models)."""

    model: str | None = None
    prompt: str | list[str]
    max_tokens: int = Field(16, ge=1)  # OpenAI's default for this endpoint
    n: int = 1
    echo: bool = False
    suffix: str | None = None
    logprobs: int | None = None

    @model_validator(mode="after")
    def _supported(self) -> CompletionRequest:
        if self.n != 1:
            raise ValueError("smallhold returns one choice per request; leave out 'n' or set 1")
        if isinstance(self.prompt, list) and len(self.prompt) != 1:
            raise ValueError("send one prompt per request (a list of exactly one string)")
        if self.echo or self.suffix or self.logprobs:
            raise ValueError("echo, suffix and logprobs are not supported; leave them out")
        return self

    @property
    def text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]

    def to_params(self) -> GenerationParams:
        return GenerationParams(**self._given(self.max_tokens))


class EmbeddingRequest(_Body):
    input: str | list[str]
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None

    @model_validator(mode="after")
    def _non_empty(self) -> EmbeddingRequest:
        texts = self.texts
        if not texts:
            raise ValueError("input must hold at least one text")
        if len(texts) > 2048:
            raise ValueError(f"input holds {len(texts)} texts; send at most 2048 per request")
        if any(not t for t in texts):
            raise ValueError("input texts must not be empty strings")
        return self

    @property
    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)
