"""What the farm API shows of a job: its summary and detail views, and the event log it streams."""
from __future__ import annotations

import threading

from farm.job.events import JobEvent
from farm.job.job import Job
from farm.scheduling.eta import eta_of

from .protocol import AttemptView, JobDetail, JobSummary, SegmentView, ShotView, WorkerView


def state_of(job: Job, held: bool = False) -> str:
    if job.cancelling and not job.ended:
        return "cancelling"
    return "paused" if held and not job.ended else job.status


def summary(job: Job, gpus: int, held: bool = False) -> JobSummary:
    ended = job.ended
    return JobSummary(job.id, job.plan.title, state_of(job, held), job.priority, str(job.out), len(job.items),
                      len(job.done), len(job.dead), job.reused + job.kept, eta_of(job, gpus),
                      job.failed_shots if ended else [], str(job.episode) if job.episode else None,
                      job.config.get("owner"))


def detail(job: Job, gpus: int, held: bool = False) -> JobDetail:
    attempts = job.attempt_rows()
    last = {a["segment"]: a["worker"] for a in attempts}
    return JobDetail(
        summary(job, gpus, held),
        [ShotView(s.id, s.scene, s.frames, list(s.segments)) for s in job.plan.shots],
        [SegmentView(sid, job.by_id[sid].shot, s.status, s.attempts, s.origin, s.error, last.get(sid))
         for sid, s in job.state.items()],
        [AttemptView(a["segment"], a["n"], a["worker"], a["degree"], a["status"], a["started"], a["ended"],
                     a["error"]) for a in attempts])


def worker(slot, pool) -> WorkerView:
    return WorkerView(slot.name, slot.node, slot.gpu, slot.node_id, slot.cpu, slot.busy, sorted(slot.resident),
                      sorted(j for j in slot.failures if not pool.usable(slot, j)))


class EventLog:
    """A job observer keeping each job's events, for `FarmAPI.events(job, since)`. A long-lived service
    keeps at most `keep` per job (the first ones go; cursors stay valid: they count from the job's start)."""

    def __init__(self, keep: int = 20_000) -> None:
        self.lock = threading.Lock()
        self.keep = keep
        self.by_job: dict[str, list[JobEvent]] = {}
        self.dropped: dict[str, int] = {}

    def __call__(self, job: Job, event: JobEvent) -> None:
        with self.lock:
            events = self.by_job.setdefault(job.id, [])
            events.append(event)
            if len(events) > self.keep:
                cut = len(events) - self.keep
                del events[:cut]
                self.dropped[job.id] = self.dropped.get(job.id, 0) + cut

    def since(self, job_id: str, n: int = 0) -> list[JobEvent]:
        with self.lock:
            first = self.dropped.get(job_id, 0)
            return list(self.by_job.get(job_id, [])[max(n - first, 0):])
