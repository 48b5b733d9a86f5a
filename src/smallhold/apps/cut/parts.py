"""The measuring parts of an analysis, built for a home: look, audio, speech.

Kept apart from :mod:`.analyze` so the analysis itself takes plain callables (tests pass
their own) and only this module knows where the Whisper model comes from.
"""

from __future__ import annotations

from collections.abc import Callable

from smallhold.apps.cut.analyze import AudioAnalyser, LookMeterLike, Transcriber
from smallhold.apps.cut.audio import analyse_audio
from smallhold.apps.cut.look import LookMeter
from smallhold.kit.home import Home


def measuring_parts(home: Home, *, speech: bool = True
                    ) -> tuple[Callable[[float], LookMeterLike], AudioAnalyser,
                               Transcriber | None, list[str]]:
    """(look meter factory, audio analyser, transcriber or None, notes for the user)."""
    notes: list[str] = []
    transcriber: Transcriber | None = None
    if speech:
        from smallhold.apps.cut.speech import transcriber_for

        transcriber, why = transcriber_for(home)
        if transcriber is None:
            notes.append(why)
    return LookMeter, analyse_audio, transcriber, notes


__all__ = ["measuring_parts"]
