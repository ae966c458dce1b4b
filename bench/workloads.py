"""Deterministic scheduling workloads for `sakuga bench schedule`, timed by the anisora-v3 cost model.

Families: `episodes` (720p episodes with continuity chains), `pv1080` (PV batches of 1080p shots), `chains`
(long single-shot chains plus filler shots) and `urgent` (a low-priority batch, an urgent job released later).
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from storyboard.presets import load_preset

Task = dict[str, Any]
Size = tuple[int, int]

PRESET = load_preset("anisora-v3")
FPS: int = PRESET.fps
MAX_FRAMES: int = PRESET.max_frames
HD: Size = (1280, 720)
FULL_HD: Size = (1920, 1088)
CLUSTER = {"nodes": 2, "gpus_per_node": 8}
SEEDS = {"a": 1, "b": 2}
CONTINUE = 0.4    # share of an episode's shots that continue from the shot before


def grid(frames: float) -> int:
    """The nearest frame count the model renders (4k+1)."""
    return max(PRESET.frame_grid.snap(frames), PRESET.min_frames)


def shot_frames(rng: random.Random, low_s: float, high_s: float) -> int:
    return grid(rng.uniform(low_s, high_s) * FPS)


def segments(frames: int) -> list[int]:
    """ceil(frames / 81) segments: full ones, then the (shorter) rest."""
    n = -(-frames // MAX_FRAMES)
    return [MAX_FRAMES] * (n - 1) + [grid(frames - MAX_FRAMES * (n - 1))]


def runtime(frames: int, size: Size) -> dict[str, float]:
    d = PRESET.defaults
    return {str(g): round(PRESET.runtime(frames, size[0], size[1], d.steps, d.guidance, g), 1)
            for g in PRESET.degrees}


@dataclass(frozen=True)
class Job:
    name: str
    size: Size = HD
    priority: int = 0
    release: float = 0.0

    def shot(self, tasks: list[Task], shot: str, frames: int, after: str | None = None) -> str:
        """Append a shot's segments, each after the one before; return the last segment's id."""
        deps = [after] if after else []
        for k, n in enumerate(segments(frames)):
            tid = f"{self.name}/{shot}.{k}"
            tasks.append({"id": tid, "job": self.name, "priority": self.priority, "release": self.release,
                          "deps": deps, "runtime": runtime(n, self.size)})
            deps = [tid]
        return deps[0]


def runs(rng: random.Random, shots: int) -> list[int]:
    """Split an episode's shots into runs: 1 is an independent shot, 2-4 a continuity chain.

    round(40%) of the shots continue from the shot before; the runs come in random order.
    """
    chains: list[int] = []
    left = round(CONTINUE * shots)
    while left > 0:
        chains.append(min(rng.randint(2, 4), left + 1))
        left -= chains[-1] - 1
    out = chains + [1] * (shots - sum(chains))
    rng.shuffle(out)
    return out


def episode(tasks: list[Task], rng: random.Random, job: Job, shots: int) -> None:
    """Shots of 2-8 s; a shot in a chain depends on the previous shot's last segment."""
    number = 0
    for run in runs(rng, shots):
        last = None
        for _ in range(run):
            number += 1
            last = job.shot(tasks, f"shot-{number * 10:03d}", shot_frames(rng, 2, 8), last)


def episodes(rng: random.Random) -> list[Task]:
    tasks: list[Task] = []
    for e in (1, 2, 3):
        episode(tasks, rng, Job(f"ep{e}", release=600.0 if e == 3 else 0.0), rng.randint(10, 16))
    return tasks


def pv1080(rng: random.Random) -> list[Task]:
    tasks: list[Task] = []
    for b in (1, 2, 3):
        job = Job(f"pv{b}", FULL_HD)
        for s in range(rng.randint(8, 14)):
            job.shot(tasks, f"cut-{(s + 1) * 10:03d}", shot_frames(rng, 2, 5))
    return tasks


def chains(rng: random.Random) -> list[Task]:
    tasks: list[Task] = []
    for c in (1, 2, 3):
        Job(f"long{c}").shot(tasks, "oneshot-010", MAX_FRAMES * rng.randint(12, 20))
    filler = Job("ep1")
    for s in range(6):
        filler.shot(tasks, f"shot-{(s + 1) * 10:03d}", shot_frames(rng, 2, 8))
    return tasks


