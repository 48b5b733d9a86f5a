"""Approval before the agent runs code that needs the network or the disk outside the project.

Three deciders: ask in the terminal (interactive runs), a policy file (non-interactive
runs), and deny (the default, and always in CI). Every decision goes to the trace log as a
``code.approval`` event with who decided and why, whatever the answer.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from smallhold.errors import ConfigError
from smallhold.trace import TraceLog

KINDS = ("network", "outside")


@dataclass(frozen=True)
class Request:
    run_id: str
    kind: str  # network | outside
    detail: str


@dataclass(frozen=True)
class Decision:
    allowed: bool
    by: str  # terminal | policy:<file> | default-deny | ci
    reason: str


class Decider(Protocol):
    def decide(self, request: Request) -> Decision: ...


class DenyAll:
    def __init__(self, by: str = "default-deny") -> None:
        self.by = by

    def decide(self, request: Request) -> Decision:
        return Decision(False, self.by, f"{request.kind} access is denied unless approved "
                                        "(run interactively or pass --policy FILE)")


class PolicyFile:
    """``[approve] network = "allow"|"deny"``, ``outside = ...`` in TOML or JSON."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            text = path.read_text()
            data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the approval policy {path}: {exc}") from exc
        rules = data.get("approve", data)
        self.rules = {}
        for kind, value in rules.items():
            if kind not in KINDS or value not in ("allow", "deny"):
                raise ConfigError(f"{path}: '{kind} = {value!r}' is not a rule; use "
                                  f"{' / '.join(KINDS)} = \"allow\" or \"deny\"")
            self.rules[kind] = value

    def decide(self, request: Request) -> Decision:
        allowed = self.rules.get(request.kind, "deny") == "allow"
        return Decision(allowed, f"policy:{self.path}",
                        f"{request.kind} = {self.rules.get(request.kind, 'deny (not listed)')}")


class Terminal:
    def __init__(self, confirm: Callable[[str], bool]) -> None:
        self.confirm = confirm

    def decide(self, request: Request) -> Decision:
        allowed = self.confirm(f"The agent wants {request.kind} access: {request.detail}. "
                               "Allow?")
        return Decision(allowed, "terminal", "approved by the user" if allowed else
                        "declined by the user")


def in_ci() -> bool:
    return bool(os.environ.get("CI"))


def choose(policy: Path | None, interactive: bool,
           confirm: Callable[[str], bool] | None = None) -> Decider:
    if policy is not None:
        return PolicyFile(policy)
    if in_ci():
        return DenyAll("ci")
    if interactive and confirm is not None:
        return Terminal(confirm)
    return DenyAll()


def ask(decider: Decider, request: Request, trace: TraceLog | None) -> Decision:
    decision = decider.decide(request)
    if trace is not None:
        trace.record_event("code.approval", app="code", data={
            "run": request.run_id, "kind": request.kind, "detail": request.detail,
            "allowed": decision.allowed, "by": decision.by, "reason": decision.reason})
    return decision
