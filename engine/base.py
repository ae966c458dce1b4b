"""The `Engine` protocol: load once, then render segments into frames.

An engine is built from a preset on the worker that runs it and kept for many segments. It gets each
segment's input pictures already decoded (RGB uint8, H x W x 3), keyed by the segment's `ImageRef`s,
and returns exactly `segment.frames` frames at the segment's size; the last one continues the chain.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from storyboard.plan import ImageRef, Segment
from storyboard.presets import Preset

Progress = Callable[[int, int], None]   # (done, total) steps of the current segment


@dataclass
class Rendered:
    frames: np.ndarray                      # (F, H, W, 3) uint8
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def last_frame(self) -> np.ndarray:
        """The frame a chained segment continues from: frames[-1], minus any overlay (captions)."""
        return self.frames[-1]


class Engine(Protocol):
    preset: Preset

    def render(self, segment: Segment, images: Mapping[ImageRef, np.ndarray],
               progress: Progress | None = None) -> Rendered: ...


def create(preset: Preset) -> Engine:
    """Build (and load) the engine a preset names."""
    if preset.engine == "animatic":
        from .animatic import AnimaticEngine

        return AnimaticEngine(preset)
    raise ValueError(f"engine {preset.engine!r} of preset {preset.name!r} is not available yet")
