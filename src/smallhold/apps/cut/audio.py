"""cut's ears without a model: loudness, silence, speech, music and beats of a file's audio.

One ffmpeg process decodes the first audio stream once and splits it: one branch goes
through ``ebur128`` (EBU R128 integrated loudness, loudness range and true peak, with its
summary written to stderr, which goes to a temporary file), the other is resampled to 16 kHz
mono float32 and streamed to us through a pipe in 1-s blocks. Each block is reduced to
per-frame features (``audiofeatures.FeatureStream``) and dropped, so memory stays bounded for
any length. ffmpeg's ``ebur128`` was chosen over pyloudnorm because it streams, measures true
peak (4x oversampled) and adds no dependency (pyloudnorm needs scipy and the whole signal in
memory, and gives no true peak).
"""

from __future__ import annotations

import itertools
import re
import shutil
import statistics
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from smallhold.apps.cut.audiofeatures import (
    FPS,
    RATE,
    FeatureStream,
    onset_peaks,
    silent_runs,
    speech_runs,
    tempo,
    track_beats,
)
from smallhold.apps.cut.errors import MediaError, ToolMissingError
from smallhold.apps.cut.models import AudioAnalysis, Span
from smallhold.apps.cut.music import music_spans

SILENCE_DB = -50.0  # dBFS of the 10-ms RMS under which audio counts as silent
MIN_SILENCE_S = 0.5
BLOCK_SAMPLES = RATE  # one second per read
BEAT_PIECE_S = 30.0
_INSTALL = "install it with `sudo apt-get install ffmpeg` (it brings ffprobe)"


def require_ffmpeg() -> tuple[str, str]:
    """The paths of ffmpeg and ffprobe, or ToolMissingError saying how to install them."""
    ffmpeg, ffprobe = shutil.which("ffmpeg"), shutil.which("ffprobe")
    if ffmpeg is None or ffprobe is None:
        missing = "ffmpeg" if ffmpeg is None else "ffprobe"
        raise ToolMissingError(f"{missing} is not installed: {_INSTALL}.")
    return ffmpeg, ffprobe


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else "no message"


