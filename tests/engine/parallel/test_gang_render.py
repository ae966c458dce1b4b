"""A Wan segment rendered by a gang of two processes (a gloo torch.distributed group, no Ray): rank 0
returns the frames and the latents, the other rank None, and the latents are one process's."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.wan.engine import WanEngine
from storyboard.presets import load_preset
from tests.engine.spawn import gang, keyframed_segment


def member(rank: int, world: int, port: int, results, segment, images) -> None:
    """One rank of the gang: join the group, render the segment together, report what it returned."""
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        out = WanEngine(load_preset("wan-tiny")).render(segment, images, ranks=world)
        results.put((rank, None if out is None else (out.latents, out.frames)))
    except BaseException as e:      # the parent fails the test with it instead of waiting
        results.put((rank, e))
        raise
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(300)
def test_a_gang_of_two_returns_one_process_latents_on_rank_0(tmp_path):
    segment, images = keyframed_segment(tmp_path)
    alone = WanEngine(load_preset("wan-tiny")).render(segment, images)    # also builds the tiny model once

    got = gang(member, 2, segment, images)
    assert got[1] is None
    latents, frames = got[0]
    assert latents.shape == alone.latents.shape and latents.dtype == np.float32
    assert np.abs(latents - alone.latents).max() <= 1e-5
    assert frames.shape == alone.frames.shape
    assert np.abs(frames.astype(int) - alone.frames.astype(int)).max() <= 1
