"""The farm loop: runs jobs' segments on a worker pool as the scheduling policy decides.

Each round it shows the policy what is ready, what is running and which GPUs are free, starts what
the policy picks, then waits for a result or a deadline. A job's work is segments and delivery stages
(`farm/stages/`); GPU work goes to the pool's workers, CPU stages to the farm's CPU lanes, each
decided by the same policy over its own resource. It asks the jobs and tells them what
happened (`start_attempt`, `end_attempt`, `publish`, `fail`, `finish`); the jobs own their state and
write their ledgers. A worker that dies or hangs past the segment's timeout is replaced and the
segment retried elsewhere (at most three attempts); an out-of-memory attempt is retried wider or with
offload. Both sides are protocols (`RunnableJob`, `farm.workers.slots.Pool`), so the loop runs
without Ray in tests.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from contextlib import contextmanager

from farm.delivery.deliver import deliver
from farm.job.cache import SegmentCache, trim_to_cap
from farm.job.job import JobObserver
from farm.job.ledger import LedgerWriteError
from farm.job.results import Checkpointed, SegmentResult, StoppedAt
from farm.report.report import write_report_on_finish
from farm.scheduling.policy import DEFAULT, Cluster, Policy, Running, View, policy
from farm.stages.stage import Stage
from farm.workers.slots import Pool, Slot, WorkerDied, WorkerFailed
from storyboard.plan import Segment

from .attempt import Attempt
from .banks import build_banks
from .placement import Placement
from .preemption import Preemption
from .protocols import RunnableJob

logger = logging.getLogger(__name__)


def default_cpu_lanes() -> int:
    """CPU stages run at once: $SAKUGA_CPU_LANES, else half the cores (the rest decode and publish)."""
    return int(os.environ.get("SAKUGA_CPU_LANES", 0)) or max(1, (os.cpu_count() or 2) // 2)


class FarmLoop:
    def __init__(self, pool: Pool, *, scheduler: Policy | None = None, cache: SegmentCache | None = None,
                 offload: bool = False, deliver: Callable[[RunnableJob], object] = deliver,
                 observers: tuple[JobObserver, ...] = (write_report_on_finish,), cpu_lanes: int | None = None,
                 preempt: bool = True):
        self.pool = pool
        self.lanes = [Slot(0, i, "cpu", name=f"cpu{i}", cpu=True) for i in range(cpu_lanes or default_cpu_lanes())]
        self.policy = scheduler or policy(DEFAULT)
        self.cache = cache
        self.deliver = deliver
        self.observers = observers        # told about every job's events (the report, once delivered)
        self.placement = Placement(pool, offload)
        self.preemption = Preemption(pool, preempt)   # step checkpoints, and stopping work for urgent work
        self.jobs: dict[str, RunnableJob] = {}
        self.held: set[str] = set()                         # paused jobs: nothing new of theirs starts
        self.running: dict[object, Attempt] = {}            # a member's call → its attempt
        self.banks: dict[tuple[str, str], object] = {}
        self.publishing: tuple[str, str] | None = None      # finished, being written out
        self.epoch = time.time()
        pool.on_event = self._worker_event

    def _worker_event(self, kind: str, detail: str, worker: str | None = None) -> None:
        for job in self.jobs.values():
            job.worker_event(kind, detail, worker)

    # -- jobs -----------------------------------------------------------------------------------------

    def add(self, job: RunnableJob, *, wait: bool = False) -> None:
        """Open `job` (its folder taken, or with `wait` once free; what is published, what the cache has)
        and queue the rest."""
        for observer in self.observers:
            job.observe(observer)
        job.open(self.cache, wait=wait)
        self.jobs[job.id] = job
        for name, handle in build_banks(job, self.pool).items():
            self.banks[(job.id, name)] = handle

    def cancel(self, job_id: str) -> bool:
        job = self.jobs.get(job_id)
        if job is None or not job.cancel():
            return False
        for a in self._running_for(job):   # a running worker call cannot be interrupted: replace its workers
            self._stop(a, f"job {job.id} cancelled", replace=True)
            job.end_attempt(a.seg, a.n, "cancelled", "job cancelled")
        return True

    def hold(self, job_id: str, held: bool) -> bool:
        """Pause (`held`) or resume a job: a paused job starts nothing new, its running attempts finish
        and are published; False when there is no such running job or it already is so."""
        job = self.jobs.get(job_id)
        if job is None or job.ended or (job_id in self.held) == held:
            return False
        if held:
            self.held.add(job_id)
        else:
            self.held.discard(job_id)
        job.stage("paused: running work finishes, nothing new starts" if held else "resumed")
        return True

    @property
    def busy(self) -> bool:
        return any(not j.ended for j in self.jobs.values())

    # -- the loop -------------------------------------------------------------------------------------

    def run(self) -> None:
        """Until every job has ended (delivered or cancelled)."""
        try:
            while self.busy:
                self.step()
        except KeyboardInterrupt:
            self.interrupt()
            raise
        finally:
            self.pool.shutdown()

    def step(self, max_wait: float = 1.0, deliver: bool = True) -> None:
        self.pool.refresh()
        self._orphans()
        self._schedule()
        self._collect(max_wait)
        for job in list(self.jobs.values()) if deliver else []:
            if not job.ended and (job.settled or job.cancelling) and not self._running_for(job):
                with self._isolated():
                    self._finish(job)

    @contextmanager
    def _isolated(self):
        """Around one job's piece of a round: a job whose ledger cannot be written stops (its state up to
        there is on disk, `sakuga resume` continues from it); the round goes on for the other jobs."""
        try:
            yield
        except LedgerWriteError as e:
            job = next(j for j in self.jobs.values() if j.folder.ledger == e.path)
            self._abandon(job, f"{e}; free the space and `sakuga resume {job.out}`")

    def _abandon(self, job: RunnableJob, error: str) -> None:
        logger.error("%s: %s", job.id, error)
        for a in self._running_for(job):
            self._stop(a, f"job {job.id} stopped", replace=True)
        job.abandon(error)
        job.close()

    def interrupt(self) -> None:
        for job in self.jobs.values():
            job.interrupt()
        self.running.clear()

    def _attempts(self) -> list[Attempt]:
        return list({id(a): a for a in self.running.values()}.values())

    def _running_for(self, job: RunnableJob) -> list[Attempt]:
        return [a for a in self._attempts() if a.job is job]

    def _schedule(self) -> None:
        busy = {(a.job.id, a.seg.id) for a in self.running.values()} | {self.publishing}
        ready, pending, owner = {"gpu": [], "cpu": []}, {"gpu": [], "cpu": []}, {}
        for job in self.jobs.values():
            if job.cancelling or job.ended or job.id in self.held:
                continue
            for seg in job.unfinished():
                if (job.id, seg.id) in busy:
                    continue
                task = job.task(seg, self.placement.degrees(job, seg))
                owner[task.id] = (job, seg)
                (ready if job.is_ready(seg) else pending)[job.resource(seg)].append(task)
        self._schedule_gpus(ready["gpu"], pending["gpu"], owner)
        self._schedule_lanes(ready["cpu"], pending["cpu"], owner)

    def _running(self, cpu: bool) -> list[Running]:
        now = time.time()
        return [self.preemption.running(a, now, self.epoch) for a in self._attempts() if a.slots[0].cpu == cpu]

    def _gpu_view(self, ready: list, pending: list) -> View:
        return View(time.time() - self.epoch, Cluster(tuple(self.pool.nodes)), self.pool.free(), ready, pending,
                    self._running(cpu=False), self.pool.resident(), preempt=self.preemption.enabled)

    def _schedule_gpus(self, ready: list, pending: list, owner: dict) -> None:
        """Start what the policy picks on the free GPUs; then, with preemption on, ask the running work it
        chooses to stop at its next step boundary (for more urgent work, or to resume at another width)."""
        if not ready and not (self.preemption.enabled and self.running):
            return
        view = self._gpu_view(ready, pending)
        # with preemption on, the policy decides even with no GPU free: its stops come from its starts
        if ready and (view.preempt or any(not s.busy for s in self.pool.slots)):
            taken: set[tuple[int, int]] = set()
            for start in self.policy.decide(view):
                job, seg = owner[start.task]
                slots = self._slots_for(job, seg, start, taken)
                if slots and not job.ended:
                    taken.update(s.key for s in slots)
                    with self._isolated():
                        self._dispatch(job, seg, slots)
            busy = {a.job.task_id(a.seg.id) for a in self._attempts()}
            view = self._gpu_view([t for t in ready if t.id not in busy], pending)
        if view.preempt and view.running:
            self.preemption.ask(self.policy.stops(view), self._attempts())

    def _schedule_lanes(self, ready: list, pending: list, owner: dict) -> None:
        """The same policy, over the CPU lanes seen as one node of `len(lanes)` slots."""
        free = [lane.gpu for lane in self.lanes if not lane.busy]
        if not ready or not free:
            return
        view = View(time.time() - self.epoch, Cluster((len(self.lanes),)), {0: free}, ready, pending,
                    self._running(cpu=True), {})
        for start in self.policy.decide(view):
            job, seg = owner[start.task]
            lane = self.lanes[start.gpus[0]]
            if not lane.busy and not job.ended:
                with self._isolated():
                    self._dispatch(job, seg, [lane])

    def _slots_for(self, job: RunnableJob, seg: Segment, start, taken: set) -> list[Slot]:
        if start.degree > 1:
            slots = [self.pool.slot(start.node, g) for g in start.gpus]
            return slots if self.placement.gang_free(job, slots, taken) else []
        slot = self.placement.pick_slot(job, seg, self.pool.slot(start.node, start.gpus[0]), taken)
        if slot is None and self.placement.hopeless(job):
            job.fail(seg, "every worker failed this job twice")
        return [slot] if slot else []

    def _dispatch(self, job: RunnableJob, seg: Segment | Stage, slots: list[Slot]) -> None:
        if isinstance(seg, Stage):
            self._dispatch_stage(job, seg, slots[0])
            return
        try:
            images = job.images_for(seg)
        except (OSError, KeyError) as e:   # an input vanished since planning: no attempt can succeed
            job.fail(seg, f"cannot read input: {e}")
            return
        if len(slots) == 1:
            members = [(slots[0], None)]
        else:
            try:
                members = self.pool.gang(slots)
            except WorkerDied as e:   # rank 0 is gone: nothing started yet
                self.pool.replace(min(slots, key=lambda s: s.gpu), str(e))
                return
            images = self.pool.share(images)   # one copy for the whole gang
        preset = job.plan.presets[seg.model]
        offload = self.placement.offload(job, seg)
        # the time left: all of it, or the steps after its checkpoint plus a restart
        a = Attempt(job, seg, [s for s, _ in members], 0, 0.0, 0.0, job.task(seg, (len(slots),)).time(len(slots)))
        steps = self.preemption.order(job, seg, slots, a.estimate)
        a.resumed = steps.resume_step
        a.n = job.start_attempt(seg, worker=a.worker, node=slots[0].node_id, degree=a.degree, offload=offload)
        timeout = job.timeout(seg, a.estimate, loading=any(seg.model not in s.resident for s in slots))
        bank = self.banks.get((job.id, seg.model))
        keep = bool(job.config.get("keep_latents"))
        for slot, spec in members:
            call = self.pool.render(slot, preset, seg, images, bank, offload, spec, keep, steps)
            slot.busy = True
            a.pending[call] = slot
            self.running[call] = a
        a.started = time.time()
        a.deadline = a.started + timeout

    def _dispatch_stage(self, job: RunnableJob, stage: Stage, slot: Slot) -> None:
        try:
            inputs = self.pool.share(job.stage_inputs(stage))
        except OSError as e:   # a published clip vanished since: no attempt can succeed
            job.fail(stage, f"cannot read input: {e}")
            return
        a = Attempt(job, stage, [slot], 0, 0.0, 0.0, stage.runtime(1))
        a.n = job.start_attempt(stage, worker=a.worker, node=slot.node_id, degree=1, offload=False)
        call = self.pool.stage(None if slot.cpu else slot, stage, inputs)
        slot.busy = True
        a.pending[call] = slot
        self.running[call] = a
        a.started = time.time()
        a.deadline = a.started + job.timeout(stage, a.estimate, loading=stage.model not in slot.resident)

    def _collect(self, max_wait: float) -> None:
        if not self.running:
            return
        wait = max(0.0, min(max_wait, min(a.deadline for a in self.running.values()) - time.time()))
        for call in self.pool.wait(list(self.running), wait):
            a = self.running.get(call)
            if a is None:
                continue    # its attempt already ended with another member's failure
            with self._isolated():
                self._collected(a, call)
        self._expire(time.time())

    def _collected(self, a: Attempt, call) -> None:
        """One member's call answered: a checkpoint (it goes on), its result, that it stopped as asked, or
        a failure that ends the attempt."""
        slot = a.pending.pop(call)
        self.running.pop(call)
        try:
            result = self.pool.result(call)
        except WorkerDied as e:
            lost = e.node_lost or not self.pool.node_alive(slot)   # its node left: not the segment's fault
            self._stop(a, f"a member died rendering {a.seg.id}", replace=True, also=slot)
            if lost:
                self._failed(a, "node-lost", f"{slot.name}'s node left the cluster")
            else:
                self._failed(a, "died", str(e), culprit=slot)
        except WorkerFailed as e:
            gang = a.degree > 1   # the other members may be stuck in a collective
            self._stop(a, f"a member failed rendering {a.seg.id}", replace=gang, also=slot)
            if e.out_of_memory:
                self.placement.ran_out_of_memory(a.job, a.seg, a.degree)
                self._failed(a, "oom", str(e))
            else:
                self._failed(a, "error", str(e), culprit=slot)
        else:
            if isinstance(result, Checkpointed):   # the call goes on rendering
                a.pending[call], self.running[call] = slot, a
                self.preemption.checkpointed(a, result)
                return
            slot.busy = False   # a gang member is free once its share is done; rank 0 encodes
            slot.resident = set(result.resident)
            if isinstance(result, SegmentResult):
                a.result = result
            elif isinstance(result, StoppedAt):
                a.stopped = result.step if a.stopped is None else min(a.stopped, result.step)
            if not a.pending and a.result is None and a.stopped is not None:
                a.job.end_attempt(a.seg, a.n, "preempted", self.preemption.stopped(a))
            elif not a.pending:
                self._publish(a)

    def _orphans(self) -> None:
        """Attempts on slots the pool let go of (their node left): retried elsewhere, not counted."""
        for a in self._attempts():
            if any(not s.cpu and s not in self.pool.slots for s in a.slots):
                self._stop(a, f"{a.seg.id}: its node left", replace=True)
                with self._isolated():
                    self._failed(a, "node-lost", f"{a.worker}: the node left the cluster")

    def _expire(self, now: float) -> None:
        for a in self._attempts():
            if now >= a.deadline:
                lone = a.slots[0] if a.degree == 1 else None   # in a gang, which member hung is unknown
                self._stop(a, f"timed out on {a.seg.id}", replace=True)
                with self._isolated():
                    self._failed(a, "timeout", f"no result after {a.deadline - a.started:.0f} s "
                                               f"(the cost model expects {a.estimate:.0f} s)", culprit=lone)

    def _publish(self, a: Attempt) -> None:
        if a.result is None:   # every member answered but none with the segment: a broken engine
            self._failed(a, "error", "no member of the gang returned the segment")
            return
        # keep the freed GPUs busy with independent work while this segment is written out;
        # its dependents wait until it is published
        self.publishing = (a.job.id, a.seg.id)
        try:
            self._schedule()
            a.job.publish(a.seg, a.result, a.n, worker=a.worker, degree=a.degree, cache=self.cache)
        except OSError as e:   # disk full, read-only, I/O error: this attempt failed, like any other
            self._failed(a, "error", f"could not publish: {e}")
        finally:
            self.publishing = None

    def _stop(self, a: Attempt, why: str, *, replace: bool, also: Slot | None = None) -> None:
        """End attempt `a`'s calls still running (and `also`, the member whose call just failed): their
        workers are replaced, or only freed when nothing can be left half-way (a lone worker's error)."""
        slots = list(a.pending.values()) + ([also] if also else [])
        for call, slot in a.pending.items():
            self.running.pop(call, None)
            if slot.cpu:    # a CPU lane has no worker to replace: its call is cancelled, the lane freed
                self.pool.cancel(call)
        a.pending.clear()
        for slot in slots:
            if slot.cpu:
                slot.busy = False
            elif replace:
                self.pool.replace(slot, why)
            else:
                slot.busy = False

    def _failed(self, a: Attempt, status: str, error: str, *, culprit: Slot | None = None) -> None:
        if culprit:
            self.placement.blame(a.job, a.seg, culprit)
        a.job.end_attempt(a.seg, a.n, status, error)

    def _finish(self, job: RunnableJob) -> None:
        episode, error = None, None
        if not job.cancelling:
            job.stage("stitching")
            try:
                episode = self.deliver(job)
            except (OSError, ValueError, RuntimeError) as e:   # disk full, a damaged segment, a codec error
                error = f"delivery failed: {e}; the rendered segments are kept: `sakuga resume {job.out}`"
                logger.error("%s: %s", job.id, error)
        job.finish(episode, error)
        job.close()
        if self.cache is not None:
            trim_to_cap(self.cache)
