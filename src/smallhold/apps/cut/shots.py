"""Shot boundaries: hard cuts, dissolves and fades, from small colour thumbnails.

Pure numpy over per-frame features (:class:`Signature`), so it is tested without video.

Every frame is reduced to a 16x9 thumbnail in YCrCb (structure and colour, smooth under a
gradual change, unlike a binned histogram whose bins flip mid-dissolve) plus its luma mean
and spread. ``d(a, b)`` is the mean absolute difference of two thumbnails, 0..1.

- **Hard cut** at ``t``: ``d(t-1, t)`` stands far above the frame-to-frame differences
  around it (a ratio to the local median, so a shot that moves fast all along is not a cut),
  and the frames before and after stay apart: if any frame a little after ``t`` looks like
  a frame a little before it, the content came back, which is a flash (a photographer's
  strobe, a two-frame white flash) or a brief occlusion, not a cut.
- **Fade**: a run of black frames (mean luma near 0, no texture) with luma ramping down
  into it and/or up out of it. A short run between a ramp down and a ramp up is one fade
  through black; a long one is a black slate, a shot of its own, with a fade-out before and
  a fade-in after.
- **Dissolve**: over half a second either side of ``t`` the colour distribution changes a
  lot, far more than over the half-seconds before and after: a cross-fade replaces the
  colours, camera motion only moves them.

Each boundary gets a confidence from how far its evidence clears its threshold.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from smallhold.apps.cut.models import Boundary, BoundaryKind

THUMB = (16, 9)
HIST = (12, 3, 3)  # hue, saturation, value bins: where the colours are, not where they sit
HIST_BINS = HIST[0] * HIST[1] * HIST[2]
Floats = NDArray[np.float32]


@dataclass(frozen=True)
class Params:
    """Thresholds, tuned on the synthetic generator and PySceneDetect's test clip (see
    BENCHMARKS.md); held-out real footage measures them."""

    cut_min: float = 0.03  # least frame-to-frame difference a cut can have
    cut_ratio: float = 3.0  # times the local median difference
    local: int = 12  # frames either side for the local median
    flash_span: int = 6  # frames either side searched for content that came back
    flash_return: float = 0.35  # "came back": closer than this share of the jump
    black_luma: float = 14.0  # mean luma (0-255) of a black frame...
    black_spread: float = 10.0  # ...with at most this standard deviation
    ramp_min: float = 12.0  # luma a fade ramp must cover
    slate_s: float = 0.5  # a black run longer than this is a shot of its own
    dissolve_min: float = 0.5  # least colour-histogram change across a dissolve window
    dissolve_peak: float = 2.0  # times the change over the windows before and after
    window_s: float = 0.5  # dissolve window either side


@dataclass
class Signature:
    """What detection keeps of each frame: a thumbnail and luma statistics."""

    thumbs: Floats  # (n, 9, 16, 3) YCrCb in 0..1
    luma: Floats  # (n,) mean luma 0..255
    spread: Floats  # (n,) luma standard deviation
    hists: Floats  # (n, HIST_BINS) HSV colour histogram, each summing to 1


def signature_of(frames: Iterable[NDArray[np.uint8]]) -> Signature:
    """Reduce RGB frames (any size) to a :class:`Signature`; streaming, one frame at a time."""
    import cv2

    thumbs, luma, spread, hists = [], [], [], []
    for rgb in frames:
        small = cv2.resize(rgb, THUMB, interpolation=cv2.INTER_AREA)
        thumbs.append(cv2.cvtColor(small, cv2.COLOR_RGB2YCrCb).astype(np.float32) / 255.0)
        y = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        luma.append(float(y.mean()))
        spread.append(float(y.std()))
        hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
        hist = cv2.calcHist([hsv], [0, 1, 2], None, list(HIST), [0, 180, 0, 256, 0, 256])
        hists.append(hist.ravel() / max(float(hist.sum()), 1.0))
    if not thumbs:
        return Signature(np.zeros((0, THUMB[1], THUMB[0], 3), np.float32),
                         np.zeros(0, np.float32), np.zeros(0, np.float32),
                         np.zeros((0, HIST_BINS), np.float32))
    return Signature(np.stack(thumbs), np.asarray(luma, np.float32),
                     np.asarray(spread, np.float32), np.stack(hists).astype(np.float32))


def distance(thumbs: Floats, a: NDArray[np.intp] | int, b: NDArray[np.intp] | int
             ) -> NDArray[np.float64]:
    """Mean absolute thumbnail difference of frames ``a`` and ``b`` (arrays broadcast)."""
    diff: NDArray[np.float64] = np.abs(thumbs[a] - thumbs[b]).mean(axis=(-1, -2, -3)).astype(
        np.float64)
    return diff


def timecode(frame: int, fps: float) -> str:
    rate = max(1, round(fps or 25))
    seconds, frames = divmod(frame, rate)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}:{frames:02d}"


def _boundary(kind: BoundaryKind, frame: int, start: int, end: int, confidence: float,
              fps: float, times: Floats | None) -> Boundary:
    at = float(times[frame]) if times is not None and frame < len(times) else frame / (fps or 25)
    return Boundary(kind=kind, frame=frame, time_s=round(at, 4), timecode=timecode(frame, fps),
                    confidence=round(float(np.clip(confidence, 0.0, 1.0)), 3),
                    start_frame=start, end_frame=end)


def _steps(sig: Signature) -> NDArray[np.float64]:
    """``steps[t] = d(t-1, t)``; ``steps[0] = 0``."""
    n = len(sig.luma)
    steps = np.zeros(n, np.float64)
    if n > 1:
        idx = np.arange(1, n)
        steps[1:] = distance(sig.thumbs, idx - 1, idx)
    return steps


def _local_median(steps: NDArray[np.float64], t: int, span: int) -> float:
    around = np.r_[steps[max(1, t - span):t], steps[t + 1:t + span + 1]]
    return float(np.median(around)) if len(around) else 0.0


def _came_back(sig: Signature, t: int, jump: float, p: Params) -> bool:
    """Whether a frame shortly after ``t`` looks like one shortly before it."""
    n = len(sig.luma)
    before = np.arange(max(0, t - p.flash_span), t)
    after = np.arange(t, min(n, t + p.flash_span + 1))
    if len(before) == 0 or len(after) == 0:
        return False
    pairs = [(i, j) for i in before for j in after if j - i >= 2]
    if not pairs:
        return False
    a, b = np.array(pairs).T
    return bool(distance(sig.thumbs, a, b).min() < p.flash_return * jump)


def hard_cuts(sig: Signature, p: Params = Params()) -> list[tuple[int, float]]:
    """(frame, confidence) of every hard cut."""
    steps = _steps(sig)
    found: list[tuple[int, float]] = []
    for t in range(1, len(steps)):
        jump = steps[t]
        if jump < p.cut_min:
            continue
        ratio = jump / (_local_median(steps, t, p.local) + 0.004)
        if ratio < p.cut_ratio:
            continue
        if _came_back(sig, t, jump, p):
            continue
        if found and t - found[-1][0] <= 1:  # one cut spread over two frames: keep the larger
            if jump > steps[found[-1][0]]:
                found[-1] = (t, found[-1][1])
            continue
        confidence = min(1.0, 0.5 + 0.5 * min(ratio / (3 * p.cut_ratio), jump / 0.2))
        found.append((t, confidence))
    return found


def _black(sig: Signature, p: Params) -> NDArray[np.bool_]:
    return (sig.luma <= p.black_luma) & (sig.spread <= p.black_spread)


def _runs(mask: NDArray[np.bool_]) -> list[tuple[int, int]]:
    """Inclusive [start, end] of each run of True."""
    runs, start = [], None
    for i, value in enumerate(mask):
        if value and start is None:
            start = i
        elif not value and start is not None:
            runs.append((start, i - 1))
            start = None
    if start is not None:
        runs.append((start, len(mask) - 1))
    return runs


def _ramp(luma: Floats, edge: int, direction: int, limit: int, p: Params) -> int | None:
    """Walk away from a black run's ``edge`` while luma keeps rising (a fade): the frame
    where the ramp ends, or None if it rises by less than ``ramp_min`` (a hard edge)."""
    i, n = edge, len(luma)
    while 0 <= i + direction < n and abs(i + direction - edge) <= limit:
        if luma[i + direction] + 0.5 < luma[i]:
            break
        i += direction
        if abs(i - edge) >= 2 and luma[i] - luma[i - direction] < 0.5:
            break  # the ramp flattened out: the shot has arrived
    if abs(i - edge) < 2 or luma[i] - luma[edge] < p.ramp_min:
        return None
    lo, hi = sorted((edge, i))
    biggest = float(np.abs(np.diff(luma[lo:hi + 1])).max())
    if biggest > 0.6 * float(luma[i] - luma[edge]):
        return None  # one step does most of it: a hard edge (black slate to picture)
    return i


def fades(sig: Signature, fps: float, p: Params = Params()
          ) -> list[tuple[BoundaryKind, int, int, int, float]]:
    """(kind, frame, start, end, confidence) of every fade through or from/to black."""
    limit = max(4, round(fps * 2))
    slate = max(2, round(fps * p.slate_s))
    found: list[tuple[BoundaryKind, int, int, int, float]] = []
    n = len(sig.luma)
    for start, end in _runs(_black(sig, p)):
        down = _ramp(sig.luma, start, -1, limit, p) if start > 0 else None
        up = _ramp(sig.luma, end, +1, limit, p) if end < n - 1 else None
        if down is not None and up is not None and end - start + 1 <= slate:
            found.append(("fade", start, down + 1, up - 1, 0.9))
            continue
        if down is not None:  # fade out into a black slate: the slate starts a shot
            found.append(("fade", start, down + 1, start, 0.8))
        if up is not None:  # fade in from black: the picture's first frame starts a shot
            found.append(("fade", end + 1, end + 1, up - 1, 0.8))
    return found


def _colour_across(sig: Signature, w: int) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """For each centre ``t``: how far the colour distribution moved from ``t - w`` to
    ``t + w`` (total variation of 3-frame mean histograms, 0..1)."""
    n = len(sig.luma)
    hists = sig.hists.astype(np.float64)
    padded = np.concatenate([hists[:1], hists, hists[-1:]])
    smooth = (padded[:-2] + padded[1:-1] + padded[2:]) / 3
    centre = np.arange(w, n - w)
    return centre, 0.5 * np.abs(smooth[centre - w] - smooth[centre + w]).sum(axis=1)


def dissolves(sig: Signature, fps: float, taken: list[tuple[int, int]],
              p: Params = Params()) -> list[tuple[int, int, int, float]]:
    """(frame, start, end, confidence) of every dissolve outside the ``taken`` ranges.

    The colour distribution is what a cross-fade replaces and camera motion keeps (a pan
    or a scroll moves pixels, not colours), so a dissolve is a window over which the colour
    histogram moves far, much further than it moves over the windows just before and after
    (a shot whose colours drift all along is not a dissolve).
    """
    n = len(sig.luma)
    w = int(np.clip(round(fps * p.window_s), 4, 20))
    if n < 2 * w + 1:
        return []
    centre, across = _colour_across(sig, w)
    by_frame = np.full(n, np.nan)
    by_frame[centre] = across
    before = np.concatenate([np.full(2 * w, np.nan), by_frame[:-2 * w]])
    after = np.concatenate([by_frame[2 * w:], np.full(2 * w, np.nan)])
    around = np.fmax(np.nan_to_num(before[centre], nan=0.0),
                     np.nan_to_num(after[centre], nan=0.0))
    peak = across / (around + 0.02)
    score = np.where((across >= p.dissolve_min) & (peak >= p.dissolve_peak), across, 0.0)
    blocked = np.zeros(n, bool)
    for a, b in taken:
        blocked[max(0, a - w):min(n, b + w + 1)] = True
    steps = _steps(sig)
    found: list[tuple[int, int, int, float]] = []
    used = np.zeros(n, bool)
    for k in np.argsort(-score):
        if score[k] <= 0:
            break
        t = int(centre[k])
        if blocked[t] or used[t]:
            continue
        start, end = _extent(steps, t, w)
        used[max(0, t - 2 * w):min(n, t + 2 * w + 1)] = True
        confidence = 0.5 + 0.5 * min(1.0, (across[k] - p.dissolve_min) / 0.3) * min(
            1.0, peak[k] / (2 * p.dissolve_peak))
        found.append((start, start, end, confidence))
    return sorted(found)


def _extent(steps: NDArray[np.float64], t: int, w: int) -> tuple[int, int]:
    """The mixed frames around a dissolve's centre: where frame-to-frame change stands above
    the quieter frames outside the window."""
    n = len(steps)
    lo, hi = max(1, t - 2 * w), min(n - 1, t + 2 * w)
    quiet = float(np.median(np.r_[steps[lo:max(lo, t - w)], steps[min(hi, t + w + 1):hi + 1]])
                  ) if hi > lo else 0.0
    level = quiet + 0.5 * (float(steps[max(1, t - w // 2):t + w // 2 + 1].mean()) - quiet)
    start = t
    while start - 1 > t - w - 2 and steps[start] > level:
        start -= 1
    end = t
    while end + 1 < min(n, t + w + 2) and steps[end + 1] > level:
        end += 1
    return max(0, start), min(n - 1, end)


def detect(sig: Signature, fps: float, times: Floats | None = None,
           p: Params = Params()) -> list[Boundary]:
    """Every boundary, in frame order."""
    out: list[Boundary] = []
    faded = fades(sig, fps, p)
    taken = [(start, end) for _k, _f, start, end, _c in faded]
    for kind, frame, start, end, confidence in faded:
        out.append(_boundary(kind, frame, start, end, confidence, fps, times))
    for frame, confidence in hard_cuts(sig, p):
        if any(start - 1 <= frame <= end + 1 for start, end in taken):
            continue  # the ramp's steepest step, already a fade
        out.append(_boundary("cut", frame, frame, frame, confidence, fps, times))
        taken.append((frame, frame))
    for frame, start, end, confidence in dissolves(sig, fps, taken, p):
        out.append(_boundary("dissolve", frame, start, end, confidence, fps, times))
    return sorted(out, key=lambda b: b.frame)


__all__ = ["THUMB", "Params", "Signature", "detect", "dissolves", "distance", "fades",
           "hard_cuts", "signature_of", "timecode"]
