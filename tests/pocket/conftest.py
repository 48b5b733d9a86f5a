"""Pocket fixtures: a pocket on a scripted runtime (vault and embedder: tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from smallhold.apps.pocket.assistant import Pocket
from smallhold.config import Settings
from smallhold.paths import Paths
from smallhold.runtime.backends.scripted import ScriptedBackend
from smallhold.runtime.runtime import Runtime
from smallhold.store.handle import VaultHandle
from smallhold.store.memory.store import TextEmbedder

MakePocket = Callable[[ScriptedBackend], Pocket]


@pytest.fixture
def make_pocket(vault: VaultHandle, settings: Settings, paths: Paths,
                embedder: TextEmbedder) -> MakePocket:
    """A pocket on ``vault`` whose runtime answers from the given scripted backend."""
    def make(backend: ScriptedBackend) -> Pocket:
        return Pocket(Runtime(settings, paths, backend=backend, app="pocket"), vault,
                      embedder)
    return make
