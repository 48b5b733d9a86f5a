"""Coding-agent fixtures: a tiny buggy project and an agent on a scripted model."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from agent_helpers import BUGGY, SANDBOXES, MakeAgent

from smallhold.apps.code import APP, approval
from smallhold.apps.code.agent import Agent
from smallhold.apps.code.sandbox import Limits
from smallhold.kit import Home, Overrides, ScriptedIO
from smallhold.runtime.backends.scripted import ScriptedBackend
from smallhold.store.handle import VaultHandle
from smallhold.store.memory.store import TextEmbedder


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "calc"
    root.mkdir()
    (root / "calc.py").write_text(BUGGY)
    (root / "test_calc.py").write_text("from calc import add\n\n\ndef test_add():\n"
                                       "    assert add(2, 3) == 5\n\n\ndef test_zero():\n"
                                       "    assert add(0, 0) == 0\n")
    return root



@pytest.fixture
def make_agent(vault: VaultHandle, embedder: TextEmbedder) -> Iterator[MakeAgent]:
    """Agents on a home with the test's vault, a scripted model and a hashing embedder,
    in the real sandbox when bubblewrap is installed (CI) and a stand-in otherwise."""
    with ExitStack() as homes:
        def make(backend: ScriptedBackend) -> Agent:
            home = homes.enter_context(Home.open(app=APP, overrides=Overrides(
                backend=backend, embedder=embedder, vault=vault, io=ScriptedIO())))
            return Agent.on(home, limits=Limits(wall_seconds=30), sandboxes=SANDBOXES,
                            decider=approval.DenyAll())
        yield make


