"""Step checkpoints on the tiny Wan model: a render stopped or lost after step s resumes from its
checkpoint with only the steps left and ends where the uninterrupted render ends, alone or in a gang."""
from __future__ import annotations

import logging
import pickle
from dataclasses import replace

import numpy as np
import pytest
import torch
from diffusers import WanPipeline, WanTransformer3DModel

from engine.step_control import RenderControl
from engine.steps import StepState, Stopped, usable
from engine.wan import tiny
from engine.wan.engine import WanEngine
from engine.wan.text_pipeline import TextPipeline
from storyboard.presets import load_preset
from tests.engine.spawn import gang, keyframed_segment

# A resumed render runs the same operations on the same bytes as the uninterrupted one, in one process
# with the same threads: equal in practice (0.0 here). 1e-6 leaves room only for a BLAS choosing another
# kernel for a buffer aligned differently (restored tensors are fresh allocations), far below the
# 1e-5 a gang's different reduction order costs.
SAME = 1e-6
GANG = 1e-5      # as tests/engine/parallel/test_gang_render.py: a gang sums attention in another order


class Control:
    """A StepControl that captures at every boundary it sees and stops where it is told."""

    def __init__(self, key: str = "seg-key", resume: StepState | None = None, stop_at: int | None = None):
        self.key, self.resume, self.stop_at = key, resume, stop_at
        self.seen: list[int] = []
        self.states: dict[int, StepState] = {}

    def boundary(self, done: int, total: int, capture) -> bool:
        self.seen.append(done)
        self.states[done] = capture()
        return done == self.stop_at


class Calls:
    """Counts the real transformer's forward calls (a forward hook, no mock)."""

    def __init__(self, transformer):
        self.n = 0
        self.handle = transformer.register_forward_hook(self._hook)

    def _hook(self, module, args, output):
        self.n += 1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return keyframed_segment(tmp_path_factory.mktemp("steps"), frames=9)     # the VAE is most of a tiny render


@pytest.fixture(scope="module")
def engine():
    return WanEngine(load_preset("wan-tiny"))


@pytest.fixture(scope="module")
def uninterrupted(engine, scene):
    """The segment rendered through once, a checkpoint captured at every boundary (through the blob)."""
    segment, images = scene
    control = Control()
    with Calls(engine.pipe.transformer) as calls:
        out = engine.render(segment, images, control=control)
    assert calls.n == segment.steps == 4 and control.seen == [1, 2, 3, 4]
    blobs = {s: state.to_bytes() for s, state in control.states.items()}
    return out, blobs


@pytest.fixture(scope="module")
def denoise(engine, scene, uninterrupted):
    """The engine's denoising stage alone, from the render's own starting noise and conditions: what a
    render does between encoding and decoding (the VAE, most of a tiny render's time, runs once)."""
    segment, images = scene
    conditions = engine.conditions(segment, images)
    noise = torch.randn(uninterrupted[0].latents.shape, generator=torch.Generator("cpu").manual_seed(segment.seed))

    def run(control=None) -> np.ndarray:
        return engine.denoise(segment, noise.clone(), conditions, None, control).numpy()

    return run


def test_capturing_at_every_step_changes_nothing(denoise, uninterrupted):
    assert np.array_equal(denoise(), uninterrupted[0].latents)    # same computation: checkpoints only copy


@pytest.mark.parametrize("step", [1, 2, 3, 4])
def test_a_denoise_resumed_after_step_s_runs_only_the_steps_left_and_ends_as_uninterrupted(engine, denoise,
                                                                                          uninterrupted, step):
    full, blobs = uninterrupted
    control = Control(resume=StepState.from_bytes(blobs[step]))
    with Calls(engine.pipe.transformer) as calls:
        latents = denoise(control)
    assert calls.n == 4 - step
    assert control.seen == list(range(step + 1, 5))
    assert np.abs(latents - full.latents).max() <= SAME


def test_a_render_resumed_from_its_checkpoint_gives_the_uninterrupted_frames(engine, scene, uninterrupted):
    full, blobs = uninterrupted
    with Calls(engine.pipe.transformer) as calls:
        out = engine.render(*scene, control=Control(resume=StepState.from_bytes(blobs[2])))
    assert calls.n == 2
    assert np.abs(out.latents - full.latents).max() <= SAME
    assert np.abs(out.frames.astype(int) - full.frames.astype(int)).max() <= 1    # SAME can flip a rounding


