"""The `options:` block of a `wan` preset, and where its weights are on this machine.

Kept free of torch and diffusers so the command line can check a preset's weights (and exit 2 naming
the missing path) before starting Ray or loading anything. Paths may use `${VAR}`, `${VAR:-default}`
and `~`; they are expanded on the machine that loads the model.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError

from storyboard.errors import InputError
from storyboard.model import Strict
from storyboard.presets import Preset, preset_problem

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class WanOptions(Strict):
    base: str = Field(description="diffusers Wan pipeline folder (text encoder, VAE, image encoder, scheduler...)")
    transformer: str | None = Field(None, description="transformer checkpoint as published (AniSora): a Wan or "
                                                      "diffusers folder, a single file, FP8-scaled, GGUF")
    transformer_2: str | None = Field(None, description="low-noise transformer checkpoint (Wan2.2 A14B pairs)")
    boundary_ratio: float | None = Field(None, gt=0, lt=1, description="Wan2.2: switch to transformer_2 below it")
    build_tiny: bool = Field(False, description="build the tiny random-weight model at `base` if it is missing")
    task: Literal["i2v", "t2v"] = "i2v"
    dtype: Literal["float32", "bfloat16", "float16"] = "bfloat16"
    identity_weight: float = Field(0.5, ge=0, le=1, description="share of the character bank in image embeddings")
    vae_tiling_from: int = Field(720, ge=1, description="decode with VAE tiling when the short side is at least this")
    qc_frames: int = Field(4, ge=1, le=64, description="frames per segment sampled for character similarity")
    text_cache: int = Field(64, ge=0, le=4096, description="prompt embeddings kept per worker")
    sp_backend: Literal["diffusers", "xfuser"] = Field(
        "diffusers", description="who exchanges attention in a gang: diffusers' context parallelism, or xDiT's "
                                 "xfuser long-context attention (GPU only, `pip install sakuga[gpu]`)")


def expand(text: str) -> Path:
    """`${VAR:-default}`, `${VAR}` and `~` expanded; an unset `${VAR}` without default expands to ''."""
    return Path(os.path.expanduser(_VAR.sub(lambda m: os.environ.get(m.group(1)) or (m.group(2) or ""), text)))


def options(preset: Preset) -> WanOptions:
    try:
        return WanOptions.model_validate(preset.options)
    except ValidationError as e:
        first = e.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise preset_problem(preset.name, ("options", *first["loc"]),
                             f"preset {preset.name!r}: options.{field}: {first['msg']}") from None


def weight_paths(preset: Preset) -> dict[str, Path]:
    """Every local path the preset loads, by option name."""
    opts = options(preset)
    paths = {"base": expand(opts.base)}
    for key in ("transformer", "transformer_2"):
        if getattr(opts, key):
            paths[key] = expand(getattr(opts, key))
    return paths


def missing_weights(preset: Preset) -> dict[str, Path]:
    """Paths the preset needs that are not on this machine (a buildable tiny model is never missing)."""
    opts = options(preset)
    missing = {k: p for k, p in weight_paths(preset).items() if not p.exists()}
    if opts.build_tiny:
        missing.pop("base", None)
    return missing


def check_weights(preset: Preset) -> None:
    """Raise InputError naming the preset, option and path of every missing weight file."""
    missing = missing_weights(preset)
    if missing:
        raise InputError([preset_problem(preset.name, ("options", key),
                                         f"preset {preset.name!r}: weights not found: options.{key} = {path} "
                                         f"({_how_to_point(preset.options[key])})").problems[0]
                          for key, path in missing.items()])


def _how_to_point(raw: str) -> str:
    names = [m.group(1) for m in _VAR.finditer(raw)]
    if names:
        return "put them there, or point " + " / ".join(f"${n}" for n in names) + " at them"
    return "put them there, or change the path in the preset"
