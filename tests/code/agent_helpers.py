"""Helpers for the agent tests: replies of a scripted model, and a task for a project."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from smallhold.apps.code.models import Task
from smallhold.apps.code.sandbox import Limits, Runner, SandboxFactory, SandboxResult, bubblewrap
from smallhold.apps.code.testing import default_command
from smallhold.runtime.backends.scripted import ScriptedBackend
from smallhold.runtime.types import ChatRequest

if TYPE_CHECKING:
    from smallhold.apps.code.agent import Agent

class HostRunner:
    """Test only: runs a test's own fixed project unconfined, where bubblewrap is absent.

    The agent loop's tests are about the loop, not containment (tests/code/test_sandbox.py
    and tests/security cover that on the real sandbox); this lets them run on a machine
    without bubblewrap. CI has bubblewrap, so there they run on the real sandbox.
    """

    def __init__(self, project: Path, python: str, limits: Limits) -> None:
        self.project, self.python, self.limits = project, python, limits

    def check(self) -> None:
        return None

    def run(self, command: Sequence[str], *, network: bool = False,
            limits: Limits | None = None) -> SandboxResult:
        limits = limits or self.limits
        started = time.perf_counter()
        env = {"PATH": f"{Path(self.python).parent}:/usr/bin:/bin", "HOME": str(self.project),
               "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8"}
        proc = subprocess.Popen(list(command), cwd=self.project, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
        try:
            out, err = proc.communicate(timeout=limits.wall_seconds)
            timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            timed_out = True
        return SandboxResult(tuple(command), proc.returncode, out, err,
                             time.perf_counter() - started, timed_out=timed_out,
                             network=network)


def host_runner(project: Path, python: str, limits: Limits) -> Runner:
    return HostRunner(project, python, limits)


# The real sandbox where it can run (CI installs bubblewrap), the stand-in elsewhere.
SANDBOXES: SandboxFactory = bubblewrap if shutil.which("bwrap") else host_runner

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None,
                                 reason="bubblewrap is not installed (scripts/setup.sh does it)")
BUGGY = "def add(a, b):\n    return a - b\n"
FIXED = "def add(a, b):\n    return a + b\n"
WRONG = "def add(a, b):\n    return a * b\n"


def edit(path: str, content: str, diagnosis: str = "") -> str:
    """An edit reply the way coder models write one: prose (a repair's diagnosis line), a
    header, a fenced block."""
    lead = f"Diagnosis: {diagnosis}" if diagnosis else "Here is the change."
    return f"{lead}\n\nFILE: {path}\n```python\n{content}```\n"


def scripted(replies: list[str]) -> ScriptedBackend:
    """The model's replies in order; the last one repeats."""
    seen = [0]

    def reply(request: ChatRequest) -> str:
        index = seen[0]
        seen[0] += 1
        return replies[min(index, len(replies) - 1)]

    return ScriptedBackend(reply=reply)


def prompt(backend: ScriptedBackend, index: int) -> str:
    """The text of the ``index``-th request the model was sent."""
    return " ".join(m.content for m in backend.requests[index].messages)


MakeAgent = Callable[[ScriptedBackend], "Agent"]


def task_for(project: Path, description: str = "fix add", **extra: object) -> Task:
    return Task(description=description, project=str(project),
                test_command=default_command(project, sys.executable), python=sys.executable,
                **{"timeout_s": 30, **extra})  # type: ignore[arg-type]
