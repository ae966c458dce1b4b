"""Speed options on the tiny Wan model: each one takes effect, and the frames stay close to the plain render.

Renders are 64x64, 5 frames (the VAE is what is slow on a CPU); the caches need a few steps to have
something to skip, so the segment runs 6.
"""
from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest
import torch

from engine.wan import speed as speed_module
from engine.wan.engine import WanEngine
from engine.wan.speed import Speedups, compile_unavailable
from storyboard.plan import Condition, ImageRef, Segment
from storyboard.presets import load_preset

W = H = 64
START = ImageRef("asset", "start.png", "0" * 64)
PICTURE = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)

# A cache reuses earlier steps' block outputs instead of computing this step's, an approximation
# whose error depends on the model. On the tiny model it measured 0.4% (taylorseer 2) to 1.9% (fbc 0.1)
# of the latents' norm; 5% leaves room for other thread counts and kernels, and still fails a cache that
# feeds back something unrelated (zeros instead of a block's output move the latents by ~100%).
CACHE_REL = 0.05
# float8_e4m3fn keeps 3 mantissa bits: every stored weight is within 2**-4 (6.25%) of itself, so a
# layer's output errs by at most that share when all rounding errors line up; independent roundings
# mostly cancel (measured: 1.5% on the latents after 6 steps).
FP8_REL = 2 ** -4


def segment(steps: int = 6) -> Segment:
    return Segment(id="a.0", shot="a", index=0, first_frame=0, frames=5, width=W, height=H, fps=16,
                   model="wan-tiny", engine="wan", prompt="w1 w2 w3", negative="", steps=steps, guidance=1.0,
                   shift=5.0, seed=7, camera=None, conditions=(Condition(0, START),), characters=(), deps=(),
                   options=(), runtime_s=((1, 1.0),))


def engine_with(**speed) -> WanEngine:
    return WanEngine(load_preset("wan-tiny").with_speed(speed))


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


class Counter:
    """Calls of each block's self-attention query projection: a skipped block or attention never reaches it
    (the caches replace the hooked module's forward, so a hook on that module itself would still fire)."""

    def __init__(self, engine: WanEngine):
        self.calls = 0
        self.hooks = [b.attn1.to_q.register_forward_pre_hook(self.count) for b in engine.pipe.transformer.blocks]

    def count(self, module, args):
        self.calls += 1

    def remove(self):
        for h in self.hooks:
            h.remove()


def counted_render(engine: WanEngine, seg: Segment):
    counter = Counter(engine)
    try:
        return engine.render(seg, {START: PICTURE}), counter.calls
    finally:
        counter.remove()


@pytest.fixture(scope="module")
def plain():
    engine = engine_with()
    out, calls = counted_render(engine, segment())
    return engine, out, calls


# ---------------------------------------------------------------- caches


@pytest.mark.parametrize("cache, again", [("fbc:0.1", True), ("taylorseer:2", True), ("pab:2", False),
                                          ("faster:2", False)])
def test_a_cache_skips_transformer_work_and_keeps_the_frames_close(plain, cache, again):
    _, uncached, full_calls = plain
    engine = engine_with(cache=cache)
    assert engine.pipe.transformer.is_cache_enabled
    out, calls = counted_render(engine, segment())
    blocks = len(engine.pipe.transformer.blocks)
    assert full_calls == 6 * blocks
    assert calls < full_calls                                   # some steps' work was skipped
    assert not np.array_equal(out.latents, uncached.latents)   # and what stood in for it was not exact
    assert rel(out.latents, uncached.latents) < CACHE_REL
    assert np.abs(out.frames.astype(int) - uncached.frames.astype(int)).mean() < 255 * CACHE_REL
    if again:   # the data- and step-driven caches start afresh for the next segment
        second, calls_again = counted_render(engine, segment())
        assert calls_again == calls and np.array_equal(second.latents, out.latents)


def test_first_block_cache_is_off_in_a_gang_and_back_for_a_lone_render(caplog):
    engine = engine_with(cache="fbc:0.1")
    transformer = engine.pipe.transformer
    with caplog.at_level(logging.WARNING, logger="engine.wan.speed"):
        engine.speed.prepare(steps=6, ranks=2)
    assert not transformer.is_cache_enabled
    assert any("off in a sequence-parallel gang" in r.message for r in caplog.records)
    engine.speed.prepare(steps=6, ranks=1)
    assert transformer.is_cache_enabled


# ---------------------------------------------------------------- FP8 weights


def test_fp8_stores_the_block_weights_as_float8_and_keeps_the_frames_close(plain):
    _, plain_out, _ = plain
    engine = engine_with(fp8="layerwise")
    transformer = engine.pipe.transformer
    assert transformer.blocks[0].attn1.to_q.weight.dtype == torch.float8_e4m3fn
    assert transformer.blocks[-1].ffn.net[0].proj.weight.dtype == torch.float8_e4m3fn
    # diffusers keeps the patch embedding and norms in the compute dtype
    assert transformer.patch_embedding.weight.dtype == torch.float32
    assert transformer.dtype == torch.float32                  # what the pipeline casts its inputs to
    out = engine.render(segment(), {START: PICTURE})
    assert not np.array_equal(out.latents, plain_out.latents)
    assert rel(out.latents, plain_out.latents) < FP8_REL


def test_fp8_torchao_without_it_falls_back_to_layerwise_with_a_note(caplog):
    with caplog.at_level(logging.WARNING, logger="engine.wan.speed"):
        engine = engine_with(fp8="torchao")
    assert engine.speed.applied.fp8 == "layerwise"
    assert engine.pipe.transformer.blocks[0].attn1.to_q.weight.dtype == torch.float8_e4m3fn
    assert [r.message for r in caplog.records if "fp8 torchao" in r.message]


