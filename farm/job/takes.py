"""A job's takes as its ledger records them (`storyboard/takes.py` says what a take is): read back for
planning, so takes and approvals survive resume, and the state of each take's segments."""
from __future__ import annotations

from storyboard.takes import ShotTakes

from .folder import JobFolder
from .ledger import Ledger, TakeRow


def shot_takes(rows: list[TakeRow]) -> dict[str, ShotTakes]:
    """Ledger rows as the planner takes them: per shot, its takes' overrides and the approved one."""
    by_shot: dict[str, list[TakeRow]] = {}
    for row in rows:
        by_shot.setdefault(row["shot"], []).append(row)
    return {shot: ShotTakes({r["take"]: r["overrides"] for r in rs},
                            next((r["take"] for r in rs if r["approved"]), 1))
            for shot, rs in by_shot.items()}


def recorded_takes(folder: JobFolder, job_id: str | None = None) -> dict[str, ShotTakes]:
    """The takes the folder's ledger records for `job_id` (default: its last job); none without a ledger."""
    if not folder.has_ledger():
        return {}
    with Ledger(folder.ledger) as ledger:
        if job_id is None:
            jobs = ledger.jobs()
            if not jobs:
                return {}
            job_id = jobs[-1]["id"]
        return shot_takes(ledger.takes(job_id))


def take_status(statuses: list[str]) -> str:
    """A take's state from its segments': done when all are published, failed when one was given up."""
    if statuses and all(s == "published" for s in statuses):
        return "done"
    if any(s in ("failed", "skipped") for s in statuses):
        return "failed"
    return "running" if "running" in statuses else "pending"
