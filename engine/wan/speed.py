"""A preset's speed options (`speed_options.py`) applied to a loaded Wan pipeline, through diffusers.

- attention: `set_attention_backend` on each transformer (flash, sage, flex, ...);
- fp8: `enable_layerwise_casting` (weights stored as float8_e4m3fn, upcast per layer) or torchao's
  FP8 dynamic quantisation of the blocks' linear layers (FP8 matmuls, GPUs of compute 8.9+);
- cache: `enable_cache` with FirstBlockCache, MagCache, TaylorSeer, PyramidAttentionBroadcast or
  FasterCache (set up again when a segment's step count changes what the cache needs);
- compile: `compile_repeated_blocks` (torch.compile of the transformer blocks only);
- VAE tiling: `enable_tiling` for decodes whose short side reaches the threshold.

What this machine or gang cannot do falls back with a one-line warning, once per worker process:
sage or flash without a CUDA GPU or their package, torchao without it or an FP8 GPU, compile without
a C++ compiler (CPU) or triton (GPU), a data-dependent cache (FirstBlockCache) in a sequence-parallel
gang, where each rank would decide from its own share of the tokens and the ranks would part ways.
"""
from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass

import torch

from .speed_options import CACHE_NAMES, CacheOptions, SpeedOptions

logger = logging.getLogger(__name__)

CPU_ATTENTION = ("native", "_native_math", "flex")   # the backends with a CPU kernel
WAN_TAYLORSEER_MODULES = r"blocks\.\d+\.(attn1|attn2|ffn)"   # what TaylorSeer predicts between full steps
_noted: set[str] = set()


def note(message: str) -> None:
    """A fallback, said once per process (a worker renders many segments the same way)."""
    if message not in _noted:
        _noted.add(message)
        logger.warning("%s", message)


@dataclass(frozen=True)
class Applied:
    """What took effect on this machine (after fallbacks)."""

    attention: str
    fp8: str
    cache: str | None
    compiled: bool


class Speedups:
    """The speed options of one loaded pipeline: applied at load, kept right per render (step count,
    gang), and asked whether a decode tiles."""

    def __init__(self, pipe, options: SpeedOptions, device: torch.device, dtype: torch.dtype):
        self.pipe, self.options, self.device = pipe, options, device
        self.attention = usable_attention(options.attention, device)
        self.fp8 = usable_fp8(options.fp8, device)
        why = compile_unavailable(device) if options.compile else None
        if why:
            note(f"speed compile: {why}; the transformer runs uncompiled")
        self.compiled = options.compile and why is None
        for transformer in self.transformers:
            set_attention(transformer, self.attention)
            store_fp8(transformer, self.fp8, dtype)
        self.prepare(steps=None, ranks=1)
        if self.compiled:   # after the cache hooks, which the compiled blocks then include
            for transformer in self.transformers:
                transformer.compile_repeated_blocks()
        self.applied = Applied(self.attention, self.fp8, _cache_name(options.cache), self.compiled)
        logger.debug("speed options in effect: %s", self.applied)

    @property
    def transformers(self) -> list:
        return [t for t in (self.pipe.transformer, getattr(self.pipe, "transformer_2", None)) if t is not None]

    def prepare(self, steps: int | None, ranks: int, start: int = 0) -> None:
        """Before a render of `steps` steps on a gang of `ranks`, from step `start` (a resumed render):
        the cache set up for it (MagCache interpolates its ratios to the step count and, resumed,
        counts from `start`; FirstBlockCache is off in a gang). Other caches keep no step count: on a
        resumed render they start cold, as at step 0 (their state is not in a step checkpoint)."""
        cache = self.options.cache
        if cache is not None and cache.kind == "fbc" and ranks > 1:
            note("speed cache fbc: off in a sequence-parallel gang (each rank would decide from its own "
                 "tokens whether to skip, and the ranks would part ways); on again for lone renders")
            cache = None
        if cache is not None and cache.kind == "mag" and steps is None:
            cache = None     # set up at the first render, when the step count is known
        want = None if cache is None else (cache, (steps, start) if cache.kind == "mag" else None)
        for transformer in self.transformers:
            if getattr(transformer, "_sakuga_cache", None) == want:
                continue
            if transformer.is_cache_enabled:
                transformer.disable_cache()
            if want is not None:
                transformer.enable_cache(cache_config(cache, self.pipe, steps, start))
            transformer._sakuga_cache = want

    def after_shard(self, transformer, ranks: int, sp_backend: str) -> None:
        """The attention backend again after `sharding` chose the gang's (or undid a gang's split)."""
        if ranks == 1:
            set_attention(transformer, self.attention)
        elif self.attention != "native" and sp_backend == "diffusers":
            try:
                if self.device.type != "cuda":
                    raise ValueError("the CPU gang attends through its own ring-capable op")
                set_attention(transformer, self.attention)
            except ValueError as e:
                note(f"speed attention {self.attention}: not in a sequence-parallel gang here "
                     f"({str(e).splitlines()[0]}); the gang's attention is used")

    def tiles(self, width: int, height: int) -> bool:
        return self.options.tiles(width, height)


def _cache_name(cache: CacheOptions | None) -> str | None:
    return None if cache is None else f"{cache.kind}:{cache.value:g}"


# -- attention -------------------------------------------------------------------------------------

