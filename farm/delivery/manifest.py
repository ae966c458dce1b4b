"""`manifest.parquet`: one row per segment and per delivery stage — what was made, from what, where
and how well. `kind` tells them apart (segment, upscale, retime); a stage's `profile` names its
delivery, `rate` is every row's frame rate as text ("16", "24000/1001"). The deliveries' figures
(frames, rate, loudness before and after) are in the file's metadata under `sakuga.deliveries`."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from farm.job.publish import atomic_path
from storyboard.plan import Plan

SCHEMA = pa.schema([
    ("kind", pa.string()), ("profile", pa.string()), ("rate", pa.string()),
    ("segment", pa.string()), ("shot", pa.string()), ("index", pa.int32()),
    ("first_frame", pa.int32()), ("frames", pa.int32()),
    ("width", pa.int32()), ("height", pa.int32()), ("fps", pa.int32()),
    ("model", pa.string()), ("engine", pa.string()), ("seed", pa.int64()),
    ("steps", pa.int32()), ("guidance", pa.float64()), ("shift", pa.float64()),
    ("prompt", pa.string()), ("hash", pa.string()),
    ("inputs", pa.list_(pa.string())),          # sha256 of every input picture / upstream segment
    ("deps", pa.list_(pa.string())),
    ("status", pa.string()), ("attempts", pa.int32()), ("error", pa.string()),
    ("origin", pa.string()),                    # rendered, cache, or resumed (kept from an earlier run)
    ("worker", pa.string()), ("node", pa.string()),
    ("degree", pa.int32()),                     # GPUs of the gang that rendered it
    ("started", pa.timestamp("ms", tz="UTC")), ("render_s", pa.float64()), ("encode_s", pa.float64()),
    ("estimated_s", pa.float64()),
    ("metrics", pa.map_(pa.string(), pa.float64())),
])


def _recorded(r: dict, estimated_s: float) -> dict:
    """What the run recorded of an item (status, worker, timings, metrics...)."""
    return {"status": r.get("status", "pending"), "attempts": r.get("attempts", 0), "error": r.get("error"),
            "origin": r.get("origin"), "worker": r.get("worker"), "node": r.get("node"), "degree": r.get("degree"),
            "started": int(r["started"] * 1000) if r.get("started") else None,
            "render_s": r.get("render_s"), "encode_s": r.get("encode_s"), "estimated_s": estimated_s,
            "metrics": list(r.get("metrics", {}).items())}


def write_manifest(path: Path, plan: Plan, results: dict[str, dict], stages=(), deliveries: list[dict] = ()) -> None:
    """`results[item id]` holds what the run recorded; `stages` are the job's delivery stages and
    `deliveries` what each profile's `delivery.json` says."""
    rows = []
    for seg in plan.segments:
        r = results.get(seg.id, {})
        inputs = [c.image.sha256 for c in seg.conditions] + [i.sha256 for ch in seg.characters for i in ch.refs]
        rows.append({
            "kind": "segment", "profile": None, "rate": str(seg.fps),
            "segment": seg.id, "shot": seg.shot, "index": seg.index, "first_frame": seg.first_frame,
            "frames": seg.frames, "width": seg.width, "height": seg.height, "fps": seg.fps,
            "model": seg.model, "engine": seg.engine, "seed": seg.seed, "steps": seg.steps,
            "guidance": seg.guidance, "shift": seg.shift, "prompt": seg.prompt, "hash": seg.hash,
            "inputs": inputs, "deps": list(seg.deps),
            **_recorded(r, seg.runtime(r.get("degree") or 1)),
        })
    for stage in stages:
        rows.append({
            "kind": stage.kind, "profile": stage.profile, "rate": str(stage.fps), "segment": stage.id,
            "shot": stage.shot, "index": 0, "first_frame": 0, "frames": stage.frames,
            "width": stage.width, "height": stage.height, "fps": round(float(stage.fps)), "model": stage.model,
            "engine": stage.kind, "hash": stage.hash, "inputs": list(stage.inputs), "deps": list(stage.deps),
            **_recorded(results.get(stage.id, {}), stage.runtime()),
        })
    schema = SCHEMA.with_metadata({"sakuga.deliveries": json.dumps(list(deliveries))})
    table = pa.Table.from_pylist(rows, schema=schema)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
