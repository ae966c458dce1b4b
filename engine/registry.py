"""Every engine a preset can name: building one (`create`) and checking one can load here (`check`).

The one module that knows all engines; each is imported only when a preset asks for it, so checking an
animatic storyboard never imports torch or diffusers.
"""
from __future__ import annotations

import logging

from storyboard.presets import Preset, preset_problem

from .base import Engine

logger = logging.getLogger(__name__)

def create(preset: Preset, *, offload: bool = False, residency: str | None = None) -> Engine:
    """Build (and load) the engine a preset names; `residency` (engine.memory.plan) says where a model
    engine keeps its components (`offload` alone: model CPU offload)."""
    logger.debug("building the %s engine of preset %s (offload: %s, residency: %s)", preset.engine, preset.name,
                 offload, residency)
    if preset.engine == "animatic":
        from .animatic import AnimaticEngine

        return AnimaticEngine(preset)
    if preset.engine == "wan":
        from .wan.engine import WanEngine

        return WanEngine(preset, offload=offload, residency=residency)
    if preset.engine == "noop":
        from .noop import NoopEngine

        return NoopEngine(preset)
    raise ValueError(f"unknown engine {preset.engine!r} in preset {preset.name!r}")


def check(preset: Preset) -> None:
    """Raise InputError (naming the preset file, field and path) if the preset cannot be loaded here:
    bad engine options, missing weights, or weights that would not load (`sakuga models check`, from
    file headers: a missing shard, a tensor of the wrong shape...). Loads nothing."""
    if preset.engine == "wan":
        from .wan.options import check_weights, options

        check_weights(preset)
        if not options(preset).build_tiny:   # a tiny model sakuga builds itself is right by construction
            from .wan.model_check import verify

            verify(preset)
        if options(preset).sp_backend == "xfuser" and max(preset.degrees) > 1:
            from .parallel.xfuser_sp import unavailable

            why = unavailable()
            if why:
                raise preset_problem(preset.name, ("options", "sp_backend"),
                                     f"preset {preset.name!r}: options.sp_backend: {why}")
