"""The farm loop: runs jobs' segments on the worker pool as the scheduling policy decides.

Each round it shows the policy what is ready, what is running and which GPUs are free, starts what
the policy picks, then waits for a result or a deadline. Every state change goes to the job's ledger
before it is acted on. A worker that dies or hangs past the segment's timeout is replaced and the
segment retried elsewhere (at most three attempts); an out-of-memory attempt is retried with offload.
Ctrl-C marks running attempts interrupted and leaves a ledger `sakuga resume` continues from.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import ray
from ray.exceptions import RayActorError, RayTaskError

from engine.bank import CharacterBank
from storyboard.errors import InputError, Problem
from storyboard.plan import Plan, Segment

from .cache import SegmentCache
from .job import MAX_ATTEMPTS, Job
from .policy import DEFAULT, Cluster, Policy, Running, View, policy
from .pool import Slot, WorkerPool
from .progress import JobProgress
from .publish import atomic_path, publish_json
from .worker import OutOfMemory, SegmentWorker


@dataclass
class RenderOutcome:
    out: Path
    episode: Path | None
    results: dict[str, dict] = field(default_factory=dict)
    failed_shots: list[str] = field(default_factory=list)
    reused: int = 0
    kept: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed_shots


@dataclass
class Attempt:
    """One try at a segment, on one worker or on a gang of them (one actor call per member)."""
    job: Job
    seg: Segment
    slots: list[Slot]
    n: int
    started: float
    deadline: float
    estimate: float
    pending: dict = field(default_factory=dict)    # member call → its slot, until it returns
    result: dict | None = None                     # rank 0's

    @property
    def worker(self) -> str:
        return "+".join(s.name for s in self.slots)


def connect(gpus: int, address: str | None) -> None:
    """Join `address`, or start a local Ray with `gpus` logical GPUs; check there are enough GPUs."""
    if not ray.is_initialized():
        if address:
            ray.init(address=address, logging_level="WARNING", log_to_driver=False)
        else:
            ray.init(address="local", num_cpus=max(os.cpu_count() or 1, 1), num_gpus=gpus, include_dashboard=False,
                     logging_level="WARNING", log_to_driver=False)
    have = int(ray.cluster_resources().get("GPU", 0))
    if have < gpus:
        raise InputError.single("--gpus", f"asked for {gpus} GPUs but the Ray cluster has {have}")


class Farm:
    def __init__(self, gpus: int, *, scheduler: Policy | None = None, cache: SegmentCache | None = None,
                 offload: bool = False, progress: Callable[[Job], JobProgress] | None = None,
                 log: Callable[[str], None] = lambda _: None):
        self.policy = scheduler or policy(DEFAULT)
        self.cache, self.offload, self.log = cache, offload, log
        self.make_progress = progress or (lambda job: JobProgress(job, enabled=False))
        self.jobs: dict[str, Job] = {}
        self.progress: dict[str, JobProgress] = {}
        self.running: dict[ray.ObjectRef, Attempt] = {}
        self.oom: dict[tuple[str, str], int] = {}           # (job, segment) → degree it ran out of memory at
        self.tries: dict[tuple[str, str], int] = {}         # attempts in this run (the ledger counts all runs)
        self.failed_on: dict[tuple[str, str], set[tuple[int, int]]] = {}   # slots a segment failed on
        self.banks: dict[tuple[str, str], ray.ObjectRef] = {}
        self.publishing: tuple[str, str] | None = None    # finished, being written out
        self.epoch = time.time()
        self.pool = WorkerPool(gpus, on_event=self._worker_event)

    def _worker_event(self, kind: str, detail: str, worker: str | None = None) -> None:
        for job in self.jobs.values():
            if job.ledger is not None and not job.finished:
                job.ledger.event(kind, detail, job=job.id, worker=worker)

    # -- jobs -----------------------------------------------------------------------------------------

    def add(self, job: Job) -> None:
        job.open(self.cache, self.log)
        self.jobs[job.id] = job
        self.progress[job.id] = self.make_progress(job)
        self.progress[job.id].opened()
        self._build_banks(job)

    def cancel(self, job_id: str) -> bool:
        job = self.jobs.get(job_id)
        if job is None or job.finished:
            return False
        job.cancelled = True
        for a in self._running_for(job):   # a running actor task cannot be interrupted: replace its workers
            self._stop(a, f"job {job.id} cancelled", replace=True)
            job.ledger.end_attempt(job.id, a.seg.id, a.n, "cancelled", "job cancelled")
        return True

    def _build_banks(self, job: Job) -> None:
        """Encode every character's pictures once per model encoder into DIR/characters.parquet
        (rows already there are reused) and share each preset's bank with all workers."""
        path = job.out / "characters.parquet"
        bank = read_bank(path)
        worker = self.pool.slots[0].actor
        for name, preset in job.plan.presets.items():
            cast = {(ch.id, r.sha256): r for s in job.unfinished() if s.model == name
                    for ch in s.characters for r in ch.refs}
            if not cast:
                continue
            wanted = [(cid, sha, job.asset(ref.ref)) for (cid, sha), ref in sorted(cast.items())]
            try:
                encoder, new = ray.get(worker.bank.remote(preset, wanted, list(bank.rows)))
            except (RayActorError, RayTaskError):
                continue   # the model does not load: its segments fail, retry and are reported as usual
            if encoder is None:
                continue
            bank.add(new.rows.values())
            self.banks[(job.id, name)] = ray.put(bank.for_encoder(encoder))
        if len(bank):
            with atomic_path(path) as tmp:
                pq.write_table(bank.to_table(), tmp)

    # -- the loop -------------------------------------------------------------------------------------

    def run(self) -> None:
        """Until every job is finished (delivered or cancelled)."""
        try:
            while any(not j.delivered for j in self.jobs.values()):
                self.step()
        except KeyboardInterrupt:
            self.interrupt()
            raise
        finally:
            self.pool.shutdown()

    def step(self, max_wait: float = 1.0, deliver: bool = True) -> None:
        self._schedule()
        self._collect(max_wait)
        for job in list(self.jobs.values()) if deliver else []:
            if not job.delivered and (job.finished or job.cancelled) and not self._running_for(job):
                self._finish(job)

    def interrupt(self) -> None:
        for job in self.jobs.values():
            if job.ledger is not None and not job.delivered:
                job.ledger.interrupt_running(job.id)
                job.ledger.set_job_status(job.id, "interrupted", "stopped by the user; `sakuga resume` continues")
        self.running.clear()

    def _attempts(self) -> list[Attempt]:
        return list({id(a): a for a in self.running.values()}.values())

    def _running_for(self, job: Job) -> list[Attempt]:
        return [a for a in self._attempts() if a.job is job]

    def _degrees(self, job: Job, seg: Segment) -> tuple[int, ...]:
        """The gang widths the policy may give a segment: the preset's that fit a node; after running
        out of memory, only wider ones (the activations split further), if there are any."""
        widest = max(self.pool.nodes)
        allowed = tuple(d for d in job.plan.presets[seg.model].degrees if d <= widest) or (1,)
        ran_out = self.oom.get((job.id, seg.id))
        wider = tuple(d for d in allowed if ran_out is not None and d > ran_out)
        return wider or allowed

    def _schedule(self) -> None:
        now = time.time() - self.epoch
        busy = {(a.job.id, a.seg.id) for a in self.running.values()} | {self.publishing}
        ready, pending, owner = [], [], {}
        for job in self.jobs.values():
            if job.cancelled or job.delivered:
                continue
            for seg in job.unfinished():
                if (job.id, seg.id) in busy:
                    continue
                task = job.task(seg, self._degrees(job, seg))
                owner[task.id] = (job, seg)
                (ready if job.is_ready(seg) else pending).append(task)
        if not ready or not any(not s.busy for s in self.pool.slots):
            return
        running = [Running(a.job.task(a.seg, (len(a.slots),)), a.slots[0].node, tuple(s.gpu for s in a.pending.values()),
                           a.started - self.epoch, a.started - self.epoch + a.estimate) for a in self._attempts()]
        view = View(now, Cluster(tuple(self.pool.nodes)), self.pool.free(), ready, pending, running,
                    self.pool.resident())
        taken: set[tuple[int, int]] = set()
        for start in self.policy.decide(view):
            job, seg = owner[start.task]
            if start.degree == 1:
                slot = self._pick_slot(job, seg, self.pool.slot(start.node, start.gpus[0]), taken)
                slots = [slot] if slot else []
            else:
                slots = [self.pool.slot(start.node, g) for g in start.gpus]
                if any(s.busy or s.key in taken or not self.pool.usable(s, job.id) for s in slots):
                    continue
            if slots:
                taken.update(s.key for s in slots)
                self._dispatch(job, seg, slots)

    def _pick_slot(self, job: Job, seg: Segment, proposed: Slot, taken: set) -> Slot | None:
        """The policy's slot, unless it failed this segment or this job twice: then another free one."""
        tried = self.failed_on.get((job.id, seg.id), set())
        free = [s for s in self.pool.slots if not s.busy and s.key not in taken and self.pool.usable(s, job.id)]
        ok = [s for s in free if s.key not in tried]
        for choice in (ok, free):
            if proposed in choice:
                return proposed
            if choice:
                return choice[0]
        if not any(self.pool.usable(s, job.id) for s in self.pool.slots):
            job.fail(seg, "every worker failed this job twice", job.results.get(seg.id, {}).get("attempts", 0))
            self.progress[job.id].failed(seg)
        return None

    def _dispatch(self, job: Job, seg: Segment, slots: list[Slot]) -> None:
        attempts = job.results.setdefault(seg.id, {"attempts": 0})
        try:
            images = job.images_for(seg)
        except (OSError, KeyError) as e:   # an input vanished since planning: no attempt can succeed
            job.fail(seg, f"cannot read input: {e}", attempts["attempts"])
            self.progress[job.id].failed(seg)
            return
        preset = job.plan.presets[seg.model]
        degree = len(slots)
        # out of memory at the widest degree there is: keep the weights in CPU memory instead
        offload = self.offload or self.oom.get((job.id, seg.id), 0) >= max(self._degrees(job, seg))
        bank = self.banks.get((job.id, seg.model))
        if degree == 1:
            members = [(slots[0], None)]
        else:
            try:
                members = self.pool.gang(slots)
            except (RayActorError, ray.exceptions.GetTimeoutError):   # rank 0 is gone: nothing started yet
                self.pool.replace(min(slots, key=lambda s: s.gpu), "did not answer to host a gang")
                return
            images = ray.put(images)   # one copy for the whole gang
        a = Attempt(job, seg, [s for s, _ in members], 0, 0.0, 0.0, seg.runtime(degree))
        a.n = job.ledger.start_attempt(job.id, seg.id, worker=a.worker, node=slots[0].node_id, degree=degree,
                                       offload=offload)
        attempts["attempts"] = a.n
        self.tries[(job.id, seg.id)] = self.tries.get((job.id, seg.id), 0) + 1
        timeout = preset.cost.timeout(a.estimate, loading=any(seg.model not in s.resident for s in slots))
        for slot, spec in members:
            ref = slot.actor.render.remote(preset, seg, images, bank, offload, spec)
            slot.busy = True
            a.pending[ref] = slot
            self.running[ref] = a
        a.started = time.time()
        a.deadline = a.started + timeout
        self.progress[job.id].started(seg, a.worker)

    def _collect(self, max_wait: float) -> None:
        if not self.running:
            return
        now = time.time()
        wait = max(0.0, min(max_wait, min(a.deadline for a in self.running.values()) - now))
        done, _ = ray.wait(list(self.running), num_returns=1, timeout=wait)
        for ref in done:
            a = self.running.pop(ref, None)
            if a is None:
                continue    # its attempt already ended with another member's failure
            slot = a.pending.pop(ref)
            try:
                result = ray.get(ref)
            except RayActorError as e:
                self._stop(a, f"a member died rendering {a.seg.id}", replace=True, also=slot)
                self._failed(a, "died", _last_line(e), culprit=slot)
            except RayTaskError as e:
                gang = len(a.slots) > 1   # the other members may be stuck in a collective
                self._stop(a, f"a member failed rendering {a.seg.id}", replace=gang, also=slot)
                if isinstance(e.cause, OutOfMemory):
                    self.oom[(a.job.id, a.seg.id)] = len(a.slots)
                    self._failed(a, "oom", _last_line(e))
                else:
                    self._failed(a, "error", _last_line(e), culprit=slot)
            else:
                slot.busy = False   # a gang member is free once its share is done; rank 0 decodes
                slot.resident = set(result.get("resident", ()))
                if "mp4" in result:
                    a.result = result
                if not a.pending:
                    self._publish(a)
        now = time.time()
        for a in self._attempts():
            if now >= a.deadline:
                lone = a.slots[0] if len(a.slots) == 1 else None   # in a gang, which member hung is unknown
                self._stop(a, f"timed out on {a.seg.id}", replace=True)
                self._failed(a, "timeout", f"no result after {a.deadline - a.started:.0f} s "
                                           f"(the cost model expects {a.estimate:.0f} s)", culprit=lone)

    def _publish(self, a: Attempt) -> None:
        result = {**a.result, "worker": a.worker, "degree": len(a.slots)}
        # keep the freed GPUs busy with independent work while this segment is written out;
        # its dependents wait until it is published
        self.publishing = (a.job.id, a.seg.id)
        try:
            self._schedule()
            a.job.publish(a.seg, result, a.n, self.cache)
        finally:
            self.publishing = None
        self.progress[a.job.id].finished(a.seg, result)

    def _stop(self, a: Attempt, why: str, *, replace: bool, also: Slot | None = None) -> None:
        """End attempt `a`'s calls still running (and `also`, the member whose call just failed): their
        workers are replaced, or only freed when nothing can be left half-way (a lone worker's error)."""
        slots = list(a.pending.values()) + ([also] if also else [])
        for ref in a.pending:
            self.running.pop(ref, None)
        a.pending.clear()
        for slot in slots:
            if replace:
                self.pool.replace(slot, why)
            else:
                slot.busy = False

    def _failed(self, a: Attempt, status: str, error: str, *, culprit: Slot | None = None) -> None:
        job, seg = a.job, a.seg
        job.ledger.end_attempt(job.id, seg.id, a.n, status, error)
        if culprit:
            culprit.failures[job.id] += 1
            self.failed_on.setdefault((job.id, seg.id), set()).add(culprit.key)
        job.results[seg.id].update(error=error)
        self.progress[job.id].retrying(seg, status)
        if self.tries[(job.id, seg.id)] >= MAX_ATTEMPTS or job.cancelled:
            job.fail(seg, error, a.n)
            self.progress[job.id].failed(seg)

    def _finish(self, job: Job) -> None:
        progress = self.progress[job.id]
        if job.cancelled:
            job.ledger.set_job_status(job.id, "cancelled")
            job.delivered, job.episode = True, None
        else:
            progress.stage("stitching")
            job.episode = job.deliver()
            job.delivered = True
            progress.stage("delivered")
        progress.close()
        job.close()


