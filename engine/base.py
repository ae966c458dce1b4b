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

from .bank import CharacterBank, Embedding

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
    encoder_id: str | None      # identifies the image encoder of the character bank; None: no bank

    def render(self, segment: Segment, images: Mapping[ImageRef, np.ndarray],
               progress: Progress | None = None, *, ranks: int = 1) -> Rendered | None:
        """With `ranks` > 1 the process is one of a gang (the current torch.distributed group) that
        renders the segment together; rank 0 returns the frames, the others None."""
        ...

    def encode_characters(self, wanted: list[tuple[str, str, np.ndarray]]) -> list[Embedding]:
        """Bank rows for (character id, picture sha256, picture)."""
        ...

    def use_bank(self, bank: CharacterBank) -> None: ...


class NoBank:
    """For engines without an image encoder: no character bank, no similarity metric."""
    encoder_id = None

    def encode_characters(self, wanted) -> list:
        return []

    def use_bank(self, bank) -> None:
        pass


def create(preset: Preset, *, offload: bool = False) -> Engine:
    """Build (and load) the engine a preset names."""
    if preset.engine == "animatic":
        from .animatic import AnimaticEngine

        return AnimaticEngine(preset)
    if preset.engine == "wan":
        from .wan import WanEngine

        return WanEngine(preset, offload=offload)
    if preset.engine == "noop":
        from .noop import NoopEngine

        return NoopEngine(preset)
    raise ValueError(f"unknown engine {preset.engine!r} in preset {preset.name!r}")


def check(preset: Preset) -> None:
    """Raise InputError (naming the preset file, field and path) if the preset cannot be loaded here:
    bad engine options or missing weights. Loads nothing."""
    if preset.engine == "wan":
        from .wan_options import check_weights, options

        check_weights(preset)
        if options(preset).sp_backend == "xfuser" and max(preset.degrees) > 1:
            from storyboard.presets import preset_problem

            from .xfuser_sp import unavailable

            why = unavailable()
            if why:
                raise preset_problem(preset.name, ("options", "sp_backend"),
                                     f"preset {preset.name!r}: options.sp_backend: {why}")
