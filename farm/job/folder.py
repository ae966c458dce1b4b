"""`JobFolder`: every path of a render's output folder, named once.

The output folder is a contract (DESIGN.md, README): the CLI, the job, delivery, the report and
`sakuga status` all find files through this class, so a name is spelled in one place only.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class JobFolder:
    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    # the job's state and its inputs as rendered
    @property
    def ledger(self) -> Path:
        return self.root / "ledger.sqlite"

    @property
    def plan(self) -> Path:
        return self.root / "plan.json"

    @property
    def characters(self) -> Path:
        return self.root / "characters.parquet"

    @property
    def render_summary(self) -> Path:
        return self.root / "render.json"

    # rendered segments
    @property
    def segments(self) -> Path:
        return self.root / "segments"

    def segment(self, seg_id: str, ext: str) -> Path:
        """`segments/<seg><ext>`; not with_suffix: segment ids contain dots."""
        return self.segments / f"{seg_id}{ext}"

    # step checkpoints of segments still rendering (farm/job/checkpoints.py)
    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    def checkpoint(self, seg_id: str) -> Path:
        """`checkpoints/<seg>.step`: the segment's last denoising state (engine.steps.StepState)."""
        return self.checkpoints / f"{seg_id}.step"

    # delivery stages (upscale, retime: farm/stages/), one clip per shot and profile
    @property
    def stages(self) -> Path:
        return self.root / "stages"

    def stage(self, stage_id: str, ext: str) -> Path:
        """`stages/<shot>@<profile>.<kind><ext>`."""
        return self.stages / f"{stage_id}{ext}"

    def delivery(self, profile: str) -> Path:
        """`deliver/<profile>/`: one delivery profile's episode, masters, shots and timeline."""
        return self.root / "deliver" / profile

    # delivery
    @property
    def shots(self) -> Path:
        return self.root / "shots"

    def shot(self, shot_id: str) -> Path:
        return self.shots / f"{shot_id}.mp4"

    def take(self, shot_id: str, take: int) -> Path:
        """`takes/<shot>/<take>.mp4`: one take of a shot, for comparing takes."""
        return self.root / "takes" / shot_id / f"{take}.mp4"

    @property
    def episode(self) -> Path:
        return self.root / "episode.mp4"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.parquet"

    @property
    def timeline(self) -> Path:
        return self.root / "timeline.otio"

    @property
    def edl(self) -> Path:
        return self.root / "timeline.edl"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    @property
    def contact_sheet(self) -> Path:
        return self.root / "contact_sheet.png"

    @property
    def lock(self) -> Path:
        return self.root / ".sakuga.lock"

    def has_ledger(self) -> bool:
        return self.ledger.is_file()

    def refusal(self, source: Path | None = None) -> str | None:
        """Why sakuga must not render here, or None: not a folder; the input's own folder; a folder
        holding files sakuga did not write (a sakuga output folder, with its ledger, is fine)."""
        root = self.root
        if root.exists() and not root.is_dir():
            return "--out must be a folder"
        existing = next(p for p in (root, *root.parents) if p.exists())
        if not existing.is_dir():
            return f"--out cannot be made: {existing} is a file, not a folder"
        if not os.access(existing, os.W_OK | os.X_OK):
            return f"--out cannot be written: no permission in {existing}"
        if source is not None and root.exists() and root.resolve() == Path(source).resolve().parent:
            return "--out is the storyboard's own folder: renders go into a folder of their own"
        if not root.is_dir() or self.has_ledger():
            return None
        # without a ledger nothing here is sakuga's but the lock (a job writes its ledger first of all),
        # however its names look: a `report.html` of the user's own is not ours to replace
        foreign = sorted(p.name for p in root.iterdir() if p.name != self.lock.name and not p.name.startswith(".tmp-"))
        if foreign:
            return (f"this folder holds files sakuga did not write ({', '.join(foreign[:3])}"
                    f"{', ...' if len(foreign) > 3 else ''}): render into a new or empty folder")
        return None
