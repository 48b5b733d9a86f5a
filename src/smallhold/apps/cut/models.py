"""The analysis document of one media file: what cut knows about footage.

One :class:`Analysis` per file, versioned (``SCHEMA``), stored in the vault keyed by the
file's content hash and the analyser's version, so a second ``analyze`` of the same file is
a lookup. Times are seconds from the start; frames are 0-based indices of decoded frames
(the first frame of a new shot is the boundary's frame, as in PySceneDetect). Everything the
editing engine plans from, and a person can read, is here; nothing here is a file path the
host would execute.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA = 1


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MediaInfo(_Model):
    """What ffprobe says about the file, and what decoding found."""

    name: str  # the file's name, for display (the path itself is not part of the identity)
    sha256: str
    size_bytes: int
    duration_s: float
    container: str = ""
    has_video: bool = False
    has_audio: bool = False
    width: int = 0  # as displayed: after rotation metadata is applied
    height: int = 0
    rotation: int = 0  # degrees, as ffprobe reports the display matrix (applied on decode)
    fps: float = 0.0  # average frame rate
    variable_frame_rate: bool = False
    frame_count: int = 0  # frames actually decoded
    video_codec: str = ""
    audio_codec: str = ""
    sample_rate: int = 0
    channels: int = 0


BoundaryKind = Literal["cut", "dissolve", "fade"]


class Boundary(_Model):
    """Where one shot ends and the next begins."""

    kind: BoundaryKind
    frame: int  # the first frame of the incoming shot (for a fade: the first dark frame)
    time_s: float
    timecode: str  # HH:MM:SS:FF at the file's frame rate
    confidence: float = Field(ge=0, le=1)
    start_frame: int  # the transition's first mixed frame (= frame for a cut)
    end_frame: int  # its last mixed frame (= frame for a cut)


class Face(_Model):
    """A detected face on one sampled frame: its box's left, top, width and height as
    fractions of the frame (0..1). See ``smallhold.apps.cut.faces``."""

    frame: int
    x: float
    y: float
    w: float
    h: float


class Look(_Model):
    """How a shot (or a sampled frame) looks, in numbers a model and a person can read.

    Luma is Y' (0.299 R' + 0.587 G' + 0.114 B') on the 0-255 full-range scale of the
    decoded frames. For a shot, each per-frame number is the median over its sampled frames
    (about 2 a second, the first and last 2 frames left out). Definitions and why:
    ``smallhold.apps.cut.look``.
    """

    luma_mean: float
    contrast: float  # luma standard deviation within the frame
    shadows_clipped: float  # fraction of pixels with luma at or under 10 (crushed blacks)
    highlights_clipped: float  # fraction of pixels with luma at or over 245 (blown whites)
    saturation: float  # mean HSV saturation, 0..1
    colour_temperature_k: float  # McCamy CCT of the mean colour (grey world), 1500-15000 K; 0 black
    sharpness: float  # variance of the Laplacian of luma, shorter side resized to 144 px
    motion: float  # median mean absolute luma change between consecutive frames (80x45), 0..255
    dominant_colours: list[str] = Field(default_factory=list)  # "#rrggbb", most first
    faces: list[Face] = Field(default_factory=list)  # on one representative sampled frame
    exposure: Literal["dark", "normal", "bright"] = "normal"  # from luma_mean and highlights


class Shot(_Model):
    index: int
    start_frame: int
    end_frame: int  # inclusive
    start_s: float
    end_s: float
    look: Look | None = None
    summary: str = ""  # one line from the numbers, for the model and the contact sheet


class Word(_Model):
    text: str
    start: float
    end: float
    probability: float = 1.0
    filler: bool = False


class Segment(_Model):
    start: float
    end: float
    text: str
    words: list[Word] = Field(default_factory=list)


class Transcript(_Model):
    language: str
    language_probability: float
    model: str  # which Whisper model made it
    segments: list[Segment] = Field(default_factory=list)

    @property
    def fillers(self) -> list[Word]:
        return [w for s in self.segments for w in s.words if w.filler]

    @property
    def text(self) -> str:
        return " ".join(s.text.strip() for s in self.segments).strip()


class Span(_Model):
    start: float
    end: float


class AudioAnalysis(_Model):
    loudness_lufs: float | None = None  # integrated, EBU R128
    loudness_range_lu: float | None = None
    true_peak_dbtp: float | None = None
    silences: list[Span] = Field(default_factory=list)
    speech: list[Span] = Field(default_factory=list)  # voice activity
    music: list[Span] = Field(default_factory=list)
    beats: list[float] = Field(default_factory=list)  # onset times for cutting to music
    tempo_bpm: float | None = None


class Scene(_Model):
    index: int
    shots: list[int]
    start_s: float
    end_s: float
    description: str = ""


class StoryBeat(_Model):
    index: int
    scenes: list[int]
    start_s: float
    end_s: float
    pace: Literal["slow", "steady", "fast"] = "steady"
    description: str = ""


class Analysis(_Model):
    """Everything cut knows about one file."""

    schema_version: int = SCHEMA
    analyser: str  # ANALYSER_VERSION of the code that made it: a newer one re-analyses
    media: MediaInfo
    boundaries: list[Boundary] = Field(default_factory=list)
    shots: list[Shot] = Field(default_factory=list)
    scenes: list[Scene] = Field(default_factory=list)
    beats: list[StoryBeat] = Field(default_factory=list)
    audio: AudioAnalysis | None = None
    transcript: Transcript | None = None
    notes: list[str] = Field(default_factory=list)  # what was skipped and why
    seconds: float = 0.0  # how long the analysis took
    created_at: float = 0.0


__all__ = ["SCHEMA", "Analysis", "AudioAnalysis", "Boundary", "BoundaryKind", "Face", "Look",
           "MediaInfo", "Scene", "Segment", "Shot", "Span", "StoryBeat", "Transcript", "Word"]
