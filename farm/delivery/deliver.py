"""Delivery of a settled job: every complete shot and the episode stitched from the published
segments, the timeline and the manifest; then each `--deliver` profile's cut from the shots' stages
(`deliveries.py`, into `deliver/<profile>/`). It reads what the job published and never changes the
job's state; what it could not do becomes a note for the user."""
from __future__ import annotations

import logging
from pathlib import Path

from farm.job.job import Job

from .deliveries import deliver_profile
from .manifest import write_manifest
from .stitch import ShotFiles, stitch
from .takes import write_takes
from .timeline import Cut, write_timeline

logger = logging.getLogger(__name__)


def deliver(job: Job) -> Path | None:
    """Stitch the shots that rendered and the episode; write the timeline and the manifest. The
    episode's path, or None when no shot rendered."""
    plan, folder, failed = job.plan, job.folder, set(job.failed_shots)
    kept = [s for s in plan.shots if s.id not in failed]
    files = []
    for i, shot in enumerate(kept):
        # a dissolve only joins two shots that both rendered and follow each other
        adjacent = i + 1 < len(kept) and plan.shots.index(kept[i + 1]) == plan.shots.index(shot) + 1
        files.append(ShotFiles([folder.segment(g, ".mp4") for g in shot.segments], folder.shot(shot.id),
                               shot.crossfade_frames if adjacent else 0))
    episode = None
    if files:
        episode = folder.episode
        lengths = stitch(files, episode, plan.fps, audio=Path(plan.audio) if plan.audio else None,
                         masters=job.config.get("deliver") or ())
        cuts = [Cut(shot, f.out, n, f.dissolve) for shot, f, n in zip(kept, files, lengths)]
        for note in write_timeline(folder, plan, cuts):
            job.note(note, kind="timeline")
    write_takes(job)   # after the shots: the approved take is its shot's file
    deliveries = [deliver_profile(job, d, kept) for d in job.deliveries] if kept else []
    write_manifest(folder.manifest, plan, job.rows(), job.stages, deliveries)
    return episode
