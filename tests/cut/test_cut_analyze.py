"""One analysis pass over real files: cached in the vault, and every bad input a clear error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cut_clips import ffmpeg, needs_ffmpeg, three_shots

from smallhold.apps.cut.analyze import ANALYSES, Analyzer
from smallhold.apps.cut.errors import AnalysisNotFound, MediaError
from smallhold.apps.cut.probe import probe
from smallhold.store.handle import VaultHandle

pytestmark = needs_ffmpeg


def test_shots_are_found_stored_and_a_second_run_is_a_lookup(
        tmp_path: Path, vault: VaultHandle) -> None:
    clip = three_shots(tmp_path / "three shots é.mp4")  # spaces and non-ASCII in the name
    analyzer = Analyzer(vault)
    first, cached = analyzer.analyze(clip)
    assert not cached and first.media.frame_count == 150 and first.media.has_audio
    assert [(b.kind, b.frame) for b in first.boundaries] == [("cut", 50), ("cut", 100)]
    assert [(s.start_frame, s.end_frame) for s in first.shots] == [(0, 49), (50, 99),
                                                                  (100, 149)]
    assert [s.start_s for s in first.shots] == [0.0, 2.0, 4.0]
    again, cached = analyzer.analyze(clip)
    assert cached and again == first
    moved = clip.rename(tmp_path / "renamed.mp4")  # the content, not the name, is the key
    assert Analyzer(vault).stored(moved).boundaries == first.boundaries


def test_a_failed_analysis_leaves_nothing_in_the_vault(tmp_path: Path,
                                                       vault: VaultHandle) -> None:
    clip = three_shots(tmp_path / "clip.mp4")

    def broken_audio(path: Path, duration: float) -> object:
        raise MediaError("the audio decoder stopped")

    with pytest.raises(MediaError):
        Analyzer(vault, audio=broken_audio).analyze(clip)  # type: ignore[arg-type]
    assert vault.conn.execute("SELECT count(*) FROM records WHERE collection = ?",
                              (ANALYSES,)).fetchone() == (0,)
    with pytest.raises(AnalysisNotFound, match="cut analyze"):
        Analyzer(vault).stored(clip)


def test_files_that_are_not_video_are_one_line_errors(tmp_path: Path,
                                                      vault: VaultHandle) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n")
    with pytest.raises(MediaError, match="not a media file"):
        Analyzer(vault).analyze(text)
    png = tmp_path / "picture.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=red:size=64x64", "-frames:v", "1", "-f", "image2",
           "-c:v", "png", str(png))
    still, _ = Analyzer(vault).analyze(png)  # a picture named .mp4: one frame, one shot
    assert still.media.frame_count == 1 and len(still.shots) == 1
    clip = three_shots(tmp_path / "whole.mp4")
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(clip.read_bytes()[: clip.stat().st_size // 3])
    with pytest.raises(MediaError) as caught:
        Analyzer(vault).analyze(truncated)
    assert "\n" not in str(caught.value)
    assert vault.conn.execute("SELECT count(*) FROM records WHERE collection = ?",
                              (ANALYSES,)).fetchone() == (1,)  # only the picture's


def test_audio_only_and_silent_video(tmp_path: Path, vault: VaultHandle) -> None:
    sound = tmp_path / "voice.m4a"
    ffmpeg("-f", "lavfi", "-t", "2", "-i", "sine=frequency=440", "-c:a", "aac", str(sound))
    analysis, _ = Analyzer(vault).analyze(sound)
    assert analysis.shots == [] and not analysis.media.has_video
    assert any("no video" in note for note in analysis.notes)
    mute = three_shots(tmp_path / "mute.mp4", audio=False)
    analysis, _ = Analyzer(vault).analyze(mute)
    assert len(analysis.shots) == 3 and any("no audio" in n for n in analysis.notes)


def test_rotation_metadata_and_variable_frame_rate(tmp_path: Path, vault: VaultHandle) -> None:
    clip = three_shots(tmp_path / "landscape.mp4")
    portrait = tmp_path / "portrait.mp4"
    ffmpeg("-i", str(clip), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(portrait))
    info = probe(portrait)  # a phone's portrait video: stored landscape, shown upright
    assert (info.width, info.height) == (180, 320) and info.rotation in (90, 270)
    analysis, _ = Analyzer(vault).analyze(portrait)
    assert [b.frame for b in analysis.boundaries] == [50, 100]

    vfr = tmp_path / "vfr.mkv"  # 25 fps for two seconds, then 50: times are not index / fps
    ffmpeg("-i", str(clip), "-vf", "settb=1/1000,setpts='if(lt(N,50),N/25,2+(N-50)/50)/TB'",
           "-fps_mode", "passthrough", "-an", "-c:v", "libx264", "-preset", "ultrafast",
           str(vfr))
    analysis, _ = Analyzer(vault).analyze(vfr)
    assert analysis.media.frame_count == 150  # every frame, none dropped or repeated
    assert [b.frame for b in analysis.boundaries] == [50, 100]
    assert analysis.boundaries[0].time_s == pytest.approx(2.0, abs=0.05)
    assert analysis.boundaries[1].time_s == pytest.approx(3.0, abs=0.05)  # not 100 / 25


def test_a_4k_file_is_analysed_at_analysis_size(tmp_path: Path, vault: VaultHandle) -> None:
    clip = tmp_path / "uhd.mp4"
    ffmpeg("-f", "lavfi", "-t", "1", "-i", "testsrc2=rate=25:size=3840x2160",
           "-f", "lavfi", "-t", "1", "-i", "smptebars=rate=25:size=3840x2160",
           "-filter_complex", "[0:v][1:v]concat=n=2:v=1:a=0[v]", "-map", "[v]",
           "-c:v", "libx264", "-preset", "ultrafast", str(clip))
    analysis, _ = Analyzer(vault).analyze(clip)
    assert (analysis.media.width, analysis.media.height) == (3840, 2160)
    assert [b.frame for b in analysis.boundaries] == [25]


def smallhold(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    return subprocess.run([sys.executable, "-m", "smallhold.cli", *args], capture_output=True,
                          text=True, env=env, timeout=timeout, check=False)


def test_the_cli_analyses_shows_a_contact_sheet_and_speaks_json(tmp_path: Path) -> None:
    clip = three_shots(tmp_path / "film.mp4")
    run = smallhold("cut", "analyze", "--no-speech", "--no-describe", "--json", str(clip))
    assert run.returncode == 0, run.stderr
    [result] = json.loads(run.stdout)["analyses"]
    assert [b["frame"] for b in result["analysis"]["boundaries"]] == [50, 100]
    assert all(s["look"]["luma_mean"] > 0 for s in result["analysis"]["shots"])
    sheet = tmp_path / "sheet.png"
    shown = smallhold("cut", "show", str(clip), "-o", str(sheet), "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["shots"] == 3
    assert sheet.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    missing = smallhold("cut", "show", str(tmp_path / "nope.mp4"), timeout=60)
    assert missing.returncode != 0 and "nope.mp4" in missing.stderr
    text = tmp_path / "text.mp4"
    text.write_text("hello")
    refused = smallhold("cut", "analyze", "--no-speech", "--no-describe", str(text), timeout=60)
    assert refused.returncode == 2 and "not a media file" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_a_cut_in_the_middle_of_speech_stays_in_its_scene() -> None:
    from smallhold.apps.cut.analyze import scenes
    from smallhold.apps.cut.models import Shot, Span
    from smallhold.apps.cut.shots import Signature

    hists = np.zeros((150, 4), np.float32)
    hists[:50, 0] = hists[50:100, 1] = hists[100:, 2] = 1  # three shots of different colours
    signature = Signature(np.zeros((150, 9, 16, 3), np.float32), np.zeros(150, np.float32),
                          np.zeros(150, np.float32), hists)
    shots = [Shot(index=i, start_frame=50 * i, end_frame=50 * i + 49, start_s=2.0 * i,
                  end_s=2.0 * i + 2) for i in range(3)]
    assert [s.shots for s in scenes(shots, signature)] == [[0], [1], [2]]
    talking = [Span(start=1.0, end=3.5)]  # someone speaks across the first cut only
    assert [s.shots for s in scenes(shots, signature, talking)] == [[0, 1], [2]]


def test_without_ffmpeg_the_cli_says_what_to_install(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\x00" * 64)
    env = {"PATH": str(tmp_path), "HOME": str(tmp_path),  # nothing on PATH: no ffprobe
           "SMALLHOLD_HOME": str(tmp_path / "home"),
           "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    done = subprocess.run([sys.executable, "-m", "smallhold.cli", "cut", "analyze",
                           "--no-speech", "--no-describe", str(clip)], capture_output=True,
                          text=True, env=env, timeout=120, check=False)
    assert done.returncode == 4, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert "ffprobe is not installed" in line and "apt-get install ffmpeg" in line
