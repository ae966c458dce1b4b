"""One try at a segment, on one worker or on a gang of them (one worker call per member)."""
from __future__ import annotations

from dataclasses import dataclass, field

from farm.job.results import SegmentResult
from farm.workers.slots import Call, Slot
from storyboard.plan import Segment

from .protocols import RunnableJob


@dataclass
class Attempt:
    job: RunnableJob
    seg: Segment
    slots: list[Slot]
    n: int
    started: float
    deadline: float
    estimate: float
    pending: dict[Call, Slot] = field(default_factory=dict)   # member call → its slot, until it returns
    result: SegmentResult | None = None                       # rank 0's
    stopping: float | None = None     # when it was asked to stop at its next step boundary (preemption)
    stopped: int | None = None        # the step it stopped at, once a member said so
    checkpoints: int = 0              # checkpoints it shipped that the job kept
    resumed: int = 0                  # the step it started from (its checkpoint's)

    @property
    def worker(self) -> str:
        return "+".join(s.name for s in self.slots)

    @property
    def degree(self) -> int:
        return len(self.slots)
