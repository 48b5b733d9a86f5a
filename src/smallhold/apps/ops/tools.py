"""Tools: the typed functions agents act through, each with its declared risk and scope.

A step names an agent and one of its actions; the action is a :class:`Tool`. What a tool
may touch is declared, not inferred: ``risk`` says what a mistake costs (``read`` changes
nothing, ``low`` is a message or a comment, ``high`` changes a system) and decides whether
a person must look first; ``scope`` (``slack:write``, ``sql:read``) is what the step is
granted; ``integration`` names the external service whose retry policy and circuit
breaker apply. Every call carries an idempotency key (workflow id and step id) that the
tool passes on to the service, so a step re-run after a crash between the call and its
checkpoint does not act twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel, ValidationError

from smallhold.apps.ops.errors import PermanentError, ScopeError
from smallhold.apps.ops.models import Event

if TYPE_CHECKING:
    from smallhold.apps.ops.config import OpsConfig
    from smallhold.runtime import Runtime

Risk = Literal["read", "low", "high"]
RISK_ORDER: dict[str, int] = {"read": 0, "low": 1, "high": 2}


@dataclass(frozen=True)
class Call:
    """One step's request to one tool."""

    workflow: str
    step: str
    event: Event
    params: dict[str, Any]  # the step's ``with:``, rendered
    inputs: Mapping[str, Any] = field(default_factory=dict)  # outputs of the steps it needs

    @property
    def idempotency_key(self) -> str:
        return f"{self.workflow}/{self.step}"


class Ledger(Protocol):
    """Remembers side effects done, keyed by idempotency key, across workers and crashes."""

    def done(self, key: str) -> dict[str, Any] | None: ...

    def record(self, key: str, result: dict[str, Any]) -> None: ...


class Services(Protocol):
    """What tools reach the world through; built once per worker from the ops config."""

    @property
    def config(self) -> OpsConfig: ...

    def secret(self, reference: str) -> str:
        """The secret an ``env:``/``vault:`` reference names (config.resolve)."""
        ...

    @property
    def ledger(self) -> Ledger: ...

    @property
    def runtime(self) -> Runtime: ...

    @property
    def model(self) -> str | None: ...

    def keep(self, workflow: str, name: str, kind: str, content: str) -> None:
        """Store a document a step wrote (report, runbook) with the workflow."""
        ...


ToolFn = Callable[[Call, Services], dict[str, Any]]


@dataclass(frozen=True)
class Tool:
    agent: str
    name: str
    summary: str
    risk: Risk
    scope: str
    run: ToolFn
    params: type[BaseModel] | None = None  # validates ``with:`` before the call
    integration: str | None = None  # the breaker and retry policy that apply

    def invoke(self, call: Call, services: Services, granted: Sequence[str]) -> dict[str, Any]:
        if self.scope not in granted and "*" not in granted:
            raise ScopeError(f"step {call.step} may not use {self.agent}.{self.name}: it needs "
                             f"scope {self.scope}, granted {', '.join(granted) or 'none'}")
        if self.params is not None:
            try:
                self.params.model_validate(call.params)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                raise PermanentError(f"step {call.step}: {self.agent}.{self.name} got bad "
                                     f"parameters: {where}: {first['msg']}") from None
        return self.run(call, services)


class Toolbox:
    """Every agent's tools by agent and name."""

    def __init__(self, tools: Sequence[Tool]) -> None:
        self._tools: dict[tuple[str, str], Tool] = {}
        for tool in tools:
            self._tools[(tool.agent, tool.name)] = tool

    def get(self, agent: str, name: str) -> Tool:
        return self._tools[(agent, name)]

    def actions(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for agent, name in self._tools:
            found.setdefault(agent, []).append(name)
        return found

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())


__all__ = ["RISK_ORDER", "Call", "Ledger", "Risk", "Services", "Tool", "ToolFn", "Toolbox"]
