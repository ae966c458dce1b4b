"""Engine benchmark: seconds per denoising step and peak memory of a Wan preset at three sizes.

    python bench/engine.py [--preset wan-tiny] [--steps 4] [--out bench/results/engine.json]

For each size it renders one segment on a start picture and times the stages through the pipeline's
own hooks: text encoding, the denoising steps (each step timed from the step callback), and VAE
decode. Peak memory is the accelerator's peak allocation on a GPU, else the process's peak resident
set (which includes the loaded model). Figures are printed and written to a JSON file.
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.wan.engine import WanEngine  # noqa: E402
from storyboard.plan import Condition, ImageRef, Segment  # noqa: E402
from storyboard.presets import load_preset  # noqa: E402

SIZES = [(320, 192, 17), (480, 272, 33), (832, 480, 81)]   # width, height, frames


def peak_memory_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 1e9
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6   # kB on Linux


def segment(preset, width: int, height: int, frames: int, steps: int) -> Segment:
    start = ImageRef("asset", "bench.png", "0" * 64)
    return Segment(
        id="bench.0", shot="bench", index=0, first_frame=0, frames=frames, width=width, height=height,
        fps=preset.fps, model=preset.name, engine=preset.engine, prompt="a girl on a rooftop at dusk, wind",
        negative="", steps=steps, guidance=preset.defaults.guidance, shift=preset.defaults.shift, seed=7,
        camera=None, conditions=(Condition(0, start),), characters=(), deps=(), options=(), runtime_s=((1, 0.0),))


def run(preset_name: str, steps: int) -> dict:
    preset = load_preset(preset_name)
    loaded_at = time.perf_counter()
    engine = WanEngine(preset)
    load_s = time.perf_counter() - loaded_at
    results = []
    for width, height, frames in SIZES:
        seg = segment(preset, width, height, frames, steps)
        picture = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
        if engine.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        stamps: list[float] = []
        began = time.perf_counter()
        engine.render(seg, {seg.conditions[0].image: picture}, progress=lambda done, total, stamps=stamps: stamps.append(time.perf_counter()))
        total = time.perf_counter() - began
        step_s = np.diff(stamps).tolist()     # step 1's start is not observable; steps 2..n are
        tokens = preset.tokens(frames, width, height)
        row = {"width": width, "height": height, "frames": frames, "tokens": tokens, "steps": steps,
               "s_per_step": float(np.median(step_s)) if step_s else None,
               "segment_s": total, "peak_memory_gb": peak_memory_gb(engine.device)}
        results.append(row)
        print(f"{preset_name} {width}x{height}x{frames} ({tokens} tokens): "
              f"{row['s_per_step']:.3f} s/step, {total:.1f} s/segment, peak {row['peak_memory_gb']:.2f} GB", flush=True)
    return {"preset": preset_name, "device": str(engine.device), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
            "load_s": load_s, "sizes": results}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="wan-tiny")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--out", type=Path, default=Path("bench/results/engine.json"))
    args = ap.parse_args()
    report = run(args.preset, args.steps)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
