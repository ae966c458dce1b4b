"""Scheduling workloads for `sakuga bench schedule`, with runtimes from the AniSora V3 cost model.

    python bench/workloads.py [--out bench/workloads]

Four families, two seeded instances each, on 2 nodes x 8 GPUs: `episodes` (three episodes with
continuity chains, the third released later), `pv1080` (PV batches of independent 1080p shots),
`chains` (long single-shot chains plus a small episode to fill the gaps) and `urgent` (a low-priority
overnight 1080p batch, then an urgent episode released at 900 s). Reruns write identical files.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from farm.policy import Task, topological  # noqa: E402
from storyboard.presets import load_preset  # noqa: E402

PRESET = load_preset("anisora-v3")
FPS, MAX_FRAMES = 16, 81
HD, FULL_HD = (1280, 720), (1920, 1088)
CLUSTER = {"nodes": 2, "gpus_per_node": 8}


def runtime(frames: int, size: tuple[int, int]) -> dict[str, float]:
    d = PRESET.defaults
    return {str(g): round(PRESET.runtime(frames, *size, d.steps, d.guidance, g), 1) for g in PRESET.degrees}


def snap(frames: int) -> int:
    return max(17, (frames - 1) // 4 * 4 + 1)


def shot(tasks: list, job: str, name: str, frames: int, size, deps: list[str], priority=0, release=0.0) -> str:
    """Append a shot's segments (each continues the one before) and return the last segment's id."""
    left, index, after = frames, 0, deps
    while left > 0:
        seg = f"{job}/{name}.{index}"
        tasks.append({"id": seg, "job": job, "priority": priority, "release": release, "deps": after,
                      "runtime": runtime(snap(min(left, MAX_FRAMES)), size)})
        left, index, after = left - MAX_FRAMES, index + 1, [seg]
    return after[0]


def episode(tasks: list, rng: random.Random, job: str, shots: int, *, priority=0, release=0.0, chain_p=0.4) -> None:
    last = None
    for s in range(shots):
        frames = snap(int(rng.uniform(2, 8) * FPS))
        deps = [last] if last and rng.random() < chain_p else []
        last = shot(tasks, job, f"shot-{(s + 1) * 10:03d}", frames, HD, deps, priority, release)


def episodes(rng: random.Random) -> list:
    tasks: list = []
    for e in range(3):
        episode(tasks, rng, f"ep{e + 1}", rng.randint(10, 16), release=600.0 if e == 2 else 0.0)
    return tasks


def pv1080(rng: random.Random) -> list:
    tasks: list = []
    for b in range(3):
        for s in range(rng.randint(8, 14)):
            shot(tasks, f"pv{b + 1}", f"cut-{s + 1:02d}", snap(int(rng.uniform(2, 5) * FPS)), FULL_HD, [])
    return tasks


def chains(rng: random.Random) -> list:
    tasks: list = []
    for c in range(3):
        shot(tasks, f"long{c + 1}", "oneshot", MAX_FRAMES * rng.randint(12, 20), HD, [])
    for s in range(6):
        shot(tasks, "filler", f"shot-{s + 1:02d}", snap(int(rng.uniform(2, 5) * FPS)), HD, [])
    return tasks


def urgent(rng: random.Random) -> list:
    tasks: list = []
    for s in range(rng.randint(40, 60)):
        shot(tasks, "batch", f"pv-{s + 1:02d}", rng.choice([33, 49, 65, 81]), FULL_HD, [], priority=-1)
    episode(tasks, rng, "urgent", 10, priority=10, release=900.0)
    return tasks


FAMILIES = {"episodes": episodes, "pv1080": pv1080, "chains": chains, "urgent": urgent}
SEEDS = {"a": 1, "b": 2}


def generate(family: str, seed: int) -> dict:
    return {"family": family, "description": (FAMILIES[family].__doc__ or family).strip(),
            "cluster": CLUSTER, "tasks": FAMILIES[family](random.Random(f"{family}/{seed}"))}


def summary(workload: dict) -> str:
    tasks = [Task(t["id"], {int(k): v for k, v in t["runtime"].items()}, tuple(t["deps"]), t["job"],
                  t["priority"], t["release"]) for t in workload["tasks"]]
    finish: dict[str, float] = {}
    for t in topological(tasks):
        finish[t.id] = max([t.release] + [finish[d] for d in t.deps]) + min(t.runtime.values())
    gpu_s = sum(min(d * r for d, r in t.runtime.items()) for t in tasks)
    return (f"{len(tasks)} tasks, {len({t.job for t in tasks})} jobs, {gpu_s:.0f} best GPU-s, "
            f"critical path {max(finish.values()):.0f} s")


episodes.__doc__ = "three 720p episodes with continuity chains; the third is released at 600 s"
pv1080.__doc__ = "three PV batches of independent 1080p shots"
chains.__doc__ = "three long single-shot 720p chains and a few independent shots"
urgent.__doc__ = "a low-priority overnight 1080p batch; an urgent episode is released at 900 s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "workloads")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for family in FAMILIES:
        for tag, seed in SEEDS.items():
            workload = generate(family, seed)
            path = args.out / f"{family}-{tag}.json"
            path.write_text(json.dumps(workload, indent=1) + "\n")
            print(f"{path.name:<16} {summary(workload)}")


if __name__ == "__main__":
    main()
