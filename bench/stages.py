"""Speed and memory of the delivery stages: upscale, retime, loudness; cost-model constants fitted.

    python bench/stages.py [--device cpu|cuda] [--out bench/results/stages.json]

- **upscale**: `sr-tiny` at 832x480 and 1280x720 -> 1920x1080 (two clip lengths each); the fitted
  `overhead_s` and `s_per_mpixel_frame` (per *input* megapixel-frame) are sr-tiny's cost model. Then a
  real-size compact net (AnimeVideo-v3's shape: 64 features, 16 convolutions, x4; random weights) -
  at 1280x720 on a GPU, at 320x180 on a CPU - for the order of magnitude of the real presets.
  Flicker (engine/qc.py, at 240 px wide) of a moving clip before and after.
- **retime**: hold, blend and motion (FFmpeg minterpolate) at 1920x1080, 16 -> 24000/1001; seconds
  per output megapixel-frame.
- **memory**: each stage streams a clip of N and of 4N frames in a process of its own; the peak
  resident set above the process after imports should not grow with N.
- **loudness**: measure + two-pass normalisation of 30 s of stereo, linear and limited.
- **tasks**: the stages as the farm runs them (`farm/stages/work.py::run_stage`: decode the shot,
  process, encode with x264): measured seconds against `farm/stages/cost.py`'s estimate, and the
  decode+encode constant `CODEC_S` fitted from the `hold` retime (whose own work is nothing).

`--part tasks` (repeatable) runs only some parts and merges them into the existing JSON.

The machine's load average is recorded: on a shared machine wall times are inflated, so fit the
cost models on an idle one (CPU seconds are given beside the wall times).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NTSC_FILM = Fraction(24000, 1001)


def clip(n: int, width: int, height: int):
    """A moving textured picture, streamed (nothing of length n is held)."""
    import numpy as np

    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (height // 8 + 1, (width + 4 * n) // 8 + 1, 3), dtype=np.uint8)
    base = base.repeat(8, 0).repeat(8, 1)          # 8-pixel blocks: detail an upscaler and ME can see
    for i in range(n):
        yield np.ascontiguousarray(base[:height, 4 * i:4 * i + width])


def fit_line(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least squares y = a + b x, a clamped at 0 (an overhead cannot be negative)."""
    import numpy as np

    b, a = np.polyfit(xs, ys, 1)
    if a < 0:
        a, b = 0.0, float(np.dot(xs, ys) / np.dot(xs, xs))
    return float(a), float(b)


def bench_upscale(device: str) -> dict:
    from engine.qc import flicker
    from engine.upscale import tiny
    from engine.upscale.presets import load_upscaler
    from engine.upscale.upscaler import Upscaler

    up = Upscaler(load_upscaler("sr-tiny"), device=device)
    list(up.stream(clip(1, 64, 48), 128, 96))           # first-call warm-up outside the figures
    rows = []
    for (w, h), n in (((832, 480), 2), ((832, 480), 6), ((1280, 720), 2), ((1280, 720), 4)):
        start, cpu = time.perf_counter(), time.process_time()
        made = sum(1 for _ in up.stream(clip(n, w, h), 1920, 1080))
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        rows.append({"input": f"{w}x{h}", "frames": made, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
                     "fps": round(made / wall, 3), "input_mpixel_frames": round(n * w * h / 1e6, 3)})
    # the cost model from wall time: run it on an idle machine (the load average is recorded; CPU
    # seconds are in the rows: most of this work is memory-bound and runs on about one core)
    overhead, per = fit_line([r["input_mpixel_frames"] for r in rows], [r["wall_s"] for r in rows])
    before = [thumb(f) for f in clip(24, 832, 480)]
    after = [thumb(f) for f in up.stream(clip(24, 832, 480), 1920, 1080)]
    real = bench_real_compact(device, tiny)
    return {"sr_tiny": rows, "sr_tiny_cost": {"overhead_s": round(overhead, 3), "s_per_mpixel_frame": round(per, 3)},
            "flicker_832x480_to_1080p": {"before": round(flicker(before), 4), "after": round(flicker(after), 4)},
            "real_size_compact": real}


def thumb(frame):
    import numpy as np
    from PIL import Image

    h, w = frame.shape[:2]
    return np.asarray(Image.fromarray(frame).resize((240, round(h * 240 / w / 2) * 2), Image.Resampling.BOX))


