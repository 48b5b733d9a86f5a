"""Helpers for the agent tests: replies of a scripted model, and a task for a project."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from smallhold.apps.code.models import Task
from smallhold.apps.code.testing import default_command
from smallhold.runtime.backends.scripted import ScriptedBackend
from smallhold.runtime.types import ChatRequest

if TYPE_CHECKING:
    from smallhold.apps.code.agent import Agent

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None,
                                 reason="bubblewrap is not installed (scripts/setup.sh does it)")
BUGGY = "def add(a, b):\n    return a - b\n"
FIXED = "def add(a, b):\n    return a + b\n"
WRONG = "def add(a, b):\n    return a * b\n"


def plan(files: list[str], summary: str = "make add return the sum") -> str:
    return json.dumps({"problem_type": "bugfix", "summary": summary, "files": files})


def edit(path: str, content: str) -> str:
    return json.dumps({"changes": [{"path": path, "content": content}]})


def reflect(text: str = "add subtracts instead of adding; the test expects 5 = 2 + 3") -> str:
    return json.dumps({"diagnosis": "wrong arithmetic",
                       "hypotheses": [{"text": text, "confidence": 0.8}]})


def scripted(by_kind: dict[str, list[str]]) -> ScriptedBackend:
    """Replies by the structured type asked for (Plan, Edit, Reflection), in order."""
    seen: dict[str, int] = {}

    def reply(request: ChatRequest) -> str:
        kind = (request.params.json_schema or {}).get("title", "text")
        replies = by_kind[kind]
        index = seen.get(kind, 0)
        seen[kind] = index + 1
        return replies[min(index, len(replies) - 1)]

    return ScriptedBackend(reply=reply)


MakeAgent = Callable[[ScriptedBackend], "Agent"]


def task_for(project: Path, description: str = "fix add", **extra: object) -> Task:
    return Task(description=description, project=str(project),
                test_command=default_command(project, sys.executable), python=sys.executable,
                **{"timeout_s": 30, **extra})  # type: ignore[arg-type]
