"""When a segment's denoising is checkpointed: a preset's `options.checkpoint` block and the pure rule
the farm asks before a render.

A step checkpoint (engine/steps.py) costs a copy of the latents and the sampler's state to the CPU and
a trip to the driver (about 170 MB for an 81-frame 1080p Wan segment); it saves the steps a lost worker
or a preemption would otherwise throw away. Worth it for long segments only: those the preset's cost
model estimates under `min_segment_s` are not checkpointed at all. Others are checkpointed after every
`every_steps` steps or once `every_s` seconds have passed since the last one, whichever comes first.
No torch here: the farm's driver decides before any engine is loaded.
"""
from __future__ import annotations

from typing import NamedTuple

from pydantic import Field, ValidationError, model_validator

from .model import Strict
from .presets import Preset, preset_problem

ENGINES_WITH_STEPS = ("wan",)       # animatic and noop render no denoising steps


class CheckpointOptions(Strict):
    """`options.checkpoint` of a preset."""

    every_steps: int | None = Field(None, ge=1, le=1000, description="checkpoint after every K steps (none: by time)")
    every_s: float | None = Field(120.0, gt=0, le=86400, description="checkpoint once T seconds passed since the last")
    min_segment_s: float = Field(60.0, ge=0, description="segments the cost model estimates under it: no checkpoints")

    @model_validator(mode="after")
    def _one_trigger(self):
        if self.every_steps is None and self.every_s is None:
            raise ValueError("give every_steps or every_s (or both); to turn checkpoints off for most segments, "
                             "raise min_segment_s")
        return self


class CheckpointPolicy(NamedTuple):
    """(K, T): a checkpoint after K steps or T seconds since the last one, whichever comes first."""

    every_steps: int | None
    every_s: float | None

    def due(self, steps_since: int, seconds_since: float) -> bool:
        """Whether a boundary `steps_since` steps and `seconds_since` seconds after the last checkpoint
        (or the render's start) takes one."""
        return ((self.every_steps is not None and steps_since >= self.every_steps)
                or (self.every_s is not None and seconds_since >= self.every_s))


def checkpoint_options(preset: Preset) -> CheckpointOptions:
    """The preset's `options.checkpoint` (its defaults when absent); InputError at the field's line."""
    raw = preset.options.get("checkpoint")
    try:
        return CheckpointOptions.model_validate({} if raw is None else raw)
    except ValidationError as e:
        first = e.errors()[0]
        loc = tuple(first["loc"])
        field = ".".join(str(p) for p in ("checkpoint", *loc))
        raise preset_problem(preset.name, ("options", "checkpoint", *loc),
                             f"preset {preset.name!r}: options.{field}: {first['msg']}") from None


def checkpoint_policy(preset: Preset, estimate_s: float) -> CheckpointPolicy | None:
    """When a segment the cost model estimates at `estimate_s` seconds is checkpointed; None for an
    engine without steps or a segment cheaper than `min_segment_s` (a restart costs less than a checkpoint)."""
    if preset.engine not in ENGINES_WITH_STEPS:
        return None
    opts = checkpoint_options(preset)
    if estimate_s < opts.min_segment_s:
        return None
    return CheckpointPolicy(opts.every_steps, opts.every_s)