# ---------------------------------------------------------------- attention backends


def transformer_inputs(transformer):
    g = torch.Generator().manual_seed(0)
    c = transformer.config
    return dict(hidden_states=torch.randn(1, c.in_channels, 2, 8, 8, generator=g), timestep=torch.tensor([500]),
                encoder_hidden_states=torch.randn(1, 512, c.text_dim, generator=g),
                encoder_hidden_states_image=torch.randn(1, 5, c.image_dim, generator=g), return_dict=False)


def test_the_attention_backend_is_the_one_the_dispatcher_calls(plain, monkeypatch):
    from diffusers.models.attention_dispatch import AttentionBackendName as Name
    from diffusers.models.attention_dispatch import _AttentionBackendRegistry as Registry

    calls = {Name.NATIVE: 0, Name._NATIVE_MATH: 0}
    for name in calls:
        original = Registry._backends[name]

        def spy(*args, _name=name, _original=original, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setitem(Registry._backends, name, spy)
    default = Registry.get_active_backend()[0]
    engine = engine_with(attention="_native_math")
    transformer = engine.pipe.transformer
    assert Registry.get_active_backend()[0] == default         # other models in the worker keep theirs
    with torch.no_grad():
        math = transformer(**transformer_inputs(transformer))[0]
        # per block: self-attention, then cross-attention to the image tokens and to the text
        assert calls == {Name.NATIVE: 0, Name._NATIVE_MATH: 3 * len(transformer.blocks)}
        native = plain[0].pipe.transformer(**transformer_inputs(transformer))[0]
    assert calls[Name.NATIVE] > 0
    # the same attention by another float32 kernel: rounding only (|out| ~ 1)
    assert torch.allclose(math, native, atol=1e-4)


def test_an_attention_backend_this_machine_lacks_falls_back_to_native_with_a_note(caplog):
    speed_module._noted.clear()
    with caplog.at_level(logging.WARNING, logger="engine.wan.speed"):
        engine = engine_with(attention="sage")
        engine_with(attention="sage")                          # said once per worker, not per engine
    notes = [r.message for r in caplog.records if "attention sage" in r.message]
    assert len(notes) == 1 and "using native attention" in notes[0]
    assert engine.speed.applied.attention == "native"
    processors = [b.attn1.processor for b in engine.pipe.transformer.blocks]
    assert all(str(getattr(p._attention_backend, "value", p._attention_backend)) == "native" for p in processors)


# ---------------------------------------------------------------- VAE tiling


def small_tiles(vae):
    # diffusers' tiles are 256 px: these make a 64 px frame 2 x 2 tiles overlapping by 16 px
    vae.tile_sample_min_height = vae.tile_sample_min_width = 48
    vae.tile_sample_stride_height = vae.tile_sample_stride_width = 32


def test_vae_tiling_decodes_in_tiles_and_stays_close_to_a_whole_decode(plain, monkeypatch):
    whole_engine = plain[0]
    tiled_engine = engine_with(vae_tiling=True)
    vae = tiled_engine.pipe.vae
    small_tiles(vae)
    tiled_calls = []
    original = vae.tiled_decode
    monkeypatch.setattr(vae, "tiled_decode", lambda *a, **k: tiled_calls.append(1) or original(*a, **k))
    latents = torch.randn(1, 4, 2, H // 8, W // 8, generator=torch.Generator().manual_seed(1))
    tiled_engine._tiling(W, H)
    tiled = tiled_engine.decode(latents)
    whole_engine._tiling(W, H)                                 # default: tiles from a 720 px short side
    assert not whole_engine.pipe.vae.use_tiling
    whole = whole_engine.decode(latents)
    assert tiled_calls and tiled.shape == whole.shape
    # each tile sees only its own surroundings and overlaps are blended linearly, so pixels near the
    # seams differ; over the frame the difference stays well below the picture's own spread
    # (measured: 7% of it on this random VAE)
    assert np.abs(tiled - whole).mean() < 0.25 * whole.std()
    assert engine_with(vae_tiling=False).speed.tiles(3840, 2160) is False


# ---------------------------------------------------------------- regional compilation


def test_compile_without_a_compiler_runs_uncompiled_with_a_note(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("PATH", str(tmp_path))                 # no c++, g++ or clang++ on it
    monkeypatch.delenv("CXX", raising=False)
    assert shutil.which("g++") is None
    assert "C++ compiler" in compile_unavailable(torch.device("cpu"))
    with caplog.at_level(logging.WARNING, logger="engine.wan.speed"):
        engine = engine_with(compile=True)
    assert not engine.speed.applied.compiled
    assert all(b._compiled_call_impl is None for b in engine.pipe.transformer.blocks)
    assert any("runs uncompiled" in r.message for r in caplog.records)


def test_speedups_apply_to_both_experts_of_a_pair(plain):
    """Wan2.2 pairs: the low-noise expert gets the same options as the high-noise one."""
    import copy
    from types import SimpleNamespace

    experts = SimpleNamespace(transformer=copy.deepcopy(plain[0].pipe.transformer),
                              transformer_2=copy.deepcopy(plain[0].pipe.transformer))
    Speedups(experts, plain[0].opts.speed.model_copy(update={"fp8": "layerwise"}), torch.device("cpu"), torch.float32)
    pipe = experts
    for t in (pipe.transformer, pipe.transformer_2):
        assert t.blocks[0].attn1.to_q.weight.dtype == torch.float8_e4m3fn
