"""A gang of real processes for the engine's tests: `torch.multiprocessing` spawn, one gloo rank each."""
from __future__ import annotations

import socket

import torch.multiprocessing as mp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gang(target, world: int, *args) -> dict:
    """Run `target(rank, world, port, results, *args)` on `world` spawned ranks; what each put on
    `results` as `(rank, value)`. A rank that put an exception fails the test with it."""
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    port = free_port()
    ranks = [ctx.Process(target=target, args=(r, world, port, results, *args)) for r in range(world)]
    for p in ranks:
        p.start()
    try:
        got = dict(results.get(timeout=240) for _ in ranks)
    finally:
        for p in ranks:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
    for rank, value in got.items():
        assert not isinstance(value, BaseException), f"rank {rank}: {value!r}"
    return got
