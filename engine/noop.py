"""The no-op engine: flat grey frames after an optional sleep, with no model.

It stands in for GPU work where only the farm is under test: the orchestration-overhead benchmark
(`bench/overhead.py`) and the chaos tests, whose `sleep_s` option keeps a segment busy long enough to
kill its worker mid-render, and whose `activation_gb` / `device_gb` options make a segment run out
of memory below some sequence-parallel degree.
"""
from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np

from storyboard.plan import ImageRef, Segment
from storyboard.presets import Preset

from .base import NoBank, Progress, Rendered
from .options import option


def torch_oom(message: str) -> Exception:
    import torch

    return torch.OutOfMemoryError(message)


class NoopEngine(NoBank):
    def __init__(self, preset: Preset):
        self.preset = preset

    def render(self, segment: Segment, images: Mapping[ImageRef, np.ndarray],
               progress: Progress | None = None, *, ranks: int = 1,
               control=None) -> Rendered | None:
        """In a gang the work is shared (each rank sleeps its share) and the ranks meet in a barrier,
        as a sharded model meets in its collectives."""
        memory = self.preset.memory_gb + float(option(segment, "activation_gb", 0.0)) / ranks
        if memory > float(option(segment, "device_gb", float("inf"))):
            # what a model's activations do on a GPU too small for the segment at this degree
            raise torch_oom(f"noop needs {memory:g} GB at degree {ranks}")
        time.sleep(float(option(segment, "sleep_s", 0.0)) / ranks)
        if ranks > 1:
            import torch.distributed as dist

            dist.barrier()
            if dist.get_rank() != 0:
                return None
        grey = segment.seed % 200 + 28      # differs per segment, so a mixed-up file is visible
        return Rendered(np.full((segment.frames, segment.height, segment.width, 3), grey, np.uint8))
