"""Shared fixtures: every test gets its own SMALLHOLD_HOME, and real models are found once."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from smallhold.config import Settings, load_settings
from smallhold.paths import Paths, resolve_paths
from smallhold.store import sqlcipher
from smallhold.store.handle import VaultHandle

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="session")
def shared_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Reassembled models for the whole run: a 1.1 GB file is built once, not per test."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture(autouse=True)
def smallhold_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                   shared_models_dir: Path) -> Path:
    home = tmp_path / "home"
    for key in list(os.environ):
        if key.startswith("SMALLHOLD_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("SMALLHOLD_HOME", str(home))
    monkeypatch.setenv("SMALLHOLD_MODELS_DIR", str(shared_models_dir))
    return home


@pytest.fixture(autouse=True)
def no_os_keyring() -> Iterator[None]:
    """Tests never read or write the developer's real keyring: a headless backend by default."""
    import keyring
    from keyring.backends import fail

    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    yield
    keyring.set_keyring(previous)


@pytest.fixture
def paths(smallhold_home: Path) -> Paths:
    return resolve_paths()


@pytest.fixture
def settings(paths: Paths) -> Settings:
    return load_settings(paths)


@pytest.fixture(scope="session")
def real_models_dir(shared_models_dir: Path) -> Path:
    return shared_models_dir


@pytest.fixture
def shared_data() -> Path:
    if not SHARED.exists():
        pytest.skip(f"{SHARED} is absent: the shared test data lives beside the repo")
    return SHARED / "data"


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


@pytest.fixture
def embedder() -> HashingEmbedder:
    return HashingEmbedder()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Name any non-daemon thread still alive when the run ends, with its stack: the
    interpreter waits for such threads at exit (a DBOS workflow blocked in ``recv`` until
    its timeout, say), and a CI job that passed then hangs with no clue why."""
    import sys
    import threading
    import traceback

    frames = sys._current_frames()
    for thread in threading.enumerate():
        if thread is threading.main_thread() or thread.daemon or not thread.is_alive():
            continue
        stack = "".join(traceback.format_stack(frames[thread.ident])) if thread.ident in \
            frames else "(no frame)\n"
        sys.stderr.write(f"\nthread {thread.name!r} is still running at the end of the "
                         f"tests; exit waits for it:\n{stack}")
