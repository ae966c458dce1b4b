"""`EmbeddedFarm`: the farm API with the loop in this process, on a pool of Ray worker actors (a local
Ray with logical GPUs by default, or a cluster joined as a driver). `sakuga render`, `resume` and a
local `batch` use it; the cluster's farm service holds one too.

The loop runs in the caller's thread (`wait`, `step`); Ctrl-C there interrupts the running attempts
and leaves ledgers that `sakuga resume` continues from.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from farm.job.cache import SegmentCache
from farm.job.events import JobEvent
from farm.job.folder import JobFolder
from farm.job.job import Job
from farm.job.ledger import Ledger, LedgerWriteError
from farm.job.lock import FolderBusy
from farm.job.publish import publish_json
from farm.job.recorded import last_job
from farm.job.takes import recorded_takes
from farm.run.loop import FarmLoop
from farm.run.progress import JobProgress
from farm.scheduling.policy import Policy
from farm.workers.slots import Pool
from storyboard.errors import InputError
from storyboard.takes import ShotTakes, check_overrides

from . import takes as shot_takes
from . import views
from .protocol import JobDetail, JobRequest, JobSummary, TakeView, UnknownJob, WorkerView

logger = logging.getLogger(__name__)


class EmbeddedFarm:
    def __init__(self, pool: Pool, *, cache: SegmentCache | None = None, offload: bool = False,
                 scheduler: Policy | None = None, progress: Callable[[Job], JobProgress | None] | None = None,
                 observers: tuple = ()):
        self.pool = pool
        self.gpus = sum(pool.nodes)
        self.loop = FarmLoop(pool, scheduler=scheduler, cache=cache, offload=offload)
        self.events_log = views.EventLog()
        self.make_progress = progress or (lambda job: None)
        self.observers = observers        # told every job's events too (the service's registry)
        self.lock = threading.RLock()   # the service calls in from other threads while the loop runs
        self.reopening: set[str] = set()   # jobs given a take while running: reopened once they end
        self.on_reopen: Callable[[JobRequest], None] = lambda request: None   # the service's registry

    # -- the API ------------------------------------------------------------------------------------

    def submit(self, request: JobRequest) -> JobSummary:
        with self.lock:
            # one output folder holds one job: a render into it again continues that job
            recorded = last_job(JobFolder(request.out))
            job_id = recorded.job["id"] if recorded else request.job_id or Job.new_id(_stem(request.plan.title))
            if job_id in self.loop.jobs and not self.loop.jobs[job_id].ended:
                raise ValueError(f"job {job_id} is already queued")
            config = {**request.config, **({"owner": request.owner} if request.owner else {})}
            job = Job(job_id, request.plan, request.out, request.priority, config, request.assets)
            job.observe(self.events_log)
            for observer in self.observers:
                job.observe(observer)
            progress = self.make_progress(job)
            if progress is not None:
                job.observe(progress)
            try:
                self.loop.add(job, wait=request.wait)
            except FolderBusy as e:
                raise InputError.single(job.out, str(e)) from None
            except (OSError, LedgerWriteError) as e:   # the folder cannot be written: nothing was started
                job.close()
                raise InputError.single(job.out, f"cannot write the render here: {e}") from None
            except InputError:
                job.close()
                raise
            if job.reused or job.kept:
                logger.info("%s: reused %d of %d segments%s (%d already there, %d from the cache)", job.out,
                            job.reused + job.kept, len(job.items), " and stages" if job.stages else "",
                            job.kept, job.reused)
            return views.summary(job, self.gpus)

    def jobs(self) -> list[JobSummary]:
        with self.lock:
            return [views.summary(j, self.gpus, j.id in self.loop.held) for j in self.loop.jobs.values()]

    def job(self, job_id: str) -> JobDetail | None:
        with self.lock:
            job = self.loop.jobs.get(job_id)
            return views.detail(job, self.gpus, job_id in self.loop.held) if job else None

    def cancel(self, job_id: str) -> bool:
        with self.lock:
            return self.loop.cancel(job_id)

    def pause(self, job_id: str) -> bool:
        """Nothing new of the job starts (its running attempts finish); `resume` lets it go on."""
        with self.lock:
            return self.loop.hold(job_id, True)

    def resume(self, job_id: str) -> bool:
        with self.lock:
            return self.loop.hold(job_id, False)

    def set_priority(self, job_id: str, priority: int) -> bool:
        with self.lock:
            job = self.loop.jobs.get(job_id)
            if job is None or job.ended:
                return False
            job.set_priority(priority)
            return True

    def events(self, job_id: str, since: int = 0) -> list[JobEvent]:
        return self.events_log.since(job_id, since)

    def takes(self, job_id: str, shot: str) -> list[TakeView]:
        with self.lock:
            return shot_takes.take_views(self._known(job_id), shot)

    def retake(self, job_id: str, shot: str, overrides: dict) -> int:
        """Record a new take of `shot` and render it: at once if the job has ended, else once it has."""
        with self.lock:
            job = self._known(job_id)
            shot_takes.check_shot(job, shot)
            given = check_overrides(overrides)
            takes = recorded_takes(job.folder, job.id)
            had = takes.get(shot, ShotTakes())
            n = max(had.numbers()) + 1
            shot_takes.planned(job, {**takes, shot: ShotTakes({**had.overrides, n: given}, had.approved)})  # it plans
            with Ledger(job.folder.ledger) as ledger:
                n = ledger.add_take(job.id, shot, given)
            self._reopen(job)
            return n

    def approve(self, job_id: str, shot: str, take: int) -> None:
        """The cut uses `take` of `shot`: the job is delivered again (rendering what now follows from it)."""
        with self.lock:
            job = self._known(job_id)
            takes = recorded_takes(job.folder, job.id)
            shot_takes.check_take(job, shot, take, takes)
            had = takes.get(shot, ShotTakes())
            shot_takes.planned(job, {**takes, shot: ShotTakes(had.overrides, take)})
            with Ledger(job.folder.ledger) as ledger:
                ledger.approve_take(job.id, shot, take)
            self._reopen(job)

    def _known(self, job_id: str) -> Job:
        job = self.loop.jobs.get(job_id)
        if job is None:
            raise UnknownJob(f"no job {job_id!r}")
        return job

    def _reopen(self, job: Job) -> None:
        """Open an ended job again with the plan its ledger's takes give (a running one once it ends)."""
        if not job.ended:
            self.reopening.add(job.id)
            return
        self.reopening.discard(job.id)
        plan = shot_takes.planned(job, recorded_takes(job.folder, job.id))
        request = JobRequest(plan, job.out, job.priority, job.config, None, job.id)
        self.submit(request)
        self.on_reopen(request)

    def workers(self) -> list[WorkerView]:
        """The pool's slots (the studio's Workers page; the cluster's service does not offer it yet)."""
        with self.lock:
            return [views.worker(s, self.pool) for s in self.pool.slots]

    # -- running ------------------------------------------------------------------------------------

    def step(self, max_wait: float = 1.0) -> bool:
        """One round of the loop; False when there was nothing to do. The round itself never waits:
        waiting for the workers (up to `max_wait`) happens after it, without the lock, so the farm
        API's callers (the studio's requests, its event stream) get in while segments render."""
        with self.lock:
            for job_id in [i for i in self.reopening if self.loop.jobs[i].ended]:
                try:
                    self._reopen(self.loop.jobs[job_id])
                except InputError as e:   # its storyboard went away meanwhile: the take waits for a resume
                    self.reopening.discard(job_id)
                    logger.error("%s: new take not rendered: %s", job_id, e)
            if not self.loop.busy:
                return False
            self.loop.step(0.0)
            calls = list(self.loop.running)
        if max_wait > 0:
            if calls:
                self.pool.wait(calls, max_wait)       # returns once one is done; the next round collects it
            else:
                time.sleep(min(max_wait, 0.05))       # nothing running (paused, or waiting on a lane)
        return True

    def wait(self, job_ids: Iterable[str] | None = None) -> list[Job]:
        """Run the loop until the given jobs (default: all) have ended; Ctrl-C interrupts them all."""
        with self.lock:
            jobs = [self.loop.jobs[i] for i in job_ids] if job_ids is not None else list(self.loop.jobs.values())
        try:
            while any(not j.ended for j in jobs):
                self.step()
        except KeyboardInterrupt:
            self.loop.interrupt()
            raise
        return jobs

    def close(self) -> None:
        self.pool.shutdown()


