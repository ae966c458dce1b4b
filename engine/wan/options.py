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

from pydantic import Field, ValidationError, model_validator

from storyboard.checkpoints import CheckpointOptions
from storyboard.errors import InputError
from storyboard.model import Strict
from storyboard.presets import Preset, preset_problem

from .speed_options import SpeedOptions

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
    speed: SpeedOptions = Field(default_factory=SpeedOptions, description="attention, fp8, cache, compile, "
                                                                          "VAE tiling (speed_options.py)")
    qc_frames: int = Field(4, ge=1, le=64, description="frames per segment sampled for character similarity")
    qc_encoder: str | None = Field(
        None, description="CLIP vision folder whose vectors measure character similarity (a transformers "
                          "CLIPVisionModel(WithProjection) with its preprocessor_config.json, or a diffusers "
                          "pipeline folder with image_encoder/ and image_processor/); empty or unset: the "
                          "pipeline's own image encoder, if it has one")
    text_cache: int = Field(64, ge=0, le=4096, description="prompt embeddings kept per worker")
    checkpoint: CheckpointOptions = Field(default_factory=CheckpointOptions,
                                          description="when denoising is checkpointed (storyboard/checkpoints.py)")
    sp_backend: Literal["diffusers", "xfuser"] = Field(
        "diffusers", description="who exchanges attention in a gang: diffusers' context parallelism, or xDiT's "
                                 "xfuser long-context attention (GPU only, `pip install sakuga[gpu]`)")

    @model_validator(mode="before")
    @classmethod
    def _old_vae_tiling_from(cls, data):
        """`vae_tiling_from: N` (before speed options) is `speed: {vae_tiling: N}`."""
        if isinstance(data, dict) and "vae_tiling_from" in data:
            data = dict(data)
            tiling = data.pop("vae_tiling_from")
            data["speed"] = {"vae_tiling": tiling, **(data.get("speed") or {})}
        return data


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


def optional_path(text: str | None) -> Path | None:
    """An optional path option expanded; None when it is unset or expands to nothing (`${UNSET_VAR}`)."""
    if text is None or not _VAR.sub(lambda m: os.environ.get(m.group(1)) or (m.group(2) or ""), text).strip():
        return None
    return expand(text)


def qc_encoder_folders(folder: Path) -> tuple[Path, Path] | None:
    """The model folder and the image-processor folder of a CLIP vision encoder at `folder`: a transformers
    folder (config and preprocessor config together), a diffusers pipeline folder (`image_encoder/`,
    `image_processor/`) or a pipeline's `image_encoder/` itself; None when `folder` is none of them."""
    for model, processor in ((folder, folder), (folder / "image_encoder", folder / "image_processor"),
                             (folder, folder.parent / "image_processor")):
        if (model / "config.json").is_file() and (processor / "preprocessor_config.json").is_file():
            return model, processor
    return None


def weight_paths(preset: Preset) -> dict[str, Path]:
    """Every local path the preset loads, by option name."""
    opts = options(preset)
    paths = {"base": expand(opts.base)}
    for key in ("transformer", "transformer_2"):
        if getattr(opts, key):
            paths[key] = expand(getattr(opts, key))
    if (qc := optional_path(opts.qc_encoder)) is not None:
        paths["qc_encoder"] = qc
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
    problems = [preset_problem(preset.name, ("options", key),
                               f"preset {preset.name!r}: weights not found: options.{key} = {path} "
                               f"({_how_to_point(preset.options[key])})").problems[0]
                for key, path in missing.items()]
    qc = weight_paths(preset).get("qc_encoder")
    if qc is not None and "qc_encoder" not in missing and qc_encoder_folders(qc) is None:
        problems += preset_problem(preset.name, ("options", "qc_encoder"),
                                   f"preset {preset.name!r}: options.qc_encoder = {qc} is not a CLIP vision folder "
                                   f"(config.json with preprocessor_config.json, or a pipeline folder with "
                                   f"image_encoder/ and image_processor/)").problems
    if problems:
        raise InputError(problems)


def _how_to_point(raw: str) -> str:
    names = [m.group(1) for m in _VAR.finditer(raw)]
    if names:
        return "put them there, or point " + " / ".join(f"${n}" for n in names) + " at them"
    return "put them there, or change the path in the preset"
