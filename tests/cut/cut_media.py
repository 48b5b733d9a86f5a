"""Sound clips for cut's audio and speech tests, made at test time with ffmpeg and espeak-ng.

Every clip is a few seconds long and its ground truth is known by construction: digital
silence (exact zeros) between blocks, a struck note on every beat at 120 bpm, a tone
calibrated to -23 LUFS. Nothing large is committed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

RATE = 48_000
SHARED_MAKER = Path(__file__).resolve().parents[3] / "shared" / "data" / "video" / \
    "make_synthetic.py"

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None,
                                  reason="ffmpeg is not installed (scripts/setup.sh does it)")
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng is not installed (`apt-get install espeak-ng`)")


def run_ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-y", "-nostdin", "-v", "error", *args], check=True, timeout=120)


def speak(text: str, folder: Path) -> np.ndarray:
    """espeak-ng's voice for ``text`` at 48 kHz mono float32 (en-us, 155 wpm)."""
    wav = folder / "speech.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "155", "-w", str(wav), text],
                   check=True, timeout=60)
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(wav), "-ac", "1", "-ar",
                          str(RATE), "-f", "f32le", "-"], check=True, capture_output=True,
                         timeout=60).stdout
    samples = np.frombuffer(raw, dtype="<f4")
    loud = np.flatnonzero(np.abs(samples) > 10 ** (-38 / 20))
    return samples[loud[0]:loud[-1] + 1].copy()  # first to last audible sample, like shared/


def music(seconds: float, bpm: float = 120.0) -> tuple[np.ndarray, list[float]]:
    """A struck 880 Hz note on every beat over a 110 Hz bass, and the beat times."""
    t = np.arange(int(seconds * RATE)) / RATE
    period = 60.0 / bpm
    phase = np.mod(t, period)
    note = 0.4 * np.sin(2 * np.pi * 880 * t) * np.exp(-6 * phase)
    bass = 0.15 * np.sin(2 * np.pi * 110 * t)
    beats = [k * period for k in range(int(seconds / period + 1e-9)) if k * period < seconds]
    return (note + bass).astype(np.float32), beats


@dataclass
class Layout:
    """What a built clip holds, in seconds."""

    path: Path
    duration: float
    silences: list[tuple[float, float]] = field(default_factory=list)
    speech: list[tuple[float, float]] = field(default_factory=list)
    music: list[tuple[float, float]] = field(default_factory=list)
    beats: list[float] = field(default_factory=list)


def write_audio(samples: np.ndarray, path: Path, *codec: str) -> Path:
    """Encode 48 kHz mono float samples to ``path`` (WAV by default; ``codec`` e.g. aac)."""
    raw = path.with_name(path.name + ".f32")
    raw.write_bytes(samples.astype("<f4").tobytes())
    run_ffmpeg("-f", "f32le", "-ar", str(RATE), "-ac", "1", "-i", str(raw),
               *(codec or ("-c:a", "pcm_s16le")), str(path))
    raw.unlink()
    return path


def build(path: Path, blocks: list[tuple[str, Any]], *codec: str) -> Layout:
    """Concatenate blocks ("silence", seconds) / ("speech", samples) / ("music", seconds)."""
    parts: list[np.ndarray] = []
    layout = Layout(path=path, duration=0.0)
    now = 0.0
    for kind, value in blocks:
        if kind == "silence":
            piece = np.zeros(int(value * RATE), np.float32)
            layout.silences.append((now, now + len(piece) / RATE))
        elif kind == "speech":
            piece = value
            layout.speech.append((now, now + len(piece) / RATE))
        else:
            piece, beats = music(value)
            layout.music.append((now, now + len(piece) / RATE))
            layout.beats += [now + b for b in beats]
        parts.append(piece)
        now += len(piece) / RATE
    layout.duration = now
    write_audio(np.concatenate(parts), path, *codec)
    return layout


def calibrated_tone(path: Path, seconds: float = 6.0) -> Path:
    """A 1 kHz sine at -20 dBFS peak, mono: -23.0 LUFS by BS.1770 (a full-scale 1 kHz sine
    in one channel reads -3.01 LUFS), true peak -20 dBTP."""
    run_ffmpeg("-f", "lavfi", "-i", f"aevalsrc=0.1*sin(2*PI*1000*t):s={RATE}:d={seconds}",
               "-c:a", "pcm_s24le", str(path))
    return path


def video_only(path: Path, seconds: float = 1.0) -> Path:
    run_ffmpeg("-f", "lavfi", "-i", f"testsrc=duration={seconds}:size=160x120:rate=25",
               "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path))
    return path


def tone_video(path: Path, seconds: float = 4.0, *flags: str) -> Path:
    """A small H.264 + AAC file (a sine under a test pattern)."""
    run_ffmpeg("-f", "lavfi", "-i", f"testsrc=duration={seconds}:size=160x120:rate=25",
               "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
               "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
               "-c:a", "aac", "-shortest", *flags, str(path))
    return path


def synthetic_clip(folder: Path, seed: int = 0) -> tuple[Path, dict[str, Any]]:
    """shared/'s 23-s synthetic clip with its ground truth (skips when shared/ is absent)."""
    if not SHARED_MAKER.exists():
        pytest.skip(f"{SHARED_MAKER} is absent: the shared test data lives beside the repo")
    subprocess.run([sys.executable, str(SHARED_MAKER), str(folder), "--seed", str(seed)],
                   check=True, capture_output=True, timeout=300)
    video = folder / f"synthetic-s{seed}.mp4"
    return video, json.loads(video.with_suffix(".json").read_text())
