"""The farm API as one user may use it: their own jobs (every job for an admin), outputs confined to their
root, cancel and priority only on what they own. The web studio's requests go through this; operators
holding the Ray cluster's token act on the farm service directly and are its admins by construction
(Ray lets them run any code there), which docs/farm.md says."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from farm.api.protocol import FarmAPI, JobDetail, JobRequest, JobSummary, TakeView, UnknownJob
from farm.job.events import JobEvent

from .roots import confine
from .users import User


class Forbidden(Exception):
    """The user may not do this to that job (someone else's)."""


class UserFarm:
    def __init__(self, farm: FarmAPI, user: User, root: Path | None = None):
        self.farm, self.user, self.root = farm, user, root

    def _mine(self, summary: JobSummary) -> bool:
        return self.user.admin or summary.owner == self.user.name

    def _owned(self, job_id: str) -> JobDetail | None:
        """The job if this user may see it; someone else's job is as good as absent."""
        detail = self.farm.job(job_id)
        return detail if detail is not None and self._mine(detail.summary) else None

    def submit(self, request: JobRequest) -> JobSummary:
        out = confine(request.out, self.user.name, request.job_id or "render", self.root)
        return self.farm.submit(replace(request, out=out, owner=self.user.name))

    def jobs(self) -> list[JobSummary]:
        return [s for s in self.farm.jobs() if self._mine(s)]

    def job(self, job_id: str) -> JobDetail | None:
        return self._owned(job_id)

    def _act(self, job_id: str) -> bool:
        detail = self.farm.job(job_id)
        if detail is None:
            return False
        if not self._mine(detail.summary):
            raise Forbidden(f"{job_id} belongs to {detail.summary.owner or 'nobody'}: only they or an admin may "
                            "change it")
        return True

    def cancel(self, job_id: str) -> bool:
        return self._act(job_id) and self.farm.cancel(job_id)

    def set_priority(self, job_id: str, priority: int) -> bool:
        return self._act(job_id) and self.farm.set_priority(job_id, priority)

    def pause(self, job_id: str) -> bool:
        return self._act(job_id) and self.farm.pause(job_id)

    def resume(self, job_id: str) -> bool:
        return self._act(job_id) and self.farm.resume(job_id)

    def workers(self) -> list:
        """The farm's slots, for everyone signed in (what runs on them is shown from their own jobs only);
        AttributeError from a farm that does not offer them (the cluster's service, so far)."""
        return self.farm.workers()

    def events(self, job_id: str, since: int = 0) -> list[JobEvent]:
        return self.farm.events(job_id, since) if self._owned(job_id) else []

    def takes(self, job_id: str, shot: str) -> list[TakeView]:
        if self._owned(job_id) is None:
            raise UnknownJob(f"no job {job_id!r} of yours")
        return self.farm.takes(job_id, shot)

    def retake(self, job_id: str, shot: str, overrides: dict) -> int:
        if not self._act(job_id):
            raise UnknownJob(f"no job {job_id!r}")
        return self.farm.retake(job_id, shot, overrides)

    def approve(self, job_id: str, shot: str, take: int) -> None:
        if not self._act(job_id):
            raise UnknownJob(f"no job {job_id!r}")
        self.farm.approve(job_id, shot, take)
