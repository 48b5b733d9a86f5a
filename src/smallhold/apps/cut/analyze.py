"""One pass over a media file: shots, look, audio, speech; cached in the vault.

The video is decoded once, at analysis size, and every frame feeds both the shot
detector's signature and the look meter, so a file costs one decode whatever is measured.
The result is written to the vault only when the whole analysis has finished, in one
record keyed by the file's content hash and :data:`ANALYSER` (a killed or failed analysis
leaves nothing half-written, and a second ``analyze`` of the same bytes is a lookup; a new
analyser version analyses again).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from smallhold.apps.cut import shots as shot_detection
from smallhold.apps.cut.errors import AnalysisNotFound
from smallhold.apps.cut.frames import frames
from smallhold.apps.cut.models import (
    Analysis,
    AudioAnalysis,
    Boundary,
    Look,
    MediaInfo,
    Scene,
    Shot,
    Span,
    Transcript,
)
from smallhold.apps.cut.probe import probe
from smallhold.apps.cut.story import beats
from smallhold.errors import RecordNotFoundError
from smallhold.store.collections import Collection
from smallhold.store.handle import VaultHandle

ANALYSER = "cut-1"  # bump when what an analysis contains or how it is measured changes
ANALYSES = "cut_analyses"
SCENE_COLOUR = 0.45  # shots whose colour distributions differ less belong to one scene
SCENE_GAP_S = 60.0  # ...if the scene is not already longer than this

Progress = Callable[[str, float], None]  # (stage, fraction done)


class LookMeterLike(Protocol):
    def add(self, index: int, rgb: NDArray[np.uint8]) -> None: ...

    def shot(self, start_frame: int, end_frame: int) -> Look: ...

    def summary(self, look: Look) -> str: ...

    @property
    def notes(self) -> list[str]:
        """What the meter could not measure (a missing face model), for the analysis."""
        ...


AudioAnalyser = Callable[[Path, float], AudioAnalysis]
Transcriber = Callable[[Path], Transcript]
Describer = Callable[[Analysis], Analysis]  # fills scene and beat descriptions (the model)


@dataclass
class Analyzer:
    """Analyses files into the vault of one profile.

    ``look``, ``audio`` and ``transcribe`` are the measuring parts (the real ones by
    default; tests pass their own, and ``--no-speech`` passes no transcriber)."""

    handle: VaultHandle
    look: Callable[[float], LookMeterLike] | None = None
    audio: AudioAnalyser | None = None
    transcribe: Transcriber | None = None
    describe: Describer | None = None
    progress: Progress = lambda _stage, _fraction: None
    clock: Callable[[], float] = time.time
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.store = Collection(self.handle, ANALYSES, Analysis)

    @staticmethod
    def key(info: MediaInfo) -> str:
        return f"{info.sha256}:{ANALYSER}"

    def stored(self, path: Path) -> Analysis:
        """The stored analysis of ``path``'s bytes; :class:`AnalysisNotFound` if none."""
        info = probe(path)
        try:
            return self.store.get(self.key(info)).value
        except RecordNotFoundError:
            raise AnalysisNotFound(f"{path.name} has not been analysed yet (or changed since): "
                                   f"run `smallhold cut analyze {path}`.") from None

    def analyze(self, path: Path, *, force: bool = False) -> tuple[Analysis, bool]:
        """(the analysis, whether it was cached)."""
        started = time.perf_counter()
        info = probe(path)
        if not force:
            try:
                return self.store.get(self.key(info)).value, True
            except RecordNotFoundError:
                pass
        notes: list[str] = []
        analysis = Analysis(analyser=ANALYSER, media=info, created_at=self.clock())
        signature = None
        if info.has_video:
            analysis, signature = self._pictures(path, info, analysis)
        else:
            notes.append("no video stream: audio only, so no shots or look")
        if info.variable_frame_rate:
            notes.append("variable frame rate: boundary times are the frames' own "
                         "timestamps, frame numbers count decoded frames")
        if info.rotation:
            notes.append(f"rotated {info.rotation}° by its metadata: analysed as displayed")
        if info.has_audio:
            if self.audio is not None:
                self.progress("audio", 0.0)
                analysis.audio = self.audio(path, info.duration_s)
            if self.transcribe is not None:
                self.progress("speech", 0.0)
                analysis.transcript = self.transcribe(path)
            else:
                notes.append("speech not transcribed (no Whisper model, or --no-speech)")
        else:
            notes.append("no audio stream: no loudness, silence, music or speech")
        if signature is not None:
            speech = analysis.audio.speech if analysis.audio is not None else []
            analysis.scenes = scenes(analysis.shots, signature, speech)
        analysis.beats = beats(analysis)
        if self.describe is not None and analysis.scenes:
            self.progress("describing", 0.0)
            analysis = self.describe(analysis)
        analysis.notes = notes + analysis.notes
        analysis.seconds = round(time.perf_counter() - started, 3)
        self.store.put(analysis, self.key(info))
        self.progress("done", 1.0)
        return analysis, False

    def _pictures(self, path: Path, info: MediaInfo, analysis: Analysis
                  ) -> tuple[Analysis, shot_detection.Signature]:
        stream = frames(path, info)
        meter = self.look(info.fps) if self.look is not None else None
        times: list[float] = []
        expected = max(1, round(info.duration_s * info.fps)) if info.fps else 0

        def decoded() -> Iterator[NDArray[np.uint8]]:
            for index, at, rgb in stream:
                times.append(at)
                if meter is not None:
                    meter.add(index, rgb)
                if expected and index % 25 == 0:
                    self.progress("pictures", min(0.99, index / expected))
                yield rgb

        signature = shot_detection.signature_of(decoded())
        self.progress("pictures", 1.0)
        clock = np.asarray(times, np.float32)
        boundaries = shot_detection.detect(signature, info.fps, clock)
        count = len(times)
        analysis.media = info.model_copy(update={"frame_count": count})
        analysis.boundaries = boundaries
        analysis.shots = split(boundaries, count, clock)
        if meter is not None:
            for shot in analysis.shots:
                shot.look = meter.shot(shot.start_frame, shot.end_frame)
                shot.summary = meter.summary(shot.look)
        if meter is not None:
            analysis.notes.extend(meter.notes)
        if stream.errors:
            analysis.notes.append(f"the decoder reported {len(stream.errors)} problem(s), "
                                  f"first: {stream.errors[0]}")
        return analysis, signature


