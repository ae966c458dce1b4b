"""Model presets (`configs/models/<name>.yaml`): what a model renders and what it costs.

A preset is data: frame grid, fps, sampling defaults, prompt suffix, sequence-parallel degrees and a
cost model. The planner reads it to shape segments; engines read `engine` and `options` to load the
model. Search path: directories in $SAKUGA_MODELS (os.pathsep-separated), then the built-in configs.
"""
from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, ValidationError

from .adapters.yamlsource import load_yaml
from .architecture import Architecture
from .errors import InputError, Problem
from .keyframes import KeyframeRule
from .model import Fit, Identity, PresetName, Sampling, Seed, Shot, Strict, half_up
from .schema_errors import problems_from_validation

BUILTIN_DIR = Path(__file__).resolve().parents[1] / "configs" / "models"


VAE_TILING_FROM = 720     # the short side from which a Wan VAE decodes in tiles, unless a preset says otherwise

# a speed option as `cost.speed` names it: `attention=sage`, `fp8=layerwise`, `cache=fbc`, `compile=on`
SpeedName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]+=[a-z0-9_]+$", max_length=64)]


class FrameGrid(Strict):
    """Valid frame counts are `step * k + offset` (Wan: 4k+1, from its 4x temporal VAE stride)."""

    step: int = Field(4, ge=1, le=64)
    offset: int = Field(1, ge=0, le=64)

    def snap(self, frames: float) -> int:
        return self.step * max(half_up((frames - self.offset) / self.step), 0) + self.offset

    def on_grid(self, frames: int) -> bool:
        return frames >= self.offset and (frames - self.offset) % self.step == 0


Size = tuple[Annotated[int, Field(ge=16, le=3840)], Annotated[int, Field(ge=16, le=3840)]]


class CostModel(Strict):
    """Seconds to render one segment, per sequence-parallel degree.

    runtime = overhead + steps * forwards * (linear * ktok + attention * ktok^2) * speed / (degree * eff[degree])
              + decode * megapixel-frames / (degree * decode_eff[degree])
    where ktok = transformer tokens / 1000, forwards = 2 when classifier-free guidance runs and `speed`
    the product of the `speed` factors of the speed options that are on (`speed_names`). The whole gang
    works: a tiled decode is shared by its ranks (degrees in `decode_efficiency`; otherwise, and for an
    untiled decode, rank 0 decodes alone: decode_eff = 1 / degree), and with CFG-parallel on an even gang
    the two passes run side by side on its halves: one forward at degree/2 a step instead of two at degree.
    """

    hardware: str = Field(description="what the figures are for, e.g. 'H100 80GB, bf16'")
    source: str = Field(description="where the figures come from (measured / public)")
    overhead_s: float = Field(ge=0)
    linear_s_per_ktoken: float = Field(ge=0)
    attention_s_per_ktoken2: float = Field(ge=0)
    decode_s_per_mpixel_frame: float = Field(ge=0)
    parallel_efficiency: dict[int, float] = Field(default_factory=lambda: {1: 1.0})
    decode_efficiency: dict[int, float] = Field(
        default_factory=dict, description="a gang's shared tiled VAE decode: its speed-up at degree k is "
                                          "k x this (the tiles' balance, rank 0's join); unlisted: rank 0 alone")
    # the farm gives up on an attempt after max(timeout_min_s, timeout_factor x estimate), plus load_s
    # when the worker does not hold the model yet: a hung GPU or a wedged NCCL call then costs minutes
    load_s: float = Field(0.0, ge=0, le=86400, description="seconds to load the model on a worker")
    timeout_factor: float = Field(4.0, ge=1.0, le=1000.0)
    timeout_min_s: float = Field(120.0, gt=0, le=86400)
    speed: dict[SpeedName, float] = Field(
        default_factory=dict, description="denoising time factor per speed option, e.g. `attention=sage: 0.8`")

    def speedup(self, names: list[str]) -> float:
        """The denoising time factor of the speed options `names` (1 for an option with no figure)."""
        factor = 1.0
        for name in names:
            factor *= self.speed.get(name, 1.0)
        return factor

    def timeout(self, estimate_s: float, loading: bool) -> float:
        return max(self.timeout_min_s, self.timeout_factor * estimate_s) + (self.load_s if loading else 0.0)

    def runtime(self, *, tokens: int, steps: int, cfg: bool, mpixel_frames: float, degree: int = 1,
                speedup: float = 1.0, tiled: bool = False, cfg_parallel: bool = False) -> float:
        """`tiled`: the VAE decodes in tiles (a gang can share them); `cfg_parallel`: the preset runs
        CFG's passes on a gang's halves (the engine's `options.cfg_parallel`)."""
        ktok = tokens / 1000.0
        per_forward = self.linear_s_per_ktoken * ktok + self.attention_s_per_ktoken2 * ktok * ktok
        return self.overhead_s + self.denoise(per_forward * speedup, steps, cfg, degree, cfg_parallel) \
            + self.decode(mpixel_frames, degree, tiled)

    def denoise(self, per_forward: float, steps: int, cfg: bool, degree: int, cfg_parallel: bool) -> float:
        half = degree // 2
        if cfg and cfg_parallel and degree % 2 == 0 and half in self.parallel_efficiency:
            # the halves' swap of one step's prediction (latents, ~10 MB at 720p) is not counted
            return steps * per_forward / (half * self.parallel_efficiency[half])
        return steps * (2 if cfg else 1) * per_forward / (degree * self.parallel_efficiency[degree])

    def decode(self, mpixel_frames: float, degree: int, tiled: bool) -> float:
        alone = self.decode_s_per_mpixel_frame * mpixel_frames
        if not tiled or degree not in self.decode_efficiency:
            return alone
        return alone / (degree * self.decode_efficiency[degree])