def local_farm(gpus: int, *, address: str | None = None, cache: SegmentCache | None = None, offload: bool = False,
               show_progress: bool = False, plans=()) -> EmbeddedFarm:
    """An embedded farm on a local Ray with `gpus` logical GPUs, or on the cluster at `address`, whose
    workers are first asked whether they can load every preset of `plans` (their weights, not ours)."""
    from farm.workers.connect import check_cluster, connect
    from farm.workers.pool import WorkerPool

    connect(gpus, address)
    for plan in plans if address else ():
        check_cluster(plan)
    return EmbeddedFarm(WorkerPool(gpus), cache=cache, offload=offload,
                        progress=lambda job: JobProgress(job, gpus=gpus, enabled=show_progress))


@dataclass
class RenderOutcome:
    out: Path
    episode: Path | None
    results: dict[str, dict]
    failed_shots: list[str]
    reused: int = 0
    kept: int = 0
    error: str | None = None      # why the job stopped short of delivering (disk full...)

    @property
    def ok(self) -> bool:
        return not self.failed_shots and self.error is None


def render(plan, out: Path, *, gpus: int = 1, address: str | None = None, show_progress: bool = True,
           offload: bool = False, cache: SegmentCache | None = None, job_id: str | None = None,
           config: dict | None = None, wait: bool = False) -> RenderOutcome:
    """Render one plan into `out` on a local Ray (or the cluster at `address`)."""
    [outcome] = render_jobs([JobRequest(plan, Path(out), 0, config or {}, None, job_id, wait)], gpus=gpus,
                            address=address, show_progress=show_progress, offload=offload, cache=cache)
    return outcome


def render_jobs(requests: list[JobRequest], *, gpus: int = 1, address: str | None = None,
                show_progress: bool = True, offload: bool = False,
                cache: SegmentCache | None = None) -> list[RenderOutcome]:
    """Render several jobs together on one worker pool (a local batch), by priority."""
    started = time.time()
    farm = local_farm(gpus, address=address, cache=cache, offload=offload, show_progress=show_progress,
                      plans=[r.plan for r in requests])
    try:
        ids = [farm.submit(r).id for r in requests]
        try:
            jobs = farm.wait(ids)
        except KeyboardInterrupt:
            logger.warning("interrupted: published segments are kept; continue with `sakuga resume %s`",
                           " ".join(str(r.out) for r in requests))
            raise
    finally:
        farm.close()
    outcomes = []
    for job in jobs:
        try:
            publish_json(job.folder.render_summary, {"wall_s": time.time() - started, "gpus": gpus,
                                                     "failed_shots": job.failed_shots, "reused": job.reused,
                                                     "kept": job.kept, "error": job.error})
        except OSError as e:   # a summary for people; the ledger is what counts
            logger.warning("%s not written: %s", job.folder.render_summary, e)
        outcomes.append(RenderOutcome(job.out, job.episode, job.rows(), job.failed_shots, job.reused, job.kept,
                                      job.error))
    return outcomes


def _stem(title: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in title.lower()).strip("-") or "render"
