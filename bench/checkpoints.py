"""Step checkpoints: what one weighs, what it costs to take, and how long a stop takes.

    python bench/checkpoints.py [--out bench/results/checkpoints.json]

1. In this process, the tiny Wan engine renders one segment at each of three sizes with a step control
   that checkpoints after every step: the blob's bytes against the latents' bytes, and the seconds of
   `capture` + `to_bytes` (the worker's cost) and `from_bytes` (a resume's). A blob is the latents plus
   the sampler's tensors (UniPC keeps its last model outputs and sample), so it scales with the latent
   shape: the real presets' sizes follow from theirs (16 latent channels, 4x8x8 VAE strides).
2. Through the farm on local Ray (one worker, the tiny model at the largest size): a segment asked to
   stop as soon as its first checkpoint reaches the loop; the seconds from the ask until the loop has
   `StoppedAt` (the rest of the step in flight, the state shipped, the GPU free), against a step's
   seconds, and the driver's seconds to publish one checkpoint (atomic file + ledger row).
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
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.steps import StepState  # noqa: E402
from engine.wan.engine import WanEngine  # noqa: E402
from storyboard.plan import Condition, ImageRef, Segment  # noqa: E402
from storyboard.presets import load_preset  # noqa: E402

SIZES = [(320, 192, 17), (480, 272, 33), (832, 480, 81)]   # width, height, frames
REAL = {"anisora-v2 480p": (832, 480, 81), "anisora-v3 720p": (1280, 720, 81), "1080p": (1920, 1080, 81)}
ROOT = Path(__file__).resolve().parents[1]


def bench_segment(preset, width: int, height: int, frames: int, steps: int) -> Segment:
    """One segment on a start picture (as bench/engine.py renders)."""
    start = ImageRef("asset", "bench.png", "0" * 64)
    return Segment(
        id="bench.0", shot="bench", index=0, first_frame=0, frames=frames, width=width, height=height,
        fps=preset.fps, model=preset.name, engine=preset.engine, prompt="a girl on a rooftop at dusk, wind",
        negative="", steps=steps, guidance=preset.defaults.guidance, shift=preset.defaults.shift, seed=7,
        camera=None, conditions=(Condition(0, start),), characters=(), deps=(), options=(), runtime_s=((1, 0.0),))


class Every:
    """A control that checkpoints after every step and times it."""

    def __init__(self, key: str):
        self.key, self.resume, self.rows = key, None, []

    def boundary(self, done: int, total: int, capture) -> bool:
        began = time.perf_counter()
        state = capture()
        blob = state.to_bytes()
        took = time.perf_counter() - began
        began = time.perf_counter()
        StepState.from_bytes(blob)
        self.rows.append({"step": done, "bytes": len(blob), "latent_bytes": state.latents.nbytes,
                          "save_s": took, "load_s": time.perf_counter() - began})
        return False


def in_process() -> list[dict]:
    preset = load_preset("wan-tiny")
    engine = WanEngine(preset)
    rows = []
    for width, height, frames in SIZES:
        seg = bench_segment(preset, width, height, frames, 4)
        picture = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
        control = Every(seg.hash or "bench")
        engine.render(seg, {seg.conditions[0].image: picture}, control=control)
        last = control.rows[-1]
        row = {"width": width, "height": height, "frames": frames, "bytes": last["bytes"],
               "latent_bytes": last["latent_bytes"], "ratio": last["bytes"] / last["latent_bytes"],
               "save_s": float(np.median([r["save_s"] for r in control.rows])),
               "load_s": float(np.median([r["load_s"] for r in control.rows]))}
        rows.append(row)
        print(f"tiny {width}x{height}x{frames}: {row['bytes'] / 1e3:.1f} kB ({row['ratio']:.2f}x the latents), "
              f"capture+to_bytes {row['save_s'] * 1e3:.1f} ms, from_bytes {row['load_s'] * 1e3:.1f} ms", flush=True)
    return rows


def real_sizes(ratio: float) -> dict:
    """A blob's bytes at the real presets' sizes: 16 latent channels, frames (F-1)/4+1, pixels / 8."""
    out = {}
    for name, (width, height, frames) in REAL.items():
        latent = 16 * ((frames - 1) // 4 + 1) * (height // 8) * (width // 8) * 4
        out[name] = {"latent_mb": latent / 1e6, "checkpoint_mb": latent * ratio / 1e6}
        print(f"{name} {width}x{height}x{frames}: latents {latent / 1e6:.1f} MB, checkpoint ~{latent * ratio / 1e6:.0f} MB")
    return out


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
    data["cost"]["checkpoint"] = {"steps": 1, "min_s": 0}
    (folder / "tiny-bench.yaml").write_text(yaml.safe_dump(data))
    os.environ["SAKUGA_MODELS"] = str(folder)
    width, height, frames = SIZES[-1]
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
    arrivals, publish_s, ended = [], [], []
    keep = job.checkpoints.keep

    def timed_keep(seg, message):
        arrivals.append(time.time())
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
           "step_s": step_s, "publish_s": float(np.median(publish_s)), "checkpoints": len(arrivals)}
    print(f"stop through the farm ({width}x{height}x{frames}, tiny): {row['stop_s']:.3f} s from the ask to StoppedAt "
          f"(a step: {step_s:.3f} s); publishing a checkpoint {row['publish_s'] * 1e3:.1f} ms", flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("bench/results/checkpoints.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("SAKUGA_CACHE", str(Path(tmp) / "cache"))
        sizes = in_process()
        result = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__,
                  "threads": torch.get_num_threads(), "tiny": sizes, "real": real_sizes(sizes[-1]["ratio"]),
                  "stop": through_farm(Path(tmp))}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
