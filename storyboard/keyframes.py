"""Where a keyframe lands: the one rule the validator and the planner share.

A keyframe is placed by a relative position `at` (0 = first frame, 1 = last) or by an explicit
`frame`. How a position becomes a frame is a property of the model preset (`keyframe_rule`):

- `nearest` (every preset but AniSora's): `at x (frames - 1)`, rounded half up to the nearest
  multiple of `grid` (1: any frame);
- `anisora`: what AniSora's own inference code does (`anisoraV3/wan/image2video_any.py`, and the
  V3.2 `image2video.py`): `round(int((frames - 1) * at) / grid) * grid` with Python's `int` (towards
  zero) and `round` (halves to even) and a grid of 8, so 0.75 of 81 frames is frame 64, not 60.

AniSora's scripts only take clips of 8k + 1 frames, where every position lands inside the clip. On
other lengths the rule can pass the last frame (1.0 of 45 frames: 48); such a keyframe lands on the
last frame instead (AniSora's code would index past the end of the clip).
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from .model import Keyframe, Strict, half_up


class KeyframeRule(Strict):
    """How a relative keyframe position becomes a frame of a shot, and which frames `frame:` may name."""

    kind: Literal["nearest", "anisora"] = Field("nearest", description="nearest grid frame, or AniSora's rule")
    grid: int = Field(1, ge=1, le=64, description="keyframes land on multiples of this (AniSora: 8)")

    def frame(self, at: float, frames: int) -> int:
        """The frame of a shot of `frames` frames that relative position `at` lands on."""
        last = frames - 1
        if self.kind == "anisora":
            placed = round(int(last * at) / self.grid) * self.grid
        else:
            placed = half_up(at * last / self.grid) * self.grid
        return min(placed, last)

    def allows(self, frame: int, frames: int) -> bool:
        """Whether an explicit `frame:` may name `frame` of a shot of `frames` frames: a frame of the shot,
        on the grid (or the last frame, where a position of 1.0 may land too)."""
        return 0 <= frame < frames and (frame % self.grid == 0 or frame == frames - 1)

    def nearest_allowed(self, frame: int, frames: int) -> list[int]:
        """The allowed frames either side of `frame` (an error's suggestion)."""
        below = frame // self.grid * self.grid
        around = {min(below, frames - 1), min(below + self.grid, frames - 1)}
        return sorted(f for f in around if self.allows(f, frames))

def place(keyframe: Keyframe, frames: int, rule: KeyframeRule) -> int:
    """The frame `keyframe` lands on in a shot of `frames` frames: its `frame`, else its `at` by `rule`."""
    if keyframe.frame is not None:
        return keyframe.frame
    return rule.frame(keyframe.at, frames)


def describe(keyframe: Keyframe) -> str:
    """How the storyboard placed a keyframe, for messages: "at 0.5" or "frame 40"."""
    return f"frame {keyframe.frame}" if keyframe.frame is not None else f"at {keyframe.at}"