def urgent(rng: random.Random) -> list[Task]:
    tasks: list[Task] = []
    batch = Job("batch", FULL_HD, priority=-1)
    for s in range(rng.randint(40, 60)):
        batch.shot(tasks, f"pv-{s + 1:03d}", rng.choice(range(33, MAX_FRAMES + 1, 4)))
    episode(tasks, rng, Job("urgent", priority=10, release=900.0), 10)
    return tasks


def pv_fleet(nodes: int, seed: int = 1, per_node: int = 19) -> dict:
    """A studio's overnight PV batches on `nodes` x 8 GPUs: about `per_node` 1080p segments a node, in
    batches of 8-14 shots (the scaling bench's workload; generated, not stored)."""
    rng = random.Random(seed)
    tasks: list[Task] = []
    b = 0
    while len(tasks) < nodes * per_node:
        b += 1
        job = Job(f"pv{b}", FULL_HD, priority=rng.choice((-1, 0, 0, 0)))
        for s in range(rng.randint(8, 14)):
            job.shot(tasks, f"cut-{(s + 1) * 10:03d}", shot_frames(rng, 2, 5))
    return {"family": "pv-fleet", "description": f"PV batches on {nodes} nodes", "tasks": tasks,
            "cluster": {"nodes": nodes, "gpus_per_node": CLUSTER["gpus_per_node"]}}


FAMILIES: dict[str, Callable[[random.Random], list[Task]]] = {
    "episodes": episodes, "pv1080": pv1080, "chains": chains, "urgent": urgent}
DESCRIPTIONS = {
    "episodes": "three 720p episodes with continuity chains; ep3 is released at 600 s",
    "pv1080": "three PV batches of independent 1080p shots",
    "chains": "three long single-shot 720p chains, plus a small episode of independent shots",
    "urgent": "a low-priority overnight 1080p batch; an urgent 720p episode is released at 900 s",
}


def generate(family: str, seed: int) -> dict:
    tasks = FAMILIES[family](random.Random(seed))
    return {"family": family, "description": DESCRIPTIONS[family], "cluster": dict(CLUSTER), "tasks": tasks}


def order(tasks: list[Task]) -> list[Task]:
    """Dependencies first; raises ValueError on a repeated id, an unknown dependency or a cycle."""
    by_id = {t["id"]: t for t in tasks}
    if len(by_id) != len(tasks):
        raise ValueError("repeated task id")
    waiting = {t["id"]: len(t["deps"]) for t in tasks}
    users: dict[str, list[str]] = {tid: [] for tid in by_id}
    for t in tasks:
        for d in t["deps"]:
            if d not in by_id:
                raise ValueError(f"{t['id']}: unknown dependency {d!r}")
            users[d].append(t["id"])
    ready = [tid for tid, n in waiting.items() if n == 0]
    out: list[Task] = []
    while ready:
        tid = ready.pop()
        out.append(by_id[tid])
        for u in users[tid]:
            waiting[u] -= 1
            if waiting[u] == 0:
                ready.append(u)
    if len(out) != len(tasks):
        raise ValueError("dependency cycle")
    return out


def critical_path(tasks: list[Task]) -> float:
    """Longest dependency chain with every task at its fastest degree, counting release times."""
    finish: dict[str, float] = {}
    for t in order(tasks):
        start = max([t["release"]] + [finish[d] for d in t["deps"]])
        finish[t["id"]] = start + min(t["runtime"].values())
    return max(finish.values())


def best_gpu_seconds(tasks: list[Task]) -> float:
    return sum(min(int(g) * r for g, r in t["runtime"].items()) for t in tasks)


def summary(name: str, workload: dict) -> str:
    tasks = workload["tasks"]
    return (f"{name:<16} {len(tasks):>4} tasks {len({t['job'] for t in tasks}):>2} jobs "
            f"{best_gpu_seconds(tasks):>8.0f} best GPU-s  critical path {critical_path(tasks):>6.0f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "workloads")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for family in FAMILIES:
        for tag, seed in SEEDS.items():
            workload = generate(family, seed)
            path = args.out / f"{family}-{tag}.json"
            path.write_text(json.dumps(workload, indent=1, sort_keys=False) + "\n")
            print(summary(path.name, workload))


if __name__ == "__main__":
    main()
