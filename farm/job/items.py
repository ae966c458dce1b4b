"""A job's items — its segments and its delivery stages — and the few ways the two kinds differ:
which files one publishes, what its sidecar says, what it runs on, how wide, how long before it is
taken as hung. Everything else (states, attempts, the ledger, the cache) treats them alike."""
from __future__ import annotations

import io
from dataclasses import asdict
from pathlib import Path

import numpy as np

from farm.stages.stage import Stage
from storyboard.plan import Plan, Segment

from .cache import file_sha256
from .folder import JobFolder
from .results import Published

Item = Segment | Stage


def files(folder: JobFolder, item: Item) -> dict[str, Path]:
    """An item's published files by kind: a segment's clip and last frame, a stage's clip."""
    if isinstance(item, Stage):
        return {".mp4": folder.stage(item.id, ".mp4")}
    return {ext: folder.segment(item.id, ext) for ext in (".mp4", ".png")}


def intact(folder: JobFolder, item: Item, row: dict) -> bool:
    """Whether a published item's files still match the sha256 its ledger row recorded."""
    record = row.get("record") or {}
    paths = files(folder, item)
    try:
        return (file_sha256(paths[".mp4"]) == row.get("file_sha256")
                and (".png" not in paths or file_sha256(paths[".png"]) == record.get("png_sha256")))
    except OSError:
        return False


def sidecar_path(folder: JobFolder, item: Item) -> Path:
    return folder.stage(item.id, ".json") if isinstance(item, Stage) else folder.segment(item.id, ".json")


def sidecar(item: Item, published: Published, attempts: int) -> dict:
    """What the item's JSON sidecar says: the item, its attempts, what was recorded."""
    if isinstance(item, Stage):
        return {**item.to_json(), "attempts": attempts, **asdict(published)}
    return {"segment": item.id, "shot": item.shot, "hash": item.hash, "frames": item.frames, "seed": item.seed,
            "model": item.model, "attempts": attempts, **asdict(published)}


def in_cut(plan: Plan, item: Item) -> bool:
    """Whether the cut uses the item: a stage (made from the cut's shots), or a segment of an approved take."""
    return isinstance(item, Stage) or any(item.id in s.segments for s in plan.shots if s.id == item.shot)


def resource(item: Item) -> str:
    """What an item runs on: a GPU worker (segments, upscaling with a net) or a CPU lane."""
    return item.resource if isinstance(item, Stage) else "gpu"


def widths(plan: Plan, item: Item) -> tuple[int, ...]:
    """The gang widths an item may run at: its preset's for a segment; stages run alone."""
    return (1,) if isinstance(item, Stage) else plan.presets[item.model].degrees


def timeout(plan: Plan, item: Item, estimate: float, loading: bool) -> float:
    """Seconds after which an attempt is taken as hung."""
    if isinstance(item, Stage):
        return item.timeout_s
    return plan.presets[item.model].cost.timeout(estimate, loading=loading)


def npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()
