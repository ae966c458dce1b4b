"""Every rendered take of a shot as a playable file, `takes/<shot>/<take>.mp4`, for comparing takes.

The approved take is the shot's own file (`shots/<shot>.mp4`, linked, not encoded again); any other
take is stitched from its segments, once: again only when one of its segments is newer than the file."""
from __future__ import annotations

import logging

from farm.job.job import Job
from farm.job.publish import link_or_copy

from .stitch import ShotFiles, stitch

logger = logging.getLogger(__name__)


def write_takes(job: Job) -> None:
    plan, folder, done = job.plan, job.folder, job.done
    cut = {s.id: s.segments for s in plan.shots}
    for shot, takes in plan.takes.items():
        for n, segments in takes.items():
            target = folder.take(shot, n)
            if not segments or not all(g in done for g in segments):
                continue
            sources = [folder.segment(g, ".mp4") for g in segments]
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                if segments == cut.get(shot) and folder.shot(shot).is_file():
                    link_or_copy(folder.shot(shot), target)
                elif not target.is_file() or target.stat().st_mtime < max(p.stat().st_mtime for p in sources):
                    stitch([ShotFiles(sources, target)], None, plan.fps)
            except (OSError, ValueError) as e:   # a compare file is for people: the cut stands without it
                job.note(f"{target}: not written ({e})")
