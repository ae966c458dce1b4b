"""The storyboard core model (schema version 1). Every input format is an adapter onto this.

Limits on sizes and counts are part of the schema: input is never trusted.
"""
from __future__ import annotations

import math
import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    model_validator,
)

from .text import value_problem

# Limits on one job: a storyboard compiles into one job, and a job past these is refused at the shot that
# crosses them, before anything is planned (a 1 MB file could otherwise ask for millions of segments).
MAX_EPISODE_FRAMES = 2 * 60 * 60 * 24   # 172,800 frames: two hours at 24 fps (three at the presets' 16 fps)
MAX_SEGMENTS = 20_000                   # model calls per job: hours of GPU time each 1,000 on a 14B model
MAX_SHOTS_PER_SCENE = 2000
MAX_SCENES = 500
MAX_CHARACTERS = 256


def _plain(value: str) -> str:
    """Text users write must hold no control characters (`storyboard/text.py`): a title or prompt is
    printed on terminals and burnt into pictures, where an escape sequence would act, not show."""
    if (problem := value_problem(value)) is not None:
        raise ValueError(problem)
    return value


Plain = AfterValidator(_plain)
Id = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=64)]
# preset names carry model versions ("anisora-v3.2", "wan2.1-t2v-1.3b"), so they may hold dots
PresetName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]*$", max_length=64)]
Text = Annotated[str, StringConstraints(max_length=4000), Plain]
AssetPath = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]


# the words every format, the validator and the planner share
PREVIOUS = "previous"   # `start: previous`: continue from the previous shot's last frame
# an @mention of a character in a prompt; not inside a word, so "name@example.com" is no mention
MENTION = re.compile(r"(?<![\w@])@([a-z0-9][a-z0-9_-]*)")


def half_up(x: float) -> int:
    """Round halves up (Python's round() sends them to the even neighbour, which is hard to explain)."""
    return math.floor(x + 0.5)


def keyframe_frame(at: float, frames: int) -> int:
    """The frame of a shot of `frames` frames that a keyframe at relative position `at` lands on under the
    default (`nearest`) rule; a preset may place keyframes otherwise (`storyboard/keyframes.py`)."""
    return half_up(at * (frames - 1))


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Output(Strict):
    width: int = Field(832, ge=64, le=3840, multiple_of=16)
    height: int = Field(480, ge=64, le=2160, multiple_of=16)
    fps: int | None = Field(None, ge=1, le=60, description="defaults to the model's fps")


Fit = Literal["cover", "stretch"]
Identity = Literal["embedding", "keyframe"]


class Sampling(Strict):
    """Sampling parameters and how a shot takes its pictures; unset fields fall back to storyboard
    defaults, then the model preset."""

    steps: int | None = Field(None, ge=1, le=200)
    guidance: float | None = Field(None, ge=0.0, le=30.0)
    shift: float | None = Field(None, gt=0.0, le=50.0)
    negative: Text | None = None
    aesthetic: float | None = Field(None, ge=0.0, le=10.0, description="AniSora aesthetic score")
    motion: float | None = Field(None, ge=0.0, le=10.0, description="AniSora motion score")
    fit: Fit | None = Field(None, description="how pictures fill the frame: cover (scale to cover, centre-crop) "
                                              "or stretch (AniSora's bicubic resize to the frame, no crop)")
    identity: Identity | None = Field(
        None, description="how a shot's characters hold their look: embedding (the character bank in the image "
                          "embeddings, where the model has them) or keyframe (also the first character's first "
                          "reference picture as a condition picture, on the shot's first free end frame)")


class Defaults(Sampling):
    seed: Seed | None = None


class Character(Strict):
    name: Annotated[str, StringConstraints(min_length=1, max_length=100), Plain]
    refs: list[AssetPath] = Field(default_factory=list, max_length=16)
    description: Text = ""


class Keyframe(Strict):
    image: AssetPath
    at: float | None = Field(None, ge=0.0, le=1.0, description="relative position in the shot, 0 = first frame, "
                                                               "1 = last; placed by the model's keyframe rule")
    frame: int | None = Field(None, ge=0, le=9600, description="exact frame of the shot (0 = first); or `at`")

    @model_validator(mode="after")
    def _one_place(self) -> Keyframe:
        if (self.at is None) == (self.frame is None):
            raise ValueError("a keyframe needs exactly one of `at` (a relative position) or `frame` (an exact frame)")
        return self


class Crossfade(Strict):
    crossfade: float = Field(gt=0.0, le=10.0, description="seconds of dissolve into the next shot")


def _transition_kind(value: object) -> str:
    return "crossfade" if isinstance(value, dict | Crossfade) else "cut"


# A tagged union, so a bad value gets one message from the branch it was meant for.
Transition = Annotated[
    Annotated[Literal["cut"], Tag("cut")] | Annotated[Crossfade, Tag("crossfade")],
    Discriminator(_transition_kind),
]


class Shot(Sampling):
    id: Id
    duration: float | None = Field(None, gt=0.0, le=600.0, description="seconds; or `frames`")
    frames: int | None = Field(None, ge=1, le=9601, description="frame count; or `duration`")
    prompt: Annotated[str, StringConstraints(min_length=1, max_length=4000), Plain]
    characters: list[Id] = Field(default_factory=list, max_length=16)
    start: AssetPath | None = Field(None, description='image path, or "previous" to continue the previous shot')
    keyframes: list[Keyframe] = Field(default_factory=list, max_length=32)
    camera: Annotated[str, StringConstraints(max_length=200), Plain] | None = None
    transition: Transition = Field("cut", description="how this shot joins the next one")
    seed: Seed | None = None

    def crossfade_frames(self, fps: int) -> int:
        """Frames of the dissolve into the next shot; 0 for a cut."""
        return 0 if isinstance(self.transition, str) else half_up(self.transition.crossfade * fps)

    @model_validator(mode="after")
    def _one_length(self) -> Shot:
        if (self.duration is None) == (self.frames is None):
            raise ValueError("a shot needs exactly one of `duration` or `frames`")
        return self


class Scene(Strict):
    id: Id
    description: Text = ""
    shots: list[Shot] = Field(min_length=1, max_length=MAX_SHOTS_PER_SCENE)


class Storyboard(Strict):
    sakuga: Literal[1] = Field(description="schema version")
    title: Annotated[str, StringConstraints(min_length=1, max_length=200), Plain] = "Untitled"
    model: PresetName = Field("animatic", description="model preset in configs/models/")
    output: Output = Field(default_factory=Output)
    audio: AssetPath | None = None
    defaults: Defaults = Field(default_factory=Defaults)
    characters: dict[Id, Character] = Field(default_factory=dict, max_length=MAX_CHARACTERS)
    scenes: list[Scene] = Field(min_length=1, max_length=MAX_SCENES)

    def shots(self) -> list[tuple[int, int, Scene, Shot]]:
        """All shots in cut order with their (scene index, shot index)."""
        return [(si, ti, scene, shot) for si, scene in enumerate(self.scenes) for ti, shot in enumerate(scene.shots)]