def bench_real_compact(device: str, tiny) -> dict:
    """AnimeVideo-v3's architecture with random weights, loaded through spandrel like the real file."""
    from engine.upscale.presets import UpscaleCost, UpscalerPreset
    from engine.upscale.upscaler import Upscaler

    folder = Path(tempfile.mkdtemp(prefix="sakuga-bench-"))
    weights = tiny.build(folder / "compact-64x16.safetensors", 4, 64, 16, seed=0)
    preset = UpscalerPreset(name="compact-64x16", weights=str(weights), scale=4, tile=512, overlap=48, batch=2,
                            dtype="float16", cost=UpscaleCost(hardware="-", source="-", overhead_s=0,
                                                              s_per_mpixel_frame=1))
    up = Upscaler(preset, device=device)
    (w, h), (tw, th), n = ((1280, 720), (1920, 1080), 16) if up.device.type == "cuda" else ((320, 180), (1280, 720), 2)
    list(up.stream(clip(1, w, h), tw, th))
    start = time.perf_counter()
    made = sum(1 for _ in up.stream(clip(n, w, h), tw, th))
    wall = time.perf_counter() - start
    return {"device": str(up.device), "dtype": str(up.dtype), "input": f"{w}x{h}", "output": f"{tw}x{th}",
            "frames": made, "wall_s": round(wall, 3), "fps": round(made / wall, 3),
            "s_per_mpixel_frame": round(wall / (n * w * h / 1e6), 3)}


def bench_retime() -> dict:
    from farm.media.retime import retime

    out = {}
    for method, n in (("hold", 32), ("blend", 32), ("motion", 6)):
        frames = list(clip(n, 1920, 1080))
        start, cpu = time.perf_counter(), time.process_time()
        made = sum(1 for _ in retime(iter(frames), 16, NTSC_FILM, method))
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        out[method] = {"input_frames": n, "frames": made, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
                       "fps": round(made / wall, 2),
                       "s_per_output_mpixel_frame": round(wall / (made * 1920 * 1080 / 1e6), 4)}
    return out


def child(stage: str, n: int) -> dict:
    """In its own process: stream `stage` over a clip of n frames; peak RSS above the process after imports."""
    import numpy as np  # noqa: F401

    from engine.upscale.presets import load_upscaler
    from engine.upscale.upscaler import Upscaler
    from farm.media.retime import retime

    up = Upscaler(load_upscaler("sr-tiny"), device="cpu") if stage == "upscale" else None
    base = rss_kib()
    if stage == "upscale":
        made = sum(1 for _ in up.stream(clip(n, 320, 180), 1280, 720))
    else:
        size = (640, 360) if stage == "motion" else (1920, 1080)
        made = sum(1 for _ in retime(clip(n, *size), 16, NTSC_FILM, stage))
    return {"stage": stage, "input_frames": n, "frames": made, "peak_above_start_mib": round((peak_kib() - base) / 1024, 1)}


def rss_kib(field: str = "VmRSS") -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def peak_kib() -> int:
    return rss_kib("VmHWM")


def bench_memory() -> list[dict]:
    rows = []
    for stage, n in (("upscale", 32), ("hold", 16), ("blend", 16), ("motion", 8)):
        for frames in (n, 4 * n):
            result = subprocess.run([sys.executable, __file__, "--child", stage, str(frames)], capture_output=True,
                                    text=True, check=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
            rows.append(json.loads(result.stdout.splitlines()[-1]))
    return rows


def bench_loudness() -> dict:
    import numpy as np

    from farm.media.loudness import Target, normalize

    rate, seconds = 48_000, 30
    rng = np.random.default_rng(0)
    t = np.arange(rate * seconds) / rate
    music = sum(np.sin(2 * np.pi * f * t) for f in (220, 330, 440, 660)) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.3 * t))
    music = (music / np.abs(music).max() * 0.5 + 0.02 * rng.standard_normal(t.size)).astype(np.float32)
    drums = 0.05 * music
    for k in range(0, t.size - 2400, rate // 2):
        drums[k:k + 2400] += (0.25 * np.exp(-np.arange(2400) / 300) * rng.standard_normal(2400)).astype(np.float32)
    out = {}
    for name, mono, target in (("music_to_-23", music, -23.0), ("drums_to_-14", drums, -14.0)):
        x = np.stack([mono, mono * 0.9])
        start = time.perf_counter()
        done = normalize(x, rate, Target(target, -1.0))
        wall = time.perf_counter() - start
        out[name] = {"seconds_of_sound": seconds, "wall_s": round(wall, 2), "x_realtime": round(seconds / wall, 1),
                     "limiter_passes": done.normalization.limiter_passes, "before": done.normalization.before.as_dict(),
                     "after": done.after.as_dict(), "on_target": done.on_target}
    return out


def bench_tasks() -> dict:
    """The farm's stage code end to end, against the cost model it is scheduled by."""
    from engine.upscale.presets import load_upscaler
    from farm.media.encode import encode_mp4_bytes
    from farm.media.retime import retimed_frames
    from farm.stages import cost
    from farm.stages.stage import Stage
    from farm.stages.work import Upscalers, run_stage

    out, upscalers = {}, Upscalers()
    sr = load_upscaler("sr-tiny")
    cases = [("upscale sr-tiny 832x480 -> 1920x1080", 6, (832, 480), Fraction(16), "upscale", None),
             ("retime hold 1080p", 16, (1920, 1080), NTSC_FILM, "retime", "hold"),
             ("retime blend 1080p", 16, (1920, 1080), NTSC_FILM, "retime", "blend")]
    for name, n, (w, h), dst, kind, method in cases:
        source = encode_mp4_bytes(clip(n, w, h), 16, w, h, crf=12, preset="veryfast")
        if kind == "upscale":
            crop = (0, 6, 832, 474)
            frames_out, size = n, (1920, 1080)
            estimate = cost.upscale_s(sr, n, (832, 468), size)
        else:
            crop, frames_out, size = None, retimed_frames(n, 16, dst), (w, h)
            estimate = cost.retime_s(method, frames_out, size)
        stage = Stage(name, "s", kind, "bench", ("s.0",), ("h",), "cpu", kind, n, frames_out, *size, Fraction(16), dst,
                      crop=crop, upscaler=sr if kind == "upscale" else None, method=method, runtime_s=((1, estimate),))
        start, cpu = time.perf_counter(), time.process_time()
        run_stage(stage, [source], upscalers)
        wall = time.perf_counter() - start
        mpf = frames_out * size[0] * size[1] / 1e6
        out[name] = {"frames_in": n, "frames_out": frames_out, "wall_s": round(wall, 3),
                     "cpu_s": round(time.process_time() - cpu, 3), "estimate_s": round(estimate, 3),
                     "measured_over_estimate": round(wall / estimate, 2), "output_mpixel_frames": round(mpf, 2)}
    hold = out["retime hold 1080p"]
    out["fitted_codec_s_per_output_mpixel_frame"] = round(max(0.0, hold["wall_s"] - cost.OVERHEAD_S)
                                                          / hold["output_mpixel_frames"], 4)
    return out


PARTS = ("upscale", "retime", "memory", "loudness", "tasks")


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        print(json.dumps(child(sys.argv[2], int(sys.argv[3]))))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default=None)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "stages.json"))
    parser.add_argument("--part", action="append", choices=sorted(PARTS), help="only these parts (merged into --out)")
    args = parser.parse_args()
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    started = time.perf_counter()
    runs = {"upscale": lambda: bench_upscale(device), "retime": bench_retime, "memory": bench_memory,
            "loudness": bench_loudness, "tasks": bench_tasks}
    parts = args.part or list(runs)
    result = json.loads(Path(args.out).read_text()) if args.part and Path(args.out).is_file() else {}
    result["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
                         "device": device, "load_average": os.getloadavg()[0]}
    for part in parts:
        result[part] = runs[part]()
    result["wall_s"] = round(time.perf_counter() - started, 1)
    report(result)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


