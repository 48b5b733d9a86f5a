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
    """An edit reply the way coder models write one: prose, a header, a fenced block."""
    return f"Here is the change.\n\nFILE: {path}\n```python\n{content}```\n"


def kind(request: ChatRequest) -> str:
    """What a request asks for: the structured type's title, or Edit for the free text."""
    return str((request.params.json_schema or {}).get("title", "Edit"))


def reflect(text: str = "add subtracts instead of adding; the test expects 5 = 2 + 3") -> str:
    return json.dumps({"diagnosis": "wrong arithmetic",
                       "hypotheses": [{"text": text, "confidence": 0.8}]})


def scripted(by_kind: dict[str, list[str]]) -> ScriptedBackend:
    """Replies by what is asked for (Plan, Edit, Reflection), each kind in order."""
    seen: dict[str, int] = {}

    def reply(request: ChatRequest) -> str:
        asked = kind(request)
        replies = by_kind[asked]
        index = seen.get(asked, 0)
        seen[asked] = index + 1
        return replies[min(index, len(replies) - 1)]

    return ScriptedBackend(reply=reply)


MakeAgent = Callable[[ScriptedBackend], "Agent"]


def task_for(project: Path, description: str = "fix add", **extra: object) -> Task:
    return Task(description=description, project=str(project),
                test_command=default_command(project, sys.executable), python=sys.executable,
                **{"timeout_s": 30, **extra})  # type: ignore[arg-type]
