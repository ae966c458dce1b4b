"""The farm service: a long-lived named Ray actor that owns the queue and the GPU worker pool.

Jobs from several users (each submitted through Ray's Job API, whose entrypoint hands the plan and
its pictures to this actor) share the cluster by priority: the same `Farm` loop and policy as a local
render, run on a thread of the actor. Workers keep their models loaded across jobs, and the policy
prefers the GPUs that already hold a segment's model.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import ray

from storyboard.plan import Plan

from .cache import SegmentCache, default_cache_dir
from .driver import Farm
from .job import Job
from .progress import JobProgress

NAME = "sakuga-farm"
NAMESPACE = "sakuga"


@ray.remote(num_cpus=0, max_concurrency=16)
class FarmService:
    def __init__(self, gpus: int | None = None, cache: str | None = "default"):
        self.gpus = gpus or int(ray.cluster_resources().get("GPU", 0))
        self.lines: dict[str, list[str]] = {}
        self.lock = threading.RLock()
        store = None if cache is None else SegmentCache(default_cache_dir() if cache == "default" else Path(cache))
        self.farm = Farm(self.gpus, cache=store, log=lambda line: print(line, flush=True),
                         progress=lambda job: JobProgress(job, gpus=self.gpus, enabled=False,
                                                          log=self.lines.setdefault(job.id, []).append))
        threading.Thread(target=self._loop, name="farm-loop", daemon=True).start()

    def _loop(self) -> None:
        while True:
            with self.lock:
                active = any(not j.delivered for j in self.farm.jobs.values())
                if active:
                    try:
                        self.farm.step(max_wait=0.2)
                    except Exception as e:   # noqa: BLE001 - the service must outlive one bad round
                        print(f"farm loop: {type(e).__name__}: {e}", flush=True)
            if not active:
                time.sleep(0.2)

    def submit(self, job_id: str, plan: Plan, out: str, priority: int, config: dict,
               assets: dict[str, bytes]) -> dict:
        with self.lock:
            if job_id in self.farm.jobs:
                raise ValueError(f"job {job_id} is already queued")
            job = Job(job_id, plan, Path(out).expanduser(), priority, config, assets)
            self.farm.add(job)
            return self._state(job)

    def status(self, job_id: str, since: int = 0) -> dict | None:
        job = self.farm.jobs.get(job_id)
        if job is None:
            return None
        return {**self._state(job), "lines": self.lines.get(job_id, [])[since:]}

    def jobs(self) -> list[dict]:
        return [self._state(j) for j in self.farm.jobs.values()]

    def cancel(self, job_id: str) -> bool:
        with self.lock:
            return self.farm.cancel(job_id)

    def _state(self, job: Job) -> dict:
        progress = self.farm.progress.get(job.id)
        if job.delivered:
            state = "cancelled" if job.cancelled else ("failed" if job.failed_shots else "done")
        else:
            state = "cancelling" if job.cancelled else "running"
        return {"job": job.id, "state": state, "priority": job.priority, "out": str(job.out),
                "segments": len(job.plan.segments), "done": len(job.done), "failed": len(job.dead),
                "reused": job.reused + job.kept, "eta_s": progress.eta() if progress and not job.delivered else 0.0,
                "failed_shots": job.failed_shots if job.delivered else [],
                "episode": str(job.episode) if job.episode else None}


def farm_service(gpus: int | None = None):
    """The cluster's farm service, started on first use (detached: it outlives the job that started it)."""
    return FarmService.options(name=NAME, namespace=NAMESPACE, lifetime="detached", get_if_exists=True).remote(gpus)
