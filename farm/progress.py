"""Live progress on stderr: one bar for the whole render (frames, with ETA) and one row per shot."""
from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from storyboard.plan import Plan


class RenderProgress:
    def __init__(self, plan: Plan, *, enabled: bool = True):
        self.plan = plan
        console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[state]:<12}"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=console, disable=not enabled, transient=False,
        )
        total = sum(s.frames for s in plan.segments)
        self.overall = self.progress.add_task(f"[bold]{plan.title[:26]}", total=total, state="")
        self.shots = {s.id: self.progress.add_task(f"  {s.id[:26]}", total=len(s.segments), state="queued")
                      for s in plan.shots}
        self.frames = {s.id: s.frames for s in plan.segments}

    def __enter__(self) -> "RenderProgress":
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def started(self, segment_id: str, shot: str) -> None:
        self.progress.update(self.shots[shot], state="rendering")

    def finished(self, segment_id: str, shot: str, *, shot_done: bool) -> None:
        self.progress.advance(self.shots[shot])
        self.progress.advance(self.overall, self.frames[segment_id])
        self.progress.update(self.shots[shot], state="done" if shot_done else "rendering")

    def failed(self, shot: str, state: str = "failed") -> None:
        self.progress.update(self.shots[shot], state=f"[red]{state}")

    def stage(self, text: str) -> None:
        self.progress.update(self.overall, state=text)
