"""The render driver: runs a plan on Ray worker actors and delivers the cut.

Segments are dispatched as their dependencies finish, longest remaining chain first, to one worker
actor per GPU. Each finished segment is published atomically to DIR/segments/ before anything
depends on it; then shots and the episode are stitched and the manifest written.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import ray
from ray.exceptions import RayActorError, RayTaskError

from engine.bank import CharacterBank
from storyboard.errors import InputError, Problem
from storyboard.plan import ImageRef, Plan, Segment
from storyboard.presets import Preset

from .manifest import write_manifest
from .progress import RenderProgress
from .publish import atomic_path, publish_bytes, publish_json
from .stitch import stitch_episode, stitch_shot
from .worker import SegmentWorker

MAX_ATTEMPTS = 3


@dataclass
class RenderOutcome:
    out: Path
    episode: Path | None
    results: dict[str, dict] = field(default_factory=dict)
    failed_shots: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed_shots


def connect(gpus: int, address: str | None) -> None:
    """Join `address`, or start a local Ray with `gpus` logical GPUs; check there are enough GPUs."""
    if not ray.is_initialized():
        if address:
            ray.init(address=address, logging_level="WARNING", log_to_driver=False)
        else:
            ray.init(num_cpus=max(os.cpu_count() or 1, 1), num_gpus=gpus, include_dashboard=False,
                     logging_level="WARNING", log_to_driver=False)
    have = int(ray.cluster_resources().get("GPU", 0))
    if have < gpus:
        raise InputError.single("--gpus", f"asked for {gpus} GPUs but the Ray cluster has {have}")


def bottom_levels(plan: Plan) -> dict[str, float]:
    """Estimated seconds from each segment's start to the end of the longest chain through it."""
    children: dict[str, list[str]] = {s.id: [] for s in plan.segments}
    for s in plan.segments:
        for d in s.deps:
            children[d].append(s.id)
    level: dict[str, float] = {}
    for s in reversed(plan.segments):
        level[s.id] = s.runtime(1) + max((level[c] for c in children[s.id]), default=0.0)
    return level


