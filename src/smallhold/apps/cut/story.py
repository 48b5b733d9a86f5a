"""Story beats from scenes, and one-line descriptions of both by the local model.

Beats are pure arithmetic on the analysis: a scene's pace is how fast it cuts (mean shot
length), how much moves (motion) and how loud it gets, each against the film's own median,
so a calm documentary and an action trailer each get slow, steady and fast parts of their
own. Consecutive scenes of one pace form a beat.

Descriptions are the model's reading of those numbers and the words spoken in the span,
one short sentence each; the model never sees a frame (cut has no vision model yet), so the
prompt gives it only what was measured, and says so, to keep it from inventing a plot.
Every call goes through the runtime, so each is a trace row like any other app's.
"""

from __future__ import annotations

from collections.abc import Callable
from statistics import median
from typing import Literal

from smallhold.apps.cut.models import Analysis, Scene, Shot, StoryBeat
from smallhold.runtime import GenerationParams, Message, Runtime

Pace = Literal["slow", "steady", "fast"]
DESCRIBE = GenerationParams(max_tokens=60, temperature=0.2, seed=11)
SYSTEM = ("You label parts of a video for an editor. You are given only measurements and the "
          "words spoken, never the pictures. Answer with one short sentence (at most 20 words)"
          " that says what the measurements suggest; do not invent people, places or plot.")


def _scene_numbers(analysis: Analysis, scene: Scene) -> tuple[float, float, float]:
    """(mean shot length s, mean motion, mean loudness proxy) of a scene."""
    members = [analysis.shots[i] for i in scene.shots if i < len(analysis.shots)]
    lengths = [s.end_s - s.start_s for s in members] or [0.0]
    motion = [s.look.motion for s in members if s.look is not None] or [0.0]
    return sum(lengths) / len(lengths), sum(motion) / len(motion), _speech_share(
        analysis, scene.start_s, scene.end_s)


def _speech_share(analysis: Analysis, start: float, end: float) -> float:
    if analysis.audio is None or end <= start:
        return 0.0
    spoken = sum(max(0.0, min(end, s.end) - max(start, s.start)) for s in analysis.audio.speech)
    return spoken / (end - start)


def _pace(length: float, motion: float, lengths: float, motions: float) -> Pace:
    fast = (length < 0.6 * lengths) + (motion > 1.5 * motions if motions else 0)
    slow = (length > 1.6 * lengths) + (motion < 0.5 * motions if motions else 0)
    return "fast" if fast > slow else ("slow" if slow > fast else "steady")


def beats(analysis: Analysis) -> list[StoryBeat]:
    """Consecutive scenes of one pace, as beats."""
    if not analysis.scenes:
        return []
    numbers = [_scene_numbers(analysis, s) for s in analysis.scenes]
    lengths = median(n[0] for n in numbers)
    motions = median(n[1] for n in numbers)
    out: list[StoryBeat] = []
    for scene, (length, motion, _speech) in zip(analysis.scenes, numbers, strict=True):
        pace = _pace(length, motion, lengths, motions)
        if out and out[-1].pace == pace:
            last = out[-1]
            out[-1] = last.model_copy(update={"scenes": [*last.scenes, scene.index],
                                              "end_s": scene.end_s})
            continue
        out.append(StoryBeat(index=len(out), scenes=[scene.index], start_s=scene.start_s,
                             end_s=scene.end_s, pace=pace))
    return out


def _words(analysis: Analysis, start: float, end: float, limit: int = 240) -> str:
    if analysis.transcript is None:
        return ""
    said = " ".join(seg.text.strip() for seg in analysis.transcript.segments
                    if seg.end > start and seg.start < end)
    return said[:limit]


def _looks(shots: list[Shot]) -> str:
    return "; ".join(s.summary for s in shots[:4] if s.summary)


def scene_prompt(analysis: Analysis, scene: Scene) -> str:
    members = [analysis.shots[i] for i in scene.shots if i < len(analysis.shots)]
    length, _motion, speech = _scene_numbers(analysis, scene)
    said = _words(analysis, scene.start_s, scene.end_s)
    return (f"Scene {scene.index + 1}: {scene.start_s:.1f}-{scene.end_s:.1f} s, "
            f"{len(members)} shot(s), mean shot {length:.1f} s, speech {speech:.0%} of the time."
            f" Looks: {_looks(members) or 'not measured'}."
            + (f" Words spoken: \"{said}\"" if said else " No words spoken."))


def beat_prompt(analysis: Analysis, beat: StoryBeat) -> str:
    scenes = [analysis.scenes[i] for i in beat.scenes if i < len(analysis.scenes)]
    lines = "\n".join(f"- {s.description or scene_prompt(analysis, s)}" for s in scenes)
    return (f"A {beat.pace} part of the video, {beat.start_s:.1f}-{beat.end_s:.1f} s, "
            f"made of these scenes:\n{lines}\nDescribe this part in one sentence.")


def _one_line(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[:limit - 1].rstrip() + "…"


def describe(analysis: Analysis, runtime: Runtime, *, model: str | None = None,
             progress: Callable[[float], None] = lambda _f: None) -> Analysis:
    """``analysis`` with beats, and a description on every scene and beat."""
    asked = beats(analysis)
    total = max(1, len(analysis.scenes) + sum(1 for b in asked if len(b.scenes) > 1))
    done = 0

    def say(prompt: str) -> str:
        nonlocal done
        reply = runtime.chat([Message(role="system", content=SYSTEM),
                              Message(role="user", content=prompt)], model=model,
                             params=DESCRIBE, app="cut")
        done += 1
        progress(done / total)
        return _one_line(reply.text)

    scenes = [s.model_copy(update={"description": say(scene_prompt(analysis, s))})
              for s in analysis.scenes]
    described = analysis.model_copy(update={"scenes": scenes})
    story = [b.model_copy(update={"description": scenes[b.scenes[0]].description
                                  if len(b.scenes) == 1 else say(beat_prompt(described, b))})
             for b in asked]  # a beat of one scene is that scene: no second call for it
    return described.model_copy(update={"beats": story})


__all__ = ["DESCRIBE", "beat_prompt", "beats", "describe", "scene_prompt"]