def report(r: dict) -> None:
    u = r["upscale"]
    print(f"upscale sr-tiny on {r['machine']['device']} (load average {r['machine']['load_average']:.1f}):")
    for row in u["sr_tiny"]:
        print(f"  {row['input']:>9} -> 1920x1080  {row['frames']:2d} frames  {row['wall_s']:7.2f} s wall "
              f"{row['cpu_s']:7.2f} s cpu  {row['fps']:6.2f} fps")
    c = u["sr_tiny_cost"]
    print(f"  cost model: overhead_s {c['overhead_s']}, s_per_mpixel_frame {c['s_per_mpixel_frame']}")
    f = u["flicker_832x480_to_1080p"]
    print(f"  flicker before {f['before']}, after {f['after']}")
    real = u["real_size_compact"]
    print(f"  real-size compact (64x16, x4) on {real['device']}: {real['input']} -> {real['output']}, "
          f"{real['fps']} fps, {real['s_per_mpixel_frame']} s per input megapixel-frame")
    print("retime 16 -> 24000/1001 at 1920x1080:")
    for method, row in r["retime"].items():
        print(f"  {method:>6}: {row['frames']:3d} frames {row['wall_s']:7.2f} s wall {row['cpu_s']:7.2f} s cpu "
              f"{row['fps']:8.2f} fps "
              f"({row['s_per_output_mpixel_frame']} s per output megapixel-frame)")
    print("peak memory above the process after imports (MiB), N and 4N frames:")
    for row in r["memory"]:
        print(f"  {row['stage']:>7} {row['input_frames']:3d} frames in, {row['frames']:3d} out: {row['peak_above_start_mib']}")
    for name, row in r["loudness"].items():
        print(f"loudness {name}: {row['wall_s']} s for {row['seconds_of_sound']} s ({row['x_realtime']}x realtime), "
              f"limiter passes {row['limiter_passes']}, {row['before']} -> {row['after']}")
    for name, row in r.get("tasks", {}).items():
        if isinstance(row, dict):
            print(f"task {name}: {row['frames_in']} -> {row['frames_out']} frames, {row['wall_s']} s wall "
                  f"(cost model {row['estimate_s']} s: x{row['measured_over_estimate']})")
    if "tasks" in r:
        print(f"  fitted decode+encode: {r['tasks']['fitted_codec_s_per_output_mpixel_frame']} s per output megapixel-frame")
    print(f"total {r['wall_s']} s")


if __name__ == "__main__":
    main()
