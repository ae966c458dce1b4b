"""Upscaler presets (`configs/upscalers/<name>.yaml`, or a folder in `$SAKUGA_UPSCALERS`).

A preset names a local checkpoint (never downloaded; `${VAR:-default}` and `~` are expanded on the
machine that loads it), the scale the checkpoint must have, how to tile and batch it, and what it
costs. Free of torch, so the command line can refuse a missing checkpoint (exit 2, naming the preset's
line and the path) before a worker starts.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field

from engine.wan.options import expand
from storyboard.configs import ConfigFolder
from storyboard.errors import InputError, Problem
from storyboard.model import PresetName, Strict


class UpscaleCost(Strict):
    """Seconds to upscale a clip: `overhead_s + s_per_mpixel_frame × input megapixels × frames`.

    Per *input* megapixel-frame because these nets run their convolutions at the input's resolution
    (the compact net entirely, RRDB nets but for their last two upsampling convolutions), so the
    output size barely moves the cost; the final resize to the delivery size is in the figure."""

    hardware: str = Field(description="what the figures are for, e.g. 'H100 80GB, fp16'")
    source: str = Field(description="measured (by what) or estimated (from what)")
    overhead_s: float = Field(ge=0, description="per clip: loading, first-call warm-up")
    s_per_mpixel_frame: float = Field(gt=0)

    def runtime(self, frames: int, width: int, height: int) -> float:
        return self.overhead_s + self.s_per_mpixel_frame * frames * width * height / 1e6


class TinyNet(Strict):
    """The random-weight compact net `build_tiny` makes (SRVGGNetCompact's shape, spandrel's keys)."""

    features: int = Field(8, ge=1, le=64)
    convs: int = Field(2, ge=0, le=32)
    seed: int = Field(0, ge=0)


class UpscalerPreset(Strict):
    name: PresetName
    description: str = ""
    weights: str = Field(description="checkpoint file (.pth, .safetensors) spandrel can detect")
    build_tiny: TinyNet | None = Field(None, description="build a random-weight compact net at `weights` if missing")
    scale: int = Field(ge=1, le=8, description="the checkpoint's scale; checked when it loads")
    tile: int = Field(512, ge=0, le=8192, description="input pixels per tile side; 0: whole frames")
    overlap: int = Field(32, ge=0, le=512, description="input pixels tiles share; each keeps the middle")
    batch: int = Field(4, ge=1, le=256, description="frames per forward pass")
    dtype: Literal["float32", "float16", "bfloat16"] = Field("float16", description="on CUDA; CPUs use float32")
    resize: Literal["bicubic", "bilinear", "area"] = Field(
        "bicubic", description="the filter from the net's output to the exact delivery size (antialiased)")
    memory_gb: float = Field(1.0, ge=0, description="accelerator memory while loaded")
    cost: UpscaleCost

    def weights_path(self) -> Path:
        return expand(self.weights)


UPSCALERS = ConfigFolder("upscaler preset", "upscalers", "SAKUGA_UPSCALERS", UpscalerPreset)


def load_upscaler(name: str, named_at: Problem | None = None) -> UpscalerPreset:
    preset = UPSCALERS.load(name, named_at)
    if preset.tile and preset.overlap * 2 >= preset.tile:
        raise InputError([UPSCALERS.problem(name, ("overlap",), f"`overlap` ({preset.overlap}) must be less than "
                                                                f"half of `tile` ({preset.tile})")])
    return preset


def missing_weights(preset: UpscalerPreset) -> Path | None:
    """The checkpoint path when it is not on this machine (a buildable tiny net is never missing)."""
    path = preset.weights_path()
    return None if preset.build_tiny is not None or path.is_file() else path


def check_weights(preset: UpscalerPreset) -> None:
    """Raise InputError at the preset's `weights` line, naming the path, when the checkpoint is missing."""
    path = missing_weights(preset)
    if path is not None:
        names = re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", preset.weights)
        how = ("point " + " / ".join(f"${n}" for n in names) + " at it") if names else "change `weights`"
        raise InputError([UPSCALERS.problem(
            preset.name, ("weights",), f"upscaler {preset.name!r}: checkpoint not found: weights = {path} "
                                       f"(put it there, or {how}; nothing is downloaded)")])
