"""Shared fixtures: every test gets its own SMALLHOLD_HOME, and real models are found once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from smallhold.config import Settings, load_settings
from smallhold.paths import Paths, resolve_paths

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(autouse=True)
def smallhold_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("SMALLHOLD_HOME", str(home))
    for key in list(__import__("os").environ):
        if key.startswith("SMALLHOLD_") and key != "SMALLHOLD_HOME":
            monkeypatch.delenv(key)
    return home


@pytest.fixture
def paths(smallhold_home: Path) -> Paths:
    return resolve_paths()


@pytest.fixture
def settings(paths: Paths) -> Settings:
    return load_settings(paths)


@pytest.fixture(scope="session")
def real_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One models dir for the session, so a split model is reassembled once, not per test."""
    yield tmp_path_factory.mktemp("models")


@pytest.fixture
def shared_data() -> Path:
    if not SHARED.exists():
        pytest.skip(f"{SHARED} is absent: the shared test data lives beside the repo")
    return SHARED / "data"
