"""A contact sheet: one thumbnail per shot with its timecode and look, as a PNG.

The analysis keeps numbers, not pictures, so the thumbnails are grabbed again here: one
seek per shot (its middle frame) through ffmpeg, which costs a second or two for a short
film and keeps the vault free of image data. The sheet is written where the user asks (it
shows their footage: it is their file to keep or delete), never into the profile.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from smallhold.apps.cut.errors import MediaError
from smallhold.apps.cut.models import Analysis, Shot
from smallhold.apps.cut.probe import tool

THUMB_W = 240
COLUMNS = 4
CAPTION_H = 58
PAD = 10
BACKGROUND = (24, 26, 30)
TEXT = (230, 232, 236)
MUTED = (150, 156, 166)


def _frame_at(path: Path, seconds: float, width: int, height: int) -> Image.Image:
    argv = [tool("ffmpeg"), "-nostdin", "-v", "error", "-ss", f"{max(0.0, seconds):.3f}",
            "-i", str(path), "-map", "0:v:0", "-frames:v", "1",
            "-vf", f"scale={width}:{height}:flags=area,format=rgb24", "-f", "rawvideo", "-"]
    done = subprocess.run(argv, capture_output=True, timeout=60, check=False)
    raw = done.stdout
    if len(raw) < width * height * 3:
        return Image.new("RGB", (width, height), (60, 60, 60))  # past the end: a grey tile
    pixels = np.frombuffer(raw[:width * height * 3], np.uint8).reshape(height, width, 3)
    return Image.fromarray(pixels, "RGB")


def _caption(shot: Shot, fps: float) -> tuple[str, str]:
    from smallhold.apps.cut.shots import timecode

    head = f"#{shot.index + 1}  {timecode(shot.start_frame, fps)}  {shot.end_s - shot.start_s:.1f}s"
    look = shot.look
    if look is None:
        return head, ""
    faces = f", {len(look.faces)} face(s)" if look.faces else ""
    return head, (f"{look.exposure} L{look.luma_mean:.0f} C{look.contrast:.0f} "
                  f"S{look.saturation:.2f} {look.colour_temperature_k:.0f}K{faces}")


def contact_sheet(path: Path, analysis: Analysis, out: Path, *, columns: int = COLUMNS) -> Path:
    """Write the sheet for ``analysis`` of ``path`` to ``out`` (a .png); returns ``out``."""
    media = analysis.media
    if not media.has_video or not analysis.shots:
        raise MediaError(f"{media.name} has no shots to show (no video stream).")
    width = THUMB_W
    height = max(2, round(media.height * width / max(media.width, 1)))
    height -= height % 2
    rows = -(-len(analysis.shots) // columns)
    sheet = Image.new("RGB", (PAD + columns * (width + PAD),
                              PAD + 34 + rows * (height + CAPTION_H + PAD)), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    title = ImageFont.load_default(size=18)
    small = ImageFont.load_default(size=13)
    draw.text((PAD, PAD), f"{media.name}: {len(analysis.shots)} shots, "
              f"{len(analysis.scenes)} scenes, {media.duration_s:.1f} s", fill=TEXT, font=title)
    for i, shot in enumerate(analysis.shots):
        x = PAD + (i % columns) * (width + PAD)
        y = PAD + 34 + (i // columns) * (height + CAPTION_H + PAD)
        middle = (shot.start_s + shot.end_s) / 2
        sheet.paste(_frame_at(path, middle, width, height), (x, y))
        head, look = _caption(shot, media.fps)
        draw.text((x, y + height + 4), head, fill=TEXT, font=small)
        draw.text((x, y + height + 22), look, fill=MUTED, font=small)
        colours = shot.look.dominant_colours if shot.look else []
        for k, colour in enumerate(colours[:3]):
            draw.rectangle((x + k * 22, y + height + 40, x + k * 22 + 18, y + height + 52),
                           fill=colour)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, "PNG", optimize=True)
    return out


__all__ = ["contact_sheet"]