class Driver:
    def __init__(self, plan: Plan, preset: Preset, out: Path, gpus: int, *, show_progress: bool = True,
                 offload: bool = False, on_published: Callable[[str], None] | None = None):
        self.plan, self.out, self.gpus = plan, out, gpus
        self.presets = {preset.name: preset, **plan.presets}
        self.show_progress = show_progress
        self.offload = offload
        self.on_published = on_published
        self.segments_dir = out / "segments"
        self.results: dict[str, dict] = {}
        self.last_frames: dict[str, bytes] = {}
        self.asset_bytes: dict[str, bytes] = {}
        self.banks: dict[str, ray.ObjectRef] = {}     # preset name → its character bank in the object store
        # logical GPUs on a CPU-only machine share its cores instead of each taking them all
        self.threads = max(1, (os.cpu_count() or 1) // gpus)

    def worker(self, name: str):
        return SegmentWorker.options(num_gpus=1).remote(name, offload=self.offload, threads=self.threads)

    def asset(self, ref: str) -> bytes:
        if ref not in self.asset_bytes:
            self.asset_bytes[ref] = Path(self.plan.assets[ref]).read_bytes()
        return self.asset_bytes[ref]

    def images_for(self, seg: Segment) -> dict[ImageRef, bytes]:
        refs = [c.image for c in seg.conditions] + [r for ch in seg.characters for r in ch.refs]
        images = {}
        for ref in refs:
            images[ref] = self.last_frames[ref.ref] if ref.kind == "segment" else self.asset(ref.ref)
        return images

    def build_banks(self, worker) -> None:
        """Encode every character's pictures once per model encoder into DIR/characters.parquet
        (rows already there are reused), and share each preset's bank with all workers."""
        path = self.out / "characters.parquet"
        bank = read_bank(path)
        for name, preset in self.presets.items():
            cast = {(ch.id, r.sha256): r for s in self.plan.segments if s.model == name
                    for ch in s.characters for r in ch.refs}
            if not cast:
                continue
            wanted = [(cid, sha, self.asset(ref.ref)) for (cid, sha), ref in sorted(cast.items())]
            try:
                encoder, new = ray.get(worker.bank.remote(preset, wanted, list(bank.rows)))
            except (RayActorError, RayTaskError):
                continue   # the model does not load: its segments fail, retry and are reported as usual
            if encoder is None:
                continue
            bank.add(new.rows.values())
            self.banks[name] = ray.put(bank.for_encoder(encoder))
        if len(bank):
            with atomic_path(path) as tmp:
                pq.write_table(bank.to_table(), tmp)

    def run(self) -> RenderOutcome:
        plan = self.plan
        self.segments_dir.mkdir(parents=True, exist_ok=True)
        publish_json(self.out / "plan.json", plan.to_json())
        level = bottom_levels(plan)
        waiting = {s.id: s for s in plan.segments}
        done: set[str] = set()
        dead: set[str] = set()          # failed, or downstream of a failure
        idle = [self.worker(f"gpu-{i}") for i in range(self.gpus)]
        self.build_banks(idle[0])
        running: dict[ray.ObjectRef, tuple[Segment, object]] = {}
        remaining_in_shot = {s.id: len(s.segments) for s in plan.shots}

        with RenderProgress(plan, enabled=self.show_progress) as progress:
            while waiting or running:
                ready = sorted((s for s in waiting.values() if all(d in done for d in s.deps)),
                               key=lambda s: -level[s.id])
                while ready and idle:
                    seg = ready.pop(0)
                    del waiting[seg.id]
                    attempt = self.results.setdefault(seg.id, {"attempts": 0})
                    try:
                        images = self.images_for(seg)
                    except OSError as e:  # an input vanished since planning: no attempt can succeed
                        attempt.update(status="failed", error=f"cannot read input: {e}")
                        dead.add(seg.id)
                        progress.failed(seg.shot)
                        continue
                    attempt["attempts"] += 1
                    worker = idle.pop()
                    ref = worker.render.remote(self.presets[seg.model], seg, images, self.banks.get(seg.model))
                    running[ref] = (seg, worker)
                    progress.started(seg.id, seg.shot)
                if not running:
                    break  # nothing can run: everything left depends on a failure
                [ref], _ = ray.wait(list(running), num_returns=1)
                seg, worker = running.pop(ref)
                try:
                    result = ray.get(ref)
                except RayActorError as e:   # the worker process died: replace it and retry
                    worker = self.worker(f"gpu-r{len(self.results)}")
                    self._failed(seg, e, waiting, dead, progress)
                except RayTaskError as e:
                    self._failed(seg, e, waiting, dead, progress)
                else:
                    self._publish(seg, result)
                    done.add(seg.id)
                    remaining_in_shot[seg.shot] -= 1
                    progress.finished(seg.id, seg.shot, shot_done=remaining_in_shot[seg.shot] == 0)
                idle.append(worker)
            for sid in waiting:  # never started because something upstream failed
                dead.add(sid)
                self.results.setdefault(sid, {"attempts": 0}).update(status="skipped", error="upstream failed")

            failed_shots = [s.id for s in plan.shots if any(g in dead for g in s.segments)]
            for shot in failed_shots:
                progress.failed(shot)
            progress.stage("stitching")
            episode = self._deliver(failed_shots)
            write_manifest(self.out / "manifest.parquet", plan, self.results)
            progress.stage("delivered")
        return RenderOutcome(self.out, episode, self.results, failed_shots)

    def _failed(self, seg: Segment, error: Exception, waiting: dict, dead: set, progress) -> None:
        r = self.results[seg.id]
        r["error"] = str(error).strip().splitlines()[-1][:500] if str(error).strip() else type(error).__name__
        if r["attempts"] < MAX_ATTEMPTS:
            waiting[seg.id] = seg
            return
        r["status"] = "failed"
        dead.add(seg.id)
        progress.failed(seg.shot)

    def _publish(self, seg: Segment, result: dict) -> None:
        def path(ext: str) -> Path:  # not with_suffix: segment ids contain dots
            return self.segments_dir / f"{seg.id}{ext}"

        publish_bytes(path(".mp4"), result["mp4"])
        publish_bytes(path(".png"), result["last_png"])
        self.last_frames[seg.id] = result["last_png"]
        record = {k: result[k] for k in ("metrics", "render_s", "encode_s", "started", "worker", "node")}
        record.update(status="done", error=None)
        self.results[seg.id].update(record)
        publish_json(path(".json"), {
            "segment": seg.id, "shot": seg.shot, "hash": seg.hash, "frames": seg.frames, "seed": seg.seed,
            "model": seg.model, "attempts": self.results[seg.id]["attempts"], **record})
        if self.on_published:
            self.on_published(seg.id)

    def _deliver(self, failed_shots: list[str]) -> Path | None:
        plan = self.plan
        shots_dir = self.out / "shots"
        shots_dir.mkdir(exist_ok=True)
        files, fades = [], []
        for shot in plan.shots:
            if shot.id in failed_shots:
                continue
            path = shots_dir / f"{shot.id}.mp4"
            stitch_shot([self.segments_dir / f"{g}.mp4" for g in shot.segments], path, plan.fps)
            files.append(path)
            fades.append(shot.crossfade_frames)
        if not files:
            return None
        # a dissolve only joins two shots that both rendered
        kept = [s for s in plan.shots if s.id not in failed_shots]
        fades = [f if i + 1 < len(kept) and _adjacent(plan, kept[i].id, kept[i + 1].id) else 0
                 for i, f in enumerate(fades)]
        episode = self.out / "episode.mp4"
        stitch_episode(files, fades, episode, plan.fps, audio=Path(plan.audio) if plan.audio else None)
        return episode


def _adjacent(plan: Plan, a: str, b: str) -> bool:
    ids = [s.id for s in plan.shots]
    return ids.index(b) == ids.index(a) + 1


def read_bank(path: Path) -> CharacterBank:
    """The character bank of an earlier run into the same folder; a damaged one is rebuilt."""
    if not path.is_file():
        return CharacterBank()
    try:
        return CharacterBank.from_table(pq.read_table(path))
    except (OSError, ValueError, pa.ArrowException):
        return CharacterBank()


def check_cluster(plan: Plan) -> None:
    """Ask a worker of the cluster whether it can load every preset of the plan (weights present)."""
    probe = SegmentWorker.options(num_gpus=0).remote("probe")
    try:
        problems = [p for pr in plan.presets.values() for p in ray.get(probe.check.remote(pr))]
    finally:
        ray.kill(probe)
    if problems:
        raise InputError([Problem(*p) for p in problems])


def render(plan: Plan, preset: Preset, out: Path, *, gpus: int = 1, address: str | None = None,
           show_progress: bool = True, offload: bool = False) -> RenderOutcome:
    connect(gpus, address)
    if address:
        check_cluster(plan)   # the workers' machines must have the weights, not this one
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    outcome = Driver(plan, preset, out, gpus, show_progress=show_progress, offload=offload).run()
    publish_json(out / "render.json", {"wall_s": time.time() - started, "gpus": gpus,
                                       "failed_shots": outcome.failed_shots})
    return outcome
