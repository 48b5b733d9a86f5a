"""What a media file holds, from ffprobe, and its content hash.

The hash (not the path) is the file's identity: a renamed or moved file keeps its analysis,
and an edited file gets a new one. ffprobe's verdict decides what "not a video" means, so
that a PNG renamed .mp4 and a truncated download both get a one-line :class:`MediaError`
instead of an analysis of garbage.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

from smallhold.apps.cut.errors import MediaError, ToolMissingError
from smallhold.apps.cut.models import MediaInfo
from smallhold.runtime.assets import sha256_file

INSTALL = "apt-get install ffmpeg (Debian/Ubuntu; scripts/setup.sh does it), or your OS's ffmpeg"
PROBE_TIMEOUT_S = 60


def tool(name: str) -> str:
    """The path of ffmpeg/ffprobe/melt, or a one-line error saying how to get it."""
    found = shutil.which(name)
    if found is None:
        package = "melt" if name == "melt" else "ffmpeg"
        raise ToolMissingError(f"{name} is not installed; cut needs it: apt-get install "
                               f"{package} (scripts/setup.sh installs it).")
    return found


def _rate(text: str | None) -> float:
    try:
        value = Fraction(text or "0")
    except (ValueError, ZeroDivisionError):
        return 0.0
    return float(value) if value > 0 else 0.0


def _rotation(stream: dict[str, Any]) -> int:
    """The display rotation ffprobe reports (phones record portrait video as landscape plus
    this); only whether it is a quarter turn matters here, since ffmpeg applies it when it
    decodes, and the sign convention has changed between ffmpeg versions."""
    for side in stream.get("side_data_list", []) or []:
        if "rotation" in side:
            return int(float(side["rotation"])) % 360
    tag = (stream.get("tags") or {}).get("rotate")
    return int(tag) % 360 if tag and str(tag).lstrip("-").isdigit() else 0


def probe(path: Path) -> MediaInfo:
    """ffprobe ``path``: streams, size, rotation, frame rate. Raises :class:`MediaError` for
    anything that is not audio or video ffmpeg can read."""
    if not path.is_file():
        raise MediaError(f"{path} is not a file.")
    argv = [tool("ffprobe"), "-v", "error", "-print_format", "json", "-show_format",
            "-show_streams", str(path)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S,
                              check=False)
    except subprocess.TimeoutExpired as exc:
        raise MediaError(f"ffprobe took over {PROBE_TIMEOUT_S} s on {path.name}; the file may "
                         "be on a stalled disk or damaged.") from exc
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["unreadable"])[-1]
        raise MediaError(f"{path.name} is not a media file ffmpeg can read ({reason}).")
    data = json.loads(done.stdout or "{}")
    streams = data.get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video"
                  and not (s.get("disposition") or {}).get("attached_pic")), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    if video is None and audio is None:
        raise MediaError(f"{path.name} holds no audio or video stream.")
    fmt = data.get("format", {})
    duration = float(fmt.get("duration") or (video or audio or {}).get("duration") or 0)
    info = MediaInfo(name=path.name, sha256=sha256_file(path), size_bytes=path.stat().st_size,
                     duration_s=duration, container=str(fmt.get("format_name", "")))
    if video is not None:
        rotation = _rotation(video)
        width, height = int(video.get("width", 0)), int(video.get("height", 0))
        if rotation in (90, 270):
            width, height = height, width
        average, nominal = _rate(video.get("avg_frame_rate")), _rate(video.get("r_frame_rate"))
        info = info.model_copy(update={
            "has_video": True, "width": width, "height": height, "rotation": rotation,
            "fps": average or nominal, "video_codec": str(video.get("codec_name", "")),
            "variable_frame_rate": bool(average and nominal and abs(average - nominal) > 0.01
                                        * nominal)})
        if width <= 0 or height <= 0:
            raise MediaError(f"{path.name}'s video stream has no picture size; it is damaged.")
    if audio is not None:
        info = info.model_copy(update={
            "has_audio": True, "audio_codec": str(audio.get("codec_name", "")),
            "sample_rate": int(audio.get("sample_rate") or 0),
            "channels": int(audio.get("channels") or 0)})
    return info


__all__ = ["INSTALL", "probe", "tool"]
