"""The sequence-parallel selftest on real farm workers: a gang of Ray actors in a placement group,
joined into one torch.distributed group, runs the tiny Wan transformer sharded (`sakuga selftest sp`)."""
from __future__ import annotations

import os

import numpy as np
import ray

from .connect import connect
from .pool import WorkerPool


def sharded_forward(world: int, ulysses: int, ring: int, size: tuple[int, int, int], backend: str) -> np.ndarray:
    """Rank 0's output of the transformer with its attention sharded over a gang of `world` workers."""
    connect(world)
    pool = WorkerPool(world, threads=max(1, (os.cpu_count() or 1) // world))
    try:
        members = pool.gang(pool.slots)
        return ray.get([s.actor.sp_selftest.remote(spec, ulysses, ring, 0, size, backend) for s, spec in members])[0]
    finally:
        pool.shutdown()