def _last_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[-1][:500] if text else type(error).__name__


def read_bank(path: Path) -> CharacterBank:
    """The character bank of an earlier run into the same folder; a damaged one is rebuilt."""
    if not path.is_file():
        return CharacterBank()
    try:
        return CharacterBank.from_table(pq.read_table(path))
    except (OSError, ValueError, pa.ArrowException):
        return CharacterBank()


def check_cluster(plan: Plan) -> None:
    """Ask a worker of the cluster whether it can load every preset of the plan (weights present)."""
    probe = SegmentWorker.options(num_gpus=0).remote("probe")
    try:
        problems = [p for pr in plan.presets.values() for p in ray.get(probe.check.remote(pr))]
    finally:
        ray.kill(probe)
    if problems:
        raise InputError([Problem(*p) for p in problems])


def render(plan: Plan, out: Path, *, gpus: int = 1, address: str | None = None, show_progress: bool = True,
           offload: bool = False, cache: SegmentCache | None = None, job_id: str | None = None,
           config: dict | None = None, log: Callable[[str], None] = lambda _: None) -> RenderOutcome:
    """Render one plan into `out` on a local Ray (or the cluster at `address`)."""
    job = Job(job_id or Job.new_id(_stem(plan.title)), plan, out, config=config or {})
    [outcome] = render_jobs([job], gpus=gpus, address=address, show_progress=show_progress, offload=offload,
                            cache=cache, log=log)
    return outcome


