"""Live progress of a job: one bar for the whole job (frames, ETA from the cost model) and one row
per shot, on a terminal; or one line per change, for logs (a submitted job's `sakuga logs`). It is an
observer of the job's events: it reads the job, never changes it."""
from __future__ import annotations

from collections.abc import Callable

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from farm.job.events import JobEvent
from farm.scheduling.eta import clock, eta_of
from storyboard.plan import Segment


class JobProgress:
    def __init__(self, job, *, gpus: int = 1, enabled: bool = True, log: Callable[[str], None] | None = None):
        self.job, self.gpus, self.log = job, gpus, log
        plan = job.plan
        self.progress = Progress(
            TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[state]:<26}"), TimeElapsedColumn(), TextColumn("{task.fields[eta]}"),
            console=Console(stderr=True), disable=not enabled, transient=False)
        self.overall = self.progress.add_task(f"[bold]{plan.title[:26]}", total=sum(s.frames for s in job.items),
                                              state="", eta="")
        # a shot's work: its segments, then its delivery stages (upscale, retime) if any
        self.segments_of = {s.id: [i.id for i in job.items if i.shot == s.id] for s in plan.shots}
        self.shots = {s.id: self.progress.add_task(f"  {s.id[:26]}", total=len(self.segments_of[s.id]),
                                                   state="queued", eta="") for s in plan.shots}
        if enabled:
            self.progress.start()

    def _line(self, text: str) -> None:
        if self.log:
            self.log(f"[{self.job.id}] {text}")

    def eta(self) -> float:
        return eta_of(self.job, self.gpus)

    def _refresh(self, shots: list[str] | None = None) -> None:
        if self.progress.disable and not self.log:
            return
        done = sum(s.frames for s in self.job.items if s.id in self.job.done)
        self.progress.update(self.overall, completed=done, eta=f"ETA {clock(self.eta())}")
        for shot in shots if shots is not None else list(self.segments_of):
            finished = sum(g in self.job.done for g in self.segments_of[shot])
            self.progress.update(self.shots[shot], completed=finished)

    def __call__(self, job, event: JobEvent) -> None:
        """The job's observer: each event moves the bars (or writes a line)."""
        seg = job.by_id.get(event.segment) if event.segment else None
        if event.kind == "opened":
            self._opened()
        elif event.kind == "attempt_started":
            self._started(seg, event.worker or "")
        elif event.kind == "published":
            self._published(seg)
        elif event.kind == "attempt_ended":
            self._retrying(seg, event.status)
        elif event.kind == "failed":
            self._failed(seg)
        elif event.kind == "stage":
            self._stage(event.detail)
        elif event.kind in ("finished", "interrupted"):
            if event.kind == "finished" and event.status != "cancelled":
                self._stage("delivered")
            self.close()

    def _opened(self) -> None:
        for shot in self.job.plan.shots:
            if all(g in self.job.done for g in self.segments_of[shot.id]):
                self.progress.update(self.shots[shot.id], state="done")
        self._refresh()
        reused = self.job.reused + self.job.kept
        stages = f", {len(self.job.stages)} stages" if self.job.stages else ""
        self._line(f"opened: {len(self.job.plan.segments)} segments{stages}, {reused} reused, ETA {clock(self.eta())}")

    def _started(self, seg: Segment, worker: str) -> None:
        members = worker.split("+")
        where = members[0].split("-", 1)[-1] if len(members) == 1 else f"{len(members)} GPUs"
        self.progress.update(self.shots[seg.shot], state=f"{seg.id[-12:]} on {where}")
        self._line(f"{seg.id}: started on {worker}")

    def _published(self, seg: Segment) -> None:
        shot_done = all(g in self.job.done for g in self.segments_of[seg.shot])
        self.progress.update(self.shots[seg.shot], state="done" if shot_done else "rendering")
        self._refresh([seg.shot])
        count = len(self.job.done)
        if self.log:
            self._line(f"{seg.id}: done ({count}/{len(self.job.items)}, ETA {clock(self.eta())})")

    def _retrying(self, seg: Segment, why: str | None) -> None:
        if why == "preempted":   # stopped for urgent work: not a failure, it goes on from its checkpoint
            self.progress.update(self.shots[seg.shot], state="[cyan]preempted")
            self._line(f"{seg.id}: stopped for more urgent work; it goes on from its checkpoint")
            return
        self.progress.update(self.shots[seg.shot], state=f"[yellow]retry ({why})")
        self._line(f"{seg.id}: attempt failed ({why})")

    def _failed(self, seg: Segment) -> None:
        self.progress.update(self.shots[seg.shot], state="[red]failed")
        self._refresh([seg.shot])
        self._line(f"{seg.id}: failed")

    def _stage(self, text: str) -> None:
        self.progress.update(self.overall, state=text)
        self._line(text)

    def close(self) -> None:
        self.progress.stop()
