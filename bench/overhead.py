"""Orchestration overhead per segment: the farm loop on local Ray with the no-op engine.

    python bench/overhead.py [--segments 200] [--gpus 1 2] [--out bench/results/overhead.json]

Renders N independent 17-frame 64x64 segments with the `noop` preset (no model, no sleep) and times
the farm loop from the first dispatch until every segment is published (ledger writes, policy
decisions, object transfers, atomic publishing included; stitching excluded). The workers' own time
(frames + encoding, reported by each worker) is subtracted, so what is left is what the farm adds per
segment: (loop wall x GPUs - worker seconds) / segments. Target: under 20 ms. Logical GPUs share the
machine's cores with the driver, so keep --gpus at or below the core count: beyond it the figure
measures CPU contention, not the farm.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ray  # noqa: E402

from farm.job.job import Job  # noqa: E402
from farm.run.loop import FarmLoop
from farm.workers.connect import connect  # noqa: E402
from farm.workers.pool import WorkerPool  # noqa: E402
from storyboard.load import load  # noqa: E402
from storyboard.plan import build_plan  # noqa: E402

TARGET_MS = 20.0


def storyboard(folder: Path, segments: int) -> Path:
    shots = "\n".join(f"      - {{id: s{i:04d}, frames: 17, prompt: shot {i}}}" for i in range(segments))
    path = folder / "overhead.yaml"
    path.write_text(f"sakuga: 1\ntitle: Overhead\nmodel: noop\noutput: {{width: 64, height: 64, fps: 16}}\n"
                    f"scenes:\n  - id: one\n    shots:\n{shots}\n")
    return path


def measure(segments: int, gpus: int, folder: Path) -> dict:
    plan = build_plan(load(storyboard(folder, segments)))
    farm = FarmLoop(WorkerPool(gpus))
    job = Job("overhead", plan, folder / f"out-{gpus}")
    farm.add(job)
    # warm the workers up (process start, imports) so the figure is the steady state
    ray.get([s.actor.where.remote() for s in farm.pool.slots])
    started = time.perf_counter()
    while not job.settled:
        farm.step(deliver=False)
    wall = time.perf_counter() - started
    work = sum(r.get("render_s", 0.0) + r.get("encode_s", 0.0) for r in job.rows().values())
    farm.pool.shutdown()
    job.close()
    overhead_ms = (wall * gpus - work) / segments * 1000
    return {"gpus": gpus, "segments": segments, "loop_wall_s": round(wall, 3), "worker_s": round(work, 3),
            "segments_per_s": round(segments / wall, 1), "overhead_ms_per_segment": round(overhead_ms, 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--segments", type=int, default=200)
    ap.add_argument("--gpus", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "overhead.json")
    args = ap.parse_args()
    connect(max(args.gpus))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for gpus in args.gpus:
            row = measure(args.segments, gpus, Path(tmp))
            rows.append(row)
            print(f"{gpus} GPU(s): {row['segments']} segments in {row['loop_wall_s']:.2f} s "
                  f"({row['segments_per_s']:.0f}/s); workers busy {row['worker_s']:.2f} s; "
                  f"overhead {row['overhead_ms_per_segment']:.1f} ms/segment")
    worst = max(r["overhead_ms_per_segment"] for r in rows)
    ok = worst < TARGET_MS
    print(f"worst overhead {worst:.1f} ms/segment (target < {TARGET_MS:g} ms) -> {'PASS' if ok else 'FAIL'}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"target_ms": TARGET_MS, "pass": ok, "cpus": os.cpu_count(),
                                    "python": platform.python_version(), "ray": ray.__version__,
                                    "runs": rows}, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
