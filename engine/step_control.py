"""A render's view of the `StepControl` it was given: the checkpoint checked against this render, and
in a gang the same resume step and the same stop decision on every rank.

The ranks of a gang must run the same steps, or their collectives part ways (a hang, or wrong frames).
Each rank is given its own control; `RenderControl` makes them agree: rank 0's resume step wins (if a
rank holds another checkpoint, rank 0's is sent to all), and a stop asked on any rank stops them all at
that step (one one-element all-reduce per step, nothing next to a transformer step).
"""
from __future__ import annotations

import logging
from collections.abc import Callable

import torch

from .parallel import sharding
from .steps import StepControl, StepState, usable

logger = logging.getLogger(__name__)


class RenderControl:
    """`control` for one render of `steps` steps into latents of `shape`, on a gang of `ranks`."""

    def __init__(self, control: StepControl, *, steps: int, shape: tuple[int, ...], ranks: int = 1,
                 device: torch.device | None = None):
        self.inner, self.key, self.ranks = control, control.key, ranks
        self.device = device or torch.device("cpu")
        self.resume: StepState | None = self._agreed(usable(control.resume, control.key, steps, shape))

    @property
    def start(self) -> int:
        """The step the render starts from."""
        return 0 if self.resume is None else self.resume.step

    def boundary(self, done: int, total: int, capture: Callable[[], StepState]) -> bool:
        want = bool(self.inner.boundary(done, total, capture))
        return sharding.any_rank(want, self.device) if self.ranks > 1 else want

    def _agreed(self, state: StepState | None) -> StepState | None:
        if self.ranks == 1:
            return state
        mine = 0 if state is None else state.step
        first = sharding.from_rank0(mine)
        if not sharding.any_rank(mine != first, self.device):
            return state          # every rank holds the checkpoint of the same step (the same blob)
        rank = torch.distributed.get_rank()
        if rank == 0:
            logger.warning("the gang's ranks hold checkpoints of different steps: all resume from rank 0's (step %d)",
                           first)
        blob = sharding.from_rank0(state.to_bytes() if rank == 0 and state is not None else None)
        return None if blob is None else StepState.from_bytes(blob)
