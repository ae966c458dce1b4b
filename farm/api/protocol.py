"""The farm API: the one surface that every front end calls — the CLI, the cluster entrypoint, and
the web studio to come. Submit a job, list jobs, look at one job (its shots, segments and attempts),
cancel it, change its priority, read its stream of events, and re-render a shot as a new take and
approve the take the cut uses.

Two implementations stand behind `FarmAPI`: `EmbeddedFarm` (the loop in this process: a local Ray
by default, or a cluster joined as a driver) and `ServiceFarm` (the cluster's long-lived farm service,
`farm/cluster/`). Everything that crosses it is a plain dataclass, so it can cross Ray and HTTP too.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from farm.job.events import JobEvent
from storyboard.plan import Plan


@dataclass(frozen=True)
class JobRequest:
    plan: Plan
    out: Path
    priority: int = 0
    config: dict = field(default_factory=dict)   # how to start it again (source, model, deliver...)
    assets: dict[str, bytes] | None = None        # the pictures' bytes, for a farm that cannot read them
    job_id: str | None = None                     # default: a new id from the plan's title
    wait: bool = False                            # for the output folder's other writer to finish
    owner: str | None = None                      # the user it belongs to (None: the farm's own user)


@dataclass(frozen=True)
class JobSummary:
    id: str
    title: str
    state: str              # queued, running, cancelling, done, failed, interrupted, cancelled
    priority: int
    out: str
    segments: int                # its items: segments, and delivery stages when it has profiles
    done: int
    failed: int
    reused: int
    eta_s: float
    failed_shots: list[str]
    episode: str | None
    owner: str | None = None

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SegmentView:
    id: str
    shot: str
    status: str
    attempts: int
    origin: str | None
    error: str | None
    worker: str | None


@dataclass(frozen=True)
class ShotView:
    id: str
    scene: str
    frames: int
    segments: list[str]


@dataclass(frozen=True)
class AttemptView:
    segment: str
    n: int
    worker: str
    degree: int
    status: str
    started: float
    ended: float | None
    error: str | None


@dataclass(frozen=True)
class WorkerView:
    name: str
    node: int
    gpu: int
    node_id: str
    cpu: bool
    busy: bool
    resident: list[str]         # the presets whose weights it holds
    avoided: list[str]          # the jobs that no longer send it work (it failed theirs too often)


@dataclass(frozen=True)
class JobDetail:
    summary: JobSummary
    shots: list[ShotView]
    segments: list[SegmentView]
    attempts: list[AttemptView]

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TakeView:
    """One take of a shot (`storyboard/takes.py`): take 1 is the storyboard's."""

    take: int
    overrides: dict
    approved: bool
    status: str             # pending, running, done, failed
    segments: list[str]
    created: float
    files: dict             # relative paths in the job's folder: {"mp4": "takes/<shot>/<take>.mp4"} once rendered

    def to_json(self) -> dict:
        return asdict(self)


class UnknownJob(LookupError):
    """No job of that id on this farm."""


class FarmAPI(Protocol):
    def submit(self, request: JobRequest) -> JobSummary: ...
    def jobs(self) -> list[JobSummary]: ...
    def job(self, job_id: str) -> JobDetail | None: ...
    def cancel(self, job_id: str) -> bool: ...
    def set_priority(self, job_id: str, priority: int) -> bool: ...
    def pause(self, job_id: str) -> bool: ...      # nothing new of the job starts; running work finishes
    def resume(self, job_id: str) -> bool: ...
    def events(self, job_id: str, since: int = 0) -> list[JobEvent]: ...
    def takes(self, job_id: str, shot: str) -> list[TakeView]: ...
    def retake(self, job_id: str, shot: str, overrides: dict) -> int: ...
    def approve(self, job_id: str, shot: str, take: int) -> None: ...
