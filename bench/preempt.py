"""Preemption through the farm: how long a stop takes, and what a checkpoint costs the driver.

    python bench/preempt.py [--out bench/results/preempt.json]

On local Ray, one worker renders a tiny-model segment (832x480, 81 frames, 8 steps, a checkpoint after
every step) and is asked to stop as soon as its first checkpoint reaches the loop. Measured: the
seconds from the ask until the loop has `StoppedAt` (the rest of the step in flight, the state
shipped, the GPU free) against a step's seconds (between two checkpoints' arrivals), the checkpoint's
bytes, and the driver's seconds to publish one (atomic file + ledger row). What one weighs at the real
presets' sizes and what taking one costs on the worker: bench/checkpoints.py.
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

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SIZE = (832, 480, 81)   # width, height, frames
ROOT = Path(__file__).resolve().parents[1]


class StopAfterFirst:
    """Test policy: one GPU each; a running segment is stopped once it has a checkpoint."""
    name = "stop-after-first"

    def __init__(self):
        self.job, self.asked = None, None

    def decide(self, view):
        from farm.scheduling.policy import Start

        return [Start(t.id, 0, (view.free[0][0],)) for t in view.ready[:1] if view.free.get(0)]

    def stops(self, view):
        from farm.scheduling.policy import Stop

        seg = self.job.plan.segments[0]
        if self.asked is None and self.job.checkpoints.step(seg) >= 1 and view.running:
            self.asked = time.time()
            return [Stop(r.task.id) for r in view.running]
        return []


def through_farm(folder: Path) -> dict:
    import ray

    from farm.job.job import Job
    from farm.run.loop import FarmLoop
    from farm.workers.pool import WorkerPool
    from storyboard.load import load
    from storyboard.plan import build_plan

    data = yaml.safe_load((ROOT / "configs" / "models" / "wan-tiny.yaml").read_text())
    data.update(name="tiny-bench")
    data["options"]["checkpoint"] = {"every_steps": 1, "min_segment_s": 0}
    (folder / "tiny-bench.yaml").write_text(yaml.safe_dump(data))
    os.environ["SAKUGA_MODELS"] = str(folder)
    width, height, frames = SIZE
    (folder / "sb.yaml").write_text(f"sakuga: 1\ntitle: Stop\nmodel: tiny-bench\noutput: {{width: {width}, height: "
                                    f"{height}, fps: 16}}\nscenes:\n  - id: one\n    shots:\n"
                                    f"      - {{id: s, frames: {frames}, prompt: a long pan, steps: 8}}\n")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)   # workers
    ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False, logging_level="WARNING",
             log_to_driver=False)
    policy = StopAfterFirst()
    job = Job("stop", build_plan(load(folder / "sb.yaml")), folder / "out")
    policy.job = job
    loop = FarmLoop(WorkerPool(1), scheduler=policy, deliver=lambda j: None, observers=())
    arrivals, publish_s, ended, sizes = [], [], [], []
    keep = job.checkpoints.keep

    def timed_keep(seg, message):
        arrivals.append(time.time())
        sizes.append(len(message.blob))
        began = time.perf_counter()
        kept = keep(seg, message)
        publish_s.append(time.perf_counter() - began)
        return kept

    job.checkpoints.keep = timed_keep
    job.observe(lambda j, e: ended.append(time.time()) if e.kind == "attempt_ended" and e.status == "preempted" else None)
    loop.add(job)
    while not ended:
        loop.step(max_wait=0.05)
    ray.get([s.actor.where.remote() for s in loop.pool.slots])
    loop.pool.shutdown()
    ray.shutdown()
    step_s = float(np.median(np.diff(arrivals))) if len(arrivals) > 1 else None
    row = {"width": width, "height": height, "frames": frames, "stop_s": ended[0] - policy.asked,
           "step_s": step_s, "publish_s": float(np.median(publish_s)), "checkpoints": len(arrivals),
           "checkpoint_bytes": sizes[-1], "stopped_at_step": job.checkpoints.step(job.plan.segments[0])}
    print(f"stop through the farm ({width}x{height}x{frames}, tiny): {row['stop_s']:.3f} s from the ask to StoppedAt "
          f"(a step: {step_s:.3f} s), at step {row['stopped_at_step']}; a checkpoint {sizes[-1] / 1e6:.1f} MB, "
          f"published in {row['publish_s'] * 1e3:.1f} ms", flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("bench/results/preempt.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("SAKUGA_CACHE", str(Path(tmp) / "cache"))
        result = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                  "stop": through_farm(Path(tmp))}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