def render_jobs(jobs: list[Job], *, gpus: int = 1, address: str | None = None, show_progress: bool = True,
                offload: bool = False, cache: SegmentCache | None = None,
                log: Callable[[str], None] = lambda _: None) -> list[RenderOutcome]:
    """Render several jobs together on one worker pool (a local batch), by priority."""
    connect(gpus, address)
    if address:
        for job in jobs:
            check_cluster(job.plan)   # the workers' machines must have the weights, not this one
    started = time.time()
    farm = Farm(gpus, cache=cache, offload=offload, log=log,
                progress=lambda j: JobProgress(j, gpus=gpus, enabled=show_progress))
    for job in jobs:
        job.out.mkdir(parents=True, exist_ok=True)
        farm.add(job)
        if job.reused or job.kept:
            log(f"{job.out}: reused {job.reused + job.kept} of {len(job.plan.segments)} segments "
                f"({job.kept} already there, {job.reused} from the cache)")
    try:
        farm.run()
    except KeyboardInterrupt:
        log("interrupted: published segments are kept; continue with `sakuga resume "
            + " ".join(str(j.out) for j in jobs) + "`")
        raise
    outcomes = []
    for job in jobs:
        for note in job.notes:
            log(note)
        publish_json(job.out / "render.json", {"wall_s": time.time() - started, "gpus": gpus,
                                               "failed_shots": job.failed_shots, "reused": job.reused,
                                               "kept": job.kept})
        outcomes.append(RenderOutcome(job.out, job.episode, job.results, job.failed_shots, job.reused, job.kept))
    return outcomes


def _stem(title: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in title.lower()).strip("-") or "render"
