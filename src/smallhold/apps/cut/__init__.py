"""cut: "Cursor for video editors". Part 1: understand footage.

Layout: ``probe`` (ffprobe: what the file holds), ``frames`` (streaming decode at analysis
size through ffmpeg), ``shots`` (boundaries: cuts, dissolves, fades; pure numpy),
``look`` (exposure, colour, sharpness, motion, faces), ``audio`` (loudness, silence,
speech/music, beats), ``speech`` (Whisper through faster-whisper), ``analyze`` (the whole
pass, cached in the vault), ``sheet`` (contact sheet PNG), ``cli`` (``smallhold cut``).
This module only declares the app; it imports nothing heavy.
"""

from smallhold.apps.cut.errors import CutError
from smallhold.kit.spec import AppSpec, Command, Ref

APP = AppSpec(
    name="cut",
    summary="Understands footage (shots, speech, silence, music, look) and edits it.",
    errors=CutError,
    commands=[Command("cut", Ref("smallhold.apps.cut.cli:cut", extra="cut"),
                      "Video: analyse footage (shots, speech, look), contact sheets.")],
    extra="cut",
)

__all__ = ["APP"]