class PresetDefaults(Sampling):
    steps: int = Field(8, ge=1, le=200)
    guidance: float = Field(1.0, ge=0.0, le=30.0)
    shift: float = Field(5.0, gt=0.0, le=50.0)
    negative: str = ""
    aesthetic: float = 5.5
    motion: float = 1.3
    fit: Fit = "cover"
    identity: Identity = "embedding"
    seed: Seed = 1234


class Preset(Strict):
    name: PresetName
    engine: Literal["animatic", "wan", "noop"]
    description: str = ""
    fps: int = Field(16, ge=1, le=60)
    frame_grid: FrameGrid = Field(default_factory=FrameGrid)
    min_frames: int = Field(5, ge=1)
    max_frames: int = Field(81, ge=1, le=1025, description="longest segment the model renders in one go")
    resolution_multiple: int = Field(16, ge=1)
    native_size: Size | None = Field(None, description="width, height rendered when a storyboard sets no size "
                                                       "(swapped when its first picture is portrait)")
    sizes: list[Size] | None = Field(None, description="the only output sizes the model takes (none: any)")
    keyframe_rule: KeyframeRule = Field(default_factory=KeyframeRule, description="where keyframe positions land")
    token_stride: tuple[int, int, int] = Field((4, 16, 16), description="frames/rows/cols per transformer token")
    attention_heads: int = Field(40, ge=1)
    degrees: list[int] = Field(default_factory=lambda: [1], description="sequence-parallel degrees it supports")
    defaults: PresetDefaults = Field(default_factory=PresetDefaults)
    prompt_suffix: str = Field("", description="appended to every prompt; {aesthetic} and {motion} are filled")
    cost: CostModel
    memory_gb: float = Field(0.0, ge=0, description="accelerator memory the loaded model needs (worker residency), "
                                                    "for presets without `architecture` (planned from it otherwise)")
    architecture: Architecture | None = Field(None, description="real component configs (configs/architectures/) "
                                                                "the GPU memory is planned from (engine/memory/)")
    pictures: bool = Field(True, description="takes condition pictures (start, keyframes); false for text-to-video")
    text_to_video: PresetName | None = Field(None, description="preset for segments with no picture at all (none: this one)")
    options: dict[str, Any] = Field(default_factory=dict, description="engine-specific settings")

    def shot_frames(self, shot: Shot, fps: int) -> int | None:
        """The shot's frame count snapped to the grid; None when it is below `min_frames`."""
        raw = shot.frames if shot.frames is not None else shot.duration * fps
        frames = self.frame_grid.snap(raw)
        return frames if frames >= self.min_frames else None

    def tokens(self, frames: int, width: int, height: int) -> int:
        ft, fh, fw = self.token_stride
        return ((frames - 1) // ft + 1) * (height // fh) * (width // fw)

    def runtime(self, frames: int, width: int, height: int, steps: int, guidance: float, degree: int = 1) -> float:
        return self.cost.runtime(
            tokens=self.tokens(frames, width, height),
            steps=steps,
            cfg=guidance > 1.0,
            mpixel_frames=frames * width * height / 1e6,
            degree=degree,
            speedup=self.cost.speedup(speed_names(self.options)),
            tiled=decode_tiles(self.options, width, height),
            cfg_parallel=self.options.get("cfg_parallel") is True,
        )

    def with_speed(self, overrides: dict) -> "Preset":
        """This preset with `overrides` (a `speed:` block, from `--speed`) laid over `options.speed`."""
        if not overrides:
            return self
        speed = {**(self.options.get("speed") or {}), **overrides}
        return self.model_copy(update={"options": {**self.options, "speed": speed}})


def speed_names(options: dict) -> list[str]:
    """The speed options that are on, as `cost.speed` names them (`key=value`; `key=on` for a switch,
    `key=kind` for a cache). Read from the raw `options.speed` block (the engine validates it): the
    planner needs only the names, not what they do."""
    names = []
    speed = options.get("speed")
    for key, value in (speed.items() if isinstance(speed, dict) else ()):
        if isinstance(value, dict):
            value = value.get("kind")
        elif isinstance(value, str):
            value = value.partition(":")[0]
        if value is True:
            value = "on"
        if isinstance(value, str) and value not in ("off", "native", "none"):
            names.append(f"{key}={value}")
    return names


def decode_tiles(options: dict, width: int, height: int) -> bool:
    """Whether the VAE decodes this size in tiles: `options.speed.vae_tiling` (a short side, or true /
    false), read raw as `speed_names` reads the block (engine/wan/speed_options.py validates it)."""
    speed = options.get("speed") if isinstance(options.get("speed"), dict) else {}
    tiling = speed.get("vae_tiling", options.get("vae_tiling_from", VAE_TILING_FROM))
    if isinstance(tiling, bool):
        return tiling
    return isinstance(tiling, int) and min(width, height) >= tiling


def pixel_options(options: dict) -> dict:
    """`options` less the speed settings that leave the pixels as they are (up to kernel rounding, as a
    thread count does): an exact attention backend (all but SageAttention's quantized ones) and
    compilation, and CFG-parallel (the same two passes, mixed the same way, on other ranks), and when
    a segment checkpoints. FP8 weights, caches, quantized attention and VAE tiling change pixels, so they
    stay and count in a segment's content hash; the rest do not re-render what is cached."""
    options = {k: v for k, v in options.items() if k not in ("cfg_parallel", "checkpoint")}
    speed = options.get("speed")
    if not isinstance(speed, dict):
        return options
    kept = {k: v for k, v in speed.items()
            if k != "compile" and not (k == "attention" and "sage" not in str(v))}
    return {**options, "speed": kept} if kept else {k: v for k, v in options.items() if k != "speed"}


def search_path() -> list[Path]:
    extra = [Path(p) for p in os.environ.get("SAKUGA_MODELS", "").split(os.pathsep) if p]
    return extra + [BUILTIN_DIR]


def available() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder in reversed(search_path()):  # earlier entries win
        if folder.is_dir():
            found.update({p.stem: p for p in sorted(folder.glob("*.yaml"))})
    return dict(sorted(found.items()))


@cache
def _document(path: Path):
    return load_yaml(path)


@cache
def _load(path: Path) -> Preset:
    doc = _document(path)
    try:
        return Preset.model_validate(doc.data)
    except ValidationError as e:
        raise InputError(problems_from_validation(doc, e)) from None


def load_preset(name: str) -> Preset:
    """The preset called `name`; raises KeyError listing the known ones when there is none."""
    presets = available()
    if name not in presets:
        raise KeyError(f"unknown model preset {name!r} (known: {', '.join(presets) or 'none'})")
    preset = _load(presets[name].resolve())
    if preset.name != name:
        raise InputError.single(presets[name], f"preset file is named {name!r} but says name: {preset.name!r}")
    return preset


def preset_problem(name: str, path: tuple, message: str) -> InputError:
    """An InputError at the line of `path` (e.g. ("options", "base")) in preset `name`'s file."""
    file = available().get(name)
    if file is None:
        return InputError([Problem(f"<preset {name}>", 1, 1, message)])
    return InputError([_document(file.resolve()).problem(path, message)])
