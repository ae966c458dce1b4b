"""The farm service: a long-lived named Ray actor that owns the cluster's queue and GPU worker pool.

Jobs from several users (each submitted through Ray's Job API, whose entrypoint hands the plan and
its pictures here) share the cluster by priority: an `EmbeddedFarm` — the same loop, policy and farm
API as a local render — driven on a thread of the actor. Workers keep their models loaded across
jobs, and the policy prefers the GPUs that already hold a segment's model. Its methods are the farm
API's; `ServiceFarm` (remote.py) calls them from anywhere on the cluster.
"""
from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import ray

from farm.access.roots import confine
from farm.api.embedded import EmbeddedFarm
from farm.api.protocol import JobDetail, JobRequest, JobSummary, TakeView
from farm.job.cache import SegmentCache, default_cache_dir
from farm.job.events import JobEvent
from farm.run.progress import JobProgress
from farm.workers.pool import WorkerPool
from storyboard.errors import InputError

from .registry import Registry

logger = logging.getLogger(__name__)

NAME = "sakuga-farm"
NAMESPACE = "sakuga"


# restarted by Ray when its process dies; calls in flight then fail and callers retry (ServiceFarm)
@ray.remote(num_cpus=0, max_concurrency=16, max_restarts=-1)
class FarmService:
    def __init__(self, gpus: int | None = None, cache: str | None = "default"):
        # the actor's stdout is its log: the farm's lines go there
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logging.getLogger("farm").addHandler(handler)
        logging.getLogger("farm").setLevel(logging.INFO)
        self.gpus = gpus or int(ray.cluster_resources().get("GPU", 0))
        self.lines: dict[str, list[str]] = {}
        store = None if cache is None else SegmentCache(default_cache_dir() if cache == "default" else Path(cache))
        self.registry = Registry()
        pool = WorkerPool(self.gpus, elastic=True)   # nodes that join later get workers too
        self.farm = EmbeddedFarm(pool, cache=store, observers=(self._forget_when_finished,), progress=lambda job: JobProgress(
            job, gpus=self.gpus, enabled=False, log=self.lines.setdefault(job.id, []).append))
        self.farm.on_reopen = lambda request: self.registry.put(request.job_id, request)   # a take reopened it
        self._resume_queue()
        threading.Thread(target=self._loop, name="farm-loop", daemon=True).start()

    def _resume_queue(self) -> None:
        """After a restart: every job accepted and not finished, again, from its ledger."""
        for job_id, request in self.registry.unfinished():
            try:
                self.farm.submit(replace(request, job_id=job_id))
                logger.info("%s: resumed after the farm service restarted", job_id)
            except Exception as e:   # noqa: BLE001 - one job that cannot resume must not stop the others
                logger.error("%s: cannot resume (%s)", job_id, e)
                self.registry.done(job_id)

    def _forget_when_finished(self, job, event) -> None:
        if event.kind == "finished":
            self.registry.done(job.id)

    def _loop(self) -> None:
        while True:
            try:
                active = self.farm.step(max_wait=0.2)
            except Exception:   # noqa: BLE001 - the service must outlive a bad round (a bug: faults end
                logger.exception("farm loop")   # attempts or jobs in the loop itself), without spinning
                time.sleep(1.0)
                continue
            if not active:
                time.sleep(0.2)

    # -- the farm API -------------------------------------------------------------------------------

    def submit(self, request: JobRequest) -> JobSummary:
        """Queue a job; the same job again (an entrypoint retrying across a restart) is the one queued.
        Its output must lie in its owner's folder of the farm's root, whoever asks."""
        if request.owner is None:
            raise InputError.single("owner", "a job for the farm service names its owner")
        request = replace(request, out=confine(request.out, request.owner, request.job_id or "render"))
        known = self.farm.job(request.job_id) if request.job_id else None
        if known is not None and known.summary.state not in ("done", "failed", "cancelled"):
            return known.summary
        summary = self.farm.submit(request)
        self.registry.put(summary.id, request)
        return summary

    def jobs(self) -> list[JobSummary]:
        return self.farm.jobs()

    def job(self, job_id: str) -> JobDetail | None:
        return self.farm.job(job_id)

    def cancel(self, job_id: str) -> bool:
        return self.farm.cancel(job_id)

    def set_priority(self, job_id: str, priority: int) -> bool:
        return self.farm.set_priority(job_id, priority)

    def pause(self, job_id: str) -> bool:
        return self.farm.pause(job_id)

    def workers(self) -> list:
        return self.farm.workers()

    def resume(self, job_id: str) -> bool:
        return self.farm.resume(job_id)

    def events(self, job_id: str, since: int = 0) -> list[JobEvent]:
        return self.farm.events(job_id, since)

    def takes(self, job_id: str, shot: str) -> list[TakeView]:
        return self.farm.takes(job_id, shot)

    def retake(self, job_id: str, shot: str, overrides: dict) -> int:
        return self.farm.retake(job_id, shot, overrides)

    def approve(self, job_id: str, shot: str, take: int) -> None:
        return self.farm.approve(job_id, shot, take)

    def lines_of(self, job_id: str, since: int = 0) -> list[str]:
        """The job's progress lines (what its entrypoint prints, so `sakuga logs` shows them)."""
        return self.lines.get(job_id, [])[since:]


def farm_service(gpus: int | None = None):
    """The cluster's farm service, started on first use (detached: it outlives the job that started it)."""
    return FarmService.options(name=NAME, namespace=NAMESPACE, lifetime="detached", get_if_exists=True).remote(gpus)
