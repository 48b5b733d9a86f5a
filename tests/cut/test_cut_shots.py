"""Shot boundaries on frames made in numpy: what is a cut, and what only looks like one."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from smallhold.apps.cut import shots
from smallhold.apps.cut.scoring import Truth, score

W, H = 64, 36
RNG = np.random.default_rng(7)


def texture(seed: int, colour: tuple[int, int, int]) -> NDArray[np.float64]:
    """A textured picture of one main colour, wider than the frame so it can pan."""
    rng = np.random.default_rng(seed)
    base = np.ones((H, W * 3, 3)) * np.array(colour, float)
    blobs = rng.normal(0, 40, (H // 4, W * 3 // 4, 3)).repeat(4, 0).repeat(4, 1)
    return np.clip(base + blobs, 0, 255)


def shot(picture: NDArray[np.float64], frames: int, pan: int = 0) -> list[NDArray[np.uint8]]:
    """``frames`` frames of ``picture``, moving ``pan`` pixels a frame, with sensor noise."""
    out = []
    for i in range(frames):
        x = (i * pan) % (picture.shape[1] - W)
        frame = picture[:, x:x + W] + RNG.normal(0, 2, (H, W, 3))
        out.append(np.clip(frame, 0, 255).astype(np.uint8))
    return out


def blend(a: list[NDArray[np.uint8]], b: list[NDArray[np.uint8]]) -> list[NDArray[np.uint8]]:
    n = len(a)
    return [((1 - k / (n - 1)) * a[k] + (k / (n - 1)) * b[k]).astype(np.uint8) for k in range(n)]


def found(frames: list[NDArray[np.uint8]], fps: float = 25) -> list[shots.Boundary]:
    return shots.detect(shots.signature_of(frames), fps)


RED, BLUE, GREEN, GREY = (200, 60, 50), (40, 70, 190), (60, 170, 80), (128, 128, 128)


def test_hard_cuts_are_found_on_the_first_frame_of_the_new_shot() -> None:
    frames = shot(texture(1, RED), 40) + shot(texture(2, BLUE), 30) + shot(texture(3, GREEN), 40)
    cuts = found(frames)
    assert [(b.kind, b.frame) for b in cuts] == [("cut", 40), ("cut", 70)]
    assert cuts[0].timecode == "00:00:01:15" and cuts[0].time_s == 1.6
    assert all(0.5 <= b.confidence <= 1 for b in cuts)


def test_a_two_frame_flash_inside_a_shot_is_not_a_cut() -> None:
    frames = shot(texture(1, RED), 60, pan=1)
    frames[30] = frames[31] = np.full((H, W, 3), 255, np.uint8)
    frames += shot(texture(2, BLUE), 40)
    assert [(b.kind, b.frame) for b in found(frames)] == [("cut", 60)]


def test_a_fast_pan_and_sudden_motion_are_not_cuts() -> None:
    frames = shot(texture(4, GREY), 80, pan=4)  # a whip-like pan all along
    frames += shot(texture(4, GREY), 40, pan=0)  # ...that stops: same scene, no cut
    assert found(frames) == []


def test_a_dissolve_is_one_boundary_inside_the_mix() -> None:
    a, b = shot(texture(1, RED), 60, pan=1), shot(texture(2, BLUE), 60, pan=1)
    frames = a[:40] + blend(a[40:], b[:20]) + b[20:]
    [boundary] = found(frames)
    assert boundary.kind == "dissolve" and 38 <= boundary.frame <= 62
    assert score([boundary.frame], Truth([], [(40, 59)])).f1 == 1.0


def test_a_fade_through_black_and_a_black_slate() -> None:
    a, b = shot(texture(1, RED), 50), shot(texture(2, BLUE), 50)
    black = [np.zeros((H, W, 3), np.uint8)]
    down = [(a[-1] * (1 - k / 12)).astype(np.uint8) for k in range(1, 12)]
    up = [(b[0] * (k / 13)).astype(np.uint8) for k in range(1, 13)]
    frames = a + down + black + up + b
    [fade] = found(frames)
    assert fade.kind == "fade" and 60 <= fade.frame <= 61  # the first (nearly) black frame
    assert fade.start_frame <= 52 and fade.end_frame >= 70  # the ramps down and up

    slate = black * 50  # two seconds of black between a fade-out and a hard cut in
    frames = a + down + slate + b
    [out, cut_in] = found(frames)
    assert out.kind == "fade" and 60 <= out.frame <= 61
    assert (cut_in.kind, cut_in.frame) == ("cut", 111)  # black to picture in one frame


def test_nothing_to_detect_in_empty_or_still_footage() -> None:
    assert found([]) == []
    assert found(shot(texture(5, GREEN), 3)) == []
    still = [np.full((H, W, 3), 90, np.uint8)] * 100
    assert found(still) == []


def test_scoring_matches_one_to_one_and_counts_flash_alarms() -> None:
    truth = Truth(cuts=[100, 200], gradual=[(300, 324)], negatives=[150])
    result = score([101, 150, 199, 310, 312], truth)
    assert (result.true_positives, result.false_positives, result.false_negatives) == (3, 2, 0)
    assert result.flash_alarms == 1 and round(result.f1, 3) == 0.75
