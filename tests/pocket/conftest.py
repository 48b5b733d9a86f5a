"""Pocket fixtures: a vault, a scripted runtime, and a deterministic bag-of-words embedder."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from smallhold.apps.pocket.assistant import Pocket
from smallhold.config import Settings
from smallhold.paths import Paths
from smallhold.runtime.backends.scripted import ScriptedBackend
from smallhold.runtime.runtime import Runtime
from smallhold.store import sqlcipher
from smallhold.store.handle import VaultHandle

_WORD = re.compile(r"[a-z0-9]+")
STOP = {"the", "a", "an", "is", "my", "of", "to", "and", "what", "user", "assistant", "i",
        "it", "in", "on", "for", "was", "you", "me", "that", "with", "about"}


class HashingEmbedder:
    """Words hashed into 384 dims: the same words give similar vectors, deterministically."""

    name = "test-hashing"
    dim = 384

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        out = np.zeros((len(texts), self.dim), np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                if word in STOP:
                    continue
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "big")
                out[row, h % self.dim] += 1.0 if (h >> 16) & 1 else -1.0
            norm = float(np.linalg.norm(out[row]))
            out[row] = out[row] / norm if norm else out[row]
        return out


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[VaultHandle]:
    path = tmp_path / "vault.db"
    handle = VaultHandle(sqlcipher.connect(path, os.urandom(32)), path=path, profile="test")
    yield handle
    handle.close()


MakePocket = Callable[[ScriptedBackend], Pocket]


@pytest.fixture
def make_pocket(vault: VaultHandle, settings: Settings, paths: Paths) -> MakePocket:
    """A pocket on ``vault`` whose runtime answers from the given scripted backend."""
    def make(backend: ScriptedBackend) -> Pocket:
        return Pocket(Runtime(settings, paths, backend=backend, app="pocket"), vault,
                      HashingEmbedder())
    return make


@pytest.fixture
def embedder() -> HashingEmbedder:
    return HashingEmbedder()
