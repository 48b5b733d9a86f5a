"""Story beats from scene numbers, and descriptions by a (scripted) model, traced."""

from __future__ import annotations

from smallhold.apps.cut.models import Analysis, AudioAnalysis, Look, MediaInfo, Scene, Shot, Span
from smallhold.apps.cut.story import beats, describe, scene_prompt
from smallhold.config import Settings
from smallhold.paths import Paths
from smallhold.runtime import Runtime
from smallhold.runtime.backends.scripted import ScriptedBackend
from smallhold.store.handle import VaultHandle
from smallhold.trace import TraceLog


def look(motion: float) -> Look:
    return Look(luma_mean=120, contrast=50, shadows_clipped=0, highlights_clipped=0,
                saturation=0.4, colour_temperature_k=5500, sharpness=100, motion=motion)


def film() -> Analysis:
    """Two calm scenes of long shots, then a scene of quick moving shots."""
    shots, t = [], 0.0
    for index, (length, motion) in enumerate([(6, 1), (6, 1), (5, 2), (7, 1), (1, 9), (1, 8),
                                              (1, 9), (1, 10)]):
        shots.append(Shot(index=index, start_frame=int(t * 25), end_frame=int((t + length) * 25)
                          - 1, start_s=t, end_s=t + length, look=look(motion),
                          summary=f"moving {motion}"))
        t += length
    scenes = [Scene(index=0, shots=[0, 1], start_s=0, end_s=12),
              Scene(index=1, shots=[2, 3], start_s=12, end_s=24),
              Scene(index=2, shots=[4, 5, 6, 7], start_s=24, end_s=28)]
    return Analysis(analyser="test", media=MediaInfo(name="f.mp4", sha256="0", size_bytes=1,
                                                     duration_s=28), shots=shots, scenes=scenes,
                    audio=AudioAnalysis(speech=[Span(start=2, end=8)]))


def test_scenes_of_one_pace_form_a_beat() -> None:
    story = beats(film())
    assert [(b.pace, b.scenes) for b in story] == [("steady", [0, 1]), ("fast", [2])]
    assert (story[1].start_s, story[1].end_s) == (24, 28)
    assert "speech 50% of the time" in scene_prompt(film(), film().scenes[0])


def test_descriptions_come_from_the_model_one_line_each_and_are_traced(
        settings: Settings, paths: Paths, vault: VaultHandle) -> None:
    trace = TraceLog(vault.conn, lock=vault.lock)
    backend = ScriptedBackend(reply=lambda request: "A calm\nstretch of long shots.  ")
    runtime = Runtime(settings, paths, backend=backend, trace=trace, app="cut")
    told = describe(film(), runtime)
    assert [s.description for s in told.scenes] == ["A calm stretch of long shots."] * 3
    assert len(told.beats) == 2 and all(b.description for b in told.beats)
    assert len(backend.requests) == 4  # three scenes, one beat of two (one of one is its scene)
    assert "never the pictures" in backend.requests[0].messages[0].content
    calls = trace.list(kind="call")
    assert len(calls) == 4 and {c.app for c in calls} == {"cut"}