def split(boundaries: list[Boundary], count: int, times: NDArray[np.float32]) -> list[Shot]:
    """Shots between boundaries: each shot starts at a boundary's frame (the incoming
    shot's first frame) and ends the frame before the next one."""
    starts = [0] + [b.frame for b in boundaries if 0 < b.frame < count]
    out: list[Shot] = []
    for index, start in enumerate(starts):
        end = (starts[index + 1] - 1) if index + 1 < len(starts) else count - 1
        if end < start:
            continue
        last = float(times[end]) if end < len(times) else 0.0
        step = float(times[1] - times[0]) if len(times) > 1 else 0.0
        out.append(Shot(index=len(out), start_frame=start, end_frame=end,
                        start_s=round(float(times[start]), 4),
                        end_s=round(last + step, 4)))
    return out


def scenes(shots: list[Shot], signature: shot_detection.Signature,
           speech: Sequence[Span] = ()) -> list[Scene]:
    """Consecutive shots grouped by colour and by sound: a shot whose colour distribution
    is close to the scene's so far joins it (two angles of one room), and so does one cut
    to in the middle of someone speaking (a conversation's reverse shot, whatever its
    colours); otherwise a new scene starts (:mod:`.story` groups scenes into beats)."""
    out: list[Scene] = []
    current: list[Shot] = []
    mean: NDArray[np.float64] | None = None
    for shot in shots:
        colours = signature.hists[shot.start_frame:shot.end_frame + 1].astype(np.float64)
        hist = colours.mean(axis=0) if len(colours) else np.zeros(signature.hists.shape[1])
        near = mean is not None and 0.5 * float(np.abs(hist - mean).sum()) < SCENE_COLOUR
        near = near or _mid_speech(shot.start_s, speech)
        long = bool(current) and shot.start_s - current[0].start_s > SCENE_GAP_S
        if current and (not near or long):
            out.append(_scene(len(out), current))
            current, mean = [], None
        current.append(shot)
        mean = hist if mean is None else (mean * (len(current) - 1) + hist) / len(current)
    if current:
        out.append(_scene(len(out), current))
    return out


def _mid_speech(at: float, speech: Sequence[Span], margin: float = 0.3) -> bool:
    """Whether ``at`` falls inside a stretch of speech, not at its edge."""
    return any(span.start + margin < at < span.end - margin for span in speech)


def _scene(index: int, members: list[Shot]) -> Scene:
    return Scene(index=index, shots=[s.index for s in members], start_s=members[0].start_s,
                 end_s=members[-1].end_s)


__all__ = ["ANALYSER", "ANALYSES", "Analyzer", "Progress", "scenes", "split"]
