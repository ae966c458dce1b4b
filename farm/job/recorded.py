"""Reading what a render recorded in its folder's ledger: the one reader that `resume`, `status`,
`report` and a second render into the same folder use. Problems are input errors naming the file."""
from __future__ import annotations

from dataclasses import dataclass

from storyboard.errors import InputError

from .folder import JobFolder
from .ledger import AttemptRow, JobRow, Ledger, LedgerError, SegmentRow


@dataclass(frozen=True)
class Recorded:
    job: JobRow
    segments: list[SegmentRow]
    attempts: list[AttemptRow]


def last_job(folder: JobFolder) -> Recorded | None:
    """The folder's job (one output folder holds one job: the ledger's last), or None without one."""
    if not folder.has_ledger():
        return None
    try:
        with Ledger(folder.ledger) as ledger:
            jobs = ledger.jobs()
            if not jobs:
                return None
            job = jobs[-1]
            return Recorded(job, ledger.segments(job["id"]), ledger.attempts(job["id"]))
    except LedgerError as e:
        raise InputError.single(folder.ledger, str(e)) from None


def require_job(folder: JobFolder, missing: str) -> Recorded:
    """`last_job`, or an input error: `missing` says why the command needs one."""
    if not folder.has_ledger():
        raise InputError.single(folder.root, missing)
    recorded = last_job(folder)
    if recorded is None:
        raise InputError.single(folder.ledger, "the ledger records no job")
    return recorded