def usable_attention(name: str, device: torch.device) -> str:
    """`name` if this machine can run it, else native (with a note)."""
    if name == "native":
        return name
    from diffusers.models.attention_dispatch import AttentionBackendName, _check_attention_backend_requirements

    if device.type != "cuda" and name not in CPU_ATTENTION:
        note(f"speed attention {name}: needs a CUDA GPU; using native attention")
        return "native"
    try:
        _check_attention_backend_requirements(AttentionBackendName(name))
    except (RuntimeError, ImportError) as e:
        note(f"speed attention {name}: {str(e).splitlines()[0]}; using native attention")
        return "native"
    return name


def set_attention(transformer, name: str) -> None:
    """Every attention processor of `transformer` on backend `name`. diffusers also makes it the
    process-wide default; that is put back, so other models in this worker keep theirs."""
    from diffusers.models.attention_dispatch import _AttentionBackendRegistry

    if getattr(transformer, "_sakuga_attention", None) == name:
        return
    default = _AttentionBackendRegistry.get_active_backend()[0]
    transformer.set_attention_backend(name)
    _AttentionBackendRegistry.set_active_backend(default)
    transformer._sakuga_attention = name


# -- FP8 weights -----------------------------------------------------------------------------------

def usable_fp8(mode: str, device: torch.device) -> str:
    if mode != "torchao":
        return mode
    why = torchao_unavailable(device)
    if why:
        note(f"speed fp8 torchao: {why}; storing the weights in FP8 with layerwise casting instead")
        return "layerwise"
    return mode


def torchao_unavailable(device: torch.device) -> str | None:
    try:
        import torchao  # noqa: F401
    except ImportError:
        return "torchao is not installed"
    if device.type != "cuda":
        return "FP8 matmuls need a CUDA GPU"
    if torch.cuda.get_device_capability(device) < (8, 9):
        return "FP8 matmuls need a GPU of compute capability 8.9 or later (Ada, Hopper, Blackwell)"
    return None


def store_fp8(transformer, mode: str, compute_dtype: torch.dtype) -> None:
    """Layerwise: weights kept as float8_e4m3fn and upcast to `compute_dtype` layer by layer (half the
    memory of bf16; diffusers keeps embeddings and norms as they are). torchao: the blocks' linear
    layers quantised to FP8 weights and per-row FP8 activations."""
    if mode == "layerwise":
        transformer.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=compute_dtype)
    elif mode == "torchao":
        from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow, quantize_

        quantize_(transformer, Float8DynamicActivationFloat8WeightConfig(granularity=PerRow()),
                  filter_fn=lambda m, name: isinstance(m, torch.nn.Linear) and name.startswith("blocks."))


# -- caches ----------------------------------------------------------------------------------------

def cache_config(cache: CacheOptions, pipe, steps: int | None, start: int = 0):
    """The diffusers config of a cache block. The timestep-driven ones read the pipeline's current
    timestep; FasterCache runs at block level only (sakuga's pipelines call the conditional and
    unconditional passes apart, not batched as its guidance-level part expects)."""
    from diffusers.hooks import (
        FasterCacheConfig,
        FirstBlockCacheConfig,
        MagCacheConfig,
        PyramidAttentionBroadcastConfig,
        TaylorSeerCacheConfig,
    )

    def timestep():
        return pipe.current_timestep

    if cache.kind == "fbc":
        return FirstBlockCacheConfig(threshold=cache.value)
    if cache.kind == "mag":
        if start:     # resumed: MagCache counts steps itself, so it gets the ratios of the steps left
            from diffusers.hooks.mag_cache import nearest_interp

            ratios = nearest_interp(torch.tensor(cache.mag_ratios, dtype=torch.float32), steps)[start:]
            return MagCacheConfig(threshold=cache.value, mag_ratios=ratios, num_inference_steps=steps - start)
        return MagCacheConfig(threshold=cache.value, mag_ratios=cache.mag_ratios, num_inference_steps=steps)
    if cache.kind == "taylorseer":
        # diffusers' default patterns (`^blocks.*attn`, matched whole) miss Wan's `blocks.N.attn1`
        return TaylorSeerCacheConfig(cache_interval=int(cache.value), cache_identifiers=[WAN_TAYLORSEER_MODULES])
    if cache.kind == "pab":
        return PyramidAttentionBroadcastConfig(spatial_attention_block_skip_range=int(cache.value),
                                               current_timestep_callback=timestep)
    if cache.kind == "faster":
        return FasterCacheConfig(spatial_attention_block_skip_range=int(cache.value),
                                 current_timestep_callback=timestep, is_guidance_distilled=True)
    raise ValueError(f"no diffusers cache for {cache.kind!r} ({', '.join(CACHE_NAMES)})")


# -- compilation -----------------------------------------------------------------------------------

def compile_unavailable(device: torch.device) -> str | None:
    """Why torch.compile cannot build kernels here: inductor writes C++ on a CPU, triton on a GPU."""
    if device.type == "cuda":
        from torch.utils._triton import has_triton

        return None if has_triton() else "torch.compile needs triton on a GPU (pip install triton)"
    compilers = [os.environ.get("CXX")] + ["c++", "g++", "clang++"]
    if not any(c and shutil.which(c) for c in compilers):
        return "torch.compile on a CPU needs a C++ compiler (g++ or clang++, or $CXX)"
    return None
