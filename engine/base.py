"""The `Engine` protocol: load once, then render segments into frames.

An engine is built from a preset on the worker that runs it and kept for many segments. It gets each
segment's input pictures already decoded (RGB uint8, H x W x 3), keyed by the segment's `ImageRef`s,
and returns exactly `segment.frames` frames at the segment's size; the last one continues the chain.
Which engine a preset names, and whether it can load here, is `engine.registry`'s business.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from storyboard.plan import ImageRef, Segment
from storyboard.presets import Preset

from .bank import CharacterBank, Embedding
from .steps import StepControl

Progress = Callable[[int, int], None]   # (done, total) steps of the current segment


@dataclass
class Rendered:
    frames: np.ndarray                      # (F, H, W, 3) uint8
    metrics: dict[str, float] = field(default_factory=dict)
    # A model's denoised latents before the VAE decode, float32, in the pipeline's latent shape
    # (1, C, F', h, w); None for engines without latents (animatic, noop). Exact where decoded uint8
    # frames are not, so a gang's render can be compared with one GPU's.
    latents: np.ndarray | None = field(default=None, kw_only=True)

    @property
    def last_frame(self) -> np.ndarray:
        """The frame a chained segment continues from: frames[-1], minus any overlay (captions)."""
        return self.frames[-1]


class Engine(Protocol):
    preset: Preset
    encoder_id: str | None      # identifies the image encoder of the character bank; None: no bank

    def render(self, segment: Segment, images: Mapping[ImageRef, np.ndarray],
               progress: Progress | None = None, *, ranks: int = 1,
               control: StepControl | None = None) -> Rendered | None:
        """With `ranks` > 1 the process is one of a gang (the current torch.distributed group) that
        renders the segment together; rank 0 returns the frames (and a model's latents), the others None.
        `control` (engine/steps.py) checkpoints, stops and resumes a model's denoising at step
        boundaries; engines without steps (animatic, noop) accept it and ignore it."""
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
