"""A worker's `StepControl` (engine/steps.py) for one render call: when it checkpoints, whether it
stops, what it starts from, and what it measured. No Ray here: the actor (`actor.py`) ships what this
hands it and sets the stop flag it reads.

Rank 0 checkpoints (a gang's latents are whole on every rank, so one copy is the gang's) after every
`StepOrder.every_steps` steps or `every_s` seconds, whichever comes first, and at a step where it is
asked to stop; it never checkpoints after the last step (the result follows at once). Every rank reads
the stop flag; the engine agrees the stop across the gang at the same boundary.

Two test hooks for the chaos tests (tests/farm/run/test_checkpoints.py), read from the worker's
environment (the pool forwards the driver's `SAKUGA_CHAOS_*` variables to the workers it starts):
- `SAKUGA_CHAOS_EXIT_AFTER_STEP=N`: the worker process exits (os._exit) right after it has shipped the
  checkpoint it took after step N: a worker lost mid-segment, at a known step.
- `SAKUGA_CHAOS_STEP_S=S`: every step boundary waits S seconds, so a tiny model's step lasts as long as
  a real one's and a stop asked while it renders lands at a known step.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

from engine.steps import StepState
from farm.job.checkpoints import StepOrder
from farm.job.results import Checkpointed
from storyboard.checkpoints import CheckpointPolicy

logger = logging.getLogger(__name__)

EXIT_AFTER_STEP = "SAKUGA_CHAOS_EXIT_AFTER_STEP"
STEP_S = "SAKUGA_CHAOS_STEP_S"
CHAOS_PREFIX = "SAKUGA_CHAOS_"


def chaos_exit_step() -> int | None:
    value = os.environ.get(EXIT_AFTER_STEP)
    return int(value) if value else None


class WorkerControl:
    def __init__(self, order: StepOrder, resume: bytes | None, rank: int, ship: Callable[[Checkpointed], None],
                 stop_asked: Callable[[], bool]):
        self.key = order.key
        self.every_steps, self.every_s = order.every_steps, order.every_s
        self.rank, self.ship, self.stop_asked = rank, ship, stop_asked
        self.resume = _state(resume)
        self.last_step = self.resume.step if self.resume else 0
        self.last_at = time.monotonic()
        self.first_done: int | None = None   # the first boundary: where the engine really started from
        self.steps_run = 0                   # boundaries passed: the steps this call computed
        self.pause_s = float(os.environ.get(STEP_S) or 0.0)

    def boundary(self, done: int, total: int, capture: Callable[[], StepState]) -> bool:
        if self.first_done is None:
            self.first_done = done
        self.steps_run += 1
        if self.pause_s:
            time.sleep(self.pause_s)
        stop = done < total and self.stop_asked()
        if self.rank == 0 and done < total and (stop or self._due(done)):
            self.shipped(capture())
        return stop

    def _due(self, done: int) -> bool:
        return CheckpointPolicy(self.every_steps, self.every_s).due(done - self.last_step,
                                                                    time.monotonic() - self.last_at)

    def shipped(self, state: StepState | None) -> None:
        """Ship `state` (rank 0; once a step): at a checkpoint, or the engine's state where it stopped."""
        if self.rank != 0 or state is None or state.step == self.last_step:
            return
        started = time.monotonic()
        blob = state.to_bytes()
        self.ship(Checkpointed(state.step, state.steps, blob, state.key))
        self.last_step, self.last_at = state.step, time.monotonic()
        logger.debug("checkpoint after step %d of %d: %d bytes in %.3f s", state.step, state.steps, len(blob),
                     self.last_at - started)

    def metrics(self) -> dict[str, float]:
        """What the render's result reports of its steps (nothing for an engine without steps)."""
        if not self.steps_run:
            return {}
        return {"denoise_steps": float(self.steps_run), "resumed_from_step": float((self.first_done or 1) - 1)}


def _state(blob: bytes | None) -> StepState | None:
    """The checkpoint to start from; a damaged one is dropped (the render starts over, never wrong)."""
    if blob is None:
        return None
    try:
        return StepState.from_bytes(blob)
    except ValueError as e:
        logger.warning("%s; rendering from step 0", e)
        return None
