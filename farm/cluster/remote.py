"""`ServiceFarm`: the farm API over the cluster's farm service, for code running on the cluster (a
submitted job's entrypoint, a studio on the head node). Same protocol as `EmbeddedFarm`."""
from __future__ import annotations

import ray

from farm.api.protocol import JobDetail, JobRequest, JobSummary
from farm.job.events import JobEvent

from .service import farm_service


class ServiceFarm:
    def __init__(self, service=None):
        self.service = service or farm_service()

    def submit(self, request: JobRequest) -> JobSummary:
        return ray.get(self.service.submit.remote(request))

    def jobs(self) -> list[JobSummary]:
        return ray.get(self.service.jobs.remote())

    def job(self, job_id: str) -> JobDetail | None:
        return ray.get(self.service.job.remote(job_id))

    def cancel(self, job_id: str) -> bool:
        return ray.get(self.service.cancel.remote(job_id))

    def set_priority(self, job_id: str, priority: int) -> bool:
        return ray.get(self.service.set_priority.remote(job_id, priority))

    def events(self, job_id: str, since: int = 0) -> list[JobEvent]:
        return ray.get(self.service.events.remote(job_id, since))

    def lines(self, job_id: str, since: int = 0) -> list[str]:
        return ray.get(self.service.lines_of.remote(job_id, since))
