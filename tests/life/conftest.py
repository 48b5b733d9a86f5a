"""life's shared fixtures: the synthetic personas (tests/life/life_data.py)."""

from __future__ import annotations

import pytest
from life_data import Personas, personas_in


@pytest.fixture(scope="session")
def life_personas(tmp_path_factory: pytest.TempPathFactory) -> Personas:
    """make_persona.py output per seed, generated once per session (skips without ../shared)."""
    return personas_in(tmp_path_factory.mktemp("life-personas"))
