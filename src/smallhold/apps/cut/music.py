"""Music or not, per second of sound, from features that speech and music do not share.

Speech has gaps between syllables (many 10-ms frames far under the second's mean level),
Silero calls it voice, and its onsets are irregular. Music that an editor cuts to sustains
(few low-energy frames), is tonal (low spectral flatness), and its onsets repeat at a tempo
(a strong autocorrelation peak of the onset envelope at 60-200 bpm). A second counts as music
when Silero does not hear voice in it and either the rhythm is regular or the sound is
sustained and tonal with notes changing (a steady test tone is not music); runs of such
seconds are then stretched to the sound around them (up to the next silence or speech,
within one second) and kept when they last at least 2 s.
Speech over music stays speech: the transcript matters more to an edit than the bed under it.
"""

from __future__ import annotations

import numpy as np

from smallhold.apps.cut.audiofeatures import FPS, RATE, VAD_WINDOW, Floats, runs, tempo

MAX_VOICE = 0.3  # fraction of a second's VAD frames above 0.5 that still allows music
MIN_REGULARITY = 0.5
MAX_LOW_ENERGY = 0.15
MAX_FLATNESS = 0.1
MIN_CHANGE = 5.0  # 99th percentile of the flux around a second: a steady test tone has 0
MIN_MUSIC_S = 2.0
SILENT_DB = -50.0


def _window_is_music(feats: dict[str, Floats], w: int, silent: np.ndarray) -> bool:
    lo, hi = w * FPS, (w + 1) * FPS
    if silent[lo:hi].mean() > 0.5:
        return False
    prob = feats["speech_prob"]
    step = RATE / VAD_WINDOW
    voice = prob[int(w * step):int((w + 1) * step)]
    if len(voice) and float((voice >= 0.5).mean()) > MAX_VOICE:
        return False
    rms = feats["rms"][lo:hi]
    low_energy = float((rms < 0.5 * rms.mean()).mean())
    flatness = float(feats["flatness"][lo:hi][~silent[lo:hi]].mean())
    context = feats["flux"][max(0, lo - 3 * FPS // 2):hi + 3 * FPS // 2]
    _, regularity = tempo(context)
    changing = len(context) > 0 and float(np.percentile(context, 99)) > MIN_CHANGE
    sustained = low_energy < MAX_LOW_ENERGY and flatness < MAX_FLATNESS and changing
    return regularity >= MIN_REGULARITY or sustained


def music_spans(feats: dict[str, Floats],
                speech: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Music spans (s) from the stream's features, given its speech spans."""
    rms = feats["rms"]
    count = len(rms) // FPS
    if count == 0:
        return []
    silent = 20 * np.log10(np.maximum(rms, 1e-10)) < SILENT_DB
    is_music = np.array([_window_is_music(feats, w, silent) for w in range(count)])
    blocked = silent.copy()  # frames a music span may not grow into: silence and speech
    for a, b in speech:
        blocked[int(a * FPS):int(np.ceil(b * FPS))] = True
    out: list[tuple[float, float]] = []
    for a, b in runs(is_music):
        start, end = a * FPS, min(b * FPS, len(rms))
        floor = max(0, start - FPS)
        while start > floor and not blocked[start - 1]:
            start -= 1
        ceiling = min(len(rms), end + FPS)
        while end < ceiling and not blocked[end]:
            end += 1
        while start < end and silent[start]:
            start += 1
        while end > start and silent[end - 1]:
            end -= 1
        if (end - start) / FPS >= MIN_MUSIC_S:
            out.append((start / FPS, end / FPS))
    return out
