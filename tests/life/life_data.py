"""Synthetic personas for life's tests: ``make_persona.py`` output and its ground truth.

The generator lives in the shared data folder beside the repository (``../shared``), not in
it; when that folder is absent (a bare checkout), the tests that need a persona are skipped
with the reason, and the small hand-written inputs still run. Each (seed, days) is generated
once per session: the script takes about a second and gives the same bytes for a seed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

SHARED = Path(__file__).resolve().parents[3] / "shared"
MAKE_PERSONA = SHARED / "data" / "life" / "make_persona.py"

# every persona the generator has: Chicago (0, and 11 across the November DST change),
# Los Angeles (1), New York (2), both Berlin ones in EUR (5, 7); 0, 5 cross the spring change
SEEDS = (0, 1, 2, 5, 7, 11)


@dataclass(frozen=True)
class Persona:
    seed: int
    folder: Path
    truth: dict[str, Any]

    @property
    def calendar(self) -> Path:
        return self.folder / "calendar.ics"

    @property
    def mbox(self) -> Path:
        return self.folder / "mail.mbox"

    @property
    def timezone(self) -> str:
        return str(self.truth["persona"]["timezone"])


@dataclass
class Personas:
    """Generates personas on first use into one session folder."""

    root: Path
    _made: dict[tuple[int, int], Persona] = field(default_factory=dict)

    def get(self, seed: int, days: int = 120) -> Persona:
        if (seed, days) not in self._made:
            folder = self.root / f"seed{seed}-days{days}"
            subprocess.run([sys.executable, str(MAKE_PERSONA), str(folder), "--seed", str(seed),
                            "--days", str(days)], check=True, capture_output=True, timeout=120)
            truth = json.loads((folder / "ground_truth.json").read_text(encoding="utf-8"))
            self._made[(seed, days)] = Persona(seed, folder, truth)
        return self._made[(seed, days)]


def personas_in(root: Path) -> Personas:
    """The session's persona maker, or a skip when the shared generator is not there."""
    if not MAKE_PERSONA.is_file():
        pytest.skip(f"life's persona generator is not at {MAKE_PERSONA} (the shared data "
                    "folder beside the repository is absent)")
    return Personas(root)


def smallhold_json(*args: str) -> dict[str, Any]:
    """Run ``smallhold ARGS --json`` in-process; its parsed output (the command must work)."""
    from click.testing import CliRunner

    from smallhold.cli import main

    done = CliRunner().invoke(main, [*args, "--json"])
    assert done.exit_code == 0, done.output
    parsed: dict[str, Any] = json.loads(done.stdout)
    return parsed
