"""Where a segment may run, beyond what the policy decides: which gang widths it may get (wider after
running out of memory), whether it must offload, and which slot replaces one it already failed on."""
from __future__ import annotations

from farm.workers.slots import Pool, Slot
from storyboard.plan import Segment

from .protocols import RunnableJob


class Placement:
    def __init__(self, pool: Pool, offload: bool = False):
        self.pool, self.offload_all = pool, offload
        self.oom: dict[tuple[str, str], int] = {}                        # (job, segment) → degree it ran out at
        self.failed_on: dict[tuple[str, str], set[tuple[int, int]]] = {}   # slots a segment failed on

    def degrees(self, job: RunnableJob, seg: Segment) -> tuple[int, ...]:
        """The gang widths the policy may give a segment: the preset's that fit a node; after running
        out of memory, only wider ones (the activations split further), if there are any."""
        widest = max(self.pool.nodes)
        allowed = tuple(d for d in job.widths(seg) if d <= widest) or (1,)
        ran_out = self.oom.get((job.id, seg.id))
        wider = tuple(d for d in allowed if ran_out is not None and d > ran_out)
        return wider or allowed

    def offload(self, job: RunnableJob, seg: Segment) -> bool:
        """Out of memory at the widest degree there is: keep the weights in CPU memory instead."""
        return self.offload_all or self.oom.get((job.id, seg.id), 0) >= max(self.degrees(job, seg))

    def ran_out_of_memory(self, job: RunnableJob, seg: Segment, degree: int) -> None:
        self.oom[(job.id, seg.id)] = degree

    def blame(self, job: RunnableJob, seg: Segment, slot: Slot) -> None:
        """`slot` failed `seg`: avoid it for this segment, and for the job once it has failed twice."""
        slot.failures[job.id] += 1
        self.failed_on.setdefault((job.id, seg.id), set()).add(slot.key)

    def gang_free(self, job: RunnableJob, slots: list[Slot], taken: set[tuple[int, int]]) -> bool:
        return not any(s.busy or s.key in taken or not self.pool.usable(s, job.id) for s in slots)

    def pick_slot(self, job: RunnableJob, seg: Segment, proposed: Slot, taken: set) -> Slot | None:
        """The policy's slot, unless this segment failed on it or the job failed there twice: then
        another free one. None when no slot will do (the caller fails the segment if none ever can)."""
        tried = self.failed_on.get((job.id, seg.id), set())
        free = [s for s in self.pool.slots if not s.busy and s.key not in taken and self.pool.usable(s, job.id)]
        ok = [s for s in free if s.key not in tried]
        for choice in (ok, free):
            if proposed in choice:
                return proposed
            if choice:
                return choice[0]
        return None

    def hopeless(self, job: RunnableJob) -> bool:
        """Every worker failed this job twice."""
        return not any(self.pool.usable(s, job.id) for s in self.pool.slots)
