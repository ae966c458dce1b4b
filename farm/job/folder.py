"""`JobFolder`: every path of a render's output folder, named once.

The output folder is a contract (DESIGN.md, README): the CLI, the job, delivery, the report and
`sakuga status` all find files through this class, so a name is spelled in one place only.
"""
from __future__ import annotations

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

    # delivery
    @property
    def shots(self) -> Path:
        return self.root / "shots"

    def shot(self, shot_id: str) -> Path:
        return self.shots / f"{shot_id}.mp4"

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

    def has_ledger(self) -> bool:
        return self.ledger.is_file()
