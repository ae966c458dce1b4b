"""`ServiceFarm`: the farm API over the cluster's farm service, for code running on the cluster (a
submitted job's entrypoint, a studio on the head node). Same protocol as `EmbeddedFarm`."""
from __future__ import annotations

import logging
import time

import ray
from ray.exceptions import ActorUnavailableError, RayActorError

from farm.api.protocol import JobDetail, JobRequest, JobSummary, TakeView
from farm.job.events import JobEvent

from .service import farm_service

logger = logging.getLogger(__name__)


RESTART_WAIT_S = 120.0   # how long a call waits for a restarting service


class ServiceFarm:
    def __init__(self, service=None):
        self.service = service or farm_service()

    def _call(self, method: str, *args):
        """The service's answer; while Ray restarts it (its process died), calls fail: try again."""
        deadline = time.time() + RESTART_WAIT_S
        while True:
            try:
                return ray.get(getattr(self.service, method).remote(*args))
            except (RayActorError, ActorUnavailableError):
                if time.time() > deadline:
                    raise
                logger.warning("the farm service is restarting; trying again")
                time.sleep(2.0)

    def submit(self, request: JobRequest) -> JobSummary:
        return self._call("submit", request)

    def jobs(self) -> list[JobSummary]:
        return self._call("jobs")

    def job(self, job_id: str) -> JobDetail | None:
        return self._call("job", job_id)

    def cancel(self, job_id: str) -> bool:
        return self._call("cancel", job_id)

    def set_priority(self, job_id: str, priority: int) -> bool:
        return self._call("set_priority", job_id, priority)

    def pause(self, job_id: str) -> bool:
        return self._call("pause", job_id)

    def workers(self) -> list:
        return self._call("workers")

    def resume(self, job_id: str) -> bool:
        return self._call("resume", job_id)

    def events(self, job_id: str, since: int = 0) -> list[JobEvent]:
        return self._call("events", job_id, since)

    def takes(self, job_id: str, shot: str) -> list[TakeView]:
        return self._call("takes", job_id, shot)

    def retake(self, job_id: str, shot: str, overrides: dict) -> int:
        return self._call("retake", job_id, shot, overrides)

    def approve(self, job_id: str, shot: str, take: int) -> None:
        return self._call("approve", job_id, shot, take)

    def lines(self, job_id: str, since: int = 0) -> list[str]:
        return self._call("lines_of", job_id, since)
