"""A gang of real processes for the engine's tests: `torch.multiprocessing` spawn, one gloo rank each,
and the one tiny-model segment (a start picture and a keyframe) the gang tests render."""
from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import torch.multiprocessing as mp
from PIL import Image

from storyboard.load import load
from storyboard.plan import build_plan
from tests.conftest import make_storyboard

STORYBOARD = """\
sakuga: 1
title: Gang
model: wan-tiny
output: {width: 64, height: 64, fps: 16}
scenes:
  - id: roof
    shots:
      - {id: c, frames: 17, prompt: a door, start: red.png, keyframes: [{image: blue.png, at: 0.5}]}
"""


def keyframed_segment(folder: Path, frames: int = 17):
    """The segment of STORYBOARD (`frames` long) written into `folder` with its two pictures, and those pictures."""
    for name, colour in (("red", (220, 30, 30)), ("blue", (30, 30, 220))):
        Image.new("RGB", (80, 60), colour).save(folder / f"{name}.png")
    plan = build_plan(load(make_storyboard(folder, STORYBOARD.replace("frames: 17", f"frames: {frames}"))))
    segment = plan.segment("c.0")
    images = {c.image: np.asarray(Image.open(plan.assets[c.image.ref]).convert("RGB")) for c in segment.conditions}
    return segment, images


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
