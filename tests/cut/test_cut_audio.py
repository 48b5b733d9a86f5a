"""cut's audio analysis on clips made at test time: silence, speech vs music, beats,
loudness, and every kind of bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cut_media import (
    build,
    calibrated_tone,
    needs_espeak,
    needs_ffmpeg,
    speak,
    synthetic_clip,
    tone_video,
    video_only,
)

from smallhold.apps.cut import audio as audio_mod
from smallhold.apps.cut.audio import analyse_audio, parse_ebur128
from smallhold.apps.cut.audiofeatures import FeatureStream, onset_peaks, track_beats
from smallhold.apps.cut.errors import MediaError, ToolMissingError

pytestmark = needs_ffmpeg


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


@needs_espeak
def test_silence_speech_music_and_beats(tmp_path: Path) -> None:
    voice = speak("Um, so this is the part we keep, and that is the part we cut.", tmp_path)
    clip = build(tmp_path / "mix.wav", [("silence", 0.8), ("speech", voice), ("silence", 1.0),
                                        ("music", 4.0), ("silence", 1.2)])
    seen: list[float] = []
    result = analyse_audio(clip.path, clip.duration, progress=seen.append)

    found = [(s.start, s.end) for s in result.silences]
    assert len(found) == 3, found
    for (a, b), (c, d) in zip(found, clip.silences, strict=True):
        assert abs(a - c) <= 0.03 and abs(min(b, clip.duration) - d) <= 0.03, (found, clip)

    speech = [(s.start, s.end) for s in result.speech]
    assert speech and all(_overlap(s, clip.music[0]) == 0 for s in speech), speech
    assert sum(_overlap(s, clip.speech[0]) for s in speech) > 0.8 * (
        clip.speech[0][1] - clip.speech[0][0])

    assert len(result.music) == 1, result.music
    assert abs(result.music[0].start - clip.music[0][0]) <= 0.03
    assert abs(result.music[0].end - clip.music[0][1]) <= 0.03
    assert result.tempo_bpm is not None and abs(result.tempo_bpm - 120) <= 2
    assert len(result.beats) == len(clip.beats)
    errors = [min(abs(b - t) for b in result.beats) for t in clip.beats]
    assert max(errors) <= 0.05, errors

    assert seen == sorted(seen) and seen[-1] == 1.0


def test_loudness_of_a_calibrated_tone(tmp_path: Path) -> None:
    result = analyse_audio(calibrated_tone(tmp_path / "tone -23 LUFS.wav"), 6.0)
    assert result.loudness_lufs == pytest.approx(-23.0, abs=0.3)
    assert result.true_peak_dbtp == pytest.approx(-20.0, abs=0.5)
    assert result.loudness_range_lu is not None and result.loudness_range_lu < 1.0
    assert result.silences == [] and result.speech == [] and result.music == []


def test_path_with_spaces_and_non_ascii(tmp_path: Path) -> None:
    clip = tone_video(tmp_path / "rushes day 1 – tête à tête 音.mp4", 3.0)
    result = analyse_audio(clip, 3.0)
    assert result.loudness_lufs is not None and result.silences == []


def test_file_without_audio_gives_an_empty_analysis(tmp_path: Path) -> None:
    result = analyse_audio(video_only(tmp_path / "silent film.mp4"), 1.0)
    assert result.loudness_lufs is None and result.silences == [] and result.beats == []


def test_not_media_is_a_clear_error(tmp_path: Path) -> None:
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is a shopping list, not a video\n" * 50)
    with pytest.raises(MediaError, match="not a media file") as info:
        analyse_audio(fake, 1.0)
    assert "\n" not in str(info.value) and "notes.mp4" in str(info.value)


def test_truncated_files(tmp_path: Path) -> None:
    # moov atom at the end (ffmpeg's default): nothing can be read, and the error says so
    whole = tone_video(tmp_path / "whole.mp4", 4.0)
    cut_short = tmp_path / "cut short.mp4"
    cut_short.write_bytes(whole.read_bytes()[: whole.stat().st_size // 3])
    with pytest.raises(MediaError, match="truncated"):
        analyse_audio(cut_short, 4.0)
    # moov first (+faststart): what is there is analysed, without a crash
    fast = tone_video(tmp_path / "fast.mp4", 4.0, "-movflags", "+faststart")
    half = tmp_path / "half.mp4"
    half.write_bytes(fast.read_bytes()[: fast.stat().st_size // 2])
    assert analyse_audio(half, 4.0).loudness_lufs is not None


def test_missing_ffmpeg_says_how_to_install(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    monkeypatch.setattr(audio_mod.shutil, "which", lambda name: None)
    with pytest.raises(ToolMissingError, match="apt-get install ffmpeg"):
        analyse_audio(tmp_path / "any.mp4", 1.0)


def test_features_do_not_depend_on_block_size() -> None:
    rng = np.random.default_rng(1)
    signal = (rng.standard_normal(16_000 * 3) * 0.1).astype(np.float32)
    whole = FeatureStream()
    whole.feed(signal)
    pieces = FeatureStream()
    at = 0
    for size in rng.integers(1, 9000, size=100):
        pieces.feed(signal[at:at + int(size)])
        at += int(size)
    pieces.feed(signal[at:])
    a, b = whole.arrays(), pieces.arrays()
    for key in a:
        assert a[key].shape == b[key].shape, key
        np.testing.assert_allclose(a[key], b[key], rtol=1e-3, atol=1e-5, err_msg=key)


def test_beats_follow_the_onsets_not_the_grid() -> None:
    onsets = np.array([1.0, 1.51, 2.0, 2.26, 2.5, 3.01], np.float32)  # 2.26: an off-beat
    beats = track_beats(onsets, 1.0, 3.2, 120.0)
    assert beats == pytest.approx([1.0, 1.51, 2.0, 2.5, 3.01], abs=1e-6)
    assert len(onset_peaks(np.zeros(2, np.float32))) == 0


def test_ebur128_summary_parsing() -> None:
    log = """[Parsed_ebur128_0 @ 0x1] Summary:

  Integrated loudness:
    I:         -70.0 LUFS
    Threshold: -70.0 LUFS

  Loudness range:
    LRA:         0.0 LU

  True peak:
    Peak:       -inf dBFS"""
    assert parse_ebur128(log) == {"loudness_lufs": None, "loudness_range_lu": 0.0,
                                  "true_peak_dbtp": None}
    assert parse_ebur128("no summary") == {"loudness_lufs": None, "loudness_range_lu": None,
                                           "true_peak_dbtp": None}


def test_synthetic_clip_from_shared(tmp_path: Path) -> None:
    video, truth = synthetic_clip(tmp_path, seed=2)
    result = analyse_audio(video, truth["duration_s"])
    gt = truth["audio"]
    edges = [e for s in result.silences for e in (s.start, s.end)]
    for start, end in gt["silence"]:
        for edge in (start, end):
            if 0 < edge < truth["duration_s"]:
                assert min(abs(edge - e) for e in edges) <= 0.03
    assert len(result.music) == 1
    assert abs(result.music[0].start - gt["music"]["start"]) <= 0.05
    assert abs(result.music[0].end - gt["music"]["end"]) <= 0.05
    for beat in gt["music"]["beats"]:
        assert min(abs(beat - b) for b in result.beats) <= 0.05
    for utterance in gt["speech"]:
        span = (utterance["start"], utterance["end"])
        assert all(_overlap(span, (m.start, m.end)) == 0 for m in result.music)