def test_boundary_returning_true_raises_stopped_at_that_step_with_its_checkpoint(engine, denoise, uninterrupted):
    control = Control(stop_at=2)
    with Calls(engine.pipe.transformer) as calls, pytest.raises(Stopped) as stopped:
        denoise(control)
    assert stopped.value.step == 2 and calls.n == 2 and control.seen == [1, 2]
    assert stopped.value.state is control.states[2]       # the one it captured, not a second copy
    expected = StepState.from_bytes(uninterrupted[1][2])
    assert stopped.value.state.step == 2 and np.abs(stopped.value.state.latents - expected.latents).max() <= SAME
    again = pickle.loads(pickle.dumps(stopped.value))     # as it crosses to another process
    assert again.step == 2 and np.array_equal(again.state.latents, stopped.value.state.latents)
    # a stop asked after the last step is not a stop: what is left is the decode
    assert np.abs(denoise(Control(stop_at=4)) - uninterrupted[0].latents).max() <= SAME


def test_a_checkpoint_of_another_segment_is_ignored_and_the_render_starts_at_step_0(engine, denoise, uninterrupted,
                                                                                     caplog):
    full, blobs = uninterrupted
    foreign = Control(key="another-segment", resume=StepState.from_bytes(blobs[2]))
    with caplog.at_level(logging.WARNING, logger="engine.steps"):
        checked = RenderControl(foreign, steps=4, shape=full.latents.shape)    # what render() makes of it
    assert checked.resume is None and checked.start == 0
    assert "step checkpoint ignored" in caplog.text and "another-segment" in caplog.text
    with Calls(engine.pipe.transformer) as calls:
        latents = denoise(checked)
    assert calls.n == 4 and np.array_equal(latents, full.latents) and foreign.seen == [1, 2, 3, 4]


def test_a_checkpoint_of_another_shape_or_step_count_is_not_usable(uninterrupted, caplog):
    state = StepState.from_bytes(uninterrupted[1][2])
    shape = state.latents.shape
    assert usable(state, "seg-key", 4, shape) is state
    with caplog.at_level(logging.WARNING, logger="engine.steps"):
        assert usable(state, "seg-key", 4, (1, 4, 5, 8, 8)) is None
        assert usable(state, "seg-key", 8, shape) is None
        assert usable(replace(state, step=5), "seg-key", 4, shape) is None
    assert "(1, 4, 5, 8, 8)" in caplog.text and "it has 4 steps, this render 8" in caplog.text


# ---------------------------------------------------------------- the blob


def test_a_step_state_round_trips_through_its_blob(uninterrupted):
    blob = uninterrupted[1][3]
    state = StepState.from_bytes(blob)
    assert (state.key, state.step, state.steps, state.generator) == ("seg-key", 3, 4, None)   # UniPC draws no noise
    assert state.latents.dtype == np.float32 and state.latents.shape == uninterrupted[0].latents.shape
    # UniPC's multistep memory: the last model outputs and sample, its counters
    assert {"model_outputs", "last_sample", "lower_order_nums", "_step_index"} <= set(state.scheduler)
    assert state.scheduler["_step_index"] == 3 and len(state.scheduler["model_outputs"]) == 2
    # written again and read back, the same state (not the same bytes: safetensors orders the header's
    # metadata as its hash map does)
    again = StepState.from_bytes(state.to_bytes())
    assert (again.key, again.step, again.steps, again.generator) == (state.key, state.step, state.steps, None)
    assert np.array_equal(again.latents, state.latents) and set(again.scheduler) == set(state.scheduler)
    for name, value in state.scheduler.items():
        items = value if isinstance(value, (list, tuple)) else [value]
        got = again.scheduler[name] if isinstance(value, (list, tuple)) else [again.scheduler[name]]
        for a, b in zip(items, got, strict=True):
            assert torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b
    with_generator = replace(state, generator=torch.Generator().manual_seed(7).get_state().numpy().tobytes())
    assert StepState.from_bytes(with_generator.to_bytes()).generator == with_generator.generator


