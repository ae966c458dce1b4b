"""One render job: a plan, its output folder and its ledger, and the only code that changes its state.

A job's items are its segments and, per `--deliver` profile, its shots' delivery stages (`items.py`),
handled alike. A job knows which items are published (in the ledger, with files that still match their
recorded hashes), which it can take from the segment cache, and which must be rendered. Every change
(an attempt starts or ends, an item is published or given up, the job ends) goes through one method
here: it is checked against the state machine (`states.py`), written to the ledger before anything
acts on it, and told to the job's observers (progress, the farm API's event stream, the report).
Files are published atomically, ledger row after the files, so a crash at any instant loses at most
the item that was being written; a resumed job re-renders only what is not published.
"""
from __future__ import annotations

import logging
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from farm.scheduling.policy import Task
from farm.stages.stage import Stage, delivery_plans, plan_stages
from storyboard.errors import InputError
from storyboard.plan import ImageRef, Plan, Segment

from . import items as kinds
from .cache import SegmentCache, bytes_sha256
from .checkpoints import Checkpoints
from .events import JobEvent
from .folder import JobFolder
from .ledger import AttemptRow, Ledger, LedgerWriteError
from .lock import FolderLock
from .publish import json_bytes, publish_json, publish_many, remove_stale_temps
from .results import Published, SegmentResult
from .segments import InputChanged, SegmentState
from .states import JOB, JOB_ENDS, NOT_COUNTED, SEGMENT, SETTLED

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 3


class JobObserver(Protocol):
    """Told every event of a job's life (progress, the farm API's event log, the report)."""

    def __call__(self, job: Job, event: JobEvent) -> None: ...


