"""Short clips made by ffmpeg at test time (nothing large is committed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None,
                                  reason="ffmpeg is not installed (scripts/setup.sh does it)")


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-y", "-v", "error", *args], check=True, timeout=120)


def three_shots(path: Path, *, audio: bool = True, size: str = "320x180",
                extra: tuple[str, ...] = ()) -> Path:
    """Three 2-second shots (testsrc2, smptebars, mandelbrot) joined by hard cuts at frames
    50 and 100, at 25 fps, with a tone under it unless ``audio`` is False."""
    sources = ["testsrc2", "smptebars", "mandelbrot"]
    inputs: list[str] = []
    for source in sources:
        inputs += ["-f", "lavfi", "-t", "2", "-i", f"{source}=rate=25:size={size}"]
    chain = "".join(f"[{i}:v]format=yuv420p,setsar=1[v{i}];" for i in range(3))
    graph = f"{chain}[v0][v1][v2]concat=n=3:v=1:a=0[v]"
    sound = ["-f", "lavfi", "-t", "6", "-i", "sine=frequency=330:sample_rate=48000"] \
        if audio else []
    maps = ["-map", "[v]"] + (["-map", "3:a", "-c:a", "aac"] if audio else [])
    ffmpeg(*inputs, *sound, "-filter_complex", graph, *maps, "-c:v", "libx264",
           "-preset", "ultrafast", *extra, str(path))
    return path
