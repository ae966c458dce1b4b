"""`manifest.parquet`: one row per segment — what was rendered, from what, where and how well."""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from farm.job.publish import atomic_path
from storyboard.plan import Plan

SCHEMA = pa.schema([
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


def write_manifest(path: Path, plan: Plan, results: dict[str, dict]) -> None:
    """`results[segment id]` holds what the run recorded (status, worker, timings, metrics...)."""
    rows = []
    for seg in plan.segments:
        r = results.get(seg.id, {})
        inputs = [c.image.sha256 for c in seg.conditions] + [i.sha256 for ch in seg.characters for i in ch.refs]
        rows.append({
            "segment": seg.id, "shot": seg.shot, "index": seg.index, "first_frame": seg.first_frame,
            "frames": seg.frames, "width": seg.width, "height": seg.height, "fps": seg.fps,
            "model": seg.model, "engine": seg.engine, "seed": seg.seed, "steps": seg.steps,
            "guidance": seg.guidance, "shift": seg.shift, "prompt": seg.prompt, "hash": seg.hash,
            "inputs": inputs, "deps": list(seg.deps),
            "status": r.get("status", "pending"), "attempts": r.get("attempts", 0), "error": r.get("error"),
            "origin": r.get("origin"),
            "worker": r.get("worker"), "node": r.get("node"), "degree": r.get("degree"),
            "started": int(r["started"] * 1000) if r.get("started") else None,
            "render_s": r.get("render_s"), "encode_s": r.get("encode_s"), "estimated_s": seg.runtime(r.get("degree") or 1),
            "metrics": list(r.get("metrics", {}).items()),
        })
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
