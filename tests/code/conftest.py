"""Coding-agent fixtures: a tiny buggy project and an agent on a scripted model."""

from __future__ import annotations

from pathlib import Path

import pytest
from agent_helpers import BUGGY, MakeAgent

from smallhold.apps.code.agent import Agent
from smallhold.apps.code.memory import CodeMemory
from smallhold.apps.code.sandbox import Limits
from smallhold.config import Settings
from smallhold.paths import Paths
from smallhold.runtime.backends.scripted import ScriptedBackend
from smallhold.runtime.runtime import Runtime
from smallhold.store.handle import VaultHandle
from smallhold.store.memory.store import MemoryStore, TextEmbedder
from smallhold.trace import TraceLog


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
def make_agent(vault: VaultHandle, settings: Settings, paths: Paths,
               embedder: TextEmbedder) -> MakeAgent:
    def make(backend: ScriptedBackend) -> Agent:
        trace = TraceLog.open(paths, settings.profile)
        runtime = Runtime(settings, paths, backend=backend, trace=trace, app="code")
        return Agent(runtime, vault, CodeMemory(MemoryStore(vault, embedder)),
                     paths.data_dir / "runs", limits=Limits(wall_seconds=30))
    return make