@dataclass
class Job:
    id: str
    plan: Plan
    out: Path
    priority: int = 0
    config: dict = field(default_factory=dict)       # how to start it again (`sakuga resume`)
    assets: dict[str, bytes] | None = None           # shipped with a submitted job; else read from disk
    submitted: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        self.folder = JobFolder(self.out)
        self.ledger: Ledger | None = None
        self.status = "queued"
        self.cancelling = False
        # the deliveries' stages, planned from the profiles the job names (checked at submission)
        self.deliveries = delivery_plans(self.plan, self.config.get("profiles") or [], self.config.get("upscaler"))
        self.stages: tuple[Stage, ...] = plan_stages(self.plan, self.deliveries)
        self.items: tuple[kinds.Item, ...] = self.plan.segments + self.stages
        self.state: dict[str, SegmentState] = {s.id: SegmentState() for s in self.items}
        self.reused = self.kept = 0
        self.notes: list[str] = []           # what delivery could not do, for the user
        self.episode: Path | None = None
        self.error: str | None = None        # why the job stopped short of delivering, if it did
        self.by_id = {s.id: s for s in self.items}
        self.observers: list[JobObserver] = []
        self.lock: FolderLock | None = None
        self._pngs: dict[str, bytes] = {}
        self.checkpoints = Checkpoints(self)

    @staticmethod
    def new_id(stem: str) -> str:
        return f"{stem[:40]}-{secrets.token_hex(3)}"

    def observe(self, observer: JobObserver) -> None:
        self.observers.append(observer)

    def _tell(self, kind: str, seg: Segment | None = None, **fields) -> None:
        event = JobEvent(self.id, kind, seg.id if seg else None, **fields)
        for observer in self.observers:
            observer(self, event)

    # -- opening: what is already published, what the cache has -----------------------------------

    def open(self, cache: SegmentCache | None, *, wait: bool = False) -> None:
        """Take the folder (one writer at a time), then learn what is published and what the cache has.
        InputError for a folder sakuga must not write into; FolderBusy while another writer holds it."""
        refusal = self.folder.refusal(Path(self.config["source"]) if self.config.get("source") else None)
        if refusal:
            raise InputError.single(self.out, refusal)
        self.lock = FolderLock(self.out).acquire(wait=wait)
        self.ledger = Ledger(self.folder.ledger)   # first: it is what makes the folder sakuga's (refusal)
        self.folder.segments.mkdir(parents=True, exist_ok=True)
        if self.stages:
            self.folder.stages.mkdir(exist_ok=True)
        for folder in (self.out, self.folder.segments, self.folder.shots, self.folder.stages):   # a crash mid-publish
            remove_stale_temps(folder)
        publish_json(self.folder.plan, {**self.plan.to_json(), "stages": [s.to_json() for s in self.stages]})
        self.status = JOB.move(self.status, "running", self.id)
        self.ledger.upsert_job(self.id, source=self.config.get("source", ""), out=str(self.out),
                               priority=self.priority, config=self.config, status="running")
        status = self.ledger.sync_segments(self.id, [
            {"id": s.id, "shot": s.shot, "hash": s.hash, "deps": list(s.deps), "frames": s.frames,
             "model": s.model, "estimate_s": s.runtime(1)} for s in self.items])
        rows = {r["id"]: r for r in self.ledger.segments(self.id)}
        for seg in self.items:
            row = rows[seg.id]
            state = self.state[seg.id]
            state.attempts = row["attempts"]
            if status[seg.id] == "published":
                if kinds.intact(self.folder, seg, row):
                    self._settle(seg, Published(**{k: v for k, v in (row["record"] or {}).items()
                                                    if k in Published.__dataclass_fields__}), "resumed")
                    self.kept += 1
                    continue
                self.ledger.set_segment_status(self.id, seg.id, "pending", "published file changed on disk")
                self.ledger.event("corrupt", f"{seg.id}: file does not match its recorded hash; re-rendering",
                                  job=self.id)
                self.note(f"{seg.id}: published file no longer matches its hash; re-rendering it")
            if cache is not None and self._from_cache(seg, cache):
                self.reused += 1
        self.checkpoints.open()
        stages = f", {len(self.stages)} stages" if self.stages else ""
        self._tell("opened", status="running", detail=f"{len(self.plan.segments)} segments{stages}, "
                                                      f"{self.reused + self.kept} reused")

    def _from_cache(self, seg: kinds.Item, cache: SegmentCache) -> bool:
        entry = cache.link_into(seg.hash, kinds.files(self.folder, seg))
        if entry is None:
            return False
        fields = {k: v for k, v in entry["record"].items() if k in Published.__dataclass_fields__}
        published = Published(**{**fields, "png_sha256": entry["sha256"].get(".png", ""), "origin": "cache"})
        publish_json(kinds.sidecar_path(self.folder, seg), kinds.sidecar(seg, published, 0))
        self.ledger.publish(self.id, seg.id, file_sha256=entry["sha256"][".mp4"], record=asdict(published))
        self.state[seg.id].attempts = 0
        self._settle(seg, published, "cache")
        return True

    def _settle(self, seg: Segment, published: Published, origin: str) -> None:
        state = self.state[seg.id]
        state.status = SEGMENT.move(state.status, "published", seg.id)
        state.published, state.origin, state.error = published, origin, None

    # -- what the scheduler sees --------------------------------------------------------------------

    def task_id(self, seg_id: str) -> str:
        return f"{self.id}/{seg_id}"

    def unfinished(self) -> list[kinds.Item]:
        return [s for s in self.items if self.state[s.id].status not in SETTLED]

    def resource(self, item: kinds.Item) -> str:
        return kinds.resource(item)

    def widths(self, item: kinds.Item) -> tuple[int, ...]:
        return kinds.widths(self.plan, item)

    def timeout(self, item: kinds.Item, estimate: float, loading: bool) -> float:
        return kinds.timeout(self.plan, item, estimate, loading)

    def stage_inputs(self, stage: Stage) -> list[bytes]:
        """The clips a stage works on, as published: the shot's segments, or the stage before it."""
        return [kinds.files(self.folder, self.by_id[d])[".mp4"].read_bytes() for d in stage.deps]

    def task(self, seg: kinds.Item, degrees: tuple[int, ...] = (1,)) -> Task:
        runtime = {d: seg.runtime(d) for d in degrees if d in dict(seg.runtime_s)}
        return Task(self.task_id(seg.id), runtime, tuple(self.task_id(d) for d in seg.deps), self.id,
                    self.priority, 0.0, seg.model, **self.checkpoints.progress(seg))

    def is_ready(self, seg: Segment) -> bool:
        return all(self.state[d].status == "published" for d in seg.deps)

    def images_for(self, seg: Segment) -> dict[ImageRef, bytes]:
        refs = [c.image for c in seg.conditions] + [r for ch in seg.characters for r in ch.refs]
        return {ref: self.last_png(ref.ref) if ref.kind == "segment" else self.picture(ref) for ref in refs}

    def picture(self, ref: ImageRef) -> bytes:
        """A storyboard picture, exactly as validated: one whose bytes changed since (swapped, or being
        edited) raises InputChanged rather than render, and be cached under the old hash, another."""
        data = self.asset(ref.ref)
        if bytes_sha256(data) != ref.sha256:
            raise InputChanged(f"{self.plan.assets.get(ref.ref, ref.ref)} changed since it was validated; "
                               "validate and render again")
        return data

    def asset(self, ref: str) -> bytes:
        """A picture's bytes: shipped with a submitted job, else read once from disk."""
        if self.assets is None:
            self.assets = {}
        if ref not in self.assets:
            self.assets[ref] = Path(self.plan.assets[ref]).read_bytes()
        return self.assets[ref]

    def last_png(self, seg_id: str) -> bytes:
        if seg_id not in self._pngs:
            self._pngs[seg_id] = self.folder.segment(seg_id, ".png").read_bytes()
        return self._pngs[seg_id]

    @property
    def done(self) -> set[str]:
        return {sid for sid, s in self.state.items() if s.status == "published"}

    @property
    def dead(self) -> set[str]:
        """Failed, or downstream of a failure."""
        return {sid for sid, s in self.state.items() if s.status in ("failed", "skipped")}

    @property
    def settled(self) -> bool:
        """Every segment published or given up: the job can be delivered."""
        return all(s.status in SETTLED for s in self.state.values())

    @property
    def ended(self) -> bool:
        return self.status in JOB_ENDS

    @property
    def failed_shots(self) -> list[str]:
        dead = {self.by_id[i].shot for i in self.dead if kinds.in_cut(self.plan, self.by_id[i])}   # not a retake's
        return [s.id for s in self.plan.shots if s.id in dead]

    def rows(self) -> dict[str, dict]:
        return {sid: s.row() for sid, s in self.state.items()}

    # -- transitions --------------------------------------------------------------------------------

    def start_attempt(self, seg: Segment, *, worker: str, node: str, degree: int, offload: bool) -> int:
        state = self.state[seg.id]
        state.status = SEGMENT.move(state.status, "running", seg.id)
        n = self.ledger.start_attempt(self.id, seg.id, worker=worker, node=node, degree=degree, offload=offload)
        state.attempts, state.tries = n, state.tries + 1
        self._tell("attempt_started", seg, status="running", worker=worker, degree=degree)
        return n

    def end_attempt(self, seg: Segment, n: int, status: str, error: str) -> bool:
        """An attempt that did not publish; True if the segment will be tried again."""
        state = self.state[seg.id]
        self.ledger.end_attempt(self.id, seg.id, n, status, error)
        state.status = SEGMENT.move(state.status, "pending", seg.id)
        state.error = error
        self._tell("attempt_ended", seg, status=status, detail=error)
        if status in NOT_COUNTED:   # not the segment's fault: it stays to be rendered, the try not counted
            state.tries -= 1
            self.checkpoints.preempted[seg.id] += status == "preempted"
            return status in ("node-lost", "preempted")
        if state.tries >= MAX_ATTEMPTS or self.cancelling:
            self.fail(seg, error)
            return False
        return True

    def publish(self, seg: kinds.Item, result: SegmentResult, n: int, *, worker: str, degree: int,
                cache: SegmentCache | None) -> None:
        """Write the item's files, then the ledger (closing attempt `n`), then the cache."""
        stage = isinstance(seg, Stage)
        if not stage:
            self._pngs[seg.id] = result.last_png
        published = Published.of(result, worker, degree, "" if stage else bytes_sha256(result.last_png))
        paths = kinds.files(self.folder, seg)
        contents = {".mp4": result.mp4, ".png": result.last_png}
        files = {path: contents[ext] for ext, path in paths.items()}
        files[kinds.sidecar_path(self.folder, seg)] = json_bytes(kinds.sidecar(seg, published, n))
        if result.latents is not None and self.config.get("keep_latents"):
            files[self.folder.segment(seg.id, ".latents.npy")] = kinds.npy(result.latents)
        publish_many(files)
        self.ledger.publish(self.id, seg.id, file_sha256=bytes_sha256(result.mp4), record=asdict(published), attempt=n)
        if cache is not None:
            try:
                cache.put(seg.hash, {ext: contents[ext] for ext in paths}, asdict(published))
            except OSError as e:   # a full or read-only cache must not fail a rendered segment
                self.ledger.event("cache", f"{seg.id}: not cached ({e})", job=self.id)
        self._settle(seg, published, "rendered")
        self.checkpoints.drop(seg)
        self._tell("published", seg, status="published", worker=worker, degree=degree,
                   busy_s=result.render_s + result.encode_s)

    def fail(self, seg: kinds.Item, error: str) -> None:
        """Give up on an item and everything downstream of it."""
        self._give_up(seg, "failed", error)
        dead = self.dead
        for other in self.items:
            if other.id not in dead and any(d in dead for d in other.deps):
                self._give_up(other, "skipped", "upstream failed")
                dead.add(other.id)

    def _give_up(self, seg: Segment, status: str, error: str) -> None:
        state = self.state[seg.id]
        state.status = SEGMENT.move(state.status, status, seg.id)
        state.error = error
        if status == "skipped":
            state.attempts = 0
        self.ledger.set_segment_status(self.id, seg.id, status, error)
        self._tell(status, seg, status=status, detail=error)

    def cancel(self) -> bool:
        """Ask the job to stop: nothing new starts; the caller ends its running attempts as cancelled."""
        if self.ended or self.cancelling:
            return False
        self.cancelling = True
        self._tell("cancelling", status="cancelling")
        return True

    def set_priority(self, priority: int) -> None:
        self.priority = priority
        if self.ledger is not None:
            self.ledger.set_priority(self.id, priority)
        self._tell("priority", detail=str(priority))

    def interrupt(self) -> None:
        """Stopped by the user: running attempts are interrupted, `sakuga resume` continues."""
        if self.ledger is None or self.ended:
            return
        self.ledger.interrupt_running(self.id)
        for state in self.state.values():
            if state.status == "running":
                state.status = SEGMENT.move(state.status, "pending")
        self._end("interrupted", "stopped by the user; `sakuga resume` continues")

    def worker_event(self, kind: str, detail: str, worker: str | None) -> None:
        """Something happened to a worker while this job ran (started, lost, a gang formed)."""
        if self.ledger is not None and not self.ended:
            self.ledger.event(kind, detail, job=self.id, worker=worker)

    def stage(self, text: str) -> None:
        self._tell("stage", detail=text)

    def note(self, text: str, kind: str = "note") -> None:
        """Something the user should read (delivery could not write a file...), kept for the end."""
        self.notes.append(text)
        if self.ledger is not None and not self.ledger.closed and kind != "note":
            try:
                self.ledger.event(kind, text, job=self.id)
            except LedgerWriteError:   # a note is for the user; a ledger that cannot take it stops nothing
                logger.warning("%s: not recorded in the ledger", text)
        logger.info("%s", text)
        self._tell("note", detail=text)

    def finish(self, episode: Path | None, error: str | None = None) -> None:
        """Delivered (or, once cancelling, given up; or delivery failed with `error`): the final status."""
        if self.cancelling:
            self.episode = None
            self._end("cancelled", None)
            return
        if error is not None:
            self.error = error
            self._end("failed", error)
            return
        failed = self.failed_shots
        self.episode = episode
        self._end("failed" if failed else "done",
                  f"{len(failed)} shot(s) failed: {', '.join(failed)}" if failed else None)

    def _end(self, status: str, detail: str | None) -> None:
        new = JOB.move(self.status, status, self.id)
        self.ledger.set_job_status(self.id, status, detail)   # first: a ledger that cannot say so stops the job
        self.status = new
        self._tell("finished" if status != "interrupted" else "interrupted", status=status, detail=detail or "")

    def abandon(self, error: str) -> None:
        """The job cannot go on (its ledger cannot be written): failed here and now, without the ledger,
        which still holds the last state it could record, so `sakuga resume` continues from there."""
        if self.ended:
            return
        self.error = error
        self.status = JOB.move(self.status, "failed", self.id)
        self.note(error)
        self._tell("finished", status="failed", detail=error)

    def attempt_rows(self) -> list[AttemptRow]:
        """Every attempt the ledger records, also once the job has ended and closed it."""
        if self.ledger is None:
            return []
        if self.ledger.closed:
            with Ledger(self.folder.ledger) as ledger:
                return ledger.attempts(self.id)
        return self.ledger.attempts(self.id)

    def close(self) -> None:
        """Let go of the folder and, once ended, of what only rendering needed (the pictures' bytes, the
        last frames): a farm service keeps finished jobs for their summaries, not their megabytes."""
        if self.ledger is not None and not self.ledger.closed:
            self.ledger.close()
        if self.lock is not None:
            self.lock.release()
        if self.ended:
            self.assets = None
            self._pngs.clear()

