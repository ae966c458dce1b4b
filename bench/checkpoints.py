"""Step checkpoints: how big one is and what taking, writing, reading and restoring it costs.

    python bench/checkpoints.py [--sizes 1280x720 1920x1080] [--frames 81] [--out bench/results/checkpoints.json]

For Wan2.1's latent shape (16 channels, 4x temporal and 8x spatial VAE compression) at each size, the
real denoising loop (`engine.wan.denoising.denoise_steps`) runs diffusers' UniPC sampler as Wan's
pipelines configure it (solver order 2, flow prediction) for 2 of 8 steps; the noise prediction is a
cheap stand-in for the transformer, which a checkpoint does not involve. At the boundary after step 2
the checkpoint is captured (latents and sampler state copied to the CPU), serialised with
`StepState.to_bytes`, read back with `from_bytes`, and the loop resumes from it. On a GPU, capture
adds the device-to-host copy of the same bytes (not measured here).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from diffusers import UniPCMultistepScheduler  # noqa: E402

from engine.steps import StepState, Stopped  # noqa: E402
from engine.wan.denoising import denoise_steps  # noqa: E402

STEPS, STOP = 8, 2


class Timed:
    """Captures and stops at step STOP, timing the capture."""

    def __init__(self, resume=None):
        self.key, self.resume, self.capture_s = "bench", resume, None

    def boundary(self, done, total, capture):
        if done != STOP:
            return False
        started = time.perf_counter()
        capture()
        self.capture_s = time.perf_counter() - started
        return True


def latent_sized(scheduler_state: dict, numel: int) -> int:
    """How many of the sampler's saved tensors are as big as the latents (UniPC: outputs and last sample)."""
    items = [x for v in scheduler_state.values() for x in (v if isinstance(v, (list, tuple)) else [v])]
    return sum(isinstance(x, torch.Tensor) and x.numel() == numel for x in items)


def measure(width: int, height: int, frames: int) -> dict:
    shape = (1, 16, (frames - 1) // 4 + 1, height // 8, width // 8)
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=5.0,
                                        solver_order=2, num_train_timesteps=1000)
    pipe = SimpleNamespace(scheduler=scheduler, maybe_free_model_hooks=lambda: None)
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(0))

    def predict(latents, t):      # stands in for the transformer: a checkpoint does not involve it
        return latents * 0.1

    control = Timed()
    try:
        denoise_steps(pipe, noise, STEPS, predict, control=control)
    except Stopped as e:
        state = e.state
    started = time.perf_counter()
    blob = state.to_bytes()
    write_s = time.perf_counter() - started
    started = time.perf_counter()
    back = StepState.from_bytes(blob)
    read_s = time.perf_counter() - started
    resumed = Timed(resume=back)
    resumed.boundary = lambda done, total, capture: False
    started = time.perf_counter()
    denoise_steps(pipe, noise, STEPS, predict, control=resumed)
    resume_s = time.perf_counter() - started
    return {"width": width, "height": height, "frames": frames, "latent_shape": list(shape),
            "blob_mb": round(len(blob) / 1e6, 1), "latents_mb": round(state.latents.nbytes / 1e6, 1),
            "latent_sized_tensors": 1 + latent_sized(state.scheduler, noise.numel()),
            "capture_s": round(control.capture_s, 3), "to_bytes_s": round(write_s, 3),
            "from_bytes_s": round(read_s, 3), "resume_6_steps_s": round(resume_s, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["1280x720", "1920x1080"])
    parser.add_argument("--frames", type=int, default=81)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "checkpoints.json")
    args = parser.parse_args()
    rows = []
    for size in args.sizes:
        w, h = (int(x) for x in size.split("x"))
        rows.append(measure(w, h, args.frames))
        r = rows[-1]
        print(f"{w}x{h}x{args.frames}: blob {r['blob_mb']} MB ({r['latent_sized_tensors']} latent-sized tensors of "
              f"{r['latents_mb']} MB), capture {r['capture_s']} s, to_bytes {r['to_bytes_s']} s, "
              f"from_bytes {r['from_bytes_s']} s")
    out = {"machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, CPU",
           "sampler": "UniPC order 2 (Wan)", "checkpoint_after_step": STOP, "steps": STEPS, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
