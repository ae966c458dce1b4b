"""Step checkpoints: a rendering segment's denoising state, kept so that a lost or preempted attempt
costs only the steps since the last one.

The worker's step control (farm/workers/control.py) takes one after every `every_steps` steps or
`every_s` seconds of its preset's `options.checkpoint` (none for a segment the cost model expects to
take under `min_segment_s`: storyboard/checkpoints.py) and whenever it is asked to stop, and ships it to the driver as a `Checkpointed`. The job publishes the
bytes atomically as `OUT/checkpoints/<segment>.step`, then records step, content key and sha256 in the
ledger. The segment's next attempt — a retry on a fresh worker, a resume at another gang width (the
latents do not depend on it), `sakuga resume` — is handed those bytes and starts from that step.

A checkpoint is only ever handed to the content it was taken for: one whose key is not the segment's
content hash any more (its prompt, picture, seed... changed since) or whose file no longer matches its
sha256 is removed instead. A published segment's checkpoint is removed once the segment is.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Protocol

from farm.stages.stage import Stage
from storyboard.checkpoints import checkpoint_policy
from storyboard.plan import Plan, Segment
from storyboard.presets import Preset

from .cache import bytes_sha256
from .folder import JobFolder
from .ledger import Ledger
from .publish import TEMP_PREFIX, publish_bytes, remove_stale_temps
from .results import Checkpointed

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepOrder:
    """What a worker is told about a segment's steps: when to checkpoint, and where to start from."""
    key: str                          # the content key checkpoints are taken for (the segment's hash)
    every_steps: int | None = None    # checkpoint after this many steps...
    every_s: float | None = None      # ...or this many seconds, whichever comes first (None: never)
    resume: object = None             # the last checkpoint's bytes, or a shared copy of them (Pool.share)
    resume_step: int = 0              # the step that checkpoint was taken at (0: from the start)


def step_order(preset: Preset, seg: Segment, estimate_s: float, resume: bytes | None = None,
               resume_step: int = 0) -> StepOrder:
    """The preset's checkpoint policy for this segment (`options.checkpoint`, storyboard/checkpoints.py):
    none for a segment the cost model expects to be cheap. Every segment can still be stopped (and is
    checkpointed where it stops)."""
    policy = checkpoint_policy(preset, estimate_s)
    every_steps, every_s = policy if policy is not None else (None, None)
    return StepOrder(seg.hash, every_steps, every_s, resume, resume_step if resume is not None else 0)


class Owner(Protocol):
    """What of its job the checkpoints use (`farm.job.job.Job`, which holds them)."""
    id: str
    plan: Plan
    folder: JobFolder
    ledger: Ledger | None
    by_id: dict
    state: dict

    def note(self, text: str, kind: str = "note") -> None: ...


class Checkpoints:
    """One job's checkpoints: the files under `checkpoints/` and the ledger's rows for them."""

    def __init__(self, job: Owner):
        self.job = job
        self.rows: dict[str, dict] = {}      # segment id → its ledger row (CheckpointRow)
        self.preempted: Counter[str] = Counter()   # segment id → attempts stopped for urgent work, this run

    @property
    def folder(self):
        return self.job.folder.checkpoints

    def open(self) -> None:
        """Keep what a segment still to render can resume from; remove the rest (a changed segment's,
        a published one's, files with no row, temporaries of a crash mid-publish)."""
        if self.folder.is_dir():
            remove_stale_temps(self.folder)
        self.rows = {}
        for row in self.job.ledger.checkpoints(self.job.id):
            seg = self.job.by_id.get(row["segment"])
            if seg is None or row["key"] != seg.hash or self.job.state[seg.id].status == "published":
                why = "published" if seg is not None and row["key"] == seg.hash else "its content changed"
                logger.info("%s: checkpoint of %s removed (%s)", self.job.id, row["segment"], why)
                self._remove(row["segment"])
            else:
                self.rows[seg.id] = row
        if self.folder.is_dir():
            for path in self.folder.iterdir():
                if path.suffix == ".step" and path.name[:-5] not in self.rows and not path.name.startswith(TEMP_PREFIX):
                    path.unlink(missing_ok=True)

    def keep(self, seg: Segment, message: Checkpointed) -> bool:
        """Publish a checkpoint a worker shipped (file, then ledger row); False (and nothing written)
        when it is not for this segment's content or not a step the segment has."""
        if message.key != seg.hash or message.steps != seg.steps or not 0 < message.step < message.steps:
            logger.warning("%s: a checkpoint of %s ignored: it is for other content (key %s..., step %d of %d)",
                           self.job.id, seg.id, message.key[:12], message.step, message.steps)
            return False
        path = self.job.folder.checkpoint(seg.id)
        publish_bytes(path, message.blob)
        sha = bytes_sha256(message.blob)
        self.job.ledger.save_checkpoint(self.job.id, seg.id, step=message.step, steps=message.steps,
                                        key=message.key, sha256=sha, size=len(message.blob))
        self.rows[seg.id] = {"segment": seg.id, "step": message.step, "steps": message.steps, "key": message.key,
                             "sha256": sha, "bytes": len(message.blob)}
        return True

    def step(self, seg: Segment) -> int:
        """The steps of `seg` already checkpointed for its current content (0: none)."""
        row = self.rows.get(seg.id)
        return row["step"] if row and row["key"] == seg.hash and row["steps"] == seg.steps else 0

    def progress(self, seg: Segment | Stage) -> dict:
        """What the policy's `Task` says of an item's steps: how many, how many checkpointed, what a
        restart from a checkpoint costs (the cost model's per-attempt overhead: the conditions encoded
        again), how often it was preempted. A stage has no steps."""
        if isinstance(seg, Stage):
            return {}
        restart = self.job.plan.presets[seg.model].cost.overhead_s
        return {"steps": seg.steps, "done": self.step(seg), "restart_s": restart, "preempted": self.preempted[seg.id]}

    def resume(self, seg: Segment) -> tuple[bytes | None, int]:
        """The last checkpoint's bytes and step, checked against the recorded sha256; (None, 0) when
        there is none, or it is damaged or gone (then it is removed: the segment starts over)."""
        step = self.step(seg)
        if not step:
            return None, 0
        try:
            data = self.job.folder.checkpoint(seg.id).read_bytes()
        except OSError as e:
            data, why = None, str(e)
        else:
            why = "" if bytes_sha256(data) == self.rows[seg.id]["sha256"] else "it does not match its recorded sha256"
        if why:
            self.job.note(f"{seg.id}: checkpoint at step {step} not used ({why}); rendering it from the start")
            self.drop(seg)
            return None, 0
        logger.info("%s: %s resumes from its checkpoint at step %d of %d", self.job.id, seg.id, step, seg.steps)
        self.job.ledger.event("resumed", f"{seg.id}: from the checkpoint at step {step} of {seg.steps}", job=self.job.id)
        return data, step

    def drop(self, seg: Segment) -> None:
        """The segment needs its checkpoint no more (published), or it cannot be used."""
        if seg.id in self.rows or self.job.folder.checkpoint(seg.id).exists():
            self._remove(seg.id)

    def _remove(self, seg_id: str) -> None:
        self.rows.pop(seg_id, None)
        self.job.ledger.drop_checkpoint(self.job.id, seg_id)   # first the row: a file without one is removed
        self.job.folder.checkpoint(seg_id).unlink(missing_ok=True)
