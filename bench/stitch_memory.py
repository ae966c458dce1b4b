"""Stitching memory against episode length: peak RSS must not grow with the number of shots.

    python bench/stitch_memory.py [--shots 8 32 128] [--size 832x480] [--out bench/results/stitch_memory.json]

Builds a few synthetic 33-frame segments (moving noise, so the encoder works for real), then stitches
episodes of N shots (each of two chained segments, every other shot dissolving 8 frames into the next,
a soundtrack muxed) with `farm.stitch.stitch`, which writes every shot file and the episode in one
pass. Each N runs in its own process, so its peak resident set (`ru_maxrss`) is its own; the figure
that matters is the peak above the process's size after imports. x264 runs with preset ultrafast here:
the encoder's settings change its buffers, not how they scale with length. What still grows is the
MP4 muxer's sample index (the `moov` atom lists every packet): about 0.5 KB per frame with sound, so
the bench prints the growth per thousand frames too.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SEGMENT_FRAMES = 33
DISSOLVE = 8


def make_sources(folder: Path, width: int, height: int, count: int = 4) -> list[Path]:
    import numpy as np

    from farm.media.encode import encode_mp4

    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (height, width + SEGMENT_FRAMES * 4, 3), dtype=np.uint8)
    files = []
    for k in range(count):
        frames = (np.roll(base, 8 * k, axis=0)[:, 4 * i: 4 * i + width] for i in range(SEGMENT_FRAMES))
        path = folder / f"src{k}.mp4"
        encode_mp4(frames, path, 16, width, height, preset="ultrafast")
        files.append(path)
    rate = 48_000
    with wave.open(str(folder / "music.wav"), "wb") as w:   # shorter than every episode: padded with silence
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.sin(np.arange(rate * 2) * 0.05) * 8000).astype("<i2").repeat(2).tobytes())
    return files


def child(folder: Path, shots: int, width: int, height: int) -> dict:
    """Runs in its own process: stitch an episode of `shots` shots and report its own peak memory."""
    from farm.delivery.stitch import ShotFiles, stitch

    sources = sorted(folder.glob("src*.mp4"))
    baseline_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    plan = [ShotFiles([sources[i % len(sources)], sources[(i + 1) % len(sources)]],
                      folder / f"run{shots}" / "shots" / f"s{i:04d}.mp4",
                      DISSOLVE if i % 2 == 0 and i + 1 < shots else 0) for i in range(shots)]
    started = time.perf_counter()
    lengths = stitch(plan, folder / f"run{shots}" / "episode.mp4", 16, audio=folder / "music.wav",
                     preset="ultrafast")
    wall = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    frames = sum(lengths) - sum(s.dissolve for s in plan)
    return {"shots": shots, "episode_frames": frames, "minutes_at_16fps": round(frames / 16 / 60, 2),
            "wall_s": round(wall, 2), "frames_per_s": round(frames / wall, 1),
            "baseline_mib": round(baseline_kb / 1024, 1), "peak_mib": round(peak_kb / 1024, 1),
            "peak_above_baseline_mib": round((peak_kb - baseline_kb) / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=int, nargs="+", default=[8, 32, 128])
    parser.add_argument("--size", default="832x480")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "stitch_memory.json")
    parser.add_argument("--child", nargs=2, metavar=("FOLDER", "SHOTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    if args.child:
        print(json.dumps(child(Path(args.child[0]), int(args.child[1]), width, height)))
        return
    rows = []
    with tempfile.TemporaryDirectory(prefix="sakuga-stitch-bench-") as tmp:
        folder = Path(tmp)
        make_sources(folder, width, height)
        print(f"{'shots':>6} {'frames':>7} {'minutes':>8} {'wall s':>7} {'fps':>6} {'peak MiB':>9} {'above base':>11}")
        for n in args.shots:
            out = subprocess.run([sys.executable, __file__, "--child", str(folder), str(n), "--size", args.size],
                                 check=True, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
            row = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"{row['shots']:>6} {row['episode_frames']:>7} {row['minutes_at_16fps']:>8} {row['wall_s']:>7} "
                  f"{row['frames_per_s']:>6} {row['peak_mib']:>9} {row['peak_above_baseline_mib']:>11}", flush=True)
    growth = rows[-1]["peak_above_baseline_mib"] - rows[0]["peak_above_baseline_mib"]
    ratio = rows[-1]["episode_frames"] / rows[0]["episode_frames"]
    per_kframe = growth * 1024 / max(1, rows[-1]["episode_frames"] - rows[0]["episode_frames"]) * 1000
    print(f"episode {ratio:.0f}x longer: peak above baseline changed by {growth:+.1f} MiB "
          f"({per_kframe:.0f} KiB per 1000 frames: the MP4 sample index)")
    result = {"benchmark": "stitch_memory", "size": args.size, "segment_frames": SEGMENT_FRAMES,
              "dissolve_frames": DISSOLVE, "rows": rows, "growth_mib": round(growth, 1), "length_ratio": ratio,
              "growth_kib_per_1000_frames": round(per_kframe, 1),
              "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