def test_a_truncated_or_altered_blob_is_refused_with_a_clear_message(uninterrupted):
    blob = uninterrupted[1][2]
    n = int.from_bytes(blob[:8], "little")
    flipped_data = bytearray(blob)
    flipped_data[-5] ^= 0x01                                  # one bit of a tensor
    step_in_header = blob.replace(b'\\"step\\": 2', b'\\"step\\": 3')   # a valid header saying another step
    assert step_in_header != blob
    for damaged in (blob[: len(blob) // 2], blob[:8 + n], bytes(flipped_data), step_in_header, b"", b"not a blob"):
        with pytest.raises(ValueError, match="^damaged step checkpoint: "):
            StepState.from_bytes(damaged)


# ---------------------------------------------------------------- text-to-video


def tiny_text_to_video():
    """The tiny model's text encoder, VAE and scheduler with a text-to-video transformer (no image input)."""
    i2v = tiny.build_pipeline()
    config = {k: v for k, v in i2v.transformer.config.items() if not k.startswith("_")}
    config.update(in_channels=i2v.vae.config.z_dim, image_dim=None, added_kv_proj_dim=None)
    torch.manual_seed(1)
    parts = dict(tokenizer=i2v.tokenizer, text_encoder=i2v.text_encoder, vae=i2v.vae, scheduler=i2v.scheduler,
                 transformer=WanTransformer3DModel(**config).eval())
    return TextPipeline(**parts), WanPipeline(**parts)


def test_text_to_video_denoises_as_stock_diffusers_and_resumes_from_a_checkpoint():
    ours, stock = tiny_text_to_video()
    prompt, negative = ours.encode_prompt("a quiet sea", negative_prompt="blur", max_sequence_length=tiny.TEXT_TOKENS)
    noise = torch.randn((1, 4, 3, 8, 8), generator=torch.Generator().manual_seed(3))
    args = dict(prompt_embeds=prompt, negative_prompt_embeds=negative, num_inference_steps=4, guidance_scale=5.0)
    expected = stock(latents=noise, height=64, width=64, num_frames=9, output_type="latent", **args).frames
    control = Control(stop_at=2)
    with pytest.raises(Stopped):
        ours(latents=noise, control=control, **args)
    assert torch.equal(ours(latents=noise, **args), expected)     # the same operations as the stock loop
    with Calls(ours.transformer) as calls:
        resumed = ours(latents=noise, control=Control(resume=control.states[2]), **args)
    assert calls.n == 2 * 2        # two steps left, two passes each (guidance 5)
    assert (resumed - expected).abs().max() <= SAME


# ---------------------------------------------------------------- a gang


def member(rank: int, world: int, port: int, results, segment, images, blob: bytes) -> None:
    """One rank: resume the degree-1 checkpoint in the gang; then render again with the checkpoint on
    rank 0 only and rank 1 alone asking to stop after step 3."""
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        engine = WanEngine(load_preset("wan-tiny"))
        both = Control(resume=StepState.from_bytes(blob))
        out = engine.render(segment, images, ranks=world, control=both)
        one = Control(resume=StepState.from_bytes(blob) if rank == 0 else None, stop_at=3 if rank == 1 else None)
        with Calls(engine.pipe.transformer) as calls:
            try:
                engine.render(segment, images, ranks=world, control=one)
                stopped = None
            except Stopped as e:
                stopped = (e.step, e.state.latents)
        results.put((rank, (None if out is None else out.latents, both.states[3].latents, stopped, calls.n)))
    except BaseException as e:      # the parent fails the test with it instead of waiting
        results.put((rank, e))
        raise
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(300)
def test_a_checkpoint_taken_alone_resumes_in_a_gang_of_two(scene, uninterrupted):
    """Latents do not depend on the gang width: a step-2 checkpoint of a lone render finishes in a gang
    as the lone render finished; the ranks hold the same latents after a step; a stop asked on one rank
    stops both, and a rank without the checkpoint resumes from rank 0's."""
    segment, images = scene
    full, blobs = uninterrupted
    got = gang(member, 2, segment, images, blobs[2])
    latents, at_3, stopped, calls = got[0]
    assert got[1][0] is None and np.abs(latents - full.latents).max() <= GANG
    # every rank gathers the whole noise prediction and steps the sampler on the same bytes
    assert np.array_equal(at_3, got[1][1])
    assert np.abs(at_3 - StepState.from_bytes(blobs[3]).latents).max() <= GANG
    for rank in (0, 1):
        step, state_latents, n = got[rank][2][0], got[rank][2][1], got[rank][3]
        assert step == 3 and n == 1                      # resumed at 2 (rank 1 from rank 0's), stopped after 3
        assert np.array_equal(state_latents, at_3)


def test_magcache_on_a_resumed_render_counts_from_the_resumed_step():
    """MagCache indexes its ratios by its own step count: resumed at step 4 of 8 it is given the ratios
    of steps 4..7 (after the interpolation to 8 steps it would have made) and 4 steps to count."""
    from diffusers.hooks.mag_cache import nearest_interp

    from engine.wan.speed import cache_config
    from engine.wan.speed_options import CacheOptions

    cache = CacheOptions(kind="mag", threshold=0.1, mag_ratios=[1.0, 0.99, 0.98, 0.97, 0.95])
    whole, resumed = cache_config(cache, None, 8), cache_config(cache, None, 8, start=4)
    assert whole.num_inference_steps == 8 and resumed.num_inference_steps == 4
    assert torch.equal(resumed.mag_ratios, whole.mag_ratios[4:])
    assert torch.equal(whole.mag_ratios, nearest_interp(torch.tensor(cache.mag_ratios), 8))
