"""The no-op engine: flat grey frames for farm tests, its options read from the segment."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from engine.noop import NoopEngine
from engine.registry import create
from storyboard.plan import Segment
from storyboard.presets import load_preset

PRESET = load_preset("noop")


def segment(**options) -> Segment:
    return Segment(
        id="a.0", shot="a", index=0, first_frame=0, frames=5, width=32, height=16, fps=16, model="noop",
        engine="noop", prompt="sky", negative="", steps=8, guidance=1.0, shift=5.0, seed=7, camera=None,
        conditions=(), characters=(), deps=(), options=tuple((k, str(v)) for k, v in options.items()),
        runtime_s=((1, 1.0),))


def test_the_noop_engine_renders_grey_frames_of_the_segment_size_and_no_latents():
    engine = create(PRESET)
    assert isinstance(engine, NoopEngine)
    out = engine.render(segment(), {})
    assert out.frames.shape == (5, 16, 32, 3) and out.frames.dtype == np.uint8
    assert np.all(out.frames == 7 % 200 + 28)
    assert out.latents is None and out.metrics == {}
    other = engine.render(replace(segment(), seed=8), {})
    assert not np.array_equal(out.frames, other.frames)


def test_the_noop_engine_runs_out_of_memory_below_the_degree_its_options_ask_for():
    engine = NoopEngine(PRESET.model_copy(update={"memory_gb": 10.0}))
    with pytest.raises(torch.OutOfMemoryError, match="noop needs 18 GB at degree 1"):
        engine.render(segment(activation_gb=8, device_gb=16), {})
    assert engine.render(segment(activation_gb=8, device_gb=20), {}).frames.shape[0] == 5