def has_audio(path: Path, ffprobe: str) -> bool:
    """Whether ffprobe finds an audio stream; MediaError when it cannot read the file."""
    done = subprocess.run(
        [ffprobe, "-v", "error", "-select_streams", "a", "-show_entries", "stream=index",
         "-of", "csv=p=0", str(path)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise MediaError(f"ffmpeg cannot read {path.name}: it is not a media file, or it is "
                         f"truncated or damaged ({_last_line(done.stderr)}); check the file "
                         "or export it again.")
    return bool(done.stdout.strip())


_SUMMARY = {
    "loudness_lufs": re.compile(r"Integrated loudness:\s+I:\s+(-?[\d.]+|-inf) LUFS", re.S),
    "loudness_range_lu": re.compile(r"Loudness range:\s+LRA:\s+(-?[\d.]+) LU", re.S),
    "true_peak_dbtp": re.compile(r"True peak:\s+Peak:\s+(-?[\d.]+|-inf) dBFS", re.S),
}


def parse_ebur128(log: str) -> dict[str, float | None]:
    """The summary numbers of ffmpeg's ebur128 filter; None where it measured nothing
    (integrated loudness of pure silence is -70 LUFS, the gate, and is reported as None)."""
    tail = log[log.rfind("Summary:"):] if "Summary:" in log else ""
    out: dict[str, float | None] = {}
    for key, pattern in _SUMMARY.items():
        found = pattern.search(tail)
        value = None if found is None or found.group(1) == "-inf" else float(found.group(1))
        out[key] = value
    if out["loudness_lufs"] is not None and out["loudness_lufs"] <= -70.0:
        out["loudness_lufs"] = None
    return out


def _command(ffmpeg: str, path: Path) -> list[str]:
    graph = ("[0:a:0]asplit=2[m][f];[m]ebur128=peak=true:framelog=verbose[l];"
             f"[f]aresample={RATE},aformat=sample_fmts=flt:channel_layouts=mono[s]")
    return [ffmpeg, "-nostdin", "-hide_banner", "-nostats", "-v", "info", "-i", str(path),
            "-filter_complex", graph, "-map", "[l]", "-f", "null", "-",
            "-map", "[s]", "-f", "f32le", "pipe:1"]


def decode_features(path: Path, duration_s: float, *, vad: bool = True,
                    progress: Callable[[float], None] | None = None,
                    ) -> tuple[FeatureStream, dict[str, float | None]]:
    """Stream the first audio stream through ffmpeg into a FeatureStream; with the R128
    summary. MediaError when ffmpeg fails before giving any audio."""
    ffmpeg, _ = require_ffmpeg()
    stream = FeatureStream(vad=vad)
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(_command(ffmpeg, path), stdout=subprocess.PIPE, stderr=log)
        assert proc.stdout is not None
        try:
            while chunk := proc.stdout.read(BLOCK_SAMPLES * 4):
                usable = len(chunk) // 4 * 4
                stream.feed(np.frombuffer(chunk[:usable], dtype="<f4"))
                if progress and duration_s > 0:
                    progress(min(1.0, stream.samples / RATE / duration_s))
        finally:
            proc.stdout.close()
            code = proc.wait()
        log.seek(0)
        text = log.read().decode("utf-8", "replace")
    if code != 0 and stream.samples == 0:
        raise MediaError(f"ffmpeg could not decode the audio of {path.name} "
                         f"({_last_line(text)}); check the file or re-export it.")
    return stream, parse_ebur128(text)


def analyse_audio(path: Path, duration_s: float, *,
                  progress: Callable[[float], None] | None = None) -> AudioAnalysis:
    """Loudness, silences, speech, music, beats and tempo of the file's first audio stream.

    A file without audio gives an empty analysis (the caller's probe says why); a file that
    is not media raises MediaError; a truncated file is analysed as far as it decodes.
    """
    _, ffprobe = require_ffmpeg()
    if not has_audio(path, ffprobe):
        return AudioAnalysis()
    stream, loudness = decode_features(path, duration_s, progress=progress)
    feats = stream.arrays()
    end = stream.samples / RATE
    silences = silent_runs(feats["rms"], SILENCE_DB, MIN_SILENCE_S)
    speech = speech_runs(feats["speech_prob"])
    music = music_spans(feats, speech)
    onsets = onset_peaks(feats["flux"])
    beats: list[float] = []
    bpms: list[tuple[float, float]] = []
    for a, b in music:
        # pieces of at most 30 s, each with its own tempo and phase: a grid laid over a
        # whole song would drift off a live band's beats
        pieces = max(1, round((b - a) / BEAT_PIECE_S))
        edges = np.linspace(a, b, pieces + 1)
        for lo_s, hi_s in itertools.pairwise(edges):
            bpm, _ = tempo(feats["flux"][int(lo_s * FPS):int(hi_s * FPS)])
            for t in track_beats(onsets, float(lo_s), float(hi_s), bpm):
                if not beats or t - beats[-1] > 0.1:
                    beats.append(t)
            bpms.append((bpm, float(hi_s - lo_s)))
    overall = statistics.median_high([b for b, _ in bpms]) if bpms else 0.0
    if progress:
        progress(1.0)
    return AudioAnalysis(
        loudness_lufs=loudness["loudness_lufs"],
        loudness_range_lu=loudness["loudness_range_lu"],
        true_peak_dbtp=loudness["true_peak_dbtp"],
        silences=[Span(start=round(a, 3), end=round(min(b, end), 3)) for a, b in silences],
        speech=[Span(start=round(a, 3), end=round(b, 3)) for a, b in speech],
        music=[Span(start=round(a, 3), end=round(b, 3)) for a, b in music],
        beats=[round(t, 3) for t in beats],
        tempo_bpm=round(overall, 1) if overall else None,
    )
