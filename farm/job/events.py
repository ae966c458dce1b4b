"""A job's events: every change of its life, told to whoever observes it (progress, the farm API's
event stream, the report writer; `JobObserver` in job.py). Observers never change the job."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

KINDS = ("opened", "attempt_started", "attempt_ended", "published", "failed", "skipped", "stage", "note",
         "finished", "cancelling", "interrupted", "priority")


@dataclass(frozen=True)
class JobEvent:
    job: str
    kind: str
    segment: str | None = None
    status: str | None = None            # the new status of the segment, attempt or job
    detail: str = ""
    worker: str | None = None
    degree: int | None = None
    busy_s: float | None = None          # a published segment's render + encode seconds
    ts: float = field(default_factory=time.time)

    def to_json(self) -> dict:
        return asdict(self)
