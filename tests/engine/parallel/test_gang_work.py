"""The whole gang works: CFG's two passes on the two halves of a gang and the VAE's tiles decoded by
every rank, in spawned gloo gangs, against one process.

The tiny model renders with guidance 2.0 (two passes a step) and a tiled VAE (tiles of 48 px every
32, so a 64 px frame is 2 x 2 tiles). Tolerances, as the gang render test's: the latents within 1e-5,
the selftest's bound per forward carried over 4 steps (a rank's threads and the parent's differ, and
a thread count changes float reduction order on CPU). The decode is compared where its arithmetic is
the same, on the same latents with one thread on both sides: bit for bit.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from engine.wan.engine import WanEngine
from storyboard.presets import load_preset
from tests.engine.spawn import gang, keyframed_segment

GUIDANCE = 2.0
LATENTS = (1, 4, 5, 8, 8)       # 17 frames at 64 x 64


def engine() -> WanEngine:
    preset = load_preset("wan-tiny").with_speed({"vae_tiling": True})
    engine = WanEngine(preset.model_copy(update={"options": {**preset.options, "cfg_parallel": True}}))
    vae = engine.pipe.vae
    vae.tile_sample_min_height = vae.tile_sample_min_width = 48
    vae.tile_sample_stride_height = vae.tile_sample_stride_width = 32
    return engine


def fixed_latents() -> torch.Tensor:
    return torch.randn(LATENTS, generator=torch.Generator().manual_seed(3))


class Calls:
    """Transformer forwards by the prompt they were given, and tiles this rank decoded."""

    def __init__(self, engine: WanEngine, prompts: dict[str, torch.Tensor]):
        self.passes: list[str] = []
        self.tiles = 0

        def forward(module, args, kwargs):
            given = kwargs["encoder_hidden_states"]
            self.passes.append(next(k for k, p in prompts.items() if torch.equal(p.to(given), given)))

        def tile(module, args, kwargs):
            self.tiles += kwargs.get("first_chunk", False)     # each tile starts from its first frame

        engine.pipe.transformer.register_forward_pre_hook(forward, with_kwargs=True)
        engine.pipe.vae.decoder.register_forward_pre_hook(tile, with_kwargs=True)


def member(rank: int, world: int, port: int, results, segment, images) -> None:
    """One rank: render the segment with the gang, then decode the fixed latents with the gang."""
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        e = engine()
        prompt, negative = e.encode_text(segment.prompt, segment.negative, True)
        calls = Calls(e, {"cond": prompt, "uncond": negative})
        out = e.render(segment, images, ranks=world)
        rendered = (list(calls.passes), calls.tiles)
        calls.tiles = 0
        e._tiling(segment.width, segment.height)
        video = e.decode(fixed_latents(), ranks=world)
        results.put((rank, (out and (out.latents, out.frames), video, rendered, calls.tiles)))
    except BaseException as e:      # the parent fails the test with it instead of waiting
        results.put((rank, e))
        raise
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def lone(tmp_path_factory):
    """The one-process render and decode (one thread for the decode: the ranks' arithmetic)."""
    segment, images = keyframed_segment(tmp_path_factory.mktemp("gang"))
    segment = dataclasses.replace(segment, guidance=GUIDANCE)
    e = engine()
    out = e.render(segment, images)
    e._tiling(segment.width, segment.height)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        video = e.decode(fixed_latents())
    finally:
        torch.set_num_threads(threads)
    return segment, images, out, video


@pytest.mark.timeout(300)
@pytest.mark.parametrize("world", [2, 4])
def test_cfg_halves_and_shared_tiles_render_what_one_process_renders(lone, world):
    segment, images, alone, alone_video = lone
    got = gang(member, world, segment, images)
    (latents, frames), video, _, _ = got[0]
    assert np.abs(latents - alone.latents).max() <= 1e-5
    assert np.abs(frames.astype(int) - alone.frames.astype(int)).max() <= 1
    assert np.array_equal(video, alone_video)           # the tiles' bytes, blended as one process blends
    for rank in range(1, world):
        assert got[rank][0] is None and got[rank][1] is None
    # each rank ran one pass a step, its half's: the first half the prompt, the second the negative
    for rank in range(world):
        passes, tiles = got[rank][2]
        assert passes == ["cond" if rank < world // 2 else "uncond"] * segment.steps, (rank, passes)
    # the 4 tiles spread over the gang (one each at 4, two each at 2) in the render and in the decode
    assert [got[r][2][1] for r in range(world)] == [4 // world] * world
    assert [got[r][3] for r in range(world)] == [4 // world] * world
