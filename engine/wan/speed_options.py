"""The speed options of a `wan` preset (`options.speed:`) and of the `--speed KEY=VALUE` flag.

Torch-free, like `options.py`: the command line checks them before Ray starts. What each option does
to the model (diffusers' attention backends, layerwise FP8 casting or torchao, its cache hooks,
regional compilation, VAE tiling) is `speed.py`; how much faster it makes a segment is the preset's
`cost.speed` factors (`storyboard.presets.speed_names` names what is on).

    options:
      speed:
        attention: sage               # a diffusers attention backend (native when left out)
        fp8: layerwise                # off | layerwise (weights stored in FP8) | torchao (FP8 matmuls)
        cache: {kind: fbc, threshold: 0.05}   # or "fbc:0.05"; off when left out
        compile: true                 # torch.compile of the repeated transformer blocks
        vae_tiling: 720               # tile the VAE when the short side is at least this; true / false
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from storyboard.errors import InputError
from storyboard.model import Strict
from storyboard.presets import VAE_TILING_FROM

# diffusers 0.42's `AttentionBackendName` values, less the `*_hub` ones (they download kernels from the
# Hugging Face hub at first use; sakuga downloads nothing). tests/engine/wan/test_speed.py checks each
# is still one of diffusers' names.
ATTENTION_BACKENDS = (
    "native", "flash", "flash_varlen", "_flash_3", "_flash_varlen_3", "flex", "xformers",
    "sage", "sage_varlen", "_sage_qk_int8_pv_fp8_cuda", "_sage_qk_int8_pv_fp8_cuda_sm90",
    "_sage_qk_int8_pv_fp16_cuda", "_sage_qk_int8_pv_fp16_triton",
    "_native_cudnn", "_native_efficient", "_native_flash", "_native_math",
)
# each cache's one knob, its name in the YAML block and its diffusers default
CACHE_KNOBS = {"fbc": ("threshold", 0.05), "mag": ("threshold", 0.06), "taylorseer": ("interval", 5),
               "pab": ("skip", 2), "faster": ("skip", 2)}
CACHE_NAMES = {"fbc": "FirstBlockCache", "mag": "MagCache", "taylorseer": "TaylorSeer",
               "pab": "PyramidAttentionBroadcast", "faster": "FasterCache"}
FP8_MODES = ("off", "layerwise", "torchao")


class CacheOptions(Strict):
    """One diffusers cache and its knob: fbc/mag `threshold` (skip while the change stays below it),
    taylorseer `interval` (steps predicted between full ones), pab/faster `skip` (attention computed
    every `skip` steps)."""

    kind: Literal["fbc", "mag", "taylorseer", "pab", "faster"]
    threshold: float | None = Field(None, gt=0, le=10)
    interval: int | None = Field(None, ge=1, le=100)
    skip: int | None = Field(None, ge=2, le=100)
    mag_ratios: list[float] | None = Field(None, min_length=2, max_length=1000,
                                           description="MagCache's per-step magnitude ratios (model-specific)")

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, data):
        return parse_cache(data) if isinstance(data, str) else data

    @model_validator(mode="after")
    def _knob_of_its_kind(self):
        knob = CACHE_KNOBS[self.kind][0]
        for other in ("threshold", "interval", "skip"):
            if other != knob and getattr(self, other) is not None:
                raise ValueError(f"cache {self.kind} takes `{knob}`, not `{other}`")
        if self.kind == "mag" and self.mag_ratios is None:
            raise ValueError("cache mag needs `mag_ratios` (the model's per-step magnitude ratios, from a "
                             "MagCache calibration run; diffusers ships none for Wan) in the preset")
        if self.kind != "mag" and self.mag_ratios is not None:
            raise ValueError(f"`mag_ratios` is for cache mag, not {self.kind}")
        return self

    @property
    def value(self) -> float:
        knob, default = CACHE_KNOBS[self.kind]
        given = getattr(self, knob)
        return default if given is None else given


class SpeedOptions(Strict):
    attention: str = Field("native", description="diffusers attention backend of the transformers")
    fp8: Literal["off", "layerwise", "torchao"] = Field(
        "off", description="layerwise: weights stored as float8_e4m3fn, computed in the preset's dtype; "
                           "torchao: FP8 weights and activations in FP8 matmuls (GPUs of compute 8.9+)")
    cache: CacheOptions | None = Field(None, description="a diffusers cache: fbc, mag, taylorseer, pab, faster")
    compile: bool = Field(False, description="torch.compile the repeated transformer blocks (regional)")
    vae_tiling: int | bool = Field(VAE_TILING_FROM, description="decode in tiles when the short side is at least this "
                                                    "(true: always, false: never)")

    @field_validator("attention")
    @classmethod
    def _known_backend(cls, name: str) -> str:
        if name not in ATTENTION_BACKENDS:
            raise ValueError(f"unknown attention backend {name!r} (one of: {', '.join(ATTENTION_BACKENDS)})")
        return name

    @field_validator("fp8", mode="before")
    @classmethod
    def _fp8_false_is_off(cls, value):
        return "off" if value is False else value

    @field_validator("cache", mode="before")
    @classmethod
    def _cache_off(cls, value):
        return None if value in (False, "off", "none") else value

    @field_validator("vae_tiling")
    @classmethod
    def _positive(cls, value):
        if not isinstance(value, bool) and value < 1:
            raise ValueError("vae_tiling is true, false or a short side in pixels (at least 1)")
        return value

    def tiles(self, width: int, height: int) -> bool:
        """Whether a decode at this size goes through the VAE in tiles."""
        if isinstance(self.vae_tiling, bool):
            return self.vae_tiling
        return min(width, height) >= self.vae_tiling


def parse_cache(text: str) -> dict:
    """`fbc`, `fbc:0.05`, `taylorseer:3`, `pab:2` ... as a cache block."""
    kind, _, knob = text.partition(":")
    if kind not in CACHE_KNOBS:
        raise ValueError(f"unknown cache {kind!r} (one of: {', '.join(CACHE_KNOBS)}, or off)")
    if not knob:
        return {"kind": kind}
    name = CACHE_KNOBS[kind][0]
    try:
        number = float(knob) if name == "threshold" else int(knob)
    except ValueError:
        raise ValueError(f"cache {kind}: {name} must be a {'number' if name == 'threshold' else 'whole number'}, "
                         f"not {knob!r}") from None
    return {"kind": kind, name: number}


FLAG_HELP = ("KEY=VALUE, repeatable: attention=NAME (native, flash, sage, flex, ...), fp8=off|layerwise|torchao, "
             "cache=off|fbc[:THRESHOLD]|taylorseer[:INTERVAL]|pab[:SKIP]|faster[:SKIP], compile=on|off, "
             "vae_tiling=on|off|SHORT_SIDE")
_ON, _OFF = ("on", "true", "yes", "1"), ("off", "false", "no", "0")


def parse_flags(flags: list[str] | None) -> dict:
    """`--speed KEY=VALUE` flags as a `speed:` block (later flags win); InputError naming the flag."""
    block: dict = {}
    for flag in flags or []:
        key, sep, value = flag.partition("=")
        if not sep or key not in SpeedOptions.model_fields:
            raise InputError.single("--speed", f"--speed {flag!r}: expected {FLAG_HELP}")
        block[key] = _flag_value(key, value.strip())
        try:
            SpeedOptions.model_validate({key: block[key]})
        except ValidationError as e:
            raise InputError.single("--speed", f"--speed {flag!r}: {_reason(e)}") from None
    return block


def _flag_value(key: str, value: str):
    if key in ("compile", "vae_tiling") and value.lower() in _ON + _OFF:
        return value.lower() in _ON
    if key == "vae_tiling" and value.isdigit():
        return int(value)
    return value


def _reason(error: ValidationError) -> str:
    first = error.errors()[0]
    return first["msg"].removeprefix("Value error, ")

