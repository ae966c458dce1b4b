"""One render job: a plan, its output folder and its ledger.

A job knows which of its segments are published (in the ledger, with files that still match their
recorded hashes), which it can take from the segment cache, and which must be rendered. It publishes
results atomically, ledger row after the files, so a crash at any instant loses at most the segment
that was being written; a resumed job re-renders only what is not published.
"""
from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from storyboard.plan import ImageRef, Plan, Segment

from .cache import SegmentCache, bytes_sha256, file_sha256
from .ledger import Ledger
from .manifest import write_manifest
from .policy import Task
from .publish import json_bytes, publish_json, publish_many
from .report import write_report
from .stitch import ShotFiles, stitch
from .timeline import Cut, write_timeline

MAX_ATTEMPTS = 3
PRIORITIES = {"low": -10, "normal": 0, "high": 10, "urgent": 20}


def parse_priority(text: str | int) -> int:
    """A named priority (low, normal, high, urgent) or an integer; higher is more urgent."""
    if isinstance(text, int):
        return text
    if text in PRIORITIES:
        return PRIORITIES[text]
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"priority must be one of {', '.join(PRIORITIES)} or an integer, not {text!r}") from None
    if not -1000 <= value <= 1000:
        raise ValueError(f"priority {value} is outside -1000..1000")
    return value


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
        self.segments_dir = self.out / "segments"
        self.ledger: Ledger | None = None
        self.results: dict[str, dict] = {}
        self.done: set[str] = set()
        self.dead: set[str] = set()        # failed, or downstream of a failure
        self.reused = self.kept = 0
        self.notes: list[str] = []          # what delivery could not do, for the user
        self.cancelled = False
        self.delivered = False
        self.episode: Path | None = None
        self.by_id = {s.id: s for s in self.plan.segments}
        self._pngs: dict[str, bytes] = {}

    @staticmethod
    def new_id(stem: str) -> str:
        return f"{stem[:40]}-{secrets.token_hex(3)}"

    # -- opening: what is already published, what the cache has -----------------------------------

    def open(self, cache: SegmentCache | None, log: Callable[[str], None] = lambda _: None) -> None:
        self.segments_dir.mkdir(parents=True, exist_ok=True)
        publish_json(self.out / "plan.json", self.plan.to_json())
        self.ledger = Ledger(self.out / "ledger.sqlite")
        self.ledger.upsert_job(self.id, source=self.config.get("source", ""), out=str(self.out),
                               priority=self.priority, config=self.config, status="running")
        status = self.ledger.sync_segments(self.id, [
            {"id": s.id, "shot": s.shot, "hash": s.hash, "deps": list(s.deps), "frames": s.frames,
             "model": s.model, "estimate_s": s.runtime(1)} for s in self.plan.segments])
        rows = {r["id"]: r for r in self.ledger.segments(self.id)}
        for seg in self.plan.segments:
            row = rows[seg.id]
            if status[seg.id] == "published":
                if self._intact(seg, row):
                    self._mark_done(seg, row["record"], row["attempts"], "resumed")
                    self.kept += 1
                    continue
                self.ledger.set_segment_status(self.id, seg.id, "pending", "published file changed on disk")
                self.ledger.event("corrupt", f"{seg.id}: file does not match its recorded hash; re-rendering",
                                  job=self.id)
                log(f"{seg.id}: published file no longer matches its hash; re-rendering it")
            if cache is not None and self._from_cache(seg, cache):
                self.reused += 1

    def _path(self, seg_id: str, ext: str) -> Path:   # not with_suffix: segment ids contain dots
        return self.segments_dir / f"{seg_id}{ext}"

    def _intact(self, seg: Segment, row: dict) -> bool:
        record = row.get("record") or {}
        try:
            return (file_sha256(self._path(seg.id, ".mp4")) == row.get("file_sha256")
                    and file_sha256(self._path(seg.id, ".png")) == record.get("png_sha256"))
        except OSError:
            return False

    def _from_cache(self, seg: Segment, cache: SegmentCache) -> bool:
        entry = cache.link_into(seg.hash, {".mp4": self._path(seg.id, ".mp4"), ".png": self._path(seg.id, ".png")})
        if entry is None:
            return False
        record = {**entry["record"], "png_sha256": entry["sha256"][".png"], "origin": "cache"}
        self._write_record(seg, record, 0)
        self.ledger.publish(self.id, seg.id, file_sha256=entry["sha256"][".mp4"], record=record)
        self._mark_done(seg, record, 0, "cache")
        return True

    def _mark_done(self, seg: Segment, record: dict, attempts: int, origin: str) -> None:
        self.done.add(seg.id)
        self.results[seg.id] = {**record, "status": "done", "error": None, "attempts": attempts, "origin": origin}

    # -- scheduling ---------------------------------------------------------------------------------

    def task_id(self, seg_id: str) -> str:
        return f"{self.id}/{seg_id}"

    def unfinished(self) -> list[Segment]:
        return [s for s in self.plan.segments if s.id not in self.done and s.id not in self.dead]

    def task(self, seg: Segment, degrees: tuple[int, ...] = (1,)) -> Task:
        runtime = {d: seg.runtime(d) for d in degrees if d in dict(seg.runtime_s)}
        return Task(self.task_id(seg.id), runtime, tuple(self.task_id(d) for d in seg.deps), self.id,
                    self.priority, 0.0, seg.model)

    def is_ready(self, seg: Segment) -> bool:
        return all(d in self.done for d in seg.deps)

    def images_for(self, seg: Segment) -> dict[ImageRef, bytes]:
        refs = [c.image for c in seg.conditions] + [r for ch in seg.characters for r in ch.refs]
        return {ref: self.last_png(ref.ref) if ref.kind == "segment" else self.asset(ref.ref) for ref in refs}

    def asset(self, ref: str) -> bytes:
        """A picture's bytes: shipped with a submitted job, else read once from disk."""
        if self.assets is None:
            self.assets = {}
        if ref not in self.assets:
            self.assets[ref] = Path(self.plan.assets[ref]).read_bytes()
        return self.assets[ref]

    def last_png(self, seg_id: str) -> bytes:
        if seg_id not in self._pngs:
            self._pngs[seg_id] = self._path(seg_id, ".png").read_bytes()
        return self._pngs[seg_id]

    # -- results ------------------------------------------------------------------------------------

    def publish(self, seg: Segment, result: dict, attempts: int, cache: SegmentCache | None) -> None:
        self._pngs[seg.id] = result["last_png"]
        record = {k: result[k] for k in ("metrics", "render_s", "encode_s", "started", "worker", "node")}
        record.update(degree=result.get("degree", 1), png_sha256=bytes_sha256(result["last_png"]), origin="rendered")
        publish_many({self._path(seg.id, ".mp4"): result["mp4"], self._path(seg.id, ".png"): result["last_png"],
                      self._path(seg.id, ".json"): json_bytes(self._sidecar(seg, record, attempts))})
        self.ledger.publish(self.id, seg.id, file_sha256=bytes_sha256(result["mp4"]), record=record, attempt=attempts)
        if cache is not None:
            try:
                cache.put(seg.hash, {".mp4": result["mp4"], ".png": result["last_png"]}, record)
            except OSError as e:   # a full or read-only cache must not fail a rendered segment
                self.ledger.event("cache", f"{seg.id}: not cached ({e})", job=self.id)
        self._mark_done(seg, record, attempts, "rendered")

    def _write_record(self, seg: Segment, record: dict, attempts: int) -> None:
        publish_json(self._path(seg.id, ".json"), self._sidecar(seg, record, attempts))

    @staticmethod
    def _sidecar(seg: Segment, record: dict, attempts: int) -> dict:
        return {"segment": seg.id, "shot": seg.shot, "hash": seg.hash, "frames": seg.frames, "seed": seg.seed,
                "model": seg.model, "attempts": attempts, **record}

    def fail(self, seg: Segment, error: str, attempts: int, status: str = "failed") -> None:
        """Give up on a segment and everything downstream of it."""
        self.ledger.set_segment_status(self.id, seg.id, status, error)
        self.dead.add(seg.id)
        self.results[seg.id] = {"status": status, "error": error, "attempts": attempts}
        for other in self.plan.segments:
            if other.id not in self.dead and any(d in self.dead for d in other.deps):
                self.ledger.set_segment_status(self.id, other.id, "skipped", "upstream failed")
                self.dead.add(other.id)
                self.results[other.id] = {"status": "skipped", "error": "upstream failed", "attempts": 0}

    @property
    def finished(self) -> bool:
        return len(self.done) + len(self.dead) == len(self.plan.segments)

    @property
    def failed_shots(self) -> list[str]:
        return [s.id for s in self.plan.shots if any(g in self.dead for g in s.segments)]

    # -- delivery -----------------------------------------------------------------------------------

    def deliver(self) -> Path | None:
        """Stitch every complete shot and the episode, write the timeline, manifest and report; the
        ledger says how it went."""
        plan, failed = self.plan, self.failed_shots
        kept = [s for s in plan.shots if s.id not in failed]
        files = []
        for i, shot in enumerate(kept):
            # a dissolve only joins two shots that both rendered and follow each other
            adjacent = i + 1 < len(kept) and plan.shots.index(kept[i + 1]) == plan.shots.index(shot) + 1
            files.append(ShotFiles([self._path(g, ".mp4") for g in shot.segments], self.out / "shots" / f"{shot.id}.mp4",
                                   shot.crossfade_frames if adjacent else 0))
        episode = None
        if files:
            episode = self.out / "episode.mp4"
            lengths = stitch(files, episode, plan.fps, audio=Path(plan.audio) if plan.audio else None,
                             masters=self.config.get("deliver") or ())
            cuts = [Cut(shot, f.out, n, f.dissolve) for shot, f, n in zip(kept, files, lengths)]
            for note in write_timeline(self.out, plan, cuts):
                self.notes.append(note)
                self.ledger.event("timeline", note, job=self.id)
        write_manifest(self.out / "manifest.parquet", plan, self.results)
        self.ledger.set_job_status(self.id, "failed" if failed else "done",
                                   f"{len(failed)} shot(s) failed: {', '.join(failed)}" if failed else None)
        try:
            write_report(self.out)   # last: it reads the manifest and the job's final status
        except Exception as e:   # noqa: BLE001 (the cut is delivered; `sakuga report` can try again)
            note = f"{self.out / 'report.html'} not written: {type(e).__name__}: {e}"
            self.notes.append(note)
            self.ledger.event("report", note, job=self.id)
        return episode

    def close(self) -> None:
        if self.ledger is not None:
            self.ledger.close()
