"""Decoded frames at analysis size, streamed from an ffmpeg subprocess.

Analysis never needs full resolution: every frame is scaled inside ffmpeg (area filter, with
rotation metadata applied) to about 320 pixels wide and read one at a time as RGB, so memory
stays a few frames whatever the file's length or resolution (a 4K file costs ffmpeg's
decoder, not us). Every decoded frame is kept in order (``-fps_mode passthrough``: no
frame is dropped or duplicated to fit a nominal rate), and its presentation time comes from
ffmpeg's ``showinfo``, so variable-frame-rate phone footage gets true times.
"""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from smallhold.apps.cut.errors import MediaError
from smallhold.apps.cut.models import MediaInfo
from smallhold.apps.cut.probe import tool

ANALYSIS_WIDTH = 320
_PTS = re.compile(rb"pts_time:\s*(-?[0-9.]+)")


def analysis_size(info: MediaInfo, width: int = ANALYSIS_WIDTH) -> tuple[int, int]:
    """(width, height) at analysis size: ``width`` wide (never upscaled), even sides."""
    w = min(width, info.width) or width
    h = max(2, round(info.height * w / max(info.width, 1)))
    return w - w % 2, h - h % 2


@dataclass
class FrameStream:
    """Iterate for ``(index, time_s, rgb)``; ``errors`` holds what ffmpeg complained about."""

    path: Path
    size: tuple[int, int]
    fps: float
    errors: list[str] = field(default_factory=list)
    _times: list[float] = field(default_factory=list)

    def __iter__(self) -> Iterator[tuple[int, float, NDArray[np.uint8]]]:
        width, height = self.size
        argv = [tool("ffmpeg"), "-nostdin", "-hide_banner", "-loglevel", "info",
                "-i", str(self.path), "-map", "0:v:0", "-an", "-sn", "-dn",
                "-fps_mode", "passthrough",
                "-vf", f"scale={width}:{height}:flags=area,format=rgb24,showinfo",
                "-f", "rawvideo", "-"]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL)
        assert proc.stdout is not None and proc.stderr is not None
        reader = threading.Thread(target=self._read_log, args=(proc.stderr,), daemon=True)
        reader.start()
        frame_bytes = width * height * 3
        index = 0
        try:
            while True:
                raw = proc.stdout.read(frame_bytes)
                if len(raw) < frame_bytes:
                    break
                rgb = np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3)
                yield index, self._time(index, reader), rgb
                index += 1
        finally:
            proc.stdout.close()
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            reader.join(timeout=5)
        if index == 0:
            detail = self.errors[-1] if self.errors else "no frame could be decoded"
            raise MediaError(f"{self.path.name} has no decodable video ({detail}).")

    def _time(self, index: int, reader: threading.Thread) -> float:
        """The frame's presentation time; showinfo's line can trail the frame's bytes a
        little, so wait for it briefly, else fall back to index / fps."""
        for _ in range(200):
            if len(self._times) > index or not reader.is_alive():
                break
            threading.Event().wait(0.001)
        if len(self._times) > index:
            return self._times[index] - (self._times[0] if self._times else 0.0)
        return index / self.fps if self.fps else 0.0

    def _read_log(self, stream: object) -> None:
        for line in iter(stream.readline, b""):  # type: ignore[attr-defined]
            found = _PTS.search(line)
            if found is not None and b"Parsed_showinfo" in line:
                self._times.append(float(found.group(1)))
            elif line.startswith((b"[", b"Error", b"error")) and b"showinfo" not in line:
                text = line.decode("utf-8", "replace").strip()
                if "error" in text.lower() or "invalid" in text.lower():
                    self.errors.append(text[:300])


def frames(path: Path, info: MediaInfo, width: int = ANALYSIS_WIDTH) -> FrameStream:
    if not info.has_video:
        raise MediaError(f"{info.name} has no video stream (audio only); shots and look "
                         "need pictures.")
    return FrameStream(path, analysis_size(info, width), info.fps)


__all__ = ["ANALYSIS_WIDTH", "FrameStream", "analysis_size", "frames"]
