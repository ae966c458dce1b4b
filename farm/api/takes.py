"""Takes through the farm API: what a shot's takes are, and the plan of a job with its takes as its
ledger records them (the storyboard planned again from where the job was started, as `sakuga resume`
does), so a new take or an approval reopens the job with that plan."""
from __future__ import annotations

from pathlib import Path

from farm.job.job import Job
from farm.job.ledger import Ledger
from farm.job.takes import take_status
from storyboard.errors import InputError
from storyboard.plan import Plan, build_plan
from storyboard.takes import ShotTakes

from .protocol import TakeView


def check_shot(job: Job, shot: str) -> None:
    if shot not in job.plan.takes:
        raise InputError.single("shot", f"job {job.id} has no shot {shot!r}")


def check_take(job: Job, shot: str, take: int, takes: dict[str, ShotTakes]) -> None:
    check_shot(job, shot)
    numbers = takes.get(shot, ShotTakes()).numbers()
    if take not in numbers:
        raise InputError.single("take", f"shot {shot!r} of job {job.id} has no take {take} "
                                        f"(its takes: {', '.join(map(str, numbers))})")


def planned(job: Job, takes: dict[str, ShotTakes]) -> Plan:
    """The job's storyboard planned again, as it was started (model, size, speed, picture roots), with `takes`."""
    from farm.job.source import load_storyboard as load

    config = job.config
    source = Path(config.get("source") or "")
    if not config.get("source") or not source.is_file():
        raise InputError.single(source, f"job {job.id}: the storyboard it was started from is gone; "
                                        "a new take plans the storyboard again")
    loaded, _ = load(source, config.get("engine"), [Path(r) for r in config.get("asset_roots") or []],
                     size=config.get("size"), speed=config.get("speed"))
    return build_plan(loaded, takes)


def take_views(job: Job, shot: str) -> list[TakeView]:
    check_shot(job, shot)
    with Ledger(job.folder.ledger) as ledger:
        rows = {r["take"]: r for r in ledger.takes(job.id) if r["shot"] == shot}
    approved = next((n for n, r in rows.items() if r["approved"]), 1)
    views = []
    planned_takes = job.plan.takes[shot]
    for n in sorted(set(planned_takes) | set(rows)):   # a take of a running job renders once it has ended
        row, segments = rows.get(n), planned_takes.get(n, ())
        status = take_status([job.state[g].status for g in segments if g in job.state])
        mp4 = job.folder.take(shot, n)
        files = {"mp4": mp4.relative_to(job.out).as_posix()} if status == "done" and mp4.is_file() else {}
        views.append(TakeView(n, row["overrides"] if row else {}, n == approved, status, list(segments),
                              row["created"] if row else job.submitted, files))
    return views
