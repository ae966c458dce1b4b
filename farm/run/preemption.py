"""The loop's side of step checkpoints and preemption (docs/farm.md, "Step checkpoints and preemption").

Every segment attempt is told its checkpoint policy and, when the segment has a checkpoint for its
content, the bytes to start from (`StepOrder`). What a worker ships while it renders — `Checkpointed`
— goes to the job, which publishes it; the attempt runs on. When preemption is on, the loop asks the
policy each round which running attempts to stop (`Policy.stops`), and asks every member of each chosen
attempt once; the engine agrees the stop across a gang at the next step boundary, and rank 0 ships the
state it stopped at, so the step an attempt stops at is always checkpointed. When every member has
answered `StoppedAt`,
the attempt ends `preempted` (not counted against the segment's tries), its GPUs are free, and the
segment is ready again with its checkpointed steps done, so the policy sees the shorter time left.
"""
from __future__ import annotations

import logging
import time
from dataclasses import replace

from farm.job.checkpoints import StepOrder, step_order
from farm.job.results import Checkpointed
from farm.scheduling.policy import Running, Stop
from farm.workers.slots import Pool, Slot
from storyboard.plan import Segment

from .attempt import Attempt
from .protocols import RunnableJob

logger = logging.getLogger(__name__)

NEVER_AGAIN = 1 << 30   # `Task.preempted` of work that must not be stopped (a policy stops none past its cap)


class Preemption:
    def __init__(self, pool: Pool, enabled: bool = True):
        self.pool = pool
        self.enabled = enabled        # the farm's `preempt` option; a job's own `preempt: false` opts it out

    def order(self, job: RunnableJob, seg: Segment, slots: list[Slot], estimate_s: float) -> StepOrder:
        """What the attempt's workers are told: when to checkpoint, and the checkpoint to start from
        (one shared copy for a gang: every rank resumes the same state)."""
        blob, step = job.checkpoints.resume(seg)
        if blob is not None and len(slots) > 1:
            blob = self.pool.share(blob)
        return step_order(job.plan.presets[seg.model], seg, estimate_s, blob, step)

    def checkpointed(self, a: Attempt, message: Checkpointed) -> None:
        """A member shipped a checkpoint: the job publishes it; a disk that cannot take it loses the
        checkpoint, never the attempt (it goes on rendering)."""
        try:
            kept = a.job.checkpoints.keep(a.seg, message)
        except OSError as e:
            logger.warning("%s: checkpoint of %s at step %d not kept: %s", a.job.id, a.seg.id, message.step, e)
            return
        if kept:
            a.checkpoints += 1
            logger.debug("%s: %s checkpointed at step %d of %d (%d bytes)", a.job.id, a.seg.id, message.step,
                         message.steps, len(message.blob))

    def ask(self, stops: list[Stop], attempts: list[Attempt]) -> None:
        """Ask each chosen attempt to stop at its next step boundary, once. Only segments on GPUs stop
        (a CPU stage has no steps), and never a job that opted out (`preempt: false`)."""
        by_task = {a.job.task_id(a.seg.id): a for a in attempts}
        for stop in stops:
            a = by_task.get(stop.task)
            if a is None or a.stopping is not None or a.slots[0].cpu or a.job.config.get("preempt") is False:
                continue
            if a.result is not None or len(a.pending) < a.degree:   # a member has finished: so has the segment
                continue
            a.stopping = time.time()
            for call in a.pending:
                self.pool.stop(call)
            logger.info("%s: %s asked to stop at its next step boundary for more urgent work", a.job.id, a.seg.id)
            a.job.worker_event("stop_asked", f"{a.seg.id}: stop at the next step boundary for more urgent work",
                               a.worker)

    @staticmethod
    def running(a: Attempt, now: float, epoch: float) -> Running:
        """A running attempt as the policy sees it (times from `epoch`): its task as it started (the
        steps done then), ending by its estimate; one asked to stop ends at the first step boundary
        after it was asked (so the policy does not stop more work for the same GPUs)."""
        task = replace(a.job.task(a.seg, (a.degree,)), done=a.resumed)
        if a.job.config.get("preempt") is False:   # may not be stopped: as one past the policy's aging cap
            task = replace(task, preempted=NEVER_AGAIN)
        gpus = tuple(s.gpu for s in a.pending.values())
        if len(gpus) < a.degree:   # members done with their share: past its last step, rank 0 decodes
            task = replace(task, runtime={len(gpus): task.runtime[a.degree]}, done=task.steps)
        r = Running(task, a.slots[0].node, gpus, a.started - epoch, a.started + a.estimate - epoch)
        if a.stopping is None:
            return r
        _, at = r.next_boundary(a.stopping - epoch)
        return replace(r, end=max(at, now - epoch), stopping=True)

    @staticmethod
    def stopped(a: Attempt) -> str:
        """The attempt's end, once every member stopped: `preempted`, with where it stopped and when."""
        step = a.job.checkpoints.step(a.seg)
        waited = time.time() - (a.stopping or time.time())
        return (f"stopped at step {a.stopped} of {a.seg.steps} for more urgent work {waited:.2f} s after asked; "
                f"goes on from step {step}")
