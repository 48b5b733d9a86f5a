"""Shared fixtures: every test gets its own SMALLHOLD_HOME, and real models are found once."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from smallhold.config import Settings, load_settings
from smallhold.paths import Paths, resolve_paths

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
